/**
 * File plumbing for the on-disk log: names, positional reads and writes that never return short. The
 * durable-replace sequence for the checkpoint and identity files is fsx/durable.ts.
 */
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, TLOG_CODES, TlogVerifyError } from './errors.js';
import { TEMP_NAME } from '../fsx/durable.js';

/** The files of a log directory (README.md, "Storage layout"). */
export const FILES = {
  config: 'log.json',
  privateKey: 'log.key',
  publicKey: 'log.pub',
  /** Ed25519 note signer key (PRIVATE+KEY+<origin>+...), mode 0600: the log's second checkpoint signature. */
  noteKey: 'log.ed25519',
  /** Its verifier key (<origin>+<key ID>+base64(0x01 || key)), for tlog-tiles clients and witnesses. */
  vkey: 'log.vkey',
  checkpoint: 'checkpoint',
  /** The newest checkpoint that carries witness cosignatures (witness/store.ts). */
  cosigned: 'checkpoint.cosigned',
  /** c2sp.org/tlog-tiles hash tiles and entry bundles. */
  tiles: 'tile',
  pending: 'pending',
  times: 'integrated-times',
  commitLock: 'commit.lock',
  commitSignal: 'commit.signal',
  appendLock: 'append.lock',
} as const;

/** The files of the first layout (bpfseal-tlog/1), read only to migrate them (legacy.ts). */
export const LEGACY_FILES = {
  entries: 'entries',
  index: 'entries.idx',
  hashes: 'hashes',
} as const;

export function ioError(path: string, what: string, e: unknown): InputError {
  const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
  return new InputError(TLOG_CODES.IO, `${path}: cannot ${what} (${code})`, { file: path, cause: e });
}

/**
 * Read a whole regular file of at most `max` bytes, never through a symlink; undefined when it does not
 * exist. (Tiles and bundles: fsx/read.ts limits are per input kind, and a bundle of 256 entries of the
 * largest size is slightly over its 16 MiB record limit.)
 */
export function readBounded(path: string, max: number): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw ioError(path, 'open', e);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new InputError(TLOG_CODES.IO, `${path}: not a regular file`, { file: path });
    if (st.size > max) throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${path}: ${st.size} bytes, more than the ${max} it can hold`, { file: path });
    return preadUpTo(fd, st.size, 0);
  } finally {
    closeSync(fd);
  }
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

/**
 * Remove temp files left in `dir` by processes that died while writing a tile, the checkpoint or a key
 * file (fsx/durable.ts names). Only call while holding the commit lock: every such file is written
 * under it, so any that exists then belongs to a dead writer.
 */
export function removeStaleTemps(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // a tile directory that is not there yet
  }
  for (const f of names) {
    if (TEMP_NAME.test(f)) {
      try {
        unlinkSync(join(dir, f));
      } catch {
        /* gone already */
      }
    }
  }
}
