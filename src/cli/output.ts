/** Output helpers: JSON printing and error records with stable codes and exit codes. */
import { BpfsealError, EXIT } from '../errors.js';

export interface Failure {
  code: string;
  message: string;
  exit: number;
}

/** A stderr line for a failure about `file`: `bpfseal: <file>: <CODE>: <reason>`, naming the file exactly once. */
export function failureLine(file: string | undefined, f: Failure, withCode = true): string {
  const msg = file && f.message.startsWith(`${file}: `) ? f.message.slice(file.length + 2) : f.message;
  return `bpfseal: ${file ? `${file}: ` : ''}${withCode ? `${f.code}: ` : ''}${msg}\n`;
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
