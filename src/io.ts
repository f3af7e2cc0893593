/**
 * File input and output shared by every layer: reading inputs with file-named errors, and atomic
 * writes (temp file in the same directory, fsync, rename).
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BpfsealError, InputError } from './errors.js';

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
