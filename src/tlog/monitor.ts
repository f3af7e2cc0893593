/**
 * Monitoring a log from where the last audit stopped (`bpfseal audit --follow`): the remembered
 * checkpoint must verify with the log's key, the log's checkpoint now must be consistent with it
 * (RFC 6962 consistency proof computed from the log's tiles, checked against the remembered root), and
 * only the entries appended since are read. With witnesses, the checkpoint followed is the newest one
 * that `threshold` of them cosigned (witness/publish.ts), so a monitor and the hosts it speaks for see
 * the history the witnesses saw. Any failure throws TlogVerifyError (a finding: exit 1).
 */
import type { Hash } from './hash.js';
import { TLOG_CODES, TlogVerifyError } from './errors.js';
import { verifyConsistency } from './merkle.js';
import { openSignedCheckpoint, type SignedCheckpoint } from './note.js';
import type { LogEntry, LogReader } from './log-reader.js';
import type { CosignatureCheck, WitnessKey } from './witness/cosign.js';
import { witnessedCheckpoint } from './witness/publish.js';

export interface FollowOptions {
  /** Require this many of `witnesses` to have cosigned the checkpoint followed. */
  witnesses?: readonly WitnessKey[];
  threshold?: number;
}

export interface FollowResult {
  /** The remembered checkpoint (undefined on the first run: everything is new). */
  previous: SignedCheckpoint | undefined;
  /** The checkpoint followed to: remember its note for the next run. */
  checkpoint: SignedCheckpoint;
  /** The verified consistency proof previous -> checkpoint (empty on the first run). */
  consistency: { oldSize: number; newSize: number; proof: Hash[] };
  /** Witness cosignatures of `checkpoint`, when witnesses were asked for. */
  cosignatures?: CosignatureCheck;
  /** Entries [previous.size, checkpoint.size), each checked against the tiles. */
  newEntries: AsyncIterable<LogEntry>;
}

async function* iterate(it: Iterable<LogEntry> | AsyncIterable<LogEntry>): AsyncGenerator<LogEntry> {
  yield* it;
}

export async function followLog(reader: LogReader, lastCheckpoint?: string, opts: FollowOptions = {}): Promise<FollowResult> {
  const previous = lastCheckpoint === undefined ? undefined : openSignedCheckpoint(lastCheckpoint, reader.verifiers, reader.origin);
  let checkpoint = await reader.checkpoint();
  let cosignatures: CosignatureCheck | undefined;
  if (opts.witnesses?.length || opts.threshold) {
    const w = await witnessedCheckpoint(reader, opts.witnesses ?? [], opts.threshold ?? 1);
    if (!w) throw new TlogVerifyError(TLOG_CODES.WITNESS_THRESHOLD, `${reader.location}: no checkpoint is cosigned by ${opts.threshold ?? 1} of the ${opts.witnesses?.length ?? 0} witnesses`);
    checkpoint = w.checkpoint;
    cosignatures = w.cosignatures;
  }
  const oldSize = previous?.size ?? 0;
  if (oldSize > checkpoint.size) throw new TlogVerifyError(TLOG_CODES.SHRUNK, `${reader.location}: the log had ${oldSize} entries at the last audit and shows ${checkpoint.size} now`);
  const proof = previous ? (await reader.proveConsistency(oldSize, checkpoint.size)).hashes : [];
  if (previous) verifyConsistency(oldSize, checkpoint.size, previous.rootHash, checkpoint.rootHash, proof);
  return {
    previous,
    checkpoint,
    consistency: { oldSize, newSize: checkpoint.size, proof },
    cosignatures,
    newEntries: iterate(reader.entries(oldSize, checkpoint.size)),
  };
}
