/**
 * Converting a first-layout log (bpfseal-tlog/1: entries, entries.idx, hashes) to tlog-tiles in place.
 *
 * The tree does not change, only its encoding, so the old signed checkpoint (size s, root R) stays the
 * log's checkpoint: under both locks, every old entry is re-hashed into tiles and bundles (written
 * durably, with the edge tiles for size s), the root the new tiles give must be R, and only then is
 * log.json switched to bpfseal-tlog/2 (one atomic, durable replace). A crash before the switch leaves
 * the old layout intact (a re-run overwrites the half-made tiles); after it, the tiled log is complete.
 * Records the old layout held beyond its checkpoint (never acknowledged) become pending records and
 * are committed right after the switch, which gives a new checkpoint and a consistency proof s -> s'.
 */
import { realpathSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EMPTY_ROOT, leafHash, type Hash } from './hash.js';
import { TLOG_CODES, TlogVerifyError } from './errors.js';
import { FILES, LEGACY_FILES } from './files.js';
import { writeFileDurable } from '../fsx/durable.js';
import { readInput } from '../fsx/read.js';
import { FileLock, mutexFor } from '../fsx/lock.js';
import { LEGACY_FORMAT, LOG_FORMAT, ensureNoteKey, readConfig, readPublicKey, type LogConfig } from './keys.js';
import { legacyEntries, legacyPending } from './legacy.js';
import { verifyConsistency } from './merkle.js';
import { ecdsaNoteVerifier, openSignedCheckpoint, type SignedCheckpoint } from './note.js';
import { encodePending } from './pending.js';
import { openLog } from './store.js';
import { TileFiles } from './tile-files.js';
import { growBundles, growHashTiles, type TileData } from './tiles/build.js';
import { edgeTiles, rootFromEdge } from './tiles/math.js';
import { TILE_WIDTH } from './tiles/path.js';
import { tileKey } from './tiles/reader.js';
import { encodeTimeRuns } from './times.js';

export interface MigrationResult {
  dir: string;
  alreadyMigrated: boolean;
  /** The old layout's checkpoint: also the tiled log's first checkpoint (same tree). */
  old: SignedCheckpoint;
  /** The checkpoint after committing the records carried over from beyond the old checkpoint. */
  new: SignedCheckpoint;
  /** RFC 6962 §2.1.2 consistency proof old -> new, verified. */
  proof: Hash[];
  /** Never-acknowledged records from beyond the old checkpoint, now committed. */
  carriedOver: number;
}

/** Writes tiles durably, a batch at a time (fsx/durable prepareReplace, synced in parallel). */
class TileWriter {
  private batch: Promise<void>[] = [];
  constructor(private readonly files: TileFiles) {}

  async write(tiles: readonly TileData[]): Promise<void> {
    for (const t of tiles) this.batch.push(this.files.prepare(t.ref, t.data).commit(Promise.resolve()));
    if (this.batch.length >= 64) await this.drain();
  }

  async drain(): Promise<void> {
    const b = this.batch;
    this.batch = [];
    await Promise.all(b);
  }
}

/** Re-encode entries [0, size) as tiles; returns the root they give and the per-commit time slots. */
async function buildTiles(dir: string, size: number): Promise<{ root: Hash; times: Buffer }> {
  return writeTilesOf(dir, legacyEntries(dir, size), size);
}

/**
 * Write the tiles and entry bundles of the tree of `size` entries given in order from index 0 (full
 * tiles as they fill, partial edge tiles for the final size only: no checkpoint exists for the sizes
 * in between). Returns the root they give and the per-commit time slots of the entries that carry one.
 * Also used to mirror a remote log (remote/mirror.ts).
 */
export async function writeTilesOf(dir: string, entries: Iterable<{ index: number; entry: Buffer; time?: number }> | AsyncIterable<{ index: number; entry: Buffer; time?: number }>, size: number): Promise<{ root: Hash; times: Buffer }> {
  const files = new TileFiles(dir);
  const writer = new TileWriter(files);
  let edge = new Map<number, Buffer>();
  let lastBundle: Buffer[] = [];
  const times: { index: number; time: number }[] = [];
  let chunk: Buffer[] = [];
  let built = 0;
  const step = async (final: boolean) => {
    const g = growHashTiles(built, chunk.map((e) => leafHash(e)), (level) => edge.get(level)!);
    const bundles = growBundles(built, chunk, () => lastBundle);
    built = g.newSize;
    const grown = new Map(g.tiles.map((t) => [tileKey(t.ref), t.data]));
    edge = new Map(edgeTiles(built).map((t) => [t.level, grown.get(tileKey(t)) ?? edge.get(t.level)!]));
    lastBundle = built % TILE_WIDTH ? chunk.slice(-(built % TILE_WIDTH)) : [];
    // Partial tiles only for the final size (all its edge tiles): no checkpoint was made for the sizes
    // in between.
    await writer.write([...g.tiles, ...bundles].filter((t) => t.ref.width === TILE_WIDTH || (final && t.ref.level < 0)));
    if (final) await writer.write(edgeTiles(built).map((ref) => ({ ref, data: edge.get(ref.level)! })));
    chunk = [];
  };
  let next = 0;
  for await (const e of entries) {
    if (e.index !== next++ || e.index >= size) throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${dir}: entry ${e.index} out of order while writing tiles for size ${size}`, { file: dir });
    chunk.push(e.entry);
    if (e.time !== undefined) times.push({ index: e.index, time: e.time });
    if (chunk.length === TILE_WIDTH && e.index + 1 < size) await step(false);
  }
  if (chunk.length) await step(true);
  await writer.drain();
  if (next !== size) throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${dir}: ${next} entries given for a tree of size ${size}`, { file: dir });
  return { root: size === 0 ? EMPTY_ROOT : rootFromEdge(size, (level) => edge.get(level)!), times: encodeTimeRuns(times) };
}

function removeLegacyFiles(dir: string): void {
  for (const f of Object.values(LEGACY_FILES)) rmSync(join(dir, f), { force: true });
}

/** Convert the first-layout log in `dir` to tlog-tiles (no-op for a tiled log). */
export async function migrateLog(dirPath: string): Promise<MigrationResult> {
  const dir = resolve(dirPath);
  const config: LogConfig = readConfig(dir);
  let carriedOver = 0;
  let old: SignedCheckpoint | undefined;
  if (config.format === LEGACY_FORMAT) {
    const commitLock = new FileLock(join(dir, FILES.commitLock), `the log ${dir}`);
    const appendLock = new FileLock(join(dir, FILES.appendLock), `the log ${dir}`);
    await mutexFor(realpathSync(dir)).run(async () => {
      commitLock.acquire();
      appendLock.acquire();
      try {
        const pub = readPublicKey(dir);
        const text = readInput(join(dir, FILES.checkpoint), { kind: 'checkpoint', noFollow: true }).toString('utf8');
        old = openSignedCheckpoint(text, ecdsaNoteVerifier(config.origin, pub.key), config.origin);
        const { root, times } = await buildTiles(dir, old.size);
        if (!root.equals(old.rootHash)) {
          throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${dir}: the old entries give root ${root.toString('base64')}, not the signed ${old.rootHash.toString('base64')}; not migrated`, { file: dir });
        }
        const pending = legacyPending(dir, old.size);
        carriedOver = pending.length;
        writeFileDurable(join(dir, FILES.times), times, 0o644, TLOG_CODES.IO);
        writeFileDurable(join(dir, FILES.pending), encodePending(old.size, pending, pending.map((e) => leafHash(e))), 0o644, TLOG_CODES.IO);
        ensureNoteKey(dir, config.origin);
        // The switch: from here on the directory is a tiled log whose checkpoint is the old one.
        writeFileDurable(join(dir, FILES.config), `${JSON.stringify({ ...config, format: LOG_FORMAT }, null, 2)}\n`, 0o644, TLOG_CODES.IO);
      } finally {
        appendLock.unlock();
        commitLock.unlock();
        appendLock.close();
        commitLock.close();
      }
    });
  }
  removeLegacyFiles(dir);
  const log = openLog(dir, { create: false });
  try {
    const before = old ?? log.checkpoint();
    const after = carriedOver ? await log.flush() : log.checkpoint();
    const proof = log.proveConsistency(before.size, after.size).hashes;
    verifyConsistency(before.size, after.size, before.rootHash, after.rootHash, proof);
    return { dir, alreadyMigrated: old === undefined, old: before, new: after, proof, carriedOver };
  } finally {
    log.close();
  }
}

/**
 * Open a log for writing, converting a first-layout log in place first (what `bpfseal log migrate`
 * does): the writers of a log own its directory, and an existing log keeps working across upgrades.
 * Readers use openLog, which asks for the conversion instead of writing.
 */
export async function openLogForWriting(dir: string, opts: { origin?: string } = {}): Promise<ReturnType<typeof openLog>> {
  try {
    return openLog(dir, opts);
  } catch (e) {
    if ((e as { code?: string }).code !== TLOG_CODES.OLD_LAYOUT) throw e;
    await migrateLog(dir);
    return openLog(dir, opts);
  }
}
