/**
 * Reading the on-disk log: the checkpoint, authenticated hashes from the tiles (tiles/reader.ts),
 * entries from the bundles (each checked against its authenticated leaf hash), integrated times.
 * Everything a checkpoint covers is immutable, so readers need no lock: they read the checkpoint
 * (replaced atomically) and then only tiles that checkpoint covers.
 */
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { readInput } from '../fsx/read.js';
import { HASH_SIZE, leafHash, type Hash } from './hash.js';
import { at } from '../errors.js';
import { TLOG_CODES, TlogVerifyError } from './errors.js';
import { FILES, ioError, readBounded } from './files.js';
import { parseCheckpoint, parseSignedNote, type Checkpoint, type SignedCheckpoint } from './note.js';
import { MAX_BATCH_BYTES, scanPending } from './pending.js';
import { TileFiles } from './tile-files.js';
import { TreeCheck } from './tiles/check.js';
import { ENTRIES, TILE_WIDTH, tileIn } from './tiles/path.js';
import { TileHashReader, tileKey } from './tiles/reader.js';
import type { TileData } from './tiles/build.js';
import { timeOf } from './times.js';

const { O_RDWR, O_RDONLY, O_CREAT, O_NOFOLLOW } = constants;

export interface VerifyAllResult {
  size: number;
  rootHash: Hash;
  /** Bytes of committed entries. */
  entriesBytes: number;
  /** Bytes of records beyond the checkpoint (not yet committed, or a torn tail): ignored. */
  pendingBytes: number;
}

/** The times file, read-write when we may (a read-only log still proves and verifies). */
function openTimes(path: string): number | undefined {
  try {
    return openSync(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0o644);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EROFS' && code !== 'EPERM') throw ioError(path, 'open', e);
    try {
      return openSync(path, O_RDONLY | O_NOFOLLOW);
    } catch {
      return undefined;
    }
  }
}

export class LogStorage {
  readonly tiles: TileFiles;
  readonly timesFd: number | undefined;
  readonly pendingPath: string;
  private cached: TileHashReader | undefined;

  constructor(readonly dir: string) {
    this.tiles = new TileFiles(dir);
    this.timesFd = openTimes(join(dir, FILES.times));
    this.pendingPath = join(dir, FILES.pending);
  }

  close(): void {
    if (this.timesFd !== undefined) closeSync(this.timesFd);
  }

  corrupt(what: string): TlogVerifyError {
    return new TlogVerifyError(TLOG_CODES.CORRUPT, `${this.dir}: ${what}`, { file: this.dir });
  }

  checkpointText(): string {
    return readInput(join(this.dir, FILES.checkpoint), { kind: 'checkpoint', noFollow: true }).toString('utf8');
  }

  /**
   * The checkpoint as this log wrote it, parsed but with the signature unchecked: the hot append path
   * trusts its own file (written under the commit lock); openLog, checkpoint() and verifyAll verify it.
   */
  checkpointUnverified(): SignedCheckpoint {
    const note = this.checkpointText();
    return { ...parseCheckpoint(parseSignedNote(note).text), note };
  }

  /** Authenticated hashes of the tree of checkpoint `c` (one reader, and its tile cache, per tree). */
  reader(c: Checkpoint): TileHashReader {
    if (!this.cached || this.cached.size !== c.size || !this.cached.rootHash.equals(c.rootHash)) {
      this.cached = new TileHashReader(c.size, c.rootHash, this.tiles, this.dir);
    }
    return this.cached;
  }

  /**
   * After this process committed checkpoint `c`: the tiles it computed `c`'s root from are authentic
   * for `c`, and the last bundle's entries are known, so the next commit and proof need not re-read them.
   */
  remember(c: Checkpoint, tiles: readonly TileData[], lastBundle: Buffer[]): void {
    this.reader(c).seed(tiles);
    this.lastBundle = { size: c.size, entries: lastBundle };
  }

  private lastBundle: { size: number; entries: Buffer[] } | undefined;

  /** The entries of the right-edge bundle of a tree of `size` (size % 256 > 0). */
  edgeBundle(size: number): Buffer[] {
    if (this.lastBundle?.size === size) return this.lastBundle.entries;
    return this.tiles.readBundle(tileIn(size, ENTRIES, Math.floor(size / TILE_WIDTH)));
  }

  /** Entries [from, to) of the tree of `c`, bundle by bundle, each checked against its leaf hash. */
  *entries(c: Checkpoint, from: number, to: number): Generator<{ index: number; entry: Buffer; leafHash: Hash }> {
    const r = this.reader(c);
    for (let n = Math.floor(from / TILE_WIDTH); n * TILE_WIDTH < to; n++) {
      const hashes = r.readTile(0, n);
      const bundle = this.tiles.readBundle(tileIn(c.size, ENTRIES, n));
      for (let k = Math.max(0, from - n * TILE_WIDTH); k < bundle.length && n * TILE_WIDTH + k < to; k++) {
        const entry = at(bundle, k, 'bundle entry');
        const leaf = leafHash(entry);
        if (!leaf.equals(hashes.subarray(k * HASH_SIZE, (k + 1) * HASH_SIZE))) throw this.corrupt(`entry ${n * TILE_WIDTH + k} does not hash to its leaf hash in the tiles`);
        yield { index: n * TILE_WIDTH + k, entry: Buffer.from(entry), leafHash: leaf };
      }
    }
  }

  /** Integrated time of entry i (Unix seconds; 0 when unknown). Not authenticated: see times.ts. */
  time(i: number): number {
    return this.timesFd === undefined ? 0 : timeOf(this.timesFd, i);
  }

  /** Bytes in the pending file that the checkpoint of `size` does not cover. */
  pendingBytes(size: number): number {
    const data = readBounded(this.pendingPath, 4 * MAX_BATCH_BYTES);
    if (!data) return 0;
    return data.length - scanPending(data, size, false).uncommittedStart;
  }

  /** Recompute the whole tree from the entry bundles and compare every tile and the signed root. */
  verify(c: SignedCheckpoint): VerifyAllResult {
    const check = new TreeCheck(c.size, c.rootHash, this.dir);
    for (let n = 0; n < check.steps; n++) {
      const tiles = new Map(check.tilesFor(n).map((t) => [tileKey(t), this.tiles.readTile(t)]));
      check.step(n, this.tiles.readBundle(tileIn(c.size, ENTRIES, n)), tiles);
    }
    const rootHash = check.finish();
    return { size: c.size, rootHash, entriesBytes: check.entryBytes, pendingBytes: this.pendingBytes(c.size) };
  }

  fileSize(fd: number): number {
    return fstatSync(fd).size;
  }
}
