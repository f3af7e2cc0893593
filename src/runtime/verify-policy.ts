/**
 * verify-before-load, the verification half: the release's bundle, digest and policy (attest/verify.ts)
 * with this host's anti-rollback state, our own logs' checkpoints and the kernel signatures, and
 * requirePreflight. Apart from runtime/load.ts so that `verify` loads no kernel, commit or host-log code.
 */
import { checkKernelSignature } from '../attest/pkcs7.js';
import { checkLocalLogEntry } from '../attest/rekor.js';
import { verifyRelease, type VerifiedRelease, type VerifyOptions } from '../attest/verify.js';
import { BpfsealError } from '../errors.js';
import { requirePreflight, type HostKernel } from '../preflight/require.js';
import type { TrustPolicy } from '../trust/policy.js';
import { readState } from '../trust/state.js';

// checkLocalLogEntry (attest/rekor.ts): our own logs' checkpoints, which @sigstore/verify leaves out.
export { checkLocalLogEntry };

export interface VerifyWithPolicyOptions {
  checkLogEntry?: VerifyOptions['checkLogEntry'];
  /** Verify without the anti-rollback state when it cannot be read (verify as an unprivileged user); a note says so. */
  stateOptional?: boolean;
  /** Where requirePreflight looks (preflight/require.ts). */
  preflight?: { logs?: string[]; host?: HostKernel };
}

export function verifyWithPolicy(bytes: Buffer, policy: TrustPolicy, statePath: string, o: VerifyWithPolicyOptions = {}): VerifiedRelease {
  let state: ReadonlyMap<string, number> | undefined;
  let note: string | undefined;
  try {
    state = readState(statePath).versions;
  } catch (e) {
    if (!o.stateOptional || !(e instanceof BpfsealError) || (e.code !== 'STATE_UNREADABLE' && e.code !== 'TRUST_FILE_UNSAFE')) throw e;
    note = `anti-rollback not checked: ${e.message} (load checks it, under the host lock)`;
  }
  const v = verifyRelease(bytes, policy, { state, checkLogEntry: o.checkLogEntry ?? checkLocalLogEntry, verifyKernelSignature: checkKernelSignature });
  if (note) v.notes.push(note);
  if (policy.requirePreflight) {
    const p = requirePreflight(v.plan.name, v.digest, policy, o.preflight);
    v.preflight = p.accepted;
    v.notes.push(`preflight: passed on ${p.accepted.kernelRelease} (${p.accepted.where}, signer ${p.accepted.signer})`, ...p.notes);
  }
  return v;
}
