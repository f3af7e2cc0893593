/**
 * Typed errors of the transparency log. Codes are stable (printed by `--json`):
 *   kind 'input'  (exit 2): malformed or unusable data — a checkpoint that does not parse, a missing log,
 *                           an entry that is too large, an index outside the tree;
 *   kind 'verify' (exit 1): the data parses but does not check — a proof that does not lead to the
 *                           root, a bad note signature, a log whose stored hashes disagree with its
 *                           entries, a log that shrank or was rewritten.
 */
import type { ErrorCode } from '../errors.js';
import { BpfsealError, InputError } from '../errors.js';

/** A proof, signature or consistency check failed (exit 1). */
export class TlogVerifyError extends BpfsealError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; file?: string }) {
    super('verify', code, message, options);
    this.name = 'TlogVerifyError';
  }
}

/** Malformed transparency-log input (exit 2). Same class as elsewhere, re-exported for one import site. */
export { InputError };

/** Every code this module throws, for documentation and tests. */
export const TLOG_CODES = {
  // input (exit 2)
  NOT_FOUND: 'TLOG_NOT_FOUND',
  BAD_CHECKPOINT: 'TLOG_BAD_CHECKPOINT',
  BAD_NOTE: 'TLOG_BAD_NOTE',
  BAD_ARGUMENT: 'TLOG_BAD_ARGUMENT',
  INDEX_RANGE: 'TLOG_INDEX_OUT_OF_RANGE',
  ENTRY_TOO_LARGE: 'TLOG_ENTRY_TOO_LARGE',
  ORIGIN_MISMATCH: 'TLOG_ORIGIN_MISMATCH',
  BAD_KEY: 'TLOG_BAD_KEY',
  LOCK: 'TLOG_LOCK_FAILED',
  IO: 'TLOG_IO',
  UNSAFE: 'TLOG_UNSAFE_PATH',
  WITNESS_UNSUPPORTED: 'TLOG_WITNESS_UNSUPPORTED',
  OLD_LAYOUT: 'TLOG_OLD_LAYOUT',
  REMOTE: 'TLOG_REMOTE',
  // verify (exit 1)
  INCLUSION: 'TLOG_INCLUSION_INVALID',
  CONSISTENCY: 'TLOG_CONSISTENCY_INVALID',
  NOTE_SIGNATURE: 'TLOG_NOTE_SIGNATURE_INVALID',
  CHECKPOINT_ORIGIN: 'TLOG_CHECKPOINT_ORIGIN',
  CORRUPT: 'TLOG_CORRUPT',
  SHRUNK: 'TLOG_SHRUNK',
  ENTRY_MISMATCH: 'TLOG_ENTRY_MISMATCH',
  APPEND_LOST: 'TLOG_APPEND_LOST',
  DIGEST_NOT_FOUND: 'TLOG_DIGEST_NOT_FOUND',
  DSSE_SIGNATURE: 'TLOG_DSSE_SIGNATURE_INVALID',
  /** tlog-witness 409: the old size is not the size the witness last cosigned. */
  WITNESS_CONFLICT: 'TLOG_WITNESS_CONFLICT',
  /** Fewer valid witness cosignatures than the policy requires. */
  WITNESS_THRESHOLD: 'TLOG_WITNESS_THRESHOLD',
} as const;
