/**
 * The bpf(2) system call through libc's syscall(3) (src/sys/libc.ts). Every call takes the Buffers its
 * attr points to and holds them until the kernel has returned (addresses do not keep Buffers alive),
 * and reads errno on the statement right after the call.
 */
import { libc, LibcUnavailable } from '../sys/libc.js';
import { KernelError } from './errors.js';

const SYS_bpf = 321; // x86-64 (arch/x86/entry/syscalls/syscall_64.tbl)
export const ATTR_SIZE = 168; // sizeof(union bpf_attr) on this kernel's uapi

function bound(): ReturnType<typeof libc> {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new KernelError('bpf', 0, `bpf(2) is bound for Linux x86-64 only (this is ${process.platform}/${process.arch}); use --dry-run`);
  }
  try {
    return libc();
  } catch (e) {
    if (e instanceof LibcUnavailable) throw new KernelError('bpf', 0, e.message);
    throw e;
  }
}

/** Buffers referenced by address from an attr; kept reachable across the call (emptied after it). */
const held: Buffer[] = [];

export function addressOf(b: Buffer | null | undefined): bigint {
  if (!b || b.length === 0) return 0n;
  return bound().address(b);
}

export const CMD = {
  MAP_CREATE: 0, MAP_LOOKUP_ELEM: 1, MAP_UPDATE_ELEM: 2, MAP_DELETE_ELEM: 3, MAP_GET_NEXT_KEY: 4, PROG_LOAD: 5,
  OBJ_PIN: 6, OBJ_GET: 7, PROG_TEST_RUN: 10, PROG_GET_NEXT_ID: 11, MAP_GET_NEXT_ID: 12, PROG_GET_FD_BY_ID: 13,
  MAP_GET_FD_BY_ID: 14, OBJ_GET_INFO_BY_FD: 15, BTF_LOAD: 18, BTF_GET_FD_BY_ID: 19, MAP_FREEZE: 22, BTF_GET_NEXT_ID: 23,
  LINK_CREATE: 28, LINK_GET_FD_BY_ID: 30, LINK_GET_NEXT_ID: 31, LINK_DETACH: 34,
} as const;

const CMD_NAMES = Object.fromEntries(Object.entries(CMD).map(([k, v]) => [v, `BPF_${k}`])) as Record<number, string>;

/**
 * Call bpf(cmd, attr). `keep` lists every Buffer whose address is inside `attr`. Returns the
 * non-negative result or throws KernelError with the errno (the caller adds the verifier log).
 */
export function bpf(cmd: number, attr: Buffer, keep: (Buffer | null | undefined)[] = []): number {
  const c = bound();
  for (const b of keep) if (b) held.push(b);
  let r: number;
  let errno = 0;
  try {
    r = c.syscall3(SYS_bpf, cmd, attr, attr.length);
    if (r < 0) errno = c.errno();
  } finally {
    held.length = 0;
  }
  if (r < 0) throw new KernelError(CMD_NAMES[cmd] ?? `bpf cmd ${cmd}`, errno);
  return r;
}

export function closeFd(fd: number): void {
  bound().close(fd);
}
