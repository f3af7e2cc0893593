/**
 * The one decision of which loader a load uses and what the kernel verifies, by load (runtime/load.ts),
 * by `features` (what `load --loader auto` does here with a release signed with --cert) and by the
 * preflight guest (which signatures `load --loader auto` would pass on the kernel it runs on). Pure:
 * the kernel's answer comes in as `support`.
 */
import { BpfsealError } from '../errors.js';
import type { SignatureSupport } from '../kernel/probe.js';

/** `load --loader`: the kernel loader, the user-space replay, or (default) what the kernel verifies. */
export type LoaderChoice = 'kernel' | 'user' | 'auto';

/** What a verified release offers the kernel to verify. */
export interface LoaderInputs {
  /** The plan's name, for messages. */
  name: string;
  /** Does the release carry a signed loader program? */
  loader: boolean;
  /** The plan's program names. */
  programs: readonly string[];
  /** The programs that carry a per-program (instructions only) PKCS#7 signature. */
  signedPrograms: { has(name: string): boolean; readonly size: number };
}

export interface LoaderRequest {
  /** `load --loader`. */
  want: LoaderChoice;
  /** The policy's requireKernelSignatures. */
  requireKernelSignatures: boolean;
  /** The keyring the kernel checks signatures against (the policy's, default -3). */
  keyring: number;
  /** Does the load go to the kernel (not the model kernel of a dry run)? */
  kernelBackend: boolean;
}

export interface LoaderDecision {
  loader: 'kernel' | 'user';
  kernelVerified: 'loader' | 'programs' | 'none';
}

/**
 * Which loader runs and what the kernel verifies (README, "Kernels"): from 7.3 the kernel verifies the
 * signed loader (`insns || blob`: everything the load creates); 6.18-7.2 verify per-program signatures
 * (instructions only); other kernels verify nothing. requireKernelSignatures refuses any load the
 * kernel would not verify completely in its own way.
 */
export function chooseLoader(v: LoaderInputs, support: SignatureSupport, q: LoaderRequest, notes: string[]): LoaderDecision {
  const { want, keyring } = q;
  const require = q.requireKernelSignatures;
  if (support === 'loader') {
    if (v.loader && want !== 'user') {
      notes.push(`kernel verifies the signed loader (insns || blob) with keyring ${keyring}`);
      return { loader: 'kernel', kernelVerified: 'loader' };
    }
    if (require) {
      throw new BpfsealError(v.loader ? 'usage' : 'verify', v.loader ? 'USAGE_LOADER' : 'KERNEL_SIGNATURE_REQUIRED', v.loader
        ? 'policy requires kernel-verified loads; on this kernel only the kernel loader is verified: drop --loader user'
        : `policy requires kernel-verified loads; this kernel (7.3+) verifies only a signed loader, and release '${v.name}' signs none (sign with --cert)`);
    }
    // Per-program signatures of programs that use maps are refused from 7.3 on: do not pass them.
    return { loader: want === 'kernel' ? 'kernel' : 'user', kernelVerified: 'none' };
  }
  if (support === 'program') {
    const all = v.programs.length > 0 && v.programs.every((p) => v.signedPrograms.has(p));
    if (require && (!all || want === 'kernel')) {
      throw new BpfsealError('verify', 'KERNEL_SIGNATURE_REQUIRED', want === 'kernel'
        ? 'policy requires kernel-verified loads; this kernel verifies per-program signatures, not a loader: use the user-space loader'
        : `policy requires kernel-verified loads; this kernel verifies per-program signatures, and release '${v.name}' lacks them for ${v.programs.filter((p) => !v.signedPrograms.has(p)).join(', ') || 'every program'}`);
    }
    if (want === 'kernel') return { loader: 'kernel', kernelVerified: 'none' };
    if (v.signedPrograms.size) notes.push(`kernel verifies program signatures: passing ${v.signedPrograms.size} PKCS#7 signature(s) with keyring ${keyring} (instructions only)`);
    return { loader: 'user', kernelVerified: v.signedPrograms.size ? 'programs' : 'none' };
  }
  if (require && support === 'none' && q.kernelBackend) {
    throw new BpfsealError('kernel', 'KERNEL_SIGNATURES_UNSUPPORTED',
      'policy requires kernel-enforced program signatures, but this kernel answers EOPNOTSUPP (built without CONFIG_SYSTEM_DATA_VERIFICATION); nothing was loaded');
  }
  if (v.signedPrograms.size || v.loader) notes.push('this kernel cannot verify program signatures (EOPNOTSUPP); loading without kernel enforcement, as the policy allows');
  return { loader: want === 'kernel' ? 'kernel' : 'user', kernelVerified: 'none' };
}
