/**
 * Typed errors with stable codes. The CLI maps the kind of error to an exit code (README, "Exit codes"):
 *   0 success, 1 verification or policy rejection, 2 usage error or invalid/unsupported input,
 *   3 the kernel refused, 70 an internal error (a bug in bpfseal, never a property of the input).
 */
import type { ErrorCode } from './errors.gen.js';

export type { ErrorCode };

export type ErrorKind = 'input' | 'usage' | 'verify' | 'kernel';

export const EXIT = { ok: 0, verify: 1, input: 2, usage: 2, kernel: 3, internal: 70 } as const;

export class BpfsealError extends Error {
  readonly kind: ErrorKind;
  /** Stable machine-readable code, e.g. ELF_TRUNCATED. Printed in --json output. */
  readonly code: ErrorCode;
  /** The file the error is about, when there is one. */
  file?: string;

  constructor(kind: ErrorKind, code: ErrorCode, message: string, options?: { cause?: unknown; file?: string }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'BpfsealError';
    this.kind = kind;
    this.code = code;
    if (options?.file !== undefined) this.file = options.file;
  }

  get exitCode(): number {
    return EXIT[this.kind];
  }
}

/** Malformed or unsupported input (exit 2). */
export class InputError extends BpfsealError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; file?: string }) {
    super('input', code, message, options);
    this.name = 'InputError';
  }
}


/** Verification or policy rejection (exit 1): bad signature, untrusted signer, revoked, rollback, ... */
export class VerifyError extends BpfsealError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; file?: string }) {
    super('verify', code, message, options);
    this.name = 'VerifyError';
  }
}

/** An error as the CLI reports it (stderr line, --json `error`), with the exit status it ends with. */
export interface Failure {
  code: string;
  message: string;
  exit: number;
}

/** Any thrown value as a Failure: a BpfsealError keeps its code; anything else is INTERNAL (exit 70). */
export function failure(e: unknown): Failure {
  if (e instanceof BpfsealError) return { code: e.code, message: e.message, exit: e.exitCode };
  // Anything else is a bug in bpfseal, not a property of the input: say so, with the stack on request.
  const err = e instanceof Error ? e : new Error(String(e));
  if (process.env.BPFSEAL_DEBUG) process.stderr.write(`${err.stack}\n`);
  return { code: 'INTERNAL', message: `internal error: ${err.message} (please report; set BPFSEAL_DEBUG=1 for a trace)`, exit: EXIT.internal };
}

/**
 * `xs[i]` where the caller's own logic guarantees `i` is in range (a loop bound, a length checked just
 * before). A broken guarantee is a bug in bpfseal (INTERNAL, exit 70), never `undefined` flowing on.
 * Indexes that come from input are checked by the parser instead, with its own error code.
 */
export function at<T>(xs: ArrayLike<T>, i: number, what = 'index'): T {
  if (!Number.isInteger(i) || i < 0 || i >= xs.length) throw new Error(`${what} ${i} out of range 0..${xs.length - 1}`);
  return xs[i] as T;
}
