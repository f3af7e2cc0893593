/**
 * Proof verification exactly as RFC 9162 specifies it (these algorithms also verify RFC 6962 proofs:
 * the tree and the proofs are the same; 9162 only wrote the verifier down). Failures throw
 * TlogVerifyError (exit 1) with codes TLOG_INCLUSION_INVALID / TLOG_CONSISTENCY_INVALID.
 */
import type { ErrorCode } from '../errors.js';
import { TLOG_CODES, TlogVerifyError } from './errors.js';
import { EMPTY_ROOT, HASH_SIZE, nodeHash, type Hash } from './hash.js';

function half(n: number): number {
  return Math.floor(n / 2);
}

function lsb(n: number): boolean {
  return n % 2 === 1;
}

function isSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function checkHashes(proof: readonly Uint8Array[], code: ErrorCode): void {
  proof.forEach((p, i) => {
    if (p.length !== HASH_SIZE) throw new TlogVerifyError(code, `proof hash ${i} has ${p.length} bytes, expected ${HASH_SIZE}`);
  });
}

/**
 * RFC 9162 §2.1.3.2 steps 1-4: the root that `proof` leads to from leaf `index` of a tree of size
 * `treeSize`. Throws when the proof has the wrong shape for that index and size.
 */
export function rootFromInclusion(leaf: Uint8Array, index: number, treeSize: number, proof: readonly Uint8Array[]): Hash {
  const fail = (why: string) => new TlogVerifyError(TLOG_CODES.INCLUSION, `inclusion proof for leaf ${index} of ${treeSize}: ${why}`);
  if (!isSize(index) || !isSize(treeSize) || index >= treeSize) throw fail('index is not inside the tree');
  if (leaf.length !== HASH_SIZE) throw fail(`leaf hash has ${leaf.length} bytes`);
  checkHashes(proof, TLOG_CODES.INCLUSION);
  let fn = index;
  let sn = treeSize - 1;
  let r: Hash = Buffer.from(leaf);
  for (const p of proof) {
    if (sn === 0) throw fail('proof is too long');
    if (lsb(fn) || fn === sn) {
      r = nodeHash(p, r);
      if (!lsb(fn)) {
        while (!lsb(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw fail('proof is too short');
  return r;
}

/** RFC 9162 §2.1.3.2: does `proof` show that `leaf` is leaf `index` of the tree (treeSize, root)? */
export function verifyInclusion(leaf: Uint8Array, index: number, treeSize: number, proof: readonly Uint8Array[], root: Uint8Array): void {
  const r = rootFromInclusion(leaf, index, treeSize, proof);
  if (!r.equals(root)) {
    throw new TlogVerifyError(TLOG_CODES.INCLUSION, `inclusion proof for leaf ${index} of ${treeSize} leads to root ${r.toString('hex')}, not ${Buffer.from(root).toString('hex')}`);
  }
}

/**
 * RFC 9162 §2.1.4.2: does `proof` show that the tree (newSize, newRoot) extends (oldSize, oldRoot)?
 * Sizes equal: the proof must be empty and the roots equal. Old size 0: the empty tree is a prefix of
 * every tree; the proof must be empty and oldRoot must be MTH({}).
 */
export function verifyConsistency(oldSize: number, newSize: number, oldRoot: Uint8Array, newRoot: Uint8Array, proof: readonly Uint8Array[]): void {
  const fail = (why: string) => new TlogVerifyError(TLOG_CODES.CONSISTENCY, `consistency proof ${oldSize} -> ${newSize}: ${why}`);
  if (!isSize(oldSize) || !isSize(newSize)) throw fail('sizes must be non-negative integers');
  if (oldSize > newSize) throw fail('the new tree is smaller than the old one');
  checkHashes(proof, TLOG_CODES.CONSISTENCY);
  if (oldSize === newSize) {
    if (proof.length !== 0) throw fail('proof must be empty for equal sizes');
    if (!Buffer.from(oldRoot).equals(newRoot)) throw fail('equal sizes but different roots');
    return;
  }
  if (oldSize === 0) {
    if (proof.length !== 0) throw fail('proof must be empty from the empty tree');
    if (!EMPTY_ROOT.equals(oldRoot)) throw fail('old root is not the empty-tree hash');
    return;
  }
  // 1. An empty path fails.
  if (proof.length === 0) throw fail('proof is empty');
  // 2. If first is an exact power of 2, prepend first_hash.
  const path: Uint8Array[] = Number.isInteger(Math.log2(oldSize)) && 2 ** Math.log2(oldSize) === oldSize ? [oldRoot, ...proof] : [...proof];
  // 3. fn = first - 1, sn = second - 1.
  let fn = oldSize - 1;
  let sn = newSize - 1;
  // 4. If LSB(fn) is set, right-shift fn and sn equally until it is not.
  while (lsb(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  // 5. fr = sr = the first value of the path.
  const [head, ...rest] = path;
  if (head === undefined) throw fail('proof is empty');
  let fr: Hash = Buffer.from(head);
  let sr: Hash = Buffer.from(head);
  // 6. For each subsequent value c:
  for (const c of rest) {
    if (sn === 0) throw fail('proof is too long');
    if (lsb(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (!lsb(fn)) {
        while (!lsb(fn) && fn !== 0) {
          fn = half(fn);
          sn = half(sn);
        }
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  // 7. fr == first_hash, sr == second_hash, sn == 0.
  if (sn !== 0) throw fail('proof is too short');
  if (!fr.equals(oldRoot)) throw fail('proof does not lead to the old root');
  if (!sr.equals(newRoot)) throw fail('proof does not lead to the new root');
}
