/**
 * Pin directories on bpffs, made so that another local user cannot swap a pin under a load: bpffs is
 * mounted mode 1777, so anyone may create a directory at the path a load will use. A load therefore
 * pins into a staging directory it creates itself (mode 0700, a random name, failing on EEXIST) next
 * to the target and renames it into place once the load is recorded (rename(2) is atomic, replaces
 * only an empty directory, and in a sticky directory refuses to replace another user's). Every
 * ancestor from the mount down must be a real directory owned by root or this user, and one that
 * others may write to must be sticky.
 */
import type { ErrorCode } from '../errors.js';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, realpathSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { BpfsealError } from '../errors.js';
import { ensureDirectory } from '../fsx/dirs.js';
import { BPF_FS_MAGIC } from './bpffs.js';
import { statfsSync } from 'node:fs';

const S_ISVTX = 0o1000;

/** Staging directories are named STAGING_PREFIX + load id (bpffs refuses '.', so they cannot be hidden). */
export const STAGING_PREFIX = 'bpfseal_staging_';

export function stagingPath(t: PinTarget, loadId: string): string {
  return join(t.parent, `${STAGING_PREFIX}${loadId}`);
}

function pinError(code: ErrorCode, msg: string, file?: string): BpfsealError {
  return new BpfsealError('usage', code, msg, file ? { file } : undefined);
}

function onBpffs(p: string): boolean {
  try {
    return statfsSync(p).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** An ancestor another user cannot use to swap what is below it. */
function checkAncestor(p: string, st: Stats): void {
  const uid = process.geteuid?.() ?? 0;
  if (st.isSymbolicLink()) throw pinError('PIN_DIR_UNSAFE', `${p} is a symbolic link; give the real path of the pin directory`, p);
  if (!st.isDirectory()) throw pinError('PIN_DIR_UNSAFE', `${p} is not a directory`, p);
  if (st.uid !== 0 && st.uid !== uid) throw pinError('PIN_DIR_UNSAFE', `${p} is owned by uid ${st.uid}; a pin directory must be below directories owned by root or this user`, p);
  if (st.mode & 0o022 && !(st.mode & S_ISVTX)) throw pinError('PIN_DIR_UNSAFE', `${p} is writable by group or others and not sticky (mode ${(st.mode & 0o7777).toString(8)}); another user could swap the pins below it`, p);
}

export interface PinTarget {
  /** The final pin directory (absolute; its parent is a real, checked path). */
  dir: string;
  parent: string;
}

/**
 * Check where `dir` would go: its parent is created if missing (mode 0755), must be on bpffs, and it
 * and every ancestor up to the bpffs mount pass checkAncestor. `dir` itself must not exist, or be an
 * empty directory of this user or root that nobody else may write to (the commit replaces it).
 */
export function pinTarget(dir: string): PinTarget {
  const abs = resolve(dir);
  if (basename(abs).startsWith(STAGING_PREFIX)) throw pinError('PIN_DIR_UNSAFE', `${abs}: names starting with ${STAGING_PREFIX} are bpfseal's own`, abs);
  if (basename(abs).includes('.')) throw pinError('PIN_DIR_UNSAFE', `${abs}: bpffs refuses names with '.'`, abs);
  const parentIn = dirname(abs);
  ensureDirectory(parentIn, 0o755, 'PIN_DIR_UNSAFE');
  const parent = realpathSync(parentIn);
  if (!onBpffs(parent)) throw pinError('BPFFS_NOT_MOUNTED', `${parentIn} is not on a bpf filesystem; pin under /sys/fs/bpf, or mount one: mount -t bpf bpf <dir>`, abs);
  for (let p = parent; ; p = dirname(p)) {
    checkAncestor(p, lstatSync(p));
    if (!onBpffs(dirname(p)) || dirname(p) === p) break; // p is the mount point
  }
  const final = join(parent, basename(abs));
  let st: Stats | undefined;
  try {
    st = lstatSync(final);
  } catch {
    st = undefined;
  }
  if (st) {
    if (st.isSymbolicLink()) throw pinError('PIN_DIR_UNSAFE', `${final} is a symbolic link; refusing to pin through it (remove it, or give the real path)`, final);
    if (!st.isDirectory()) throw pinError('PIN_DIR_IN_USE', `${final} exists and is not a directory`, final);
    // An existing empty directory is replaced by ours at the rename, but only one this user or root made.
    const uid = process.geteuid?.() ?? 0;
    if (st.uid !== uid && st.uid !== 0) throw pinError('PIN_DIR_UNSAFE', `${final} was created by uid ${st.uid}, not by this user or root; remove it, or choose another directory`, final);
    if (st.mode & 0o022) throw pinError('PIN_DIR_UNSAFE', `${final} is writable by group or others (mode ${(st.mode & 0o7777).toString(8)}); remove it, or choose another directory`, final);
    const entries = readdirSync(final);
    if (entries.length) throw pinError('PIN_DIR_IN_USE', `${final} already holds pins (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); unload it first or choose another directory`, final);
  }
  return { dir: final, parent };
}

/** Create a fresh staging directory (0700, random name, EEXIST is an error) beside the target, with maps/ and `extra` subdirectories. */
export function makeStaging(t: PinTarget, loadId = randomBytes(16).toString('hex'), extra: readonly string[] = []): string {
  const staging = stagingPath(t, loadId);
  try {
    mkdirSync(staging, { mode: 0o700 });
    mkdirSync(join(staging, 'maps'), { mode: 0o700 });
    for (const d of extra) mkdirSync(join(staging, d), { mode: 0o700 });
  } catch (e) {
    throw pinError('PIN_FAILED', `${staging}: cannot create the staging directory (${(e as NodeJS.ErrnoException).code})`, staging);
  }
  return staging;
}

/** Is `p` strictly inside `dir` (after resolving `..`)? Pin paths are always checked with this. */
export function insideDir(dir: string, p: string): boolean {
  const r = resolve(p);
  return r.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}
