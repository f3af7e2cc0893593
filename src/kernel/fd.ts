/**
 * Owned file descriptors. Every fd bpfseal gets from the kernel is an Fd; the runtime's transaction
 * closes them, and tests can ask for the ones still open to fail on a leak.
 *
 * A safety net, as cilium/ebpf keeps one: an Fd that becomes unreachable while open is closed when it
 * is garbage-collected (FinalizationRegistry) and recorded in leakedFds(), with the stack that opened
 * it when BPFSEAL_FD_TRACE is set. The net never replaces close(): collection may come late or never,
 * and a test that leaks should fail on openFds() first.
 */
import { closeFd } from './sys.js';

interface Entry {
  fd: number;
  what: string;
  ref: WeakRef<Fd>;
  stack?: string;
}

export interface LeakedFd {
  fd: number;
  what: string;
  /** Where it was opened (BPFSEAL_FD_TRACE=1 only). */
  stack?: string;
}

/** Open Fds, held weakly so that a leaked one can still be collected. */
const open = new Set<Entry>();
const leaked: LeakedFd[] = [];

const registry = new FinalizationRegistry<Entry>((e) => {
  open.delete(e);
  leaked.push({ fd: e.fd, what: e.what, ...(e.stack ? { stack: e.stack } : {}) });
  try {
    closeFd(e.fd);
  } catch {
    /* nothing to report to: the process goes on without that descriptor either way */
  }
});

export class Fd {
  #fd: number;
  readonly what: string;
  readonly #entry: Entry;

  constructor(fd: number, what: string) {
    this.#fd = fd;
    this.what = what;
    this.#entry = { fd, what, ref: new WeakRef(this) };
    if (process.env.BPFSEAL_FD_TRACE) this.#entry.stack = new Error().stack?.split('\n').slice(2).join('\n');
    open.add(this.#entry);
    registry.register(this, this.#entry, this.#entry);
  }

  get value(): number {
    if (this.#fd < 0) throw new Error(`use of closed fd (${this.what})`);
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  close(): void {
    if (this.#fd < 0) return;
    registry.unregister(this.#entry);
    open.delete(this.#entry);
    const fd = this.#fd;
    this.#fd = -1;
    closeFd(fd);
  }
}

/** Descriptors opened by this process and not yet closed (leak check for tests). */
export function openFds(): Fd[] {
  return [...open].flatMap((e) => e.ref.deref() ?? []);
}

/** Descriptors that were garbage-collected while open, and closed then by the safety net. */
export function leakedFds(): readonly LeakedFd[] {
  return leaked;
}
