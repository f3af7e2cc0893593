/**
 * Tiles and entry bundles as files under <log dir>/tile (c2sp.org/tlog-tiles paths, so the directory
 * can be served as it is). Tiles are immutable once a checkpoint covers them: a full tile is written
 * once; a partial tile is written for each checkpoint size and kept until its full tile exists
 * ("Logs MUST serve partial tiles corresponding to tree sizes for which a checkpoint was produced, but
 * MAY delete any partial tile once the corresponding full tile is available"). A reader holding an
 * older checkpoint whose partial tile was just removed reads the full tile's prefix instead.
 *
 * Writes go through fsx/durable.ts prepareReplace (temp file, fsync, rename, fsync of the directory);
 * a directory made for a tile is fsynced into its parent before any tile is renamed into it.
 */
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HASH_SIZE } from './hash.js';
import { TLOG_CODES, TlogVerifyError } from './errors.js';
import { FILES, readBounded, removeStaleTemps } from './files.js';
import { ensureDirectory } from '../fsx/dirs.js';
import { fsyncDir, prepareReplace } from '../fsx/durable.js';
import { MAX_BUNDLE_BYTES, decodeBundle } from './tiles/bundle.js';
import type { TileSource } from './tiles/reader.js';
import { ENTRIES, TILE_WIDTH, tilePath, type TileRef } from './tiles/path.js';

const TILE_BYTES = TILE_WIDTH * HASH_SIZE;

export class TileFiles implements TileSource {
  private readonly knownDirs = new Set<string>();
  /** Tile files read (for the bench's tiles-per-proof figure). */
  reads = 0;

  constructor(readonly dir: string) {}

  path(t: TileRef): string {
    return join(this.dir, tilePath(t));
  }

  private missing(t: TileRef): TlogVerifyError {
    return new TlogVerifyError(TLOG_CODES.CORRUPT, `${this.dir}: ${tilePath(t)} is missing`, { file: this.path(t) });
  }

  /** The file of tile t, or else (t partial, its file removed) the full tile's; `width` says which. */
  private readData(t: TileRef, max: number): { data: Buffer; width: number } {
    this.reads++;
    const own = readBounded(this.path(t), max);
    if (own) return { data: own, width: t.width };
    const full = t.width < TILE_WIDTH ? readBounded(this.path({ ...t, width: TILE_WIDTH }), max) : undefined;
    if (!full) throw this.missing(t);
    return { data: full, width: TILE_WIDTH };
  }

  readTile(t: TileRef): Buffer {
    const { data, width } = this.readData(t, TILE_BYTES);
    if (data.length !== width * HASH_SIZE) throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${this.dir}: ${tilePath({ ...t, width })} has ${data.length} bytes`);
    return data.subarray(0, t.width * HASH_SIZE);
  }

  /** The first `t.width` entries of bundle t (not yet checked against the leaf hashes). */
  readBundle(t: TileRef): Buffer[] {
    const { data, width } = this.readData(t, MAX_BUNDLE_BYTES);
    return decodeBundle(data, width, `${this.dir}/${tilePath({ ...t, width })}`).slice(0, t.width);
  }

  /** Make the tile's directory (and parents), each new one fsynced into its parent. */
  private ensureDir(rel: string): void {
    if (this.knownDirs.has(rel)) return;
    const parent = dirname(rel);
    if (parent !== '.' && parent !== rel) this.ensureDir(parent);
    const abs = join(this.dir, rel);
    if (ensureDirectory(abs, 0o755, TLOG_CODES.IO)) fsyncDir(dirname(abs));
    this.knownDirs.add(rel);
  }

  /** Start writing tile t; `commit` makes it durable (fsx/durable.ts prepareReplace). */
  prepare(t: TileRef, data: Buffer): { commit(synced: Promise<unknown>): Promise<void> } {
    this.ensureDir(dirname(tilePath(t)));
    return prepareReplace(this.path(t), data);
  }

  /** Remove temp files of dead leaders in the directories of these tiles. Caller holds the commit lock. */
  tidy(tiles: readonly TileRef[]): void {
    for (const d of new Set(tiles.map((t) => dirname(this.path(t))))) removeStaleTemps(d);
  }

  /**
   * Drop the partial versions of a tile that is now full (after the checkpoint covering it is durable),
   * in the background: up to 255 unlinks need not hold up the commit, and leftovers are harmless.
   */
  removePartials(t: TileRef): void {
    void rm(`${this.path({ ...t, width: TILE_WIDTH })}.p`, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The directory holding the tiles, for callers that test for a tiled log. */
export function tilesDir(dir: string): string {
  return join(dir, FILES.tiles);
}

export { ENTRIES };
