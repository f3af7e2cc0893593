/** RFC 6962 §2.1 hashing: the leaf and interior-node hashes, and the empty-tree hash. */
import { hash } from 'node:crypto';

export const HASH_SIZE = 32;
export type Hash = Buffer;

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

/** RFC 6962 §2.1: MTH of the empty tree, SHA-256 of the empty string. */
export const EMPTY_ROOT: Hash = hash('sha256', Buffer.alloc(0), 'buffer');

/** RFC 6962 §2.1: leaf hash = SHA-256(0x00 || data). */
export function leafHash(data: Uint8Array): Hash {
  const b = Buffer.allocUnsafe(data.length + 1);
  b[0] = LEAF_PREFIX;
  b.set(data, 1);
  return hash('sha256', b, 'buffer');
}

/** RFC 6962 §2.1: interior node hash = SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Hash {
  const b = Buffer.allocUnsafe(1 + 2 * HASH_SIZE);
  b[0] = NODE_PREFIX;
  b.set(left, 1);
  b.set(right, 1 + HASH_SIZE);
  return hash('sha256', b, 'buffer');
}
