/**
 * Owned file descriptors. Every fd bpfseal gets from the kernel is an Fd; the runtime's transaction
 * closes them, and tests can ask for the ones still open to fail on a leak.
 */
import { closeFd } from './sys.js';

const open = new Set<Fd>();

export class Fd {
  #fd: number;
  readonly what: string;

  constructor(fd: number, what: string) {
    this.#fd = fd;
    this.what = what;
    open.add(this);
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
    closeFd(this.#fd);
    this.#fd = -1;
    open.delete(this);
  }
}

/** Descriptors opened by this process and not yet closed (leak check for tests). */
export function openFds(): Fd[] {
  return [...open];
}
