/**
 * A witness (https://c2sp.org/tlog-witness): for each log, identified by its origin, it keeps the
 * latest checkpoint it cosigned, and cosigns a new one only when it is signed by the log and a
 * consistency proof from that checkpoint verifies. The check and the update are atomic (one lock per
 * state directory: "checking the old size against the latest checkpoint and persisting the new
 * checkpoint must be performed atomically"). Failures carry the protocol's HTTP status:
 *   400 old size larger than the checkpoint   403 no valid log signature
 *   409 old size is not the last cosigned size (`size` says which)   422 bad proof or empty-tree root
 * addCheckpoint is the protocol's add-checkpoint; witnessLog drives it for a log the witness reads
 * itself (bpfseal log witness), taking the consistency proof from the log's tiles.
 */
import { BpfsealError, type ErrorCode } from '../../errors.js';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { EMPTY_ROOT, type Hash } from '../hash.js';
import { TLOG_CODES } from '../errors.js';
import { readBounded } from '../files.js';
import { checkPrivateDir, ensureDirectory } from '../../fsx/dirs.js';
import { writeFileDurable } from '../../fsx/durable.js';
import { FileLock } from '../../fsx/lock.js';
import { LIMITS } from '../../fsx/read.js';
import { verifyConsistency } from '../merkle.js';
import { openSignedCheckpoint, parseCheckpoint, parseSignedNote, type NoteVerifier, type SignedCheckpoint } from '../note.js';
import type { SignerKey } from '../note-keys.js';
import type { LogReader } from '../log-reader.js';
import { cosign, type Cosignature } from './cosign.js';

/**
 * A witness's refusal, with the tlog-witness HTTP status it answers with: 400 is a malformed request
 * (input, exit 2, like TLOG_BAD_ARGUMENT everywhere else); 403, 409 and 422 are checks that failed
 * (verify, exit 1).
 */
export class WitnessError extends BpfsealError {
  constructor(
    readonly status: 400 | 403 | 409 | 422,
    code: ErrorCode,
    message: string,
    /** For 409: the size of the latest checkpoint the witness cosigned. */
    readonly size?: number,
  ) {
    super(status === 400 ? 'input' : 'verify', code, message);
    this.name = 'WitnessError';
  }
}

/** The witness's memory: the last cosigned checkpoint per log origin, in a private directory. */
export class WitnessState {
  constructor(readonly dir: string) {
    ensureDirectory(dir, 0o700, TLOG_CODES.IO);
    checkPrivateDir(dir, 'the witness state directory', TLOG_CODES.UNSAFE);
  }

  private path(origin: string): string {
    return join(this.dir, `${createHash('sha256').update(origin).digest('hex').slice(0, 32)}.checkpoint`);
  }

  /** The last checkpoint cosigned for `origin`, re-verified with the log's keys. */
  last(origin: string, verifiers: readonly NoteVerifier[]): SignedCheckpoint | undefined {
    const b = readBounded(this.path(origin), LIMITS.checkpoint);
    return b && openSignedCheckpoint(b.toString('utf8'), verifiers, origin);
  }

  /** Run `fn` holding the state lock (synchronous: never across an await). */
  locked<T>(fn: () => T): T {
    const lock = new FileLock(join(this.dir, 'witness.lock'), `the witness state ${this.dir}`);
    try {
      return lock.hold(fn);
    } finally {
      lock.close();
    }
  }

  save(origin: string, note: string): void {
    writeFileDurable(this.path(origin), note, 0o600, TLOG_CODES.IO);
  }
}

export interface AddCheckpoint {
  oldSize: number;
  /** RFC 6962 consistency proof from oldSize to the checkpoint's size (at most 63 hashes). */
  proof: readonly Hash[];
  /** The checkpoint note, signed by the log (it may carry other signatures too). */
  checkpoint: string;
}

function checkProof(last: SignedCheckpoint | undefined, c: SignedCheckpoint, req: AddCheckpoint): void {
  const unprocessable = (why: string) => new WitnessError(422, TLOG_CODES.CONSISTENCY, `${c.origin}: ${why}`);
  if (c.size === 0 && !c.rootHash.equals(EMPTY_ROOT)) throw unprocessable('a checkpoint of size 0 must have the empty-tree root');
  if (req.oldSize === 0) {
    if (req.proof.length) throw unprocessable('a proof from size 0 must be empty');
    return;
  }
  try {
    verifyConsistency(req.oldSize, c.size, last!.rootHash, c.rootHash, req.proof);
  } catch (e) {
    throw unprocessable(`not consistent with the checkpoint cosigned before (size ${req.oldSize}): ${(e as Error).message}`);
  }
}

/** tlog-witness add-checkpoint: verify, check against the state, cosign, persist. */
export function addCheckpoint(state: WitnessState, logVerifiers: readonly NoteVerifier[], witness: SignerKey, req: AddCheckpoint, now?: number): Cosignature {
  const text = parseSignedNote(req.checkpoint).text;
  const origin = parseCheckpoint(text).origin;
  let c: SignedCheckpoint;
  try {
    c = openSignedCheckpoint(req.checkpoint, logVerifiers, origin);
  } catch (e) {
    throw new WitnessError(403, TLOG_CODES.NOTE_SIGNATURE, `${origin}: the checkpoint is not validly signed by the log (${(e as Error).message})`);
  }
  if (!Number.isSafeInteger(req.oldSize) || req.oldSize < 0 || req.oldSize > c.size) throw new WitnessError(400, TLOG_CODES.BAD_ARGUMENT, `${origin}: old size ${req.oldSize} is larger than the checkpoint's ${c.size}`);
  if (req.proof.length > 63) throw new WitnessError(400, TLOG_CODES.BAD_ARGUMENT, `${origin}: more than 63 proof hashes`);
  return state.locked(() => {
    const last = state.last(origin, logVerifiers);
    const lastSize = last?.size ?? 0;
    if (req.oldSize !== lastSize) throw new WitnessError(409, TLOG_CODES.WITNESS_CONFLICT, `${origin}: the witness last cosigned size ${lastSize}, not ${req.oldSize}`, lastSize);
    checkProof(last, c, req);
    const cosignature = cosign(req.checkpoint, witness, origin, now);
    state.save(origin, req.checkpoint);
    return cosignature;
  });
}

/** The add-checkpoint request body: "old <size>\n", proof lines (base64), "\n", the checkpoint. */
export function formatAddCheckpoint(req: AddCheckpoint): string {
  return `old ${req.oldSize}\n${req.proof.map((h) => `${Buffer.from(h).toString('base64')}\n`).join('')}\n${req.checkpoint}`;
}

export function parseAddCheckpoint(body: string): AddCheckpoint {
  const bad = () => new WitnessError(400, TLOG_CODES.BAD_ARGUMENT, 'add-checkpoint: malformed request body');
  const split = body.indexOf('\n\n');
  if (split < 0) throw bad();
  const [oldLine, ...proofLines] = body.slice(0, split).split('\n');
  const oldSize = oldLine === undefined ? undefined : /^old (0|[1-9][0-9]*)$/.exec(oldLine)?.[1];
  if (oldSize === undefined || proofLines.length > 63) throw bad();
  const proof = proofLines.map((l) => {
    const h = Buffer.from(l, 'base64');
    if (h.length !== 32 || h.toString('base64') !== l) throw bad();
    return h;
  });
  return { oldSize: Number(oldSize), proof, checkpoint: body.slice(split + 2) };
}

export interface WitnessRun extends Cosignature {
  checkpoint: SignedCheckpoint;
  /** Size of the checkpoint this witness had cosigned before (0 the first time). */
  oldSize: number;
}

/**
 * Witness a log this witness reads itself (a directory or a tiled-log URL): its current checkpoint,
 * with a consistency proof from the last cosigned one computed from the log's tiles, checked against
 * the witness's own record of the old root.
 */
export async function witnessLog(reader: LogReader, witness: SignerKey, state: WitnessState, now?: number): Promise<WitnessRun> {
  const c = await reader.checkpoint();
  for (let attempt = 0; ; attempt++) {
    const last = state.last(c.origin, reader.verifiers);
    const oldSize = last?.size ?? 0;
    if (oldSize > c.size) throw new WitnessError(409, TLOG_CODES.SHRUNK, `${c.origin}: the log shows size ${c.size}, but this witness cosigned size ${oldSize}`, oldSize);
    const proof = oldSize > 0 ? (await reader.proveConsistency(oldSize, c.size)).hashes : [];
    try {
      return { ...addCheckpoint(state, reader.verifiers, witness, { oldSize, proof, checkpoint: c.note }, now), checkpoint: c, oldSize };
    } catch (e) {
      if (!(e instanceof WitnessError && e.status === 409) || attempt > 0) throw e; // another run moved the state
    }
  }
}
