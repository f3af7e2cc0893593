/**
 * Growing the tiles of a tree: given the right-edge tiles of the tree of `oldSize` and the leaf hashes
 * (and entries) appended after it, the tiles and bundles that the tree of the new size adds or widens
 * (c2sp.org/tlog-tiles: a level-(L+1) hash is the MTH of a *full* level-L tile; partial tiles are
 * never hashed upwards). Pure: the caller reads the old edge and writes the result.
 */
import { HASH_SIZE, type Hash } from '../hash.js';
import { encodeBundle } from './bundle.js';
import { edgeTiles, fullTileHash, inheritInterior, rootFromEdge } from './math.js';
import { ENTRIES, TILE_WIDTH, levelCount, type TileRef } from './path.js';
import { tileKey } from './reader.js';

export interface TileData {
  ref: TileRef;
  data: Buffer;
}

export interface Growth {
  newSize: number;
  /** Hash tiles and entry bundles to write, each as it is in the new tree. */
  tiles: TileData[];
  rootHash: Hash;
}

/** The edge tile of `level` in the old tree (width levelCount(oldSize, level) % 256); called only when it exists. */
export type EdgeReader = (level: number) => Buffer;

function split(level: number, firstTile: number, seq: Buffer, out: TileData[], prefix: Buffer | undefined): Buffer[] {
  const full: Buffer[] = [];
  const tileBytes = TILE_WIDTH * HASH_SIZE;
  for (let off = 0, n = firstTile; off < seq.length; off += tileBytes, n++) {
    const data = seq.subarray(off, Math.min(seq.length, off + tileBytes));
    if (off === 0 && prefix) inheritInterior(prefix, data, prefix.length / HASH_SIZE);
    out.push({ ref: { level, n, width: data.length / HASH_SIZE }, data });
    if (data.length === tileBytes) full.push(data);
  }
  return full;
}

/** The hash tiles (not bundles) that grow when `leaves` are appended to the tree of `oldSize`. */
export function growHashTiles(oldSize: number, leaves: readonly Hash[], edge: EdgeReader): Growth {
  const newSize = oldSize + leaves.length;
  const tiles: TileData[] = [];
  let added: Buffer[] = [...leaves];
  for (let level = 0; added.length > 0; level++) {
    const before = levelCount(oldSize, level);
    const firstTile = Math.floor(before / TILE_WIDTH);
    const prefix = before % TILE_WIDTH > 0 ? edge(level) : undefined;
    const full = split(level, firstTile, Buffer.concat(prefix ? [prefix, ...added] : added), tiles, prefix);
    added = full.map(fullTileHash); // one new level-(L+1) hash per tile that just became full
  }
  const grown = new Map(tiles.map((t) => [tileKey(t.ref), t.data]));
  const rootHash = rootFromEdge(newSize, (level) => {
    const t = edgeTiles(newSize).find((e) => e.level === level)!;
    return grown.get(tileKey(t)) ?? edge(level);
  });
  return { newSize, tiles, rootHash };
}

/** The entry bundles that grow when `entries` are appended to a log of `oldSize` entries. */
export function growBundles(oldSize: number, entries: readonly Uint8Array[], edgeEntries: () => Buffer[]): TileData[] {
  const out: TileData[] = [];
  const firstTile = Math.floor(oldSize / TILE_WIDTH);
  const all = [...(oldSize % TILE_WIDTH > 0 ? edgeEntries() : []), ...entries];
  for (let i = 0, n = firstTile; i < all.length; i += TILE_WIDTH, n++) {
    const part = all.slice(i, i + TILE_WIDTH);
    out.push({ ref: { level: ENTRIES, n, width: part.length }, data: encodeBundle(part) });
  }
  return out;
}
