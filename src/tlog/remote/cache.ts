/**
 * On-disk cache of a remote log's immutable files: full tiles and full entry bundles only
 * (c2sp.org/tlog-tiles: those never change; partial tiles and the checkpoint do). Nothing read back
 * from the cache is trusted either: the client authenticates it like fetched data, and drops a cached
 * file that fails. Entries are written with an unpredictable temp name and renamed (fsx/durable.ts
 * names), not synced: a cache file lost or torn by a crash is fetched again.
 */
import { closeSync, renameSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { TLOG_CODES } from '../errors.js';
import { readBounded } from '../files.js';
import { checkPrivateDir, ensureDirectory } from '../../fsx/dirs.js';
import { openExclusive, tempPathFor, writeAll } from '../../fsx/durable.js';
import { parseTilePath, TILE_WIDTH } from '../tiles/path.js';

/** Default cache root: $BPFSEAL_TILE_CACHE, else $XDG_CACHE_HOME/bpfseal/tiles, else ~/.cache/bpfseal/tiles. */
export function defaultCacheRoot(): string {
  return process.env.BPFSEAL_TILE_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'bpfseal', 'tiles');
}

/** Is `path` a full tile or full bundle, the only files worth keeping? */
export function isImmutable(path: string): boolean {
  const t = parseTilePath(path);
  return t !== undefined && t.width === TILE_WIDTH;
}

export class TileDiskCache {
  readonly dir: string;
  hits = 0;

  /** One directory per log prefix, under `root`. */
  constructor(root: string, prefix: string) {
    this.dir = join(root, createHash('sha256').update(prefix).digest('hex').slice(0, 16));
    ensureDirectory(this.dir, 0o700, TLOG_CODES.IO);
    checkPrivateDir(root, 'the tile cache', TLOG_CODES.UNSAFE);
  }

  get(path: string, maxBytes: number): Buffer | undefined {
    if (!isImmutable(path)) return undefined;
    try {
      const b = readBounded(join(this.dir, path), maxBytes);
      if (b) this.hits++;
      return b;
    } catch {
      return undefined; // unreadable or oversized: fetch it again
    }
  }

  put(path: string, data: Buffer): void {
    if (!isImmutable(path)) return;
    const file = join(this.dir, path);
    try {
      ensureDirectory(dirname(file), 0o700, TLOG_CODES.IO);
      const tmp = tempPathFor(file);
      const fd = openExclusive(tmp, 0o600);
      try {
        writeAll(fd, data);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, file);
    } catch {
      /* a cache that cannot be written is only slower */
    }
  }

  drop(path: string): void {
    rmSync(join(this.dir, path), { force: true });
  }
}
