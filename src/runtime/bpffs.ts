/**
 * bpffs: pins live on a BPF filesystem (statfs f_type BPF_FS_MAGIC). /sys/fs/bpf is mounted when it
 * is not; any other place must already be on a bpffs, or the error says how to mount one. Making and
 * removing pin directories safely is pindir.ts, commit.ts and unload.ts.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { BpfsealError } from '../errors.js';

export const BPF_FS_MAGIC = 0xcafe4a11;
export const DEFAULT_MOUNT = '/sys/fs/bpf';

/** The nearest existing ancestor of `p`, never through a symlink (lstat: a link counts as existing). */
function nearestExisting(p: string): string {
  let d = resolve(p);
  for (;;) {
    try {
      lstatSync(d);
      return d;
    } catch {
      const up = dirname(d);
      if (up === d) return d;
      d = up;
    }
  }
}

function isBpffs(p: string): boolean {
  try {
    return statfsSync(p).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Is a bpf filesystem mounted at /sys/fs/bpf (where `load` pins, and mounts one when it is not)? */
export function bpffsMounted(): boolean {
  return isBpffs(DEFAULT_MOUNT);
}

/**
 * Is `p` (or where it would be created) on a bpffs? The nearest existing ancestor is judged where it
 * is a real directory; a symlink is judged by the directory holding it (pindir.ts refuses links).
 */
export function onBpffs(p: string): boolean {
  const d = nearestExisting(p);
  try {
    return isBpffs(lstatSync(d).isSymbolicLink() ? dirname(d) : d);
  } catch {
    return false;
  }
}

/**
 * Make sure `dir` can be on a bpffs: mount /sys/fs/bpf if that is where it goes and /sys/fs/bpf
 * itself is not a bpffs yet. Never mounts over an existing bpffs: a path whose components lead
 * elsewhere (a symlink planted by another user) is refused by pindir.ts, not "fixed" by a mount.
 */
export function ensureBpffs(dir: string): void {
  const abs = resolve(dir);
  const underDefault = abs === DEFAULT_MOUNT || abs.startsWith(DEFAULT_MOUNT + '/');
  if (underDefault && bpffsMounted()) return;
  if (!underDefault && onBpffs(dir)) return;
  if (underDefault) {
    const r = spawnSync('mount', ['-t', 'bpf', 'bpf', DEFAULT_MOUNT], { encoding: 'utf8' });
    if (r.status === 0 && bpffsMounted()) return;
    throw new BpfsealError('kernel', 'BPFFS_MOUNT_FAILED', `${DEFAULT_MOUNT} is not a bpf filesystem and mounting it failed (${(r.stderr || r.error?.message || '').trim()}); run: mount -t bpf bpf ${DEFAULT_MOUNT}`);
  }
  throw new BpfsealError('usage', 'BPFFS_NOT_MOUNTED', `${dir} is not on a bpf filesystem; pin under ${DEFAULT_MOUNT}, or mount one: mount -t bpf bpf ${nearestExisting(dir)}`);
}
