/**
 * Bounded reads of input files: one open, a size check against the limit for that kind of input
 * (no unbounded buffering of whatever a path points at), and errors that name the file once.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { BpfsealError, InputError } from '../errors.js';
import { checkTrusted } from './trusted.js';

const MiB = 1 << 20;

/** Largest input accepted per kind (README, "Limits"). */
export const LIMITS = {
  object: 128 * MiB,
  plan: 128 * MiB,
  release: 192 * MiB,
  policy: 1 * MiB,
  trustedRoot: 4 * MiB,
  key: 256 * 1024,
  checkpoint: 64 * 1024,
  state: 16 * MiB,
  logRecord: 16 * MiB,
} as const;

export type InputKind = keyof typeof LIMITS;

function human(n: number): string {
  return n >= MiB ? `${(n / MiB).toFixed(n % MiB ? 1 : 0)} MiB` : `${Math.ceil(n / 1024)} KiB`;
}

export interface ReadOptions {
  /** Which limit applies (default: object, the largest). */
  kind?: InputKind;
  /** Refuse a symlink at the last path component (trust material inside bpfseal's own directories). */
  noFollow?: boolean;
  /** Name used in error messages (default: the path). */
  name?: string;
  /**
   * Trust material (what it is, for messages): refuse a file or path another local user could
   * change (fsx/trusted.ts).
   */
  trusted?: string;
}

/** Read a whole regular file, refusing one larger than its kind's limit. Errors are InputErrors naming the file. */
export function readInput(path: string, opts: ReadOptions = {}): Buffer {
  const kind = opts.kind ?? 'object';
  const max = LIMITS[kind];
  const name = opts.name ?? path;
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | (opts.noFollow ? constants.O_NOFOLLOW : 0));
    const st = fstatSync(fd);
    if (!st.isFile()) throw new InputError('INPUT_NOT_FILE', `${name}: not a regular file`, { file: path });
    if (opts.trusted) checkTrusted(path, st, opts.trusted);
    if (st.size > max) throw new InputError('INPUT_TOO_LARGE', `${name}: ${human(st.size)} is larger than the ${human(max)} bpfseal accepts for a ${kind} file`, { file: path });
    // Read to end of file, never past the limit. The size may change while we read, and files under
    // /proc and /sys say 0: the buffer grows (doubling) until a read returns 0.
    let buf = Buffer.allocUnsafe(Math.min(max + 1, Math.max(st.size + 1, 4096)));
    let off = 0;
    for (;;) {
      if (off === buf.length) {
        if (buf.length > max) throw new InputError('INPUT_TOO_LARGE', `${name}: grew past the ${human(max)} bpfseal accepts for a ${kind} file while being read`, { file: path });
        const bigger = Buffer.allocUnsafe(Math.min(max + 1, buf.length * 2));
        buf.copy(bigger, 0, 0, off);
        buf = bigger;
      }
      const n = readSync(fd, buf, off, buf.length - off, st.size === 0 ? null : off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } catch (e) {
    if (e instanceof BpfsealError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    if (code === 'ELOOP' && opts.noFollow) throw new InputError('INPUT_SYMLINK', `${name}: is a symbolic link; bpfseal does not follow links for this file`, { file: path });
    if (code === 'ENOENT') throw new InputError('INPUT_UNREADABLE', `${name}: no such file (ENOENT)`, { file: path, cause: e });
    if (code === 'EISDIR') throw new InputError('INPUT_NOT_FILE', `${name}: not a regular file (a directory)`, { file: path });
    throw new InputError('INPUT_UNREADABLE', `${name}: cannot read (${code})`, { file: path, cause: e });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
