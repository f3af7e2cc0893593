/**
 * Durable files: the one implementation of "write a file so that a crash leaves the old content or the
 * new, never a mix, and an acknowledged write survives". Every writer in bpfseal (plans, releases, keys,
 * anti-rollback state, audit state, log checkpoints and identities) goes through here.
 *
 * Temporary files get unpredictable names and are opened O_CREAT | O_EXCL | O_NOFOLLOW, so a file or
 * symlink planted by another local user at a guessable name is never written through; the content is
 * fsynced, renamed into place, and the directory fsynced (rename durability, POSIX rename(2)).
 */
import type { ErrorCode } from '../errors.js';
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fdatasync, fsync, fsyncSync, linkSync, lstatSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_WRONLY, O_RDONLY, O_DIRECTORY } = constants;

/** Error for a file that cannot be written: the path and the errno, nothing else. */
export function writeError(path: string, e: unknown, code: ErrorCode = 'OUTPUT_UNWRITABLE'): InputError {
  if (e instanceof InputError) return e;
  const errno = (e as NodeJS.ErrnoException).code ?? 'EIO';
  return new InputError(code, `${path}: cannot write (${errno})`, { file: path, cause: e });
}

/** A fresh, unguessable temporary name next to `path` (same directory, so rename is atomic). */
export function tempPathFor(path: string, suffix = 'tmp'): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(8).toString('hex')}.${suffix}`);
}

/**
 * A write replaces only a regular file (or creates one): never a device node, FIFO, socket, symlink
 * or directory that happens to be at the target (`-o /dev/null` must not turn /dev/null into a file).
 */
export function checkReplaceable(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return; // nothing there: created
  }
  if (!st.isFile()) {
    const what = st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a directory' : 'not a regular file (a device, FIFO or socket)';
    throw new InputError('OUTPUT_NOT_FILE', `${path}: exists and is ${what}; refusing to replace it`, { file: path });
  }
}

/** Temp files this module makes match this: stale ones (a writer died) may be removed by their owner. */
export const TEMP_NAME = /^\..+\.[0-9a-f]{16}\.(tmp|new)$/;

export function writeAll(fd: number, data: Uint8Array): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
}

/** Create `path` exclusively, never through a symlink, with exactly `mode` (not filtered by the umask). */
export function openExclusive(path: string, mode: number): number {
  const fd = openSync(path, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY, mode);
  try {
    fchmodSync(fd, mode);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, O_RDONLY | O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function bytes(data: string | Uint8Array): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}

function unlinkQuiet(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    /* already renamed or never created */
  }
}

/** Write a synced temp file next to `path`; returns its name (the caller renames or links it). */
function syncedTemp(path: string, data: string | Uint8Array, mode: number, suffix = 'tmp'): string {
  const tmp = tempPathFor(path, suffix);
  const fd = openExclusive(tmp, mode);
  try {
    writeAll(fd, bytes(data));
    fsyncSync(fd);
  } catch (e) {
    unlinkQuiet(tmp);
    throw e;
  } finally {
    closeSync(fd);
  }
  return tmp;
}

/**
 * Replace `path` atomically and durably: temp file, fsync, rename, fsync of the directory. A failure
 * leaves the old file intact and no temp file behind. Errors name `path` (code `errorCode`).
 */
export function writeFileDurable(path: string, data: string | Uint8Array, mode = 0o644, errorCode: ErrorCode = 'OUTPUT_UNWRITABLE'): void {
  let tmp: string | undefined;
  try {
    checkReplaceable(path);
    tmp = syncedTemp(path, data, mode);
    checkReplaceable(path);
    renameSync(tmp, path);
    tmp = undefined;
    fsyncDir(dirname(path));
  } catch (e) {
    if (tmp) unlinkQuiet(tmp);
    throw writeError(path, e, errorCode);
  }
}

/**
 * Create `path` with `data` only if nothing (file, directory or symlink) exists there: the content is
 * written and synced under a temp name, then hard-linked into place, which fails with EEXIST atomically.
 * Never overwrites, never leaves a partial file. Returns false when `path` already existed.
 */
export function createExclusive(path: string, data: string | Uint8Array, mode: number, errorCode: ErrorCode = 'OUTPUT_UNWRITABLE'): boolean {
  let tmp: string | undefined;
  try {
    tmp = syncedTemp(path, data, mode, 'new');
    try {
      linkSync(tmp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
    fsyncDir(dirname(path));
    return true;
  } catch (e) {
    throw writeError(path, e, errorCode);
  } finally {
    if (tmp) unlinkQuiet(tmp);
  }
}

/** fsync on the libuv thread pool; several at once share the journal commit. */
export function syncAsync(fd: number, dataOnly: boolean): Promise<void> {
  return new Promise((resolve, reject) => (dataOnly ? fdatasync : fsync)(fd, (e) => (e ? reject(e) : resolve())));
}

/**
 * Durable replace in two halves, so that the caller can overlap the temp file's fsync with syncs of its
 * own: the temp file is written now; `commit(synced)` waits for its fsync and for `synced`, renames it
 * over `path` and fsyncs the directory. A reader sees the old or the new content, never a mix.
 */
export function prepareReplace(path: string, data: string | Uint8Array, mode = 0o644): { commit(synced: Promise<unknown>): Promise<void> } {
  const tmp = tempPathFor(path);
  let fd: number;
  try {
    checkReplaceable(path);
    fd = openExclusive(tmp, mode);
    writeAll(fd, bytes(data));
  } catch (e) {
    unlinkQuiet(tmp);
    throw writeError(path, e);
  }
  return {
    async commit(synced) {
      try {
        await Promise.all([syncAsync(fd, false).finally(() => closeSync(fd)), synced]);
        renameSync(tmp, path);
        const dfd = openSync(dirname(path), O_RDONLY | O_DIRECTORY);
        await syncAsync(dfd, false).finally(() => closeSync(dfd));
      } catch (e) {
        unlinkQuiet(tmp);
        throw writeError(path, e);
      }
    },
  };
}

/**
 * Reserve `path` for a durable write that happens later: the temp file is created now, so an
 * unwritable destination fails before any side effect (a log append, say), and `commit` writes,
 * fsyncs and renames it into place. `abandon` removes the temp file.
 */
export function reserveOutput(path: string, mode = 0o644): { commit(data: string | Uint8Array): void; abandon(): void } {
  const tmp = tempPathFor(path);
  let fd: number | undefined;
  checkReplaceable(path);
  try {
    fd = openExclusive(tmp, mode);
  } catch (e) {
    throw writeError(path, e);
  }
  const abandon = () => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
    unlinkQuiet(tmp);
  };
  return {
    commit(data) {
      try {
        writeAll(fd!, bytes(data));
        fsyncSync(fd!);
        closeSync(fd!);
        fd = undefined;
        checkReplaceable(path);
        renameSync(tmp, path);
        fsyncDir(dirname(path));
      } catch (e) {
        abandon();
        throw writeError(path, e);
      }
    },
    abandon,
  };
}
