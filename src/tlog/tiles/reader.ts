/**
 * Stored hashes (merkle.ts HashReader) read from tiles of one signed tree, every tile authenticated
 * before a hash is taken from it (the scheme of golang.org/x/mod/sumdb/tlog TileHashReader, and
 * https://research.swtch.com/tlog#authenticating_tiles):
 *   - the right-edge tiles of the tree (edgeTiles) must give the signed root hash (rootFromEdge);
 *   - any other tile is full, and its MTH must equal its hash in the tile one level up, which is
 *     authenticated the same way; parents are planned (and checked) before children.
 * Authenticated tiles are kept in a bounded cache, so repeated proofs read and hash little.
 * Tiles come from a synchronous TileSource: local files, or tiles fetched beforehand (remote logs
 * prefetch planTiles() and then run this reader over memory).
 */
import { HASH_SIZE, type Hash } from '../hash.js';
import { storedHashIndex, type HashReader } from '../merkle.js';
import { at } from '../../errors.js';
import { TLOG_CODES, TlogVerifyError } from '../errors.js';
import { edgeTiles, fullTileHash, parentOf, rootFromEdge, slotOfStoredHash, subtreeOfTile } from './math.js';
import { TILE_HEIGHT, TILE_WIDTH, tilePath, widthAt, type TileRef } from './path.js';

export interface TileSource {
  /** Exactly t.width hashes of tile t (t.width * 32 bytes). */
  readTile(t: TileRef): Buffer;
}

export const tileKey = (t: TileRef): string => `${t.level}/${t.n}/${t.width}`;

/** The tiles needed to authenticate and read stored hashes `indexes` of a tree of `size` leaves. */
export function planTiles(size: number, indexes: readonly number[]): TileRef[] {
  const plan = edgeTiles(size);
  const planned = new Set(plan.map(tileKey));
  for (const index of indexes) {
    const slot = slotOfStoredHash(index);
    let t: TileRef = { level: slot.level, n: slot.n, width: widthAt(size, slot.level, slot.n) };
    if (t.width < slot.end) throw new RangeError(`stored hash ${index} is not in a tree of size ${size}`);
    const chain: TileRef[] = [];
    while (!planned.has(tileKey(t))) {
      if (t.width < TILE_WIDTH) throw new RangeError(`tile plan: partial tile ${tilePath(t)} is not on the edge of tree ${size}`);
      chain.push(t);
      planned.add(tileKey(t));
      const p = parentOf(t, size);
      t = { level: p.level, n: p.n, width: p.width };
    }
    plan.push(...chain.reverse());
  }
  return plan;
}

/** A small LRU of authenticated tile data. */
class TileCache {
  private readonly map = new Map<string, Buffer>();
  constructor(private readonly limit: number) {}

  get(key: string): Buffer | undefined {
    const v = this.map.get(key);
    if (v) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: string, v: Buffer): void {
    this.map.set(key, v);
    if (this.map.size > this.limit) this.map.delete(this.map.keys().next().value as string);
  }
}

export class TileHashReader implements TreeHashes {
  private readonly cache: TileCache;
  /** Tiles read from the source since creation (for counting reads per proof). */
  tilesRead = 0;

  constructor(
    readonly size: number,
    readonly rootHash: Hash,
    private readonly source: TileSource,
    private readonly name: string,
    cacheTiles = 1024,
  ) {
    this.cache = new TileCache(cacheTiles);
  }

  /**
   * Tiles known to be authentic for this tree without reading them: the ones a leader just computed
   * the root from (tiles/build.ts). Only for data this process made itself.
   */
  seed(tiles: Iterable<{ ref: TileRef; data: Buffer }>): void {
    for (const t of tiles) this.cache.set(tileKey(t.ref), t.data);
  }

  /** Authenticated data of tile t if this reader holds it (no read, no verification). */
  peek(t: TileRef): Buffer | undefined {
    return this.cache.get(tileKey(t));
  }

  private bad(t: TileRef, why: string): TlogVerifyError {
    return new TlogVerifyError(TLOG_CODES.CORRUPT, `${this.name}: ${tilePath(t)} ${why} (tree size ${this.size})`);
  }

  private load(t: TileRef): { data: Buffer; verified: boolean } {
    const hit = this.cache.get(tileKey(t));
    if (hit) return { data: hit, verified: true };
    this.tilesRead++;
    const data = this.source.readTile(t);
    if (data.length !== t.width * HASH_SIZE) throw this.bad(t, `has ${data.length} bytes, not ${t.width * HASH_SIZE}`);
    return { data, verified: false };
  }

  /** Authenticated data of each planned tile (in plan order). */
  private authenticate(plan: readonly TileRef[]): Map<string, Buffer> {
    const loaded = plan.map((t) => ({ t, ...this.load(t) }));
    const byKey = new Map(loaded.map(({ t, data }) => [tileKey(t), data]));
    const edge = edgeTiles(this.size);
    // planTiles puts the edge tiles first, so loaded[i] is edge[i]'s for every i < edge.length.
    if (edge.some((_, i) => !at(loaded, i, 'edge tile').verified)) {
      const root = rootFromEdge(this.size, (level) => byKey.get(tileKey(edge.find((t) => t.level === level)!))!);
      if (!root.equals(this.rootHash)) throw this.bad(at(edge, 0, 'edge tile'), `and the other right-edge tiles do not give the signed root hash`);
    }
    loaded.forEach(({ t, data, verified }, i) => {
      if (i >= edge.length && !verified) {
        const p = parentOf(t, this.size);
        const parent = byKey.get(tileKey(p))!;
        const expected = parent.subarray(p.offset * HASH_SIZE, (p.offset + 1) * HASH_SIZE);
        if (!fullTileHash(data).equals(expected)) throw this.bad(t, `does not hash to its entry in ${tilePath(p)}`);
      }
      this.cache.set(tileKey(t), data);
    });
    return byKey;
  }

  /** All hashes of tile (level, n) as it is in this tree, authenticated. */
  readTile(level: number, n: number): Buffer {
    const t: TileRef = { level, n, width: widthAt(this.size, level, n) };
    if (t.width === 0) throw new RangeError(`tree of size ${this.size} has no tile ${level}/${n}`);
    return this.authenticate(planTiles(this.size, [storedHashIndex(level * TILE_HEIGHT, n * TILE_WIDTH)])).get(tileKey(t))!;
  }

  readHashes(indexes: readonly number[]): Hash[] {
    const byKey = this.authenticate(planTiles(this.size, indexes));
    return indexes.map((index) => {
      const s = slotOfStoredHash(index);
      const data = byKey.get(tileKey({ level: s.level, n: s.n, width: widthAt(this.size, s.level, s.n) }))!;
      return Buffer.from(subtreeOfTile(data, s.start, s.end));
    });
  }
}

/** What proofs and entry reads use: stored hashes, and whole level tiles. */
export interface TreeHashes extends HashReader {
  readTile(level: number, n: number): Buffer;
}

/**
 * A TreeHashes that only records what is asked (and answers with zeros): running a computation over it
 * first tells a remote client which tiles to fetch before running it over the real reader.
 */
export class RecordingReader implements TreeHashes {
  readonly indexes: number[] = [];
  readHashes(indexes: readonly number[]): Hash[] {
    this.indexes.push(...indexes);
    return indexes.map(() => Buffer.alloc(HASH_SIZE));
  }

  readTile(level: number, n: number): Buffer {
    this.indexes.push(storedHashIndex(level * TILE_HEIGHT, n * TILE_WIDTH));
    return Buffer.alloc(TILE_WIDTH * HASH_SIZE);
  }
}
