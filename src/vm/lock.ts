/**
 * A cross-process lock on a cache entry: mkdir is atomic, the directory holds the owner's pid, and
 * a lock whose owner is gone is taken over. Several test files (and several `preflight` runs) may
 * fetch the same kernel or build the same initramfs at once; without this they would run apt on one
 * state directory together or rename over each other's half-written files.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { VmError, type VmHostStep } from './errors.js';

function ownerAlive(lockDir: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(`${lockDir}/pid`, 'utf8'));
  } catch {
    // Being created right now (the pid file follows the mkdir), unless that was long ago.
    try {
      return Date.now() - statSync(lockDir).mtimeMs < 10_000;
    } catch {
      return false;
    }
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Run `fn` holding `lockDir`; waits up to `waitMs` for another holder, then fails naming the lock. */
export async function withLock<T>(lockDir: string, step: VmHostStep, fn: () => Promise<T>, waitMs = 15 * 60_000): Promise<T> {
  const start = Date.now();
  let sawOwnerless = 0;
  for (;;) {
    try {
      mkdirSync(lockDir);
      writeFileSync(`${lockDir}/pid`, String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (!ownerAlive(lockDir)) {
      // Twice in a row, so a lock caught between mkdir and writing its pid file is not stolen.
      if (++sawOwnerless >= 2) rmSync(lockDir, { recursive: true, force: true });
    } else {
      sawOwnerless = 0;
    }
    if (Date.now() - start > waitMs) {
      throw new VmError(step, 'VM_LOCKED', `${lockDir} is held by another process for more than ${Math.round(waitMs / 1000)} s; remove it if no bpfseal is running`);
    }
    await sleep(200);
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}
