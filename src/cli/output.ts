/** Output helpers: JSON printing and error records with stable codes and exit codes. */
import type { Failure } from '../errors.js';

// failure() lives in errors.ts, below every folder that reports one (preflight/ does, per kernel run).
export { failure, type Failure } from '../errors.js';

/** A stderr line for a failure about `file`: `bpfseal: <file>: <CODE>: <reason>`, naming the file exactly once. */
export function failureLine(file: string | undefined, f: Failure, withCode = true): string {
  const msg = file && f.message.startsWith(`${file}: `) ? f.message.slice(file.length + 2) : f.message;
  return `bpfseal: ${file ? `${file}: ` : ''}${withCode ? `${f.code}: ` : ''}${msg}\n`;
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2) + '\n');
}
