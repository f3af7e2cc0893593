/**
 * bpffs: pins live on a BPF filesystem (statfs f_type BPF_FS_MAGIC). /sys/fs/bpf is mounted when it
 * is not; any other place must already be on a bpffs, or the error says how to mount one. Making and
 * removing pin directories safely is pindir.ts, commit.ts and unload.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
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
