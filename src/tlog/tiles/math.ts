/**
 * Where a Merkle hash lives in the tiles (c2sp.org/tlog-tiles, "Merkle Tree"): the n-th tile at level
 * L holds MTH(D[(n*256 + i) * 256^L : (n*256 + i + 1) * 256^L]) for i in 0..255, and "the Merkle Tree
 * levels between those expressed by the tile hashes are reconstructed by hashing the leaves".
 *
 * So the complete subtree at Merkle level h (2^h leaves), number k, is the hash of the 2^r consecutive
 * level-L tile hashes starting at k * 2^r, where L = floor(h / 8) and r = h mod 8. Those always sit in
 * one tile (2^r divides 256). Stored-hash indexes (merkle.ts) name such subtrees.
 */
import { at } from '../../errors.js';
import { HASH_SIZE, nodeHash, type Hash } from '../hash.js';
import { splitStoredHashIndex } from '../merkle.js';
import { TILE_HEIGHT, TILE_WIDTH, levelCount, type TileRef } from './path.js';

/** A stored hash's place in the tiles: tile (level, n), and the hash range [start, end) inside it. */
export interface TileSlot {
  level: number;
  n: number;
  start: number;
  end: number;
}

/** The tile holding stored hash `index`, and which of its hashes combine into it. */
export function slotOfStoredHash(index: number): TileSlot {
  const { level: h, n: k } = splitStoredHashIndex(index);
  const level = Math.floor(h / TILE_HEIGHT);
  const span = 2 ** (h - level * TILE_HEIGHT);
  const first = k * span;
  const n = Math.floor(first / TILE_WIDTH);
  const start = first - n * TILE_WIDTH;
  return { level, n, start, end: start + span };
}

/**
 * Interior hashes already computed for a tile's data, so that proofs from a tile held in memory hash
 * nothing again: the 255 aligned subtrees of 2..256 hashes, numbered like a heap from the bottom
 * (2-hash subtrees first). Kept per Buffer, for as long as the tile data itself is kept.
 */
const interior = new WeakMap<Buffer, { hashes: Buffer; known: Uint8Array }>();

function interiorSlot(start: number, span: number): number {
  // Spans 2, 4, ... 256 start at slots 0, 128, 192, ...: 256 - 512 / span, then one per subtree.
  return 256 - 512 / span + start / span;
}

/**
 * `to` starts with the first `width` hashes of `from` (a tile grown by a commit): reuse every interior
 * hash `from` already computed inside that prefix, so growing a tile by a few hashes hashes O(log) more.
 */
export function inheritInterior(from: Buffer, to: Buffer, width: number): void {
  const memo = interior.get(from);
  if (!memo) return;
  const next = { hashes: Buffer.allocUnsafe(255 * HASH_SIZE), known: new Uint8Array(255) };
  for (let span = 2; span <= width; span *= 2) {
    for (let start = 0; start + span <= width; start += span) {
      const slot = interiorSlot(start, span);
      if (!memo.known[slot]) continue;
      memo.hashes.copy(next.hashes, slot * HASH_SIZE, slot * HASH_SIZE, (slot + 1) * HASH_SIZE);
      next.known[slot] = 1;
    }
  }
  interior.set(to, next);
}

/** Hash of the complete subtree whose leaves are tile hashes [start, end) of `data` (end-start = 2^r). */
export function subtreeOfTile(data: Buffer, start: number, end: number): Hash {
  const span = end - start;
  if (span === 1) return data.subarray(start * HASH_SIZE, end * HASH_SIZE);
  let memo = interior.get(data);
  if (!memo) interior.set(data, (memo = { hashes: Buffer.allocUnsafe(255 * HASH_SIZE), known: new Uint8Array(255) }));
  const slot = interiorSlot(start, span);
  if (memo.known[slot]) return memo.hashes.subarray(slot * HASH_SIZE, (slot + 1) * HASH_SIZE);
  const mid = start + span / 2;
  const h = nodeHash(subtreeOfTile(data, start, mid), subtreeOfTile(data, mid, end));
  h.copy(memo.hashes, slot * HASH_SIZE);
  memo.known[slot] = 1;
  return h;
}

/** MTH of a full tile: its hash in the tile one level up. */
export function fullTileHash(data: Buffer): Hash {
  if (data.length !== TILE_WIDTH * HASH_SIZE) throw new RangeError(`a full tile has ${TILE_WIDTH * HASH_SIZE} bytes, not ${data.length}`);
  return subtreeOfTile(data, 0, TILE_WIDTH);
}

/** The tile one level up whose hash number `t.n` is the MTH of full tile `t`, as it is in tree `size`. */
export function parentOf(t: TileRef, size: number): TileRef & { offset: number } {
  const level = t.level + 1;
  const n = Math.floor(t.n / TILE_WIDTH);
  const width = Math.min(TILE_WIDTH, levelCount(size, level) - n * TILE_WIDTH);
  return { level, n, width, offset: t.n - n * TILE_WIDTH };
}

/**
 * Root of the tree of `size` leaves from its right-edge tiles (one per level with a non-zero base-256
 * digit of size): each tile's hashes are split into complete subtrees by the binary digits of its width,
 * largest first, and all of them are folded right to left (RFC 6962 §2.1).
 */
export function rootFromEdge(size: number, edge: (level: number) => Buffer): Hash {
  const parts: Hash[] = [];
  for (let level = 0; levelCount(size, level) > 0; level++) {
    const width = levelCount(size, level) % TILE_WIDTH;
    if (width === 0) continue;
    const data = edge(level);
    const mine: Hash[] = [];
    let start = 0;
    for (let bit = 128; bit >= 1; bit /= 2) {
      if (Math.floor(width / bit) % 2 === 1) {
        mine.push(subtreeOfTile(data, start, start + bit));
        start += bit;
      }
    }
    parts.unshift(...mine); // higher levels hold the leftmost (larger) subtrees
  }
  if (parts.length === 0) throw new RangeError('rootFromEdge: empty tree');
  let h = at(parts, parts.length - 1, 'edge subtree');
  for (let i = parts.length - 2; i >= 0; i--) h = nodeHash(at(parts, i, 'edge subtree'), h);
  return h;
}

/** The right-edge tiles of a tree: the partial tile of every level whose base-256 digit is non-zero. */
export function edgeTiles(size: number): TileRef[] {
  const out: TileRef[] = [];
  for (let level = 0; levelCount(size, level) > 0; level++) {
    const count = levelCount(size, level);
    const width = count % TILE_WIDTH;
    if (width > 0) out.push({ level, n: Math.floor(count / TILE_WIDTH), width });
  }
  return out;
}
