/**
 * Directories bpfseal keeps trust material in (logs, keys, state): created without unbounded loops,
 * and refused when another local user could swap what is inside (a symlink, or a directory that group
 * or others may write to, or one owned by another user).
 */
import type { ErrorCode } from '../errors.js';
import { lstatSync, mkdirSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { BpfsealError, InputError } from '../errors.js';

function errnoOf(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? 'EIO';
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT' || errnoOf(e) === 'ENOTDIR') return undefined;
    throw new InputError('DIR_UNUSABLE', `${p}: cannot inspect (${errnoOf(e)})`, { file: p, cause: e });
  }
}

/**
 * Make `dir` (and missing parents) a directory. Bounded: one mkdir per missing component; anything in
 * the way that is not a directory is an error naming it. Returns whether `dir` itself was created.
 */
export function ensureDirectory(dir: string, mode = 0o755, code: ErrorCode = 'DIR_UNUSABLE'): boolean {
  const abs = resolve(dir);
  const missing: string[] = [];
  let p = abs;
  for (;;) {
    const st = lstatOrUndefined(p);
    if (st) {
      if (!st.isDirectory()) {
        const what = st.isSymbolicLink() && p === abs ? 'a symbolic link' : 'not a directory';
        throw new InputError(code, `${p}: ${what}${p === abs ? '' : ` (a parent of ${abs})`}`, { file: abs });
      }
      break;
    }
    missing.push(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, { mode });
    } catch (e) {
      if (errnoOf(e) === 'EEXIST' && lstatSync(d).isDirectory()) continue;
      throw new InputError(code, `${d}: cannot create directory (${errnoOf(e)})`, { file: abs, cause: e });
    }
  }
  return missing.length > 0;
}

/**
 * `dir` must be a real directory (not a symlink), owned by this user or root (unless `owner: false`, for
 * read-only use of another user's directory), and not writable by group or others: otherwise another
 * local user could replace the files bpfseal trusts in it.
 */
export function checkPrivateDir(dir: string, what: string, code: ErrorCode = 'DIR_UNSAFE', opts: { owner?: boolean } = {}): void {
  const st = lstatOrUndefined(dir);
  if (!st) throw new InputError(code, `${dir}: ${what} does not exist`, { file: dir });
  if (st.isSymbolicLink()) throw new BpfsealError('input', code, `${dir}: ${what} is a symbolic link; give the real path`, { file: dir });
  if (!st.isDirectory()) throw new BpfsealError('input', code, `${dir}: ${what} is not a directory`, { file: dir });
  const uid = process.geteuid?.() ?? 0;
  if (opts.owner !== false && st.uid !== uid && st.uid !== 0) throw new BpfsealError('input', code, `${dir}: ${what} is owned by uid ${st.uid}, not by this user (${uid}) or root`, { file: dir });
  if (st.mode & 0o022) throw new BpfsealError('input', code, `${dir}: ${what} is writable by group or others (mode ${(st.mode & 0o7777).toString(8)}); chmod go-w it`, { file: dir });
}

/** `path` inside a checked directory must be a regular file, not a symlink (or absent when `optional`). */
export function checkRegularFile(path: string, what: string, code: ErrorCode = 'FILE_UNSAFE'): Stats | undefined {
  const st = lstatOrUndefined(path);
  if (!st) return undefined;
  if (st.isSymbolicLink()) throw new BpfsealError('input', code, `${path}: ${what} is a symbolic link; bpfseal does not follow links here`, { file: path });
  if (!st.isFile()) throw new BpfsealError('input', code, `${path}: ${what} is not a regular file`, { file: path });
  return st;
}

/** Is `p` a directory (following symlinks, as output paths given by users may)? */
export function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
