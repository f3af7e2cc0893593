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
  /** The refused call carried a signature (BPF_PROG_LOAD signature/keyring_id): the hints differ. */
  signed?: boolean;
  keyringId?: number;

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
    const e = new KernelError(this.op, this.errno, `${step}: ${this.op} failed with ${errnoName(this.errno)}${hint(this)}${tail}`, log);
    e.step = step;
    e.signed = this.signed;
    e.keyringId = this.keyringId;
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
      case 1: return /signature verification passed/.test(e.log) || !e.log.trim()
        ? ' (the kernel verified the signature, then refused the load: an LSM policy such as bpfseal enforce does not admit this keyring; see bpfseal enforce --status)'
        : ' (the kernel refused the signed load: a signed program may bind only frozen, exclusive array maps; its log says which)';
      // The verifier's own EACCES (its log ends with the instruction count) is not about the signature.
      case 13: return /processed \d+ insns/.test(e.log) ? ' (the verifier refused the program: its log says why)'
        : " (a map's exclusive hash does not match the program, or a signed program binds a map its signature does not cover)";
      case 74: return ' (the signature is not a detached DER PKCS#7)';
      case 126: return ` (the signing certificate is not in keyring ${e.keyringId ?? '?'}: add it, e.g. keyctl padd asymmetric bpfseal %:_ses < cert.der, or set the policy's "keyring")`;
      case 129: return ' (the signature does not verify over the bytes loaded: changed after signing, or made with another key)';
      case 95: return ' (kernel cannot verify program signatures)';
      default: return '';
    }
  }
  if (errno === 1) return ` (needs CAP_BPF/CAP_SYS_ADMIN, or this kernel refuses the program type${op === 'BPF_PROG_LOAD' ? ', or an LSM refused the load: unsigned programs are refused under bpfseal enforce' : ''})`;
  if (errno === 95 && op === 'BPF_PROG_LOAD') return ' (kernel cannot verify program signatures)';
  return '';
}
