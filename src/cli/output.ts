/** Output helpers: JSON printing and error records with stable codes and exit codes. */
import { BpfsealError, EXIT } from '../errors.js';

export interface Failure {
  code: string;
  message: string;
  exit: number;
}

/** A stderr line for a failure about `file`, naming the file exactly once. */
export function failureLine(file: string | undefined, f: Failure, withCode = false): string {
  const msg = withCode ? `${f.code}: ${f.message}` : f.message;
  return `bpfseal: ${!file || f.message.startsWith(`${file}:`) ? msg : `${file}: ${msg}`}\n`;
}

export function failure(e: unknown): Failure {
  if (e instanceof BpfsealError) return { code: e.code, message: e.message, exit: e.exitCode };
  // Anything else is a bug in bpfseal, not a property of the input: say so, with the stack on request.
  const err = e instanceof Error ? e : new Error(String(e));
  if (process.env.BPFSEAL_DEBUG) process.stderr.write(`${err.stack}\n`);
  return { code: 'INTERNAL', message: `internal error: ${err.message} (please report; set BPFSEAL_DEBUG=1 for a trace)`, exit: EXIT.internal };
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2) + '\n');
}
