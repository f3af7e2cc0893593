/**
 * Appending, with group commit across processes (README.md, "Appends, locks and crashes").
 *
 * Two flock(2) locks, always taken in the order commit -> append, never the other way:
 *   append.lock  held briefly (synchronously) to add records to the end of `pending` (no fsync);
 *   commit.lock  held by one "leader" that turns every complete pending record into tiles and entry
 *                bundles (c2sp.org/tlog-tiles), makes them and a temp file with the new signed
 *                checkpoint durable (in parallel), renames the temp file over `checkpoint`, and syncs
 *                the directory.
 * A writer adds its records, then takes commit.lock if it is free (LOCK_NB) and commits everything
 * pending — its own records and those of writers that appended meanwhile (one sync round for many
 * appends). If the lock is busy it sleeps until the commit signal (signal.ts) says that a checkpoint
 * covering it is durable, or that the lock is free again. An append is acknowledged only once a
 * checkpoint covering it is durable.
 *
 * Crash safety: the checkpoint is the truth. Tiles beyond it are stale and rewritten; pending records
 * are complete and correctly hashed (committed by the next leader) or a torn tail (cut off).
 */
import { closeSync, constants, fstatSync, ftruncateSync, openSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { leafHash, type Hash } from './hash.js';
import { at } from '../errors.js';
import { InputError, TLOG_CODES, TlogVerifyError } from './errors.js';
import { FILES, ioError, preadUpTo, pwriteAll, removeStaleTemps } from './files.js';
import { openExclusive, prepareReplace, syncAsync, tempPathFor, writeAll } from '../fsx/durable.js';
import { lockTimeoutMs, sleepSync, type FileLock, type Mutex } from '../fsx/lock.js';
import type { CommitSignal } from './signal.js';
import { storedHashIndex } from './merkle.js';
import { formatCheckpoint, type SignedCheckpoint } from './note.js';
import { MAX_BATCH_BYTES, MAX_ENTRY_BYTES, encodePending, scanPending, type OwnRecords, type PendingScan } from './pending.js';
import type { LogStorage } from './storage.js';
import { growBundles, growHashTiles } from './tiles/build.js';
import { edgeTiles } from './tiles/math.js';
import { TILE_WIDTH, widthAt } from './tiles/path.js';
import { decodeBundle } from './tiles/bundle.js';
import { recordCommit } from './times.js';

export interface Committer {
  storage: LogStorage;
  commitLock: FileLock;
  appendLock: FileLock;
  /** Serialises this process's commit-lock holders for the directory (fsx/lock.ts). */
  mutex: Mutex;
  signal: CommitSignal;
  /** Set once this handle has cleaned up temp files of dead leaders. */
  tidied?: boolean;
  origin: string;
  /** Sign checkpoint note text; returns the whole signed note. */
  sign(text: string): string;
}

export interface AppendManyResult {
  /** Index of the first entry; the batch occupies [first, first + count). */
  first: number;
  count: number;
  leafHashes: Hash[];
  /** A durable checkpoint whose tree contains the whole batch. */
  checkpoint: SignedCheckpoint;
}

const ATTEMPTS = 3;
/** Rewrite `pending` without its committed records once they take this many bytes. */
const COMPACT_AT = 64 << 10;

/**
 * Hold the append lock for `fn`. It is held for tens of microseconds at a time, so a writer that finds
 * it taken retries every 50 µs for a while before falling back to FileLock's own wait (which sleeps
 * a millisecond or more between tries): with many writers that wait, not the disk, set the pace.
 */
function holdAppendLock<T>(c: Committer, fn: () => T): T {
  for (let i = 0; i < 40; i++) {
    if (c.appendLock.tryExclusive()) {
      try {
        return fn();
      } finally {
        c.appendLock.unlock();
      }
    }
    sleepSync(0.05);
  }
  return c.appendLock.hold(fn);
}

/** Open `pending` by path (a compaction may have replaced it), read it, scan it, cut a torn tail. */
function withPending<T>(c: Committer, size: number, check: boolean, own: OwnRecords | undefined, fn: (fd: number, scan: PendingScan, data: Buffer) => T): T {
  const path = c.storage.pendingPath;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
  } catch (e) {
    throw ioError(path, 'open', e);
  }
  try {
    const data = preadUpTo(fd, fstatSync(fd).size, 0);
    const scan = scanPending(data, size, check, own);
    if (scan.validEnd < data.length) ftruncateSync(fd, scan.validEnd);
    return fn(fd, scan, data);
  } finally {
    closeSync(fd);
  }
}

/** Writer phase: put the records at the end of `pending`; returns the first one's index. */
function addRecords(c: Committer, entries: readonly Uint8Array[], leaves: readonly Hash[]): number {
  return holdAppendLock(c, () => {
    const size = c.storage.checkpointUnverified().size;
    return withPending(c, size, false, undefined, (fd, scan) => {
      // Records continue the file's sequence; only when they cannot (the file's records end below the
      // checkpoint: lost in a crash) is it started over, since all of them are in the tiles.
      const gap = scan.records.length === 0 && scan.nextIndex !== scan.lastIndex + 1;
      if (gap && scan.validEnd > 0) ftruncateSync(fd, 0);
      pwriteAll(fd, encodePending(scan.nextIndex, entries, leaves), gap ? 0 : scan.validEnd);
      return scan.nextIndex;
    });
  });
}

/** After a commit to `size`: drop committed records once they are many (truncate, or rewrite the rest). */
function compactPending(c: Committer, size: number): void {
  holdAppendLock(c, () =>
    withPending(c, size, false, undefined, (fd, scan, data) => {
      if (scan.records.length === 0) {
        if (scan.validEnd > 0) ftruncateSync(fd, 0);
      } else if (scan.uncommittedStart >= COMPACT_AT) {
        // Not synced: what is left is unacknowledged, and a lost or torn file scans as a torn tail.
        const tmp = tempPathFor(c.storage.pendingPath);
        const out = openExclusive(tmp, 0o644);
        try {
          writeAll(out, data.subarray(scan.uncommittedStart, scan.validEnd));
        } finally {
          closeSync(out);
        }
        renameSync(tmp, c.storage.pendingPath);
      }
    }),
  );
}

/** The new tiles, bundles and root for the pending records, from the authenticated edge of `current`. */
function grow(c: Committer, current: SignedCheckpoint, scan: PendingScan) {
  const { storage } = c;
  const reader = storage.reader(current);
  const edge = edgeTiles(current.size).map((t) => ({ ref: t, data: reader.readTile(t.level, t.n) }));
  const leaves = scan.records.map((r) => Buffer.from(r.leaf));
  const hashes = growHashTiles(current.size, leaves, (level) => edge.find((t) => t.ref.level === level)!.data);
  const bundles = growBundles(current.size, scan.records.map((r) => r.entry), () => storage.edgeBundle(current.size));
  // What the new root was computed from: the new tiles and the old edge tiles of unchanged levels.
  const known = [...edge, ...hashes.tiles].filter((t) => t.ref.width === widthAt(hashes.newSize, t.ref.level, t.ref.n));
  const last = at(bundles, bundles.length - 1, 'new bundle'); // there are pending records, so at least one bundle
  const lastEntries = last.ref.width < TILE_WIDTH ? decodeBundle(last.data, last.ref.width, 'new bundle') : [];
  return { ...hashes, tiles: [...hashes.tiles, ...bundles], known, lastEntries };
}

/**
 * Leader phase: commit every complete pending record (ours, and anyone else's). Caller holds the
 * commit lock, so the checkpoint file is durable and is the truth.
 */
async function commitPending(c: Committer, own: OwnRecords): Promise<SignedCheckpoint> {
  const { storage } = c;
  const current = storage.checkpointUnverified();
  const scan = holdAppendLock(c, () => withPending(c, current.size, true, own, (_fd, s) => s));
  if (scan.records.length === 0) return current;
  const g = grow(c, current, scan);
  if (!c.tidied) {
    storage.tiles.tidy(g.tiles.map((t) => t.ref));
    removeStaleTemps(storage.dir);
    c.tidied = true;
  }
  if (storage.timesFd === undefined) throw new InputError(TLOG_CODES.IO, `${storage.dir}: ${FILES.times} cannot be written`);
  recordCommit(storage.timesFd, current.size, Math.floor(Date.now() / 1000));
  const writes = g.tiles.map((t) => storage.tiles.prepare(t.ref, t.data));
  const note = c.sign(formatCheckpoint({ origin: c.origin, size: g.newSize, rootHash: g.rootHash }));
  const replace = prepareReplace(join(storage.dir, FILES.checkpoint), note);
  // Tiles (each: fsync, rename, fsync of its directory), the times file and the checkpoint's temp file
  // are synced at once; only then is the checkpoint renamed into place and the directory synced.
  const tilesDurable = Promise.all(writes.map((w) => w.commit(Promise.resolve())));
  await replace.commit(Promise.all([tilesDurable, syncAsync(storage.timesFd, true)]));
  for (const t of g.tiles) if (t.ref.width === TILE_WIDTH) storage.tiles.removePartials(t.ref);
  if (scan.validEnd >= COMPACT_AT) compactPending(c, g.newSize);
  const checkpoint = { origin: c.origin, size: g.newSize, rootHash: g.rootHash, extensions: [], note };
  storage.remember(checkpoint, g.known, g.lastEntries);
  return checkpoint;
}

/** Lead a commit if nobody else is: returns the durable checkpoint, or undefined when busy. */
async function lead(c: Committer, own: OwnRecords): Promise<SignedCheckpoint | undefined> {
  if (!c.commitLock.tryExclusive()) return undefined;
  try {
    const checkpoint = await commitPending(c, own);
    c.signal.publish(checkpoint.size);
    return checkpoint;
  } finally {
    c.commitLock.unlock();
    c.signal.bump();
  }
}

/** A commit that nobody makes durable within the lock timeout is an error, never a hang (lock.ts). */
function commitDeadline(c: Committer): () => void {
  const ms = lockTimeoutMs();
  const end = Date.now() + ms;
  return () => {
    if (Date.now() > end) {
      throw new InputError(TLOG_CODES.LOCK, `timed out after ${(ms / 1000).toFixed(1)} s waiting for a commit of the log ${c.storage.dir} (another process holds its commit lock); set BPFSEAL_LOCK_TIMEOUT=<seconds> to wait longer`);
    }
  };
}

/**
 * Wait until a durable checkpoint covers `target` entries, leading a commit whenever nobody else is.
 * Waiters sleep on the commit signal (woken when a leader publishes and when it drops the lock) and
 * never on the lock itself: a writer covered by someone else's commit returns as soon as that commit
 * is durable, and the next leader is simply the first writer that finds the lock free.
 */
async function awaitCommit(c: Committer, target: number, own: OwnRecords): Promise<SignedCheckpoint> {
  const { signal } = c;
  signal.watch();
  const check = commitDeadline(c);
  for (;;) {
    check();
    const mark = signal.mark();
    if (signal.durableSize() >= target) {
      const checkpoint = c.storage.checkpointUnverified();
      if (checkpoint.size >= target) return checkpoint;
    }
    const led = await c.mutex.run(() => lead(c, own));
    if (led) return led; // a leader's checkpoint covers every record that was complete when it looked
    await signal.waitAfter(mark);
  }
}

/** Commit whatever is pending now (records of dead writers, or carried over by a migration). */
export async function flushPending(c: Committer): Promise<SignedCheckpoint> {
  c.signal.watch();
  const check = commitDeadline(c);
  for (;;) {
    check();
    const mark = c.signal.mark();
    const led = await c.mutex.run(() => lead(c, { first: 0, leaves: [] }));
    if (led) return led;
    await c.signal.waitAfter(mark);
  }
}

export function checkEntries(entries: readonly Uint8Array[]): void {
  let total = 0;
  entries.forEach((e, i) => {
    if (!(e instanceof Uint8Array)) throw new InputError(TLOG_CODES.BAD_ARGUMENT, `entry ${i} is not bytes`);
    if (e.length > MAX_ENTRY_BYTES) throw new InputError(TLOG_CODES.ENTRY_TOO_LARGE, `entry ${i} has ${e.length} bytes; the limit is ${MAX_ENTRY_BYTES} (a tlog-tiles entry bundle's uint16 length)`);
    total += e.length;
  });
  if (total > MAX_BATCH_BYTES) throw new InputError(TLOG_CODES.ENTRY_TOO_LARGE, `batch has ${total} bytes; the limit is ${MAX_BATCH_BYTES} (split it)`);
}

/**
 * Append `entries` as one contiguous, atomically committed batch. Resolves once the checkpoint that
 * covers them is durable. Retries when a leader cut our records off as part of a damaged tail (only
 * possible after a power loss left garbage in front of them).
 */
export async function appendBatch(c: Committer, entries: readonly Uint8Array[]): Promise<AppendManyResult> {
  checkEntries(entries);
  if (entries.length === 0) {
    const checkpoint = c.storage.checkpointUnverified();
    return { first: checkpoint.size, count: 0, leafHashes: [], checkpoint };
  }
  const leaves = entries.map((e) => leafHash(e));
  const last = entries.length - 1;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const first = addRecords(c, entries, leaves);
    const checkpoint = await awaitCommit(c, first + entries.length, { first, leaves });
    if (checkpoint.size < first + entries.length) continue;
    const got = c.storage.reader(checkpoint).readHashes([storedHashIndex(0, first), storedHashIndex(0, first + last)]);
    const [a, b] = [at(got, 0, 'stored hash'), at(got, 1, 'stored hash')];
    if (a.equals(at(leaves, 0, 'leaf hash')) && b.equals(at(leaves, last, 'leaf hash'))) return { first, count: entries.length, leafHashes: leaves, checkpoint };
  }
  throw new TlogVerifyError(TLOG_CODES.APPEND_LOST, `${c.storage.dir}: appended records were cut off ${ATTEMPTS} times; the log tail is damaged`);
}
