/**
 * `integrated-times`: when each commit happened, for display only. One 16-byte slot per commit:
 *
 *   u64 BE index of the commit's first entry || u64 BE Unix seconds at commit
 *
 * An entry's integrated time is the time of the last slot whose first index is <= it. No signature
 * covers these times (they are not in the tiles or the checkpoint): anyone who can write the log
 * directory can change them, and a remote log does not serve them. Slots whose first index the
 * checkpoint does not cover are stale (a leader died before its checkpoint) and are rewritten.
 */
import { ftruncateSync, fstatSync } from 'node:fs';
import { preadUpTo, pwriteAll } from './files.js';

export const TIME_SLOT = 16;

function slotCount(fd: number): number {
  return Math.floor(fstatSync(fd).size / TIME_SLOT);
}

function slotAt(fd: number, k: number): { first: number; time: number } {
  const b = preadUpTo(fd, TIME_SLOT, k * TIME_SLOT);
  if (b.length !== TIME_SLOT) return { first: Number.MAX_SAFE_INTEGER, time: 0 };
  return { first: Number(b.readBigUInt64BE(0)), time: Number(b.readBigUInt64BE(8)) };
}

/** Integrated time of entry `index` (Unix seconds), or 0 when no slot covers it (a migrated log without times). */
export function timeOf(fd: number, index: number): number {
  // Binary search for the last slot with first <= index.
  let lo = 0;
  let hi = slotCount(fd);
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (slotAt(fd, mid).first <= index) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? 0 : slotAt(fd, lo - 1).time;
}

/** Record a commit of entries from `first` at `time`; drops stale slots (first >= `first`). Caller holds the commit lock. */
export function recordCommit(fd: number, first: number, time: number): void {
  let n = slotCount(fd);
  while (n > 0 && slotAt(fd, n - 1).first >= first) n--;
  if (fstatSync(fd).size !== n * TIME_SLOT) ftruncateSync(fd, n * TIME_SLOT);
  const b = Buffer.alloc(TIME_SLOT);
  b.writeBigUInt64BE(BigInt(first), 0);
  b.writeBigUInt64BE(BigInt(time), 8);
  pwriteAll(fd, b, n * TIME_SLOT);
}

/** Slots for a run of entries with per-entry times (migration): one slot per change of time. */
export function encodeTimeRuns(times: Iterable<{ index: number; time: number }>): Buffer {
  const out: Buffer[] = [];
  let last = -1;
  for (const { index, time } of times) {
    if (time === last) continue;
    const b = Buffer.alloc(TIME_SLOT);
    b.writeBigUInt64BE(BigInt(index), 0);
    b.writeBigUInt64BE(BigInt(time), 8);
    out.push(b);
    last = time;
  }
  return Buffer.concat(out);
}
