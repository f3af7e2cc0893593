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
  /** syscall(2) with five integer arguments; a pointer is passed as its address (the caller holds its Buffer). */
  syscallInts(nr: number, a: number, b: number | bigint, c: number | bigint, d: number | bigint, e: number | bigint): number;
  /** mmap(2) of `len` bytes of `fd` at `offset` (MAP_SHARED); undefined on failure (errno via errno()). */
  mmap(len: number, prot: number, fd: number, offset: number): Mapping | undefined;
  /** sysconf(_SC_PAGESIZE). */
  pageSize(): number;
  /** clock_gettime(CLOCK_BOOTTIME) in nanoseconds: the clock of bpf_ktime_get_boot_ns(). */
  boottimeNs(): bigint;
  close(fd: number): number;
  flock(fd: number, op: number): number;
  /** errno of the last failed call on this thread. */
  errno(): number;
  address(b: Buffer): bigint;
}

/** A shared mapping: a view of its bytes (no copy), unmapped once. */
export interface Mapping {
  readonly bytes: Uint8Array;
  unmap(): void;
}

export const PROT = { read: 1, write: 2 } as const;
const MAP_SHARED = 1;
const SC_PAGESIZE = 30;
const CLOCK_BOOTTIME = 7;

let bound: Libc | undefined;

export class LibcUnavailable extends Error {}

export function libc(): Libc {
  if (bound) return bound;
  if (process.platform !== 'linux') throw new LibcUnavailable(`glibc calls are bound for Linux only (this is ${process.platform})`);
  const koffi = createRequire(import.meta.url)('koffi') as Koffi;
  const lib = koffi.load('libc.so.6');
  const sys3 = lib.func('long syscall(long nr, int a, void *b, uint32 c)');
  const sys5 = lib.func('long syscall(long nr, void *a, void *b, void *c, long d, long e)');
  const sysInts = lib.func('long syscall(long nr, long a, long b, long c, long d, long e)');
  const mmap = lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)');
  const munmap = lib.func('int munmap(void *addr, size_t len)');
  const sysconf = lib.func('long sysconf(int name)');
  const clockGettime = lib.func('int clock_gettime(int clk, void *ts)');
  const close = lib.func('int close(int fd)');
  const flock = lib.func('int flock(int fd, int op)');
  bound = {
    syscall3: (nr, a, b, c) => Number(sys3(nr, a, b, c)),
    syscall5: (nr, a, b, c, d, e) => Number(sys5(nr, a, b, c, d, e)),
    syscallInts: (nr, a, b, c, d, e) => Number(sysInts(nr, a, b, c, d, e)),
    mmap: (len, prot, fd, offset) => {
      const p: unknown = mmap(null, len, prot, MAP_SHARED, fd, offset);
      // MAP_FAILED is (void *)-1.
      if (p === null || koffi.address(p) === 0xffff_ffff_ffff_ffffn) return undefined;
      let mapped = true;
      return {
        bytes: new Uint8Array(koffi.view(p, len)),
        unmap: () => {
          if (mapped) munmap(p, len);
          mapped = false;
        },
      };
    },
    pageSize: () => Number(sysconf(SC_PAGESIZE)),
    boottimeNs: () => {
      const ts = Buffer.alloc(16); // struct timespec { time_t tv_sec; long tv_nsec; }
      if (Number(clockGettime(CLOCK_BOOTTIME, ts)) !== 0) throw new Error(`clock_gettime(CLOCK_BOOTTIME) failed: errno ${koffi.errno()}`);
      return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
    },
    close: (fd) => Number(close(fd)),
    flock: (fd, op) => Number(flock(fd, op)),
    errno: () => koffi.errno(),
    address: (b) => koffi.address(b) as bigint,
  };
  return bound;
}
