/**
 * CLI plumbing shared by the commands: reading inputs with file-named errors, atomic writes, progress
 * on a TTY, and output paths.
 */
import { closeSync, fsyncSync, openSync, renameSync, statSync, writeSync, readFileSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BpfsealError, InputError } from '../errors.js';

/** Read a whole input file; a missing or unreadable file is an input error naming it. */
export function readInput(path: string): Buffer {
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new InputError('INPUT_NOT_FILE', `${path}: not a regular file`, { file: path });
    return readFileSync(path);
  } catch (e) {
    if (e instanceof BpfsealError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new InputError('INPUT_UNREADABLE', `${path}: cannot read (${code})`, { file: path, cause: e });
  }
}

/** Write atomically: temp file in the same directory, fsync, rename. A failure leaves the old file intact. */
export function writeFileAtomic(path: string, data: Buffer | string, mode = 0o644): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w', mode);
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    try { unlinkSync(tmp); } catch { /* nothing to clean */ }
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new InputError('OUTPUT_UNWRITABLE', `${path}: cannot write (${code})`, { file: path, cause: e });
  }
}

export function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Where the output for `input` goes: next to the input by default; into `out` when it is a directory
 * (or ends with '/'); `out` itself when there is exactly one input.
 */
export function outputPath(input: string, ext: string, out: string | undefined, inputs: number): string {
  const base = basename(input).replace(/\.(o|plan|bpfseal)$/, '') + ext;
  if (!out) return join(dirname(input), base);
  if (out.endsWith('/') || isDirectory(out)) return join(out, base);
  if (inputs > 1) throw new InputError('USAGE_OUTPUT', `-o ${out}: with ${inputs} inputs, -o must name an existing directory`);
  return out;
}

/** A one-line progress indicator on stderr, only when stderr is a terminal and there is more than one item. */
export class Progress {
  private readonly on: boolean;
  constructor(private total: number, private label: string) {
    this.on = total > 1 && process.stderr.isTTY === true;
  }
  tick(i: number, item: string): void {
    if (!this.on) return;
    process.stderr.write(`\r\x1b[K${this.label} ${i + 1}/${this.total} ${item}`);
  }
  done(): void {
    if (this.on) process.stderr.write('\r\x1b[K');
  }
}
