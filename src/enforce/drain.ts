/**
 * Draining the enforcer's ring buffer into the host log, under the host lock: read the submitted
 * records, drop those the host log already holds (a drain killed between its append and moving the
 * ring buffer's consumer position leaves them there: each record carries its ring position, which only
 * grows), append the rest in one durable batch, and only then consume them from the ring buffer. So
 * every decision the buffer held reaches the host log once. (Not the kernel's seq: two CPUs may submit
 * their records in the other order than they took their seq.)
 */
import { mapInfo } from '../kernel/bpf.js';
import type { Fd } from '../kernel/fd.js';
import { RingBufferReader } from '../kernel/ringbuf.js';
import { libc } from '../sys/libc.js';
import { parseHostRecord } from '../hostlog/records.js';
import { withHostLock } from '../runtime/commit.js';
import { pinsInPlace } from '../runtime/unload.js';
import { decisionRecord, decodeDecision, lastRingPos, type Decision } from './decisions.js';

const BATCH = 4096;

export interface Drained {
  /** Decisions appended to the host log now. */
  appended: number;
  /** Records already in the host log (a previous drain was interrupted), consumed again. */
  duplicates: number;
  /** Records that did not decode (not counted as decisions). */
  invalid: number;
  /** The decisions appended, decoded. */
  decisions: Decision[];
}

/** Drain the ring buffer `ringbuf` of the enforcer loaded as `loadId` into the host log `hostLog`. */
export async function drainDecisions(hostLog: string, loadId: string, ringbuf: Fd): Promise<Drained> {
  const size = mapInfo(ringbuf).maxEntries;
  const reader = RingBufferReader.open(ringbuf, size);
  const out: Drained = { appended: 0, duplicates: 0, invalid: 0, decisions: [] };
  try {
    await withHostLock(hostLog, pinsInPlace, async (log) => {
      let last = lastRingPos((a, b) => log.entries(a, b), log.size, loadId, (e) => parseHostRecord(e).enforcement);
      for (;;) {
        const samples = reader.read(BATCH);
        if (!samples.length) break;
        const now = { bootNs: libc().boottimeNs(), wallMs: Date.now() };
        const fresh: { d: Decision; pos: number }[] = [];
        for (const s of samples) {
          const pos = Number(s.pos);
          if (pos <= last) {
            out.duplicates++;
            continue;
          }
          try {
            fresh.push({ d: decodeDecision(s.data), pos });
          } catch {
            out.invalid++;
          }
        }
        const newest = fresh.at(-1);
        if (newest !== undefined) {
          await log.appendMany(fresh.map(({ d, pos }) => Buffer.from(JSON.stringify(decisionRecord(d, loadId, pos, now)))));
          last = newest.pos;
          out.appended += fresh.length;
          out.decisions.push(...fresh.map((f) => f.d));
        }
        reader.consume();
      }
    });
  } finally {
    reader.close();
  }
  return out;
}
