/**
 * Cosignatures on the log side: merging witnesses' cosignature lines into the log directory, and
 * finding the newest checkpoint that enough witnesses cosigned (for releases, verify and audit).
 *
 *   checkpoint            the current checkpoint; cosignatures of exactly this checkpoint are added
 *                         to it while it is current (the next commit replaces it)
 *   checkpoint.cosigned   the newest checkpoint that carries cosignatures, kept across commits, so a
 *                         witnessed checkpoint is still served after the log has moved on
 * Both are signed notes: readers that do not know the witnesses ignore their lines (signed-note).
 */
import { join } from 'node:path';
import { TLOG_CODES, TlogVerifyError } from '../errors.js';
import { FILES, readBounded } from '../files.js';
import { writeFileDurable } from '../../fsx/durable.js';
import { FileLock } from '../../fsx/lock.js';
import { LIMITS } from '../../fsx/read.js';
import { openSignedCheckpoint, parseSignedNote, type NoteSignature, type SignedCheckpoint } from '../note.js';
import { signatureLine } from '../note-keys.js';
import type { LogReader } from '../log-reader.js';
import { openLog } from '../store.js';
import { verifyCosignatures, type CosignatureCheck, type WitnessKey } from './cosign.js';

const sigKey = (s: NoteSignature) => `${s.name} ${s.keyId.toString('hex')}`;

/** Cosignature time of a line (cosignature/v1 carries it in its first 8 bytes), else 0. */
function timeOf(s: NoteSignature): number {
  return s.signature.length === 72 ? Number(s.signature.readBigUInt64BE(0)) : 0;
}

/** `a` with the signatures of `b` (same text) added; of two lines by one key, the later cosignature. */
export function mergeNotes(a: string, b: string): string {
  const na = parseSignedNote(a);
  const nb = parseSignedNote(b);
  if (na.text !== nb.text) throw new RangeError('mergeNotes: different note texts');
  const byKey = new Map<string, NoteSignature>();
  for (const s of [...na.signatures, ...nb.signatures]) {
    const have = byKey.get(sigKey(s));
    if (!have || timeOf(s) > timeOf(have)) byKey.set(sigKey(s), s);
  }
  return `${na.text}\n${[...byKey.values()].map((s) => signatureLine(s.name, s.keyId, s.signature)).join('')}`;
}

export interface AddedCosignatures {
  /** Added to the current `checkpoint` (it was still the one cosigned). */
  current: boolean;
  /** Stored in `checkpoint.cosigned`. */
  cosigned: boolean;
  checkpoint: SignedCheckpoint;
}

/**
 * Add the cosignatures in `cosignedNote` (a checkpoint of this log, log signature checked) to the log
 * in `dir`, under the commit lock so no commit replaces the checkpoint meanwhile.
 */
export function addCosignatures(dir: string, cosignedNote: string): AddedCosignatures {
  const log = openLog(dir, { create: false });
  const lock = new FileLock(join(dir, FILES.commitLock), `the log ${dir}`);
  try {
    const c = openSignedCheckpoint(cosignedNote, log.verifiers, log.origin);
    if (c.size > log.checkpoint().size) throw new TlogVerifyError(TLOG_CODES.CONSISTENCY, `${dir}: a cosigned checkpoint of size ${c.size} is larger than the log`);
    if (!log.rootHash(c.size).equals(c.rootHash)) throw new TlogVerifyError(TLOG_CODES.CONSISTENCY, `${dir}: the cosigned checkpoint of size ${c.size} is not this log's tree`);
    return lock.hold(() => mergeInto(dir, c, cosignedNote, (note) => openSignedCheckpoint(note, log.verifiers, log.origin)));
  } finally {
    lock.close();
    log.close();
  }
}

/**
 * Under the commit lock: into `checkpoint` if it is still the cosigned one; into `checkpoint.cosigned`
 * if that holds the same checkpoint (merged) or an older one (replaced — the newest cosigned
 * checkpoint wins, so witnesses meet a threshold by cosigning the same checkpoint; docs/tlog.md).
 */
function mergeInto(dir: string, c: SignedCheckpoint, cosignedNote: string, open: (note: string) => SignedCheckpoint): AddedCosignatures {
  const read = (f: string) => readBounded(join(dir, f), LIMITS.checkpoint)?.toString('utf8');
  const write = (f: string, note: string) => writeFileDurable(join(dir, f), note, 0o644, TLOG_CODES.IO);
  const text = parseSignedNote(cosignedNote).text;
  const current = read(FILES.checkpoint)!;
  const isCurrent = parseSignedNote(current).text === text;
  if (isCurrent) write(FILES.checkpoint, mergeNotes(current, cosignedNote));
  const kept = read(FILES.cosigned);
  const same = kept !== undefined && parseSignedNote(kept).text === text;
  const newer = kept === undefined || c.size > open(kept).size;
  if (same) write(FILES.cosigned, mergeNotes(kept, cosignedNote));
  else if (newer) write(FILES.cosigned, cosignedNote);
  return { current: isCurrent, cosigned: same || newer, checkpoint: c };
}

export interface Witnessed {
  checkpoint: SignedCheckpoint;
  cosignatures: CosignatureCheck;
}

/**
 * The newest checkpoint of the log (its current one, or `checkpoint.cosigned`) that `threshold` of
 * `witnesses` cosigned, checked to be the log's own tree (root equal to the reader's at that size).
 * Undefined when none is.
 */
export async function witnessedCheckpoint(reader: LogReader, witnesses: readonly WitnessKey[], threshold: number): Promise<Witnessed | undefined> {
  const current = await reader.checkpoint();
  const kept = await reader.cosignedCheckpoint?.();
  const candidates = [current.note, ...(kept ? [kept] : [])];
  let best: Witnessed | undefined;
  for (const note of candidates) {
    const c = openSignedCheckpoint(note, reader.verifiers, reader.origin);
    if (c.size > current.size || !(await reader.rootHash(c.size)).equals(c.rootHash)) continue;
    const check = verifyCosignatures(note, witnesses, threshold);
    if (check.ok && (!best || c.size > best.checkpoint.size)) best = { checkpoint: c, cosignatures: check };
  }
  return best;
}
