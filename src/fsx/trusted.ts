/**
 * Trust material (policies, public keys, trusted roots, state files) is only as safe as the path to
 * it: a policy that another local user can rewrite, or that sits in a directory they can write to (or
 * behind a symlink they own), is a policy they choose. `checkTrusted` refuses such a path, naming the
 * component to fix; it widens nothing and has no override.
 */
import { lstatSync, realpathSync, type Stats } from 'node:fs';
import { dirname, resolve } from 'node:path';

const sep = '/';
import { BpfsealError } from '../errors.js';

export const TRUST_FILE_UNSAFE = 'TRUST_FILE_UNSAFE';

const S_ISVTX = 0o1000;

function euid(): number {
  return process.geteuid?.() ?? 0;
}

function refuse(file: string, what: string, msg: string): never {
  throw new BpfsealError('input', 'TRUST_FILE_UNSAFE', `${file}: ${what}: ${msg}`, { file });
}

function ownerOk(st: Stats): boolean {
  return st.uid === euid() || st.uid === 0;
}

/** Every prefix of an absolute path, root first: /a/b/c -> /, /a, /a/b, /a/b/c. */
function prefixes(abs: string): string[] {
  const out = [sep];
  let p = '';
  for (const c of abs.split(sep).filter(Boolean)) {
    p += sep + c;
    out.push(p);
  }
  return out;
}

function checkDir(dir: string, file: string, what: string): void {
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch {
    return; // a vanished component fails the open that follows
  }
  if (st.isSymbolicLink()) {
    // Only its owner (or root) can repoint a link: someone else's link can lead anywhere tomorrow.
    if (!ownerOk(st)) refuse(file, what, `${dir} is a symbolic link owned by uid ${st.uid}, who can repoint it`);
    return;
  }
  if (!st.isDirectory()) return;
  if (!ownerOk(st)) refuse(file, what, `directory ${dir} is owned by uid ${st.uid}, not by this user (${euid()}) or root`);
  if (st.mode & 0o022 && !(st.mode & S_ISVTX)) {
    refuse(file, what, `directory ${dir} is writable by group or others (mode ${(st.mode & 0o7777).toString(8)}), so they can replace what is in it; chmod go-w it`);
  }
}

/**
 * Refuse `path` as trust material unless the file (stat of the open descriptor, `st`) is owned by
 * this user or root and not writable by group or others, and every directory on the way to it (as
 * named, and after resolving symlinks) is owned by this user or root and not writable by others
 * unless sticky (/tmp: others cannot rename or delete what they do not own there).
 */
export function checkTrusted(path: string, st: Stats, what: string): void {
  if (!ownerOk(st)) refuse(path, what, `owned by uid ${st.uid}, not by this user (${euid()}) or root; trust material must be yours or root's`);
  if (st.mode & 0o022) refuse(path, what, `writable by group or others (mode ${(st.mode & 0o7777).toString(8)}); chmod go-w it`);
  const abs = resolve(path);
  const seen = new Set<string>();
  for (const d of prefixes(dirname(abs))) if (!seen.has(d)) (seen.add(d), checkDir(d, path, what));
  // The last component may itself be a link (not followed by noFollow reads): its owner must be safe too.
  checkDir(abs, path, what);
  let real: string;
  try {
    real = realpathSync(abs);
  } catch {
    return;
  }
  for (const d of prefixes(dirname(real))) if (!seen.has(d)) (seen.add(d), checkDir(d, path, what));
}
