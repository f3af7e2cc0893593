/**
 * Cross-process locks: flock(2) on a lock file, bound through koffi. The kernel drops a flock when its
 * holder dies (even by SIGKILL), so there is no stale-lock recovery to get wrong.
 *
 * flock locks belong to an open file description: a second flock on the same descriptor does not
 * exclude the first. The commit lock is held across awaits (the syncs), so its holders in one process
 * are also serialised by an in-process Mutex, one per log directory. It is only ever *tried*
 * (LOCK_NB); waiting for a commit is done on the commit signal (signal.ts), never on the lock, so no
 * thread blocks on it and no process can starve behind a faster one.
 */
import { closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { InputError, TLOG_CODES } from './errors.js';
import { ioError } from './files.js';

// <sys/file.h>
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;
const EINTR = 4;
const EWOULDBLOCK = 11;

type Flock = (fd: number, op: number) => number;
type Koffi = Pick<typeof import('koffi'), 'load' | 'errno'>;
let koffi: Koffi | undefined;
let flockFn: Flock | undefined;

/** koffi is loaded on the first lock, so read-only use of a log (proofs, verify) never loads it. */
function bind(): { flock: Flock; koffi: Koffi } {
  if (!flockFn || !koffi) {
    if (process.platform !== 'linux') throw new InputError(TLOG_CODES.LOCK, `log locking uses flock(2) through glibc; ${process.platform} is not supported`);
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
    flockFn = koffi.load('libc.so.6').func('int flock(int fd, int op)') as unknown as Flock;
  }
  return { flock: flockFn, koffi };
}

function lockError(op: number, detail: string): InputError {
  return new InputError(TLOG_CODES.LOCK, `flock(${op}) failed: ${detail}`);
}

/** flock on this thread: blocks unless LOCK_NB. Returns false only for LOCK_NB when the lock is taken. */
function flockSync(fd: number, op: number): boolean {
  const { flock, koffi: k } = bind();
  for (;;) {
    const r = Number(flock(fd, op));
    if (r === 0) return true;
    const errno = k.errno(); // read right after the call (shared/facts/node.md)
    if (errno === EWOULDBLOCK && op & LOCK_NB) return false;
    if (errno !== EINTR) throw lockError(op, `errno ${errno}`);
  }
}

/** A lock file opened once per handle. */
export class FileLock {
  private fd: number | undefined;

  constructor(readonly path: string) {}

  private open(): number {
    if (this.fd === undefined) {
      try {
        this.fd = openSync(this.path, 'a', 0o644);
      } catch (e) {
        throw ioError(this.path, 'open lock file', e);
      }
    }
    return this.fd;
  }

  /** Run synchronous `fn` holding the lock exclusively, waiting for it (never held across an await). */
  hold<T>(fn: () => T): T {
    flockSync(this.open(), LOCK_EX);
    try {
      return fn();
    } finally {
      this.unlock();
    }
  }

  /** Take the lock exclusively if nobody holds it; never waits. */
  tryExclusive(): boolean {
    return flockSync(this.open(), LOCK_EX | LOCK_NB);
  }

  unlock(): void {
    flockSync(this.open(), LOCK_UN);
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

/** The mutex for one log directory, shared by every handle this process has on it. */
export function mutexFor(dir: string): Mutex {
  let m = mutexes.get(dir);
  if (!m) mutexes.set(dir, (m = new Mutex()));
  return m;
}
