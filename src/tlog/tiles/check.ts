/**
 * Full recomputation of a tiled tree, one entry bundle at a time (bounded memory: at most 256 hashes
 * per level): every entry is hashed (RFC 6962 §2.1) and compared with its level-0 tile; every full
 * tile's MTH becomes the next level's hash and every stored tile above level 0 is compared with the
 * recomputed one; finally the recomputed root must be the signed root. The caller drives it (local files
 * synchronously, remote tiles with prefetching): tilesFor(n) says which tiles step(n) needs.
 */
import { HASH_SIZE, leafHash, type Hash } from '../hash.js';
import { TLOG_CODES, TlogVerifyError } from '../errors.js';
import { fullTileHash, rootFromEdge } from './math.js';
import { TILE_WIDTH, levelCount, tileIn, tilePath, type TileRef } from './path.js';
import { tileKey } from './reader.js';

export class TreeCheck {
  /** Recomputed hashes of the level's current tile, and how many of its tiles are complete. */
  private readonly acc: Buffer[][] = [];
  private readonly completed: number[] = [];
  private readonly edge = new Map<number, Buffer>();
  /** Number of level-0 tiles (= entry bundles). */
  readonly steps: number;
  entryBytes = 0;

  constructor(
    readonly size: number,
    readonly rootHash: Hash,
    private readonly name: string,
  ) {
    this.steps = Math.ceil(size / TILE_WIDTH);
  }

  private fail(t: TileRef, why: string): TlogVerifyError {
    return new TlogVerifyError(TLOG_CODES.CORRUPT, `${this.name}: ${tilePath(t)} ${why}`);
  }

  /** Tiles above level 0 that step n completes, and at the last step the partial edge tiles. */
  tilesFor(n: number): TileRef[] {
    const out: TileRef[] = [tileIn(this.size, 0, n)];
    const last = n === this.steps - 1;
    let k = n;
    for (let level = 1; levelCount(this.size, level) > 0; level++) {
      // Level-`level` hash k exists (tile below full); its tile completes at its 256th hash.
      const full = levelCount(this.size, level) > k;
      if (full && k % TILE_WIDTH === TILE_WIDTH - 1) out.push(tileIn(this.size, level, Math.floor(k / TILE_WIDTH)));
      else if (last && levelCount(this.size, level) % TILE_WIDTH > 0) out.push(tileIn(this.size, level, Math.floor(levelCount(this.size, level) / TILE_WIDTH)));
      k = Math.floor(k / TILE_WIDTH);
    }
    return out;
  }

  /** Check bundle n's entries against tile 0/n and fold the result upwards. `tiles` holds tilesFor(n). */
  step(n: number, entries: readonly Buffer[], tiles: ReadonlyMap<string, Buffer>): void {
    const t0 = tileIn(this.size, 0, n);
    const stored = tiles.get(tileKey(t0))!;
    if (entries.length !== t0.width) throw this.fail(t0, `has ${t0.width} hashes but its bundle ${entries.length} entries`);
    entries.forEach((e, i) => {
      this.entryBytes += e.length;
      if (!leafHash(e).equals(stored.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE))) throw this.fail(t0, `hash ${i} is not the hash of entry ${n * TILE_WIDTH + i}`);
    });
    this.push(0, stored, tiles);
    if (n === this.steps - 1) this.finishEdges(tiles);
  }

  /** Tile `data` at `level` is checked; a full one contributes a hash to the level above. */
  private push(level: number, data: Buffer, tiles: ReadonlyMap<string, Buffer>): void {
    if (data.length < TILE_WIDTH * HASH_SIZE) {
      this.edge.set(level, data);
      return;
    }
    const up = level + 1;
    (this.acc[up] ??= []).push(fullTileHash(data));
    if (this.acc[up].length === TILE_WIDTH) {
      const computed = Buffer.concat(this.acc[up]);
      this.acc[up] = [];
      const index = this.completed[up] ?? 0;
      this.completed[up] = index + 1;
      this.compare(tileIn(this.size, up, index), computed, tiles);
      this.push(up, computed, tiles);
    }
  }

  private compare(t: TileRef, computed: Buffer, tiles: ReadonlyMap<string, Buffer>): void {
    const stored = tiles.get(tileKey(t));
    if (!stored || !stored.equals(computed)) throw this.fail(t, 'differs from the tile recomputed from the entries');
  }

  /** Last step: the partial tiles above level 0 are what is left in the accumulators. */
  private finishEdges(tiles: ReadonlyMap<string, Buffer>): void {
    for (let level = 1; levelCount(this.size, level) > 0; level++) {
      const left = this.acc[level] ?? [];
      if (left.length === 0) continue;
      const computed = Buffer.concat(left);
      this.compare(tileIn(this.size, level, Math.floor(levelCount(this.size, level) / TILE_WIDTH)), computed, tiles);
      this.edge.set(level, computed);
    }
  }

  /** After the last step: the recomputed root must be the signed one. */
  finish(): Hash {
    if (this.size === 0) return this.rootHash;
    const root = rootFromEdge(this.size, (level) => this.edge.get(level)!);
    if (!root.equals(this.rootHash)) {
      throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${this.name}: recomputed root ${root.toString('base64')} is not the checkpoint's ${this.rootHash.toString('base64')} (size ${this.size})`);
    }
    return root;
  }
}
