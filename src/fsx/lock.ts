/**
 * Cross-process locks: flock(2) on a lock file (src/sys/libc.ts). The kernel drops a flock when its
 * holder dies, even by SIGKILL, so there is no stale-lock recovery to get wrong. Waiting is bounded:
 * a lock that stays taken longer than the timeout is an error that says which lock and how to wait
 * longer, never a hang.
 *
 * flock locks belong to an open file description: a second flock on the same descriptor does not
 * exclude the first, so holders within one process that await while holding are serialised by a Mutex.
 */
import { closeSync, constants, fchmodSync, fstatSync, openSync } from 'node:fs';
import { InputError } from '../errors.js';
import { libc } from '../sys/libc.js';

// <sys/file.h>
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EINTR = 4;
const EWOULDBLOCK = 11;

/** Default wait for a lock: $BPFSEAL_LOCK_TIMEOUT seconds, else 30 s. */
export function lockTimeoutMs(): number {
  const v = Number(process.env.BPFSEAL_LOCK_TIMEOUT);
  return Number.isFinite(v) && v >= 0 ? v * 1000 : 30_000;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Block this thread for `ms` (lock waits are synchronous by design: they are short or they fail). */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

function flockOnce(fd: number, op: number): boolean {
  const c = libc();
  for (;;) {
    if (c.flock(fd, op) === 0) return true;
    const errno = c.errno(); // read right after the call
    if (errno === EWOULDBLOCK && op & LOCK_NB) return false;
    if (errno !== EINTR) throw new InputError('LOCK_FAILED', `flock(${op}) failed: errno ${errno}`);
  }
}

/** A lock file opened once per handle. */
export class FileLock {
  private fd: number | undefined;

  constructor(
    readonly path: string,
    /** What the lock protects, for messages ("the host load log"). */
    readonly what = path,
  ) {}

  private open(): number {
    if (this.fd === undefined) {
      try {
        // 0600: flock needs only an open descriptor, so a lock file others can read is one they can hold.
        this.fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
        const st = fstatSync(this.fd);
        if (st.mode & 0o077 && st.uid === (process.geteuid?.() ?? 0)) fchmodSync(this.fd, 0o600);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
        throw new InputError('LOCK_FAILED', `${this.path}: cannot open lock file (${code === 'ELOOP' ? 'a symbolic link' : code})`, { file: this.path, cause: e });
      }
    }
    return this.fd;
  }

  /** Take the lock, waiting at most `timeoutMs` (polling: flock has no timed wait). */
  acquire(timeoutMs = lockTimeoutMs()): void {
    const fd = this.open();
    const deadline = Date.now() + timeoutMs;
    for (let wait = 1; !flockOnce(fd, LOCK_EX | LOCK_NB); wait = Math.min(wait * 2, 50)) {
      if (Date.now() >= deadline) {
        throw new InputError('LOCK_TIMEOUT', `timed out after ${(timeoutMs / 1000).toFixed(1)} s waiting for ${this.what} (${this.path}): another bpfseal process holds it; set BPFSEAL_LOCK_TIMEOUT=<seconds> to wait longer`, { file: this.path });
      }
      sleepSync(wait);
    }
  }

  /** Run synchronous `fn` holding the lock exclusively (never held across an await). */
  hold<T>(fn: () => T, timeoutMs?: number): T {
    this.acquire(timeoutMs);
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }

  /** Take the lock if nobody holds it; never waits. */
  tryExclusive(): boolean {
    return flockOnce(this.open(), LOCK_EX | LOCK_NB);
  }

  unlock(): void {
    flockOnce(this.open(), LOCK_UN);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** An in-process async mutex: callers run one at a time, in call order. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }
}

const mutexes = new Map<string, Mutex>();

/** The mutex for one directory, shared by every handle this process has on it. */
export function mutexFor(dir: string): Mutex {
  let m = mutexes.get(dir);
  if (!m) mutexes.set(dir, (m = new Mutex()));
  return m;
}
