/**
 * RFC 6962 Merkle tree math over hashes, with storage behind a one-method interface (the shape of
 * golang.org/x/mod/sumdb/tlog). Nothing here touches a disk.
 *
 * Hashing (RFC 6962 §2.1, RFC 9162 §2.1.1):
 *   MTH({})       = SHA-256()                      (empty tree)
 *   leaf hash     = SHA-256(0x00 || entry)
 *   interior node = SHA-256(0x01 || left || right)
 * and for n > 1 leaves the tree splits at k, the largest power of two smaller than n.
 *
 * Stored hashes. A log of n records keeps every hash of a *complete* subtree: record n's leaf hash, and
 * the roots of the subtrees completed by it (one per trailing 1 bit of n). They are numbered in the
 * order they are produced — the sumdb "stored hash index": record n's leaf is at storedHashIndex(0, n)
 * and is followed by its completed parents (level 1, 2, ...). Any tree hash, inclusion proof or
 * consistency proof for any size <= n needs only O(log n) of them.
 *
 * Sizes and indexes are JavaScript numbers (exact below 2^53); the code uses arithmetic, never 32-bit
 * bitwise operators, so trees beyond 2^31 leaves work.
 */
import { at } from '../errors.js';
import { EMPTY_ROOT, nodeHash, type Hash } from './hash.js';

export { EMPTY_ROOT, HASH_SIZE, leafHash, nodeHash, type Hash } from './hash.js';
export { verifyInclusion, rootFromInclusion, verifyConsistency } from './verify-proof.js';

/** Reads stored hashes by stored-hash index (see storedHashIndex); returns them in the order asked. */
export interface HashReader {
  readHashes(indexes: readonly number[]): Hash[];
}

/** One stored hash: readHashes answers one hash per index asked, so a missing one is a bug. */
export function readHash(r: HashReader, index: number): Hash {
  return at(r.readHashes([index]), 0, 'stored hash');
}

function half(n: number): number {
  return Math.floor(n / 2);
}

function isOdd(n: number): boolean {
  return n % 2 === 1;
}

/** Number of trailing zero bits of n > 0. */
function trailingZeros(n: number): number {
  let z = 0;
  while (n > 0 && !isOdd(n)) {
    n = half(n);
    z++;
  }
  return z;
}

/** k = the largest power of two strictly below n (n >= 2), and l = log2 k. */
function maxpow2(n: number): { k: number; l: number } {
  let l = 0;
  while (2 ** (l + 1) < n) l++;
  return { k: 2 ** l, l };
}

/** Position of the level-`level` hash number n (the root of leaves [n*2^level, (n+1)*2^level)). */
export function storedHashIndex(level: number, n: number): number {
  // Level L's n'th hash is written right after level L+1's (2n+1)'th hash; reduce to level 0, where
  // record n's leaf is at n + n/2 + n/4 + ..., then add back the level.
  for (let l = level; l > 0; l--) n = 2 * n + 1;
  let i = 0;
  for (; n > 0; n = half(n)) i += n;
  return i + level;
}

/** Inverse of storedHashIndex. */
export function splitStoredHashIndex(index: number): { level: number; n: number } {
  // storedHashIndex(0, n) < 2n, so the record that wrote `index` is in [index/2, index/2 + log2 index].
  let n = half(index);
  let indexN = storedHashIndex(0, n);
  for (;;) {
    const x = indexN + 1 + trailingZeros(n + 1); // record n writes 1 + trailingOnes(n) hashes
    if (x > index) break;
    n++;
    indexN = x;
  }
  const level = index - indexN;
  return { level, n: Math.floor(n / 2 ** level) };
}

/** How many hashes a log of n records stores. */
export function storedHashCount(n: number): number {
  if (n === 0) return 0;
  let count = storedHashIndex(0, n - 1) + 1;
  for (let i = n - 1; isOdd(i); i = half(i)) count++;
  return count;
}

/**
 * The hashes to store when record n (with leaf hash h) is appended: h, then the root of each subtree it
 * completes. They go at storedHashIndex(0, n) onwards. Reads one left sibling per completed subtree.
 */
export function storedHashes(n: number, h: Hash, r: HashReader): Hash[] {
  const m = trailingZeros(n + 1);
  const indexes: number[] = new Array<number>(m);
  for (let i = 0; i < m; i++) indexes[m - 1 - i] = storedHashIndex(i, Math.floor(n / 2 ** i) - 1);
  const old = m > 0 ? r.readHashes(indexes) : [];
  const out = [h];
  for (let i = 0; i < m; i++) {
    h = nodeHash(at(old, m - 1 - i, 'stored hash'), h); // readHashes answers one hash per index asked
    out.push(h);
  }
  return out;
}

/** Stored-hash indexes needed for the hash of leaves [lo, hi): one per maximal complete subtree. */
function subTreeIndex(lo: number, hi: number, need: number[]): void {
  while (lo < hi) {
    const { k, l } = maxpow2(hi - lo + 1);
    need.push(storedHashIndex(l, lo / k));
    lo += k;
  }
}

/** Hash of leaves [lo, hi) from the hashes listed by subTreeIndex, consumed from hashes[pos.i]. */
function subTreeHash(lo: number, hi: number, hashes: Hash[], pos: { i: number }): Hash {
  let count = 0;
  while (lo < hi) {
    lo += maxpow2(hi - lo + 1).k;
    count++;
  }
  const parts = hashes.slice(pos.i, pos.i + count);
  pos.i += count;
  // count >= 1 (every caller has lo < hi), and subTreeIndex asked for exactly these hashes.
  let h = at(parts, count - 1, 'subtree hash');
  for (let i = count - 2; i >= 0; i--) h = nodeHash(at(parts, i, 'subtree hash'), h);
  return h;
}

/** MTH of the first n records (RFC 6962 §2.1). */
export function treeHash(n: number, r: HashReader): Hash {
  if (n === 0) return EMPTY_ROOT;
  const need: number[] = [];
  subTreeIndex(0, n, need);
  return subTreeHash(0, n, r.readHashes(need), { i: 0 });
}

/** MTH of a list of leaf hashes, without storage (for tests and small trees). */
export function rootFromLeaves(leaves: readonly Hash[]): Hash {
  const stack: Hash[] = [];
  leaves.forEach((h, n) => {
    stack.push(h);
    for (let i = n; isOdd(i); i = half(i)) {
      const right = stack.pop()!;
      stack.push(nodeHash(stack.pop()!, right));
    }
  });
  return foldStack(stack);
}

/** Root from the stack of complete-subtree hashes (largest first): fold right to left. */
export function foldStack(stack: readonly Hash[]): Hash {
  if (stack.length === 0) return EMPTY_ROOT;
  let h = at(stack, stack.length - 1, 'stack hash');
  for (let i = stack.length - 2; i >= 0; i--) h = nodeHash(at(stack, i, 'stack hash'), h);
  return h;
}

function leafProofIndex(lo: number, hi: number, n: number, need: number[]): void {
  if (lo + 1 === hi) return;
  const { k } = maxpow2(hi - lo);
  if (n < lo + k) {
    leafProofIndex(lo, lo + k, n, need);
    subTreeIndex(lo + k, hi, need);
  } else {
    subTreeIndex(lo, lo + k, need);
    leafProofIndex(lo + k, hi, n, need);
  }
}

function leafProof(lo: number, hi: number, n: number, hashes: Hash[], pos: { i: number }): Hash[] {
  if (lo + 1 === hi) return []; // the verifier has the leaf hash
  const { k } = maxpow2(hi - lo);
  // RFC 6962 §2.1.1 PATH(m, D[n]): the sibling subtree of the side that holds m, bottom-up order.
  if (n < lo + k) {
    const p = leafProof(lo, lo + k, n, hashes, pos);
    return [...p, subTreeHash(lo + k, hi, hashes, pos)];
  }
  const th = subTreeHash(lo, lo + k, hashes, pos);
  return [...leafProof(lo + k, hi, n, hashes, pos), th];
}

/** RFC 6962 §2.1.1 audit path for record `index` in the tree of size `treeSize`. */
export function proveInclusion(index: number, treeSize: number, r: HashReader): Hash[] {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(treeSize) || index < 0 || index >= treeSize) {
    throw new RangeError(`inclusion proof: index ${index} is not inside a tree of size ${treeSize}`);
  }
  const need: number[] = [];
  leafProofIndex(0, treeSize, index, need);
  if (need.length === 0) return [];
  return leafProof(0, treeSize, index, r.readHashes(need), { i: 0 });
}

function treeProofIndex(lo: number, hi: number, n: number, need: number[]): void {
  if (n === hi) {
    if (lo !== 0) subTreeIndex(lo, hi, need);
    return;
  }
  const { k } = maxpow2(hi - lo);
  if (n <= lo + k) {
    treeProofIndex(lo, lo + k, n, need);
    subTreeIndex(lo + k, hi, need);
  } else {
    subTreeIndex(lo, lo + k, need);
    treeProofIndex(lo + k, hi, n, need);
  }
}

function treeProof(lo: number, hi: number, n: number, hashes: Hash[], pos: { i: number }): Hash[] {
  // RFC 6962 §2.1.2 SUBPROOF(m, D[lo:hi], b), b = (lo == 0): the old tree's own root is not sent.
  if (n === hi) return lo === 0 ? [] : [subTreeHash(lo, hi, hashes, pos)];
  const { k } = maxpow2(hi - lo);
  if (n <= lo + k) {
    const p = treeProof(lo, lo + k, n, hashes, pos);
    return [...p, subTreeHash(lo + k, hi, hashes, pos)];
  }
  const th = subTreeHash(lo, lo + k, hashes, pos);
  return [...treeProof(lo + k, hi, n, hashes, pos), th];
}

/** RFC 6962 §2.1.2 consistency proof from the tree of size oldSize to the tree of size newSize. */
export function proveConsistency(oldSize: number, newSize: number, r: HashReader): Hash[] {
  if (!Number.isSafeInteger(oldSize) || !Number.isSafeInteger(newSize) || oldSize < 0 || oldSize > newSize) {
    throw new RangeError(`consistency proof: sizes ${oldSize} -> ${newSize} are not a growing pair`);
  }
  if (oldSize === 0 || oldSize === newSize) return [];
  const need: number[] = [];
  treeProofIndex(0, newSize, oldSize, need);
  return treeProof(0, newSize, oldSize, r.readHashes(need), { i: 0 });
}
