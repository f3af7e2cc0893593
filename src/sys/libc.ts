/**
 * The one binding of glibc that bpfseal makes (through koffi), loaded on first use so that commands
 * that never call the kernel or take a lock never load koffi. Two facts measured on these machines
 * shape its use (README, "Calling bpf(2)"):
 *  - addresses written into a struct passed to the kernel do not keep their Buffers alive: callers hold
 *    every referenced Buffer until the call returns;
 *  - koffi.errno() is the live thread errno: read it on the statement right after the call.
 */
import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');

export interface Libc {
  /** syscall(2) with three arguments: returns the raw result (negative on failure; errno via errno()). */
  syscall3(nr: number, a: number, b: Buffer | null, c: number): number;
  /** syscall(2) with five arguments, pointers as Buffers (add_key, keyctl). */
  syscall5(nr: number, a: Buffer | null, b: Buffer | null, c: Buffer | null, d: number, e: number): number;
  close(fd: number): number;
  flock(fd: number, op: number): number;
  /** errno of the last failed call on this thread. */
  errno(): number;
  address(b: Buffer): bigint;
}

let bound: Libc | undefined;

export class LibcUnavailable extends Error {}

export function libc(): Libc {
  if (bound) return bound;
  if (process.platform !== 'linux') throw new LibcUnavailable(`glibc calls are bound for Linux only (this is ${process.platform})`);
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  const lib = koffi.load('libc.so.6');
  const sys3 = lib.func('long syscall(long nr, int a, void *b, uint32 c)');
  const sys5 = lib.func('long syscall(long nr, void *a, void *b, void *c, long d, long e)');
  const close = lib.func('int close(int fd)');
  const flock = lib.func('int flock(int fd, int op)');
  bound = {
    syscall3: (nr, a, b, c) => Number(sys3(nr, a, b, c)),
    syscall5: (nr, a, b, c, d, e) => Number(sys5(nr, a, b, c, d, e)),
    close: (fd) => Number(close(fd)),
    flock: (fd, op) => Number(flock(fd, op)),
    errno: () => koffi.errno(),
    address: (b) => koffi.address(b) as bigint,
  };
  return bound;
}
