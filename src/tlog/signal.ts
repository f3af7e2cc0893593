/**
 * commit.signal: how writers learn that their records are durable without waiting on a lock.
 *
 *   bytes 0..8   u64 BE tree size of the newest durable checkpoint, written by the leader while it
 *                still holds the commit lock, after the directory fsync (so it only grows);
 *   bytes 8..16  a counter rewritten by the leader just after it drops the lock ("the lock is free").
 *
 * Both writes wake every process watching the file (fs.watch, inotify IN_MODIFY). The file is never
 * synced: it is a wake-up call, not a record. A waiter trusts the size only together with the
 * checkpoint file; anything doubtful sends it to take the commit lock, where the checkpoint is the
 * truth. A fallback timer re-checks in case a file system does not deliver change events.
 */
import { closeSync, constants, openSync, watch, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { FILES, ioError, preadUpTo, pwriteAll } from './files.js';

/** Re-check this often even without a change event (file systems without inotify). */
export const FALLBACK_WAIT_MS = 250;

export class CommitSignal {
  private fd: number | undefined;
  private watcher: FSWatcher | undefined;
  private events = 0;
  private readonly waiters = new Set<() => void>();
  private counter = 0;
  readonly path: string;

  constructor(dir: string) {
    this.path = join(dir, FILES.commitSignal);
  }

  private open(): number {
    if (this.fd === undefined) {
      try {
        const { O_RDWR, O_CREAT, O_NOFOLLOW } = constants;
        this.fd = openSync(this.path, O_RDWR | O_CREAT | O_NOFOLLOW, 0o644); // never through a symlink
      } catch (e) {
        throw ioError(this.path, 'open', e);
      }
    }
    return this.fd;
  }

  /** Start watching (before the first check, so that no change is missed). */
  watch(): void {
    if (this.watcher) return;
    this.open();
    try {
      this.watcher = watch(this.path, { persistent: true }, () => this.wake());
      this.watcher.on('error', () => undefined); // the fallback timer still re-checks
      this.watcher.unref();
    } catch {
      this.watcher = undefined; // no inotify here: rely on the fallback timer
    }
  }

  private wake(): void {
    this.events++;
    for (const w of [...this.waiters]) w();
  }

  /** A mark to pass to waitAfter: changes after it are waited for, earlier ones are not. */
  mark(): number {
    return this.events;
  }

  /** Size of the newest durable checkpoint as last published (0 when never published). */
  durableSize(): number {
    const b = preadUpTo(this.open(), 8, 0);
    return b.length === 8 ? Number(b.readBigUInt64BE(0)) : 0;
  }

  /** Publish a durable checkpoint size. Caller holds the commit lock. */
  publish(size: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(size));
    pwriteAll(this.open(), b, 0);
  }

  /** Say "the commit lock is free" (after unlocking). */
  bump(): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(++this.counter + process.pid * 2 ** 20));
    pwriteAll(this.open(), b, 8);
  }

  /** Resolve when a change arrives after `mark`, or after `ms`. */
  waitAfter(mark: number, ms: number = FALLBACK_WAIT_MS): Promise<void> {
    if (this.events > mark) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        if (this.waiters.size === 0) this.watcher?.unref();
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      this.watcher?.ref();
    });
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
    for (const w of [...this.waiters]) w();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
