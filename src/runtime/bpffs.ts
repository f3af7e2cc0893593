/**
 * bpffs: pins live on a BPF filesystem (statfs f_type BPF_FS_MAGIC). /sys/fs/bpf is mounted when it
 * is not; any other place must already be on a bpffs, or the error says how to mount one.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmdirSync, statfsSync, unlinkSync, lstatSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { BpfsealError } from '../errors.js';

export const BPF_FS_MAGIC = 0xcafe4a11;
const DEFAULT_MOUNT = '/sys/fs/bpf';

function nearestExisting(p: string): string {
  let d = resolve(p);
  while (!existsSync(d)) d = dirname(d);
  return d;
}

export function onBpffs(p: string): boolean {
  try {
    return statfsSync(nearestExisting(p)).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** Make sure `dir` is on a bpffs, mounting /sys/fs/bpf if that is where it goes. */
export function ensureBpffs(dir: string): void {
  if (onBpffs(dir)) return;
  const abs = resolve(dir);
  if (abs === DEFAULT_MOUNT || abs.startsWith(DEFAULT_MOUNT + '/')) {
    const r = spawnSync('mount', ['-t', 'bpf', 'bpf', DEFAULT_MOUNT], { encoding: 'utf8' });
    if (r.status === 0 && onBpffs(dir)) return;
    throw new BpfsealError('kernel', 'BPFFS_NOT_MOUNTED', `${DEFAULT_MOUNT} is not a bpf filesystem and mounting it failed (${(r.stderr || r.error?.message || '').trim()}); run: mount -t bpf bpf ${DEFAULT_MOUNT}`);
  }
  throw new BpfsealError('usage', 'BPFFS_NOT_MOUNTED', `${dir} is not on a bpf filesystem; pin under ${DEFAULT_MOUNT}, or mount one: mount -t bpf bpf ${nearestExisting(dir)}`);
}

/** Remove what `load --pin <dir>` made: program pins, maps/ pins, and the directories. Returns the removed paths. */
export function unpinDir(dir: string): string[] {
  if (!existsSync(dir)) throw new BpfsealError('usage', 'PIN_DIR_MISSING', `${dir} does not exist`);
  if (!onBpffs(dir)) throw new BpfsealError('usage', 'BPFFS_NOT_MOUNTED', `${dir} is not on a bpf filesystem; refusing to remove anything there`);
  const removed: string[] = [];
  const clear = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (lstatSync(p).isDirectory()) {
        if (d === dir && name === 'maps') clear(p);
        else throw new BpfsealError('usage', 'PIN_DIR_FOREIGN', `${p} is a directory bpfseal did not make; refusing to remove it`);
      } else {
        unlinkSync(p);
        removed.push(p);
      }
    }
    rmdirSync(d);
  };
  clear(dir);
  return removed;
}

/** A pin directory must be new or empty: loading over earlier pins would mix two loads. */
export function checkPinDir(dir: string): void {
  if (!existsSync(dir)) return;
  const entries = readdirSync(dir);
  if (entries.length) throw new BpfsealError('usage', 'PIN_DIR_IN_USE', `${dir} already holds pins (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', ...' : ''}); unload it first or choose another directory`);
}
