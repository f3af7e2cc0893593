/** Kernel refusals: errno as a typed error that carries the verifier or BTF log (exit code 3). */
import { BpfsealError } from '../errors.js';

const ERRNO: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 7: 'E2BIG', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM',
  13: 'EACCES', 14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV', 20: 'ENOTDIR', 22: 'EINVAL', 24: 'EMFILE',
  28: 'ENOSPC', 34: 'ERANGE', 38: 'ENOSYS', 40: 'ELOOP', 74: 'EBADMSG', 95: 'EOPNOTSUPP', 126: 'ENOKEY',
  129: 'EKEYREJECTED', 524: 'ENOTSUPP',
};

export function errnoName(errno: number): string {
  return ERRNO[errno] ?? `errno ${errno}`;
}

export class KernelError extends BpfsealError {
  readonly errno: number;
  readonly op: string;
  /** Verifier or BTF log, when the kernel wrote one. */
  log: string;
  /** What the runtime was doing: "load program 'x'", "create map 'y'". */
  step?: string;

  constructor(op: string, errno: number, message?: string, log = '') {
    super('kernel', errno ? `KERNEL_${errnoName(errno)}` : 'KERNEL_UNAVAILABLE', message ?? `${op} failed: ${errnoName(errno)}`);
    this.name = 'KernelError';
    this.errno = errno;
    this.op = op;
    this.log = log;
  }

  /** Re-state the error for a runtime step, keeping errno and log. */
  at(step: string, log = this.log): KernelError {
    const tail = log ? `\n--- kernel log ---\n${log.trimEnd()}` : '';
    const e = new KernelError(this.op, this.errno, `${step}: ${this.op} failed with ${errnoName(this.errno)}${hint(this.op, this.errno)}${tail}`, log);
    e.step = step;
    return e;
  }
}

function hint(op: string, errno: number): string {
  if (errno === 1) return ' (needs CAP_BPF/CAP_SYS_ADMIN, or this kernel refuses the program type)';
  if (errno === 95 && op === 'BPF_PROG_LOAD') return ' (kernel cannot verify program signatures)';
  return '';
}
