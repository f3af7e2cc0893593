/**
 * File plumbing for the on-disk log: names, positional reads and writes that never return short, and
 * the durable-replace sequence (write temp, fsync, rename, fsync directory) used for the checkpoint.
 */
import { closeSync, fdatasync, fsync, fsyncSync, linkSync, openSync, readdirSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InputError, TLOG_CODES, TlogVerifyError } from './errors.js';

/** The files of a log directory (README.md, "Storage layout"). */
export const FILES = {
  config: 'log.json',
  privateKey: 'log.key',
  publicKey: 'log.pub',
  entries: 'entries',
  index: 'entries.idx',
  hashes: 'hashes',
  checkpoint: 'checkpoint',
  commitLock: 'commit.lock',
  commitSignal: 'commit.signal',
  appendLock: 'append.lock',
} as const;

export function ioError(path: string, what: string, e: unknown): InputError {
  const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
  return new InputError(TLOG_CODES.IO, `${path}: cannot ${what} (${code})`, { file: path, cause: e });
}

/** Read exactly `length` bytes at `position`; returns fewer only at end of file. */
export function preadUpTo(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let off = 0;
  while (off < length) {
    const n = readSync(fd, buf, off, length - off, position + off);
    if (n === 0) break;
    off += n;
  }
  return off === length ? buf : buf.subarray(0, off);
}

const CHUNK = 1 << 20;

/**
 * Sequential reader over [start, end) of a file through one reused buffer (memory stays at the chunk
 * size, or the largest single take). A returned slice is valid until the next take().
 */
export class ChunkReader {
  private buf: Buffer = Buffer.allocUnsafe(CHUNK);
  private pos = 0;
  private len = 0;
  private next: number;

  constructor(private readonly fd: number, start: number, private readonly end: number, private readonly what: string) {
    this.next = start;
  }

  take(n: number): Buffer {
    if (this.len - this.pos < n) {
      const keep = this.len - this.pos;
      if (n > this.buf.length) {
        const bigger = Buffer.allocUnsafe(n);
        this.buf.copy(bigger, 0, this.pos, this.len);
        this.buf = bigger;
      } else {
        this.buf.copyWithin(0, this.pos, this.len);
      }
      this.pos = 0;
      this.len = keep;
      while (this.len < n && this.next < this.end) {
        const want = Math.min(this.buf.length - this.len, this.end - this.next);
        const got = readSync(this.fd, this.buf, this.len, want, this.next);
        if (got === 0) break;
        this.len += got;
        this.next += got;
      }
      if (this.len < n) throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${this.what} ends early (at byte ${this.next})`);
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** Write all of `data` at `position`. */
export function pwriteAll(fd: number, data: Uint8Array, position: number): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off, position + off);
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** fsync (or fdatasync) on the libuv thread pool; several at once share the journal commit. */
export function syncAsync(fd: number, dataOnly: boolean): Promise<void> {
  return new Promise((resolve, reject) => (dataOnly ? fdatasync : fsync)(fd, (e) => (e ? reject(e) : resolve())));
}

/**
 * Durably replace `name` in `dir`, in two halves so that the caller can overlap the first with other
 * syncs: `prepareReplace` writes the temp file (unique per process); `commit(synced)` waits for the
 * temp file's fsync and `synced` (the caller's other syncs), renames it over the target and fsyncs the
 * directory. A reader sees the old or the new content, never a mix; once commit resolves, the new
 * content survives a crash.
 */
export function prepareReplace(dir: string, name: string, data: string | Uint8Array): { commit(synced: Promise<unknown>): Promise<void> } {
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  const target = join(dir, name);
  const cleanup = () => {
    try {
      unlinkSync(tmp);
    } catch {
      /* already renamed or never created */
    }
  };
  let fd: number;
  try {
    fd = openSync(tmp, 'w', 0o644);
    pwriteAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, 0);
  } catch (e) {
    cleanup();
    throw ioError(target, 'write', e);
  }
  return {
    async commit(synced) {
      try {
        await Promise.all([syncAsync(fd, false).finally(() => closeSync(fd)), synced]);
        renameSync(tmp, target);
        const dfd = openSync(dir, 'r');
        await syncAsync(dfd, false).finally(() => closeSync(dfd));
      } catch (e) {
        cleanup();
        throw ioError(target, 'write', e);
      }
    },
  };
}

/** Synchronous durable replace (write temp, fsync, rename, fsync directory), for one-off files. */
export function replaceDurably(dir: string, name: string, data: string | Uint8Array): void {
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  const target = join(dir, name);
  try {
    const fd = openSync(tmp, 'w', 0o644);
    try {
      pwriteAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, 0);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, target);
    fsyncDir(dir);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already renamed or never created */
    }
    throw ioError(target, 'write', e);
  }
}

/**
 * Create `path` with `data` only if it does not exist: never overwrites, and never leaves a partial
 * file (the content is written and synced under a temp name, then hard-linked into place, which fails
 * with EEXIST atomically). Returns false when the file already existed.
 */
export function createExclusive(path: string, data: string, mode: number): boolean {
  const tmp = `${path}.${process.pid}.new`;
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      pwriteAll(fd, Buffer.from(data, 'utf8'), 0);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
    fsyncDir(dirname(path));
    return true;
  } catch (e) {
    throw ioError(path, 'create', e);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* nothing to clean */
    }
  }
}

/**
 * Remove temp files left by processes that died while writing the checkpoint or creating a key file.
 * Only call while holding the commit lock: every such file is written under it.
 */
export function removeStaleTemps(dir: string): void {
  const mine = new RegExp(`\\.${process.pid}\\.(tmp|new)$`);
  for (const f of readdirSync(dir)) {
    if (/^\.checkpoint\.\d+\.tmp$|^log\.(key|pub|json)\.\d+\.new$/.test(f) && !mine.test(f)) {
      try {
        unlinkSync(join(dir, f));
      } catch {
        /* gone already */
      }
    }
  }
}
