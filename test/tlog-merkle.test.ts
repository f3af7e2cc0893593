/**
 * RFC 6962 / 9162 Merkle math (src/tlog/merkle.ts): checked against a production log (Google Argon
 * 2020, test/tlog/fixtures/ct-argon2020) and against a direct transcription of the RFC 6962 §2.1
 * definitions (MTH, PATH, PROOF) for every small tree.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  EMPTY_ROOT, leafHash, nodeHash, proveConsistency, proveInclusion, rootFromInclusion, rootFromLeaves, splitStoredHashIndex,
  storedHashCount, storedHashes, storedHashIndex, treeHash, verifyConsistency, verifyInclusion, type Hash, type HashReader,
} from '../src/tlog/merkle.js';
import { TlogVerifyError } from '../src/tlog/errors.js';

const CT = fileURLToPath(new URL('tlog/fixtures/ct-argon2020/', import.meta.url)); // vendored: public data, see its README.md
const b64 = (s: string) => Buffer.from(s, 'base64');
const ct = (f: string) => JSON.parse(readFileSync(join(CT, f), 'utf8')) as Record<string, unknown>;

const sth = ct('sth.json') as { tree_size: number; sha256_root_hash: string };
const proof = ct('proof.json') as { leaf_index: number; audit_path: string[] };
const entries = ct('entries.json') as { entries: { leaf_input: string }[] };
const consistency = ct('consistency.json') as { consistency: string[] };
const OLD_SIZE = 3654490;
const OLD_ROOT = b64('AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ=');
const ROOT = b64(sth.sha256_root_hash);
const LEAF = leafHash(b64(entries.entries[0].leaf_input));
const PATH = proof.audit_path.map(b64);
const CONS = consistency.consistency.map(b64);

function flipBit(hashes: Buffer[], i: number, bit = 0): Buffer[] {
  return hashes.map((h, k) => (k === i ? Buffer.from(h.map((x, j) => (j === 0 ? x ^ (1 << bit) : x))) : h));
}

function expectVerifyFailure(fn: () => void, code: string): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TlogVerifyError);
    expect((e as TlogVerifyError).code).toBe(code);
    return;
  }
  throw new Error('expected a verification failure');
}

describe('Certificate Transparency vectors (Argon 2020)', () => {
  it('leaf 10000 is included in the signed tree head', () => {
    expect(proof.leaf_index).toBe(10000);
    verifyInclusion(LEAF, 10000, sth.tree_size, PATH, ROOT);
  });

  it('the tree of size 3654490 is a prefix of the signed tree head', () => {
    verifyConsistency(OLD_SIZE, sth.tree_size, OLD_ROOT, ROOT, CONS);
  });

  it('rejects altered inclusion proofs', () => {
    const fails = (f: () => void) => expectVerifyFailure(f, 'TLOG_INCLUSION_INVALID');
    for (let i = 0; i < PATH.length; i++) fails(() => verifyInclusion(LEAF, 10000, sth.tree_size, flipBit(PATH, i, i % 8), ROOT));
    fails(() => verifyInclusion(LEAF, 10001, sth.tree_size, PATH, ROOT)); // wrong index
    fails(() => verifyInclusion(LEAF, 9999, sth.tree_size, PATH, ROOT));
    // Wrong sizes. (A size whose audit path has the same shape, e.g. tree_size + 1 here, gives the same
    // computation: RFC 6962 binds the size through the signed tree head, not through the proof.)
    fails(() => verifyInclusion(LEAF, 10000, 10001, PATH, ROOT));
    fails(() => verifyInclusion(LEAF, 10000, 2 ** 25, PATH, ROOT));
    fails(() => verifyInclusion(LEAF, 10000, sth.tree_size * 2, PATH, ROOT));
    fails(() => verifyInclusion(LEAF, 10000, sth.tree_size, PATH.slice(0, -1), ROOT)); // short
    fails(() => verifyInclusion(LEAF, 10000, sth.tree_size, [...PATH, PATH[0]], ROOT)); // long
    fails(() => verifyInclusion(leafHash(Buffer.from('other')), 10000, sth.tree_size, PATH, ROOT));
    fails(() => verifyInclusion(LEAF, 10000, sth.tree_size, PATH, OLD_ROOT));
    fails(() => verifyInclusion(LEAF, sth.tree_size, sth.tree_size, PATH, ROOT)); // index out of range
  });

  it('rejects altered consistency proofs', () => {
    const fails = (f: () => void) => expectVerifyFailure(f, 'TLOG_CONSISTENCY_INVALID');
    for (let i = 0; i < CONS.length; i++) fails(() => verifyConsistency(OLD_SIZE, sth.tree_size, OLD_ROOT, ROOT, flipBit(CONS, i, 7 - (i % 8))));
    fails(() => verifyConsistency(OLD_SIZE + 1, sth.tree_size, OLD_ROOT, ROOT, CONS)); // wrong old size
    fails(() => verifyConsistency(OLD_SIZE - 1, sth.tree_size, OLD_ROOT, ROOT, CONS));
    fails(() => verifyConsistency(OLD_SIZE, OLD_SIZE + 1, OLD_ROOT, ROOT, CONS)); // wrong new size
    fails(() => verifyConsistency(OLD_SIZE, sth.tree_size * 2, OLD_ROOT, ROOT, CONS));
    fails(() => verifyConsistency(OLD_SIZE, sth.tree_size, ROOT, ROOT, CONS)); // wrong old root
    fails(() => verifyConsistency(OLD_SIZE, sth.tree_size, OLD_ROOT, OLD_ROOT, CONS)); // wrong new root
    fails(() => verifyConsistency(OLD_SIZE, sth.tree_size, OLD_ROOT, ROOT, CONS.slice(1)));
    fails(() => verifyConsistency(OLD_SIZE, sth.tree_size, OLD_ROOT, ROOT, []));
    fails(() => verifyConsistency(sth.tree_size, OLD_SIZE, ROOT, OLD_ROOT, CONS)); // shrinking
  });
});

// RFC 6962 §2.1, transcribed literally (k = largest power of two smaller than n); D[lo:hi] is a range
// of `all`, and MTH is memoised so that checking every pair stays fast.
function k(n: number): number {
  let p = 1;
  while (p * 2 < n) p *= 2;
  return p;
}
const memo = new Map<string, Hash>();
function mth(all: Hash[], lo: number, hi: number): Hash {
  const key = `${lo}:${hi}`;
  let h = memo.get(key);
  if (!h) {
    const n = hi - lo;
    if (n === 0) h = createHash('sha256').digest();
    else if (n === 1) h = all[lo];
    else h = nodeHash(mth(all, lo, lo + k(n)), mth(all, lo + k(n), hi));
    memo.set(key, h);
  }
  return h;
}
/** PATH(m, D[lo:hi]) */
function path(all: Hash[], m: number, lo: number, hi: number): Hash[] {
  if (hi - lo <= 1) return [];
  const s = k(hi - lo);
  return m < s ? [...path(all, m, lo, lo + s), mth(all, lo + s, hi)] : [...path(all, m - s, lo + s, hi), mth(all, lo, lo + s)];
}
/** SUBPROOF(m, D[lo:hi], b) */
function subproof(all: Hash[], m: number, lo: number, hi: number, b: boolean): Hash[] {
  const n = hi - lo;
  if (m === n) return b ? [] : [mth(all, lo, hi)];
  const s = k(n);
  return m <= s
    ? [...subproof(all, m, lo, lo + s, b), mth(all, lo + s, hi)]
    : [...subproof(all, m - s, lo + s, hi, false), mth(all, lo, lo + s)];
}

/** An in-memory stored-hash log: the HashReader the math runs on, without disk. */
class MemoryLog implements HashReader {
  readonly stored: Hash[] = [];
  readonly leaves: Hash[] = [];
  append(h: Hash): void {
    expect(this.stored.length).toBe(storedHashIndex(0, this.leaves.length));
    this.stored.push(...storedHashes(this.leaves.length, h, this));
    this.leaves.push(h);
    expect(this.stored.length).toBe(storedHashCount(this.leaves.length));
  }
  readHashes(indexes: readonly number[]): Hash[] {
    return indexes.map((i) => {
      if (i >= this.stored.length) throw new Error(`read beyond stored hashes: ${i}`);
      return this.stored[i];
    });
  }
}

const MAX = 64;
const mem = new MemoryLog();
for (let i = 0; i < MAX; i++) mem.append(leafHash(Buffer.from(`entry ${i}`)));

describe('stored hash indexing (sumdb layout)', () => {
  it('splitStoredHashIndex inverts storedHashIndex', () => {
    for (let level = 0; level < 8; level++) {
      for (let n = 0; n < 200; n++) expect(splitStoredHashIndex(storedHashIndex(level, n))).toEqual({ level, n });
    }
    for (let i = 0; i < 1000; i++) {
      const { level, n } = splitStoredHashIndex(i);
      expect(storedHashIndex(level, n)).toBe(i);
    }
  });

  it('works beyond 2^31 and 2^32 (no 32-bit operators)', () => {
    for (const n of [2 ** 31 - 1, 2 ** 31, 2 ** 32 + 5, 2 ** 40 + 3]) {
      expect(splitStoredHashIndex(storedHashIndex(0, n))).toEqual({ level: 0, n });
      expect(splitStoredHashIndex(storedHashIndex(3, n))).toEqual({ level: 3, n });
    }
    expect(storedHashCount(2 ** 32)).toBe(2 ** 33 - 1);
  });

  it('stores each complete subtree root once', () => {
    for (let level = 0; level < 6; level++) {
      for (let n = 0; (n + 1) * 2 ** level <= MAX; n++) {
        expect(mem.stored[storedHashIndex(level, n)].equals(mth(mem.leaves, n * 2 ** level, (n + 1) * 2 ** level))).toBe(true);
      }
    }
  });
});

describe('tree hashes and proofs for every size up to 64', () => {
  it('MTH: treeHash, rootFromLeaves and the RFC definition agree', () => {
    expect(treeHash(0, mem).equals(EMPTY_ROOT)).toBe(true);
    expect(rootFromLeaves([]).equals(createHash('sha256').digest())).toBe(true);
    for (let n = 1; n <= MAX; n++) {
      const want = mth(mem.leaves, 0, n);
      expect(treeHash(n, mem).equals(want)).toBe(true);
      expect(rootFromLeaves(mem.leaves.slice(0, n)).equals(want)).toBe(true);
    }
  });

  it('inclusion proofs for all (index, size) pairs equal RFC PATH and verify', () => {
    for (let n = 1; n <= MAX; n++) {
      const root = treeHash(n, mem);
      for (let m = 0; m < n; m++) {
        const p = proveInclusion(m, n, mem);
        expect(p).toEqual(path(mem.leaves, m, 0, n));
        verifyInclusion(mem.leaves[m], m, n, p, root);
        expect(rootFromInclusion(mem.leaves[m], m, n, p).equals(root)).toBe(true);
        if (n > 1) {
          expect(() => verifyInclusion(mem.leaves[m], (m + 1) % n, n, p, root)).toThrow(TlogVerifyError);
          expect(() => verifyInclusion(mem.leaves[(m + 1) % n], m, n, p, root)).toThrow(TlogVerifyError);
        }
      }
    }
  });

  it('consistency proofs for all (m, n) pairs equal RFC PROOF and verify', () => {
    for (let n = 1; n <= MAX; n++) {
      const newRoot = treeHash(n, mem);
      for (let m = 0; m <= n; m++) {
        const p = proveConsistency(m, n, mem);
        expect(p).toEqual(m === 0 ? [] : subproof(mem.leaves, m, 0, n, true));
        const oldRoot = treeHash(m, mem);
        verifyConsistency(m, n, oldRoot, newRoot, p);
        if (m > 0 && m < n) {
          expect(() => verifyConsistency(m, n, oldRoot, newRoot, flipBit(p, p.length - 1))).toThrow(TlogVerifyError);
          expect(() => verifyConsistency(m, n, newRoot, newRoot, p)).toThrow(TlogVerifyError);
          if (m + 1 < n) expect(() => verifyConsistency(m + 1, n, oldRoot, newRoot, p)).toThrow(TlogVerifyError);
        }
      }
    }
  });

  it('edge cases: equal sizes, empty old tree, malformed hashes', () => {
    const r = treeHash(5, mem);
    verifyConsistency(5, 5, r, r, []);
    expect(() => verifyConsistency(5, 5, r, treeHash(6, mem), [])).toThrow(TlogVerifyError);
    expect(() => verifyConsistency(5, 5, r, r, [r])).toThrow(TlogVerifyError);
    verifyConsistency(0, 7, EMPTY_ROOT, treeHash(7, mem), []);
    expect(() => verifyConsistency(0, 7, r, treeHash(7, mem), [])).toThrow(TlogVerifyError);
    expect(() => verifyInclusion(mem.leaves[0], 0, 2, [Buffer.alloc(31)], r)).toThrow(TlogVerifyError);
    expect(() => proveInclusion(3, 3, mem)).toThrow(RangeError);
    expect(() => proveConsistency(4, 3, mem)).toThrow(RangeError);
  });
});
