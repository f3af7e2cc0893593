/** Kernel refusals: errno as a typed error that carries the verifier or BTF log (exit code 3). */
import { BpfsealError } from '../errors.js';

/** The errno values bpfseal tells apart (asm-generic/errno-base.h, errno.h; ENOTSUPP is kernel-internal, include/linux/errno.h). */
export const ERRNO = {
  EPERM: 1, ENOENT: 2, ESRCH: 3, EINTR: 4, EIO: 5, E2BIG: 7, EBADF: 9, EAGAIN: 11, ENOMEM: 12,
  EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, ENODEV: 19, ENOTDIR: 20, EINVAL: 22, EMFILE: 24,
  ENOSPC: 28, ERANGE: 34, ENOSYS: 38, ELOOP: 40, ENOPKG: 65, EBADMSG: 74, EOPNOTSUPP: 95, ENOKEY: 126,
  EKEYREJECTED: 129, ENOTSUPP: 524,
} as const;

export type ErrnoName = keyof typeof ERRNO;

const NAMES = new Map<number, string>(Object.entries(ERRNO).map(([k, v]) => [v, k]));

export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `errno ${errno}`;
}

export class KernelError extends BpfsealError {
  readonly errno: number;
  readonly op: string;
  /** Verifier or BTF log, when the kernel wrote one. */
  log: string;
  /** What the runtime was doing: "load program 'x'", "create map 'y'". */
  step?: string;
  /** bpf(2) was called again with a log buffer and failed otherwise (e.g. ENOSPC: the log did not fit); this error is the first call's. */
  retryErrno?: number;
  /** The refused call carried a signature (BPF_PROG_LOAD signature/keyring_id): the hints differ. */
  signed?: boolean;
  keyringId?: number;

  constructor(op: string, errno: number, message?: string, log = '', options?: { cause?: unknown }) {
    super('kernel', errno ? `KERNEL_${errnoName(errno)}` : 'KERNEL_UNAVAILABLE', message ?? `${op} failed: ${errnoName(errno)}`, options);
    this.name = 'KernelError';
    this.errno = errno;
    this.op = op;
    this.log = log;
  }

  /** Re-state the error for a runtime step, keeping errno and log. */
  at(step: string, log = this.log): KernelError {
    const tail = log ? `\n--- kernel log ---\n${log.trimEnd()}` : '';
    const e = new KernelError(this.op, this.errno, `${step}: ${this.op} failed with ${errnoName(this.errno)}${hint(this)}${tail}`, log, { cause: this });
    e.step = step;
    e.signed = this.signed;
    e.keyringId = this.keyringId;
    e.retryErrno = this.retryErrno;
    return e;
  }
}

/** What an errno means for this call (signed loads fail for reasons of their own: signing.rst). */
function hint(e: KernelError): string {
  const { op, errno } = e;
  if (e.signed) {
    switch (errno) {
      // An LSM's bpf_prog_load hook runs after the signature check (signing.rst, "Admission"); 7.3
      // logs the check passing, 7.2 logs nothing; 7.3's own refusals of a signed load name the map.
      case ERRNO.EPERM: return /signature verification passed/.test(e.log) || !e.log.trim()
        ? ' (the kernel verified the signature, then refused the load: an LSM policy such as bpfseal enforce does not admit this keyring; see bpfseal enforce --status)'
        : ' (the kernel refused the signed load: a signed program may bind only frozen, exclusive array maps; its log says which)';
      // The verifier's own EACCES (its log ends with the instruction count) is not about the signature.
      case ERRNO.EACCES: return /processed \d+ insns/.test(e.log) ? ' (the verifier refused the program: its log says why)'
        : " (a map's exclusive hash does not match the program, or a signed program binds a map its signature does not cover)";
      case ERRNO.EBADMSG: return ' (the signature is not a detached DER PKCS#7)';
      case ERRNO.ENOKEY: return ` (the signing certificate is not in keyring ${e.keyringId ?? '?'}: add it, e.g. keyctl padd asymmetric bpfseal %:_ses < cert.der, or set the policy's "keyring")`;
      case ERRNO.EKEYREJECTED: return ' (the signature does not verify over the bytes loaded: changed after signing, or made with another key)';
      case ERRNO.EOPNOTSUPP: return ' (kernel cannot verify program signatures)';
      default: return '';
    }
  }
  if (errno === ERRNO.EPERM) return ` (needs CAP_BPF/CAP_SYS_ADMIN, or this kernel refuses the program type${op === 'BPF_PROG_LOAD' ? ', or an LSM refused the load: unsigned programs are refused under bpfseal enforce' : ''})`;
  if (errno === ERRNO.EOPNOTSUPP && op === 'BPF_PROG_LOAD') return ' (kernel cannot verify program signatures)';
  return '';
}
