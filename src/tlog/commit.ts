/**
 * Appending, with group commit across processes (README.md, "Appends, locks and crashes").
 *
 * Two flock(2) locks, always taken in the order commit -> append, never the other way:
 *   append.lock  held briefly (synchronously) to add records to the end of `entries` (no fsync);
 *   commit.lock  held by one "leader" that makes every complete record beyond the checkpoint durable:
 *                index slots and stored hashes written; the three data files and a temp file with the
 *                new signed checkpoint synced (in parallel); the temp file renamed over `checkpoint`;
 *                the directory synced.
 * A writer adds its records, then takes commit.lock if it is free (LOCK_NB) and commits everything
 * pending — its own records and those of writers that appended meanwhile (one sync round for many
 * appends). If the lock is busy it sleeps until the commit signal (signal.ts) says that a checkpoint
 * covering it is durable, or that the lock is free again. An append is acknowledged only once a
 * checkpoint covering it is durable.
 *
 * Crash safety: the checkpoint is the truth. Bytes beyond it are either complete records (committed by
 * the next leader) or a torn tail: the first record whose length runs past the end of the file or
 * whose bytes do not hash to its stored leaf hash ends the log, and it is cut off under the append
 * lock. Index slots and hashes beyond the checkpoint are rewritten by the next leader.
 */
import { ftruncateSync } from 'node:fs';
import { HASH_SIZE, leafHash, type Hash } from './hash.js';
import { InputError, TLOG_CODES, TlogVerifyError } from './errors.js';
import { FILES, preadUpTo, pwriteAll, removeStaleTemps } from './files.js';
import { prepareReplace, syncAsync } from '../fsx/durable.js';
import { join } from 'node:path';
import type { FileLock, Mutex } from '../fsx/lock.js';
import type { CommitSignal } from './signal.js';
import { storedHashCount, storedHashes, treeHash, type HashReader } from './merkle.js';
import { formatCheckpoint, type SignedCheckpoint } from './note.js';
import { INDEX_SLOT, MAX_BATCH_BYTES, MAX_ENTRY_BYTES, encodeIndexSlots, encodeRecords, scanRecords, type OwnRecords, type Scan } from './records.js';
import type { LogStorage } from './storage.js';

export interface Committer {
  storage: LogStorage;
  commitLock: FileLock;
  appendLock: FileLock;
  /** Serialises this process's commit-lock holders for the directory (lock.ts). */
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

/** Scan the records beyond the committed ones and cut off a torn tail. Caller holds the append lock. */
function scanPending(c: Committer, size: number, check: boolean, own?: OwnRecords): Scan {
  const { storage } = c;
  const base = storage.endOf(size);
  const fileEnd = storage.fileSize(storage.entriesFd);
  if (fileEnd < base) throw storage.corrupt(`${FILES.entries} is shorter than its checkpoint says`);
  const scan = scanRecords(preadUpTo(storage.entriesFd, fileEnd - base, base), base, check, own);
  if (scan.validEnd < fileEnd) ftruncateSync(storage.entriesFd, scan.validEnd);
  return scan;
}

/** Writer phase: put the records at the end of `entries`; returns their offset and first index. */
function addRecords(c: Committer, records: Buffer): { offset: number; first: number } {
  return c.appendLock.hold(() => {
    const size = c.storage.checkpointUnverified().size;
    const scan = scanPending(c, size, false);
    pwriteAll(c.storage.entriesFd, records, scan.validEnd);
    return { offset: scan.validEnd, first: size + scan.records.length };
  });
}

/** Stored hashes being written: reads below `base` go to the file, the rest to the new hashes. */
function overlayReader(storage: LogStorage, base: number, added: Hash[]): HashReader {
  return {
    readHashes: (indexes) => {
      const below = indexes.filter((i) => i < base);
      const old = below.length ? storage.readHashes(below) : [];
      let k = 0;
      return indexes.map((i) => (i < base ? old[k++] : added[i - base]));
    },
  };
}

function truncateTo(fd: number, size: number, storage: LogStorage): void {
  if (storage.fileSize(fd) !== size) ftruncateSync(fd, size);
}

/**
 * Leader phase: commit every complete pending record (ours, and anyone else's). Caller holds the
 * commit lock, so the checkpoint file is durable and is the truth.
 */
async function commitPending(c: Committer, own: OwnRecords): Promise<SignedCheckpoint> {
  const { storage } = c;
  const current = storage.checkpointUnverified();
  const size = current.size;
  const scan = c.appendLock.hold(() => scanPending(c, size, true, own));
  if (scan.records.length === 0) return current;
  // Index slots: end offset of each record, integrated time = now.
  const time = Math.floor(Date.now() / 1000);
  truncateTo(storage.indexFd, size * INDEX_SLOT, storage);
  const ends = scan.records.map((r) => r.offset + 4 + r.length + HASH_SIZE);
  pwriteAll(storage.indexFd, encodeIndexSlots(ends, time), size * INDEX_SLOT);
  // Stored hashes (merkle.ts): each record's leaf, then the subtrees it completes.
  const base = storedHashCount(size);
  truncateTo(storage.hashesFd, base * HASH_SIZE, storage);
  const added: Hash[] = [];
  const reader = overlayReader(storage, base, added);
  scan.records.forEach((r, j) => added.push(...storedHashes(size + j, r.leaf, reader)));
  pwriteAll(storage.hashesFd, Buffer.concat(added), base * HASH_SIZE);
  const newSize = size + scan.records.length;
  const rootHash = treeHash(newSize, reader);
  // The three data files and the new checkpoint's temp file are synced at once (parallel syncs share
  // one journal commit); only then is the checkpoint renamed into place and the directory synced.
  const note = c.sign(formatCheckpoint({ origin: c.origin, size: newSize, rootHash }));
  const replace = prepareReplace(join(storage.dir, FILES.checkpoint), note);
  await replace.commit(Promise.all([storage.entriesFd, storage.indexFd, storage.hashesFd].map((fd) => syncAsync(fd, true))));
  return { origin: c.origin, size: newSize, rootHash, extensions: [], note };
}

/** Lead a commit if nobody else is: returns the durable checkpoint, or undefined when busy. */
async function lead(c: Committer, own: OwnRecords): Promise<SignedCheckpoint | undefined> {
  if (!c.commitLock.tryExclusive()) return undefined;
  try {
    if (!c.tidied) {
      removeStaleTemps(c.storage.dir);
      c.tidied = true;
    }
    const checkpoint = await commitPending(c, own);
    c.signal.publish(checkpoint.size);
    return checkpoint;
  } finally {
    c.commitLock.unlock();
    c.signal.bump();
  }
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
  for (;;) {
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

export function checkEntries(entries: readonly Uint8Array[]): void {
  let total = 0;
  entries.forEach((e, i) => {
    if (!(e instanceof Uint8Array)) throw new InputError(TLOG_CODES.BAD_ARGUMENT, `entry ${i} is not bytes`);
    if (e.length > MAX_ENTRY_BYTES) throw new InputError(TLOG_CODES.ENTRY_TOO_LARGE, `entry ${i} has ${e.length} bytes; the limit is ${MAX_ENTRY_BYTES}`);
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
  const records = encodeRecords(entries, leaves);
  const last = entries.length - 1;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const { offset, first } = addRecords(c, records);
    const checkpoint = await awaitCommit(c, first + entries.length, { offset, leaves });
    if (checkpoint.size < first + entries.length) continue;
    const { storage } = c;
    if (storage.endOf(first) === offset && storage.leafHash(first).equals(leaves[0]) && storage.leafHash(first + last).equals(leaves[last])) {
      return { first, count: entries.length, leafHashes: leaves, checkpoint };
    }
  }
  throw new TlogVerifyError(TLOG_CODES.APPEND_LOST, `${c.storage.dir}: appended records were cut off ${ATTEMPTS} times; the log tail is damaged`);
}
