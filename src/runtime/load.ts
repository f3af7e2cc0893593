/**
 * Verify, then replay: the only path from a release file to the kernel. The release bytes are read
 * once by the caller; verification decodes the plan from those bytes and replay uses that decoded plan,
 * so nothing is re-read between check and use.
 */
import type { TransparencyLogEntry } from '@sigstore/bundle';
import { checkKernelSignature } from '../attest/pkcs7.js';
import { checkEntryAgainstLog } from '../tlog/rekor.js';
import { verifyRelease, type VerifiedRelease, type VerifyOptions } from '../attest/verify.js';
import { BpfsealError } from '../errors.js';
import { kernelVerifiesSignatures } from '../kernel/probe.js';
import type { TrustPolicy } from '../trust/policy.js';
import { readState, recordVersion } from '../trust/state.js';
import { realKernel, type KernelBackend } from './backend.js';
import type { HostFacts } from './host.js';
import { MODEL_DISCLAIMER, modelKernel } from './model.js';
import { replay, type LoadedCollection } from './replay.js';

export interface LoadOptions {
  policy: TrustPolicy;
  statePath: string;
  pinDir?: string;
  dryRun?: boolean;
  maxEntries?: Record<string, number>;
  host?: HostFacts;
  backend?: KernelBackend;
  checkLogEntry?: VerifyOptions['checkLogEntry'];
  onStep?: (step: string) => void;
}

export interface LoadResult {
  verified: VerifiedRelease;
  loaded: LoadedCollection;
  /** Things the operator should know: model-kernel disclaimer, unenforced kernel signatures. */
  notes: string[];
}

/**
 * What @sigstore/verify leaves out for our own logs: the checkpoint's origin and signature under the
 * trusted log key, and the proof's index, size and root against that checkpoint.
 */
export function checkLocalLogEntry(entry: TransparencyLogEntry, policy: TrustPolicy): void {
  const id = entry.logId?.keyId.toString('hex');
  const log = policy.logs.find((l) => l.keyId === id);
  if (log) checkEntryAgainstLog(entry, log.key, log.origin);
}

export function verifyWithPolicy(bytes: Buffer, policy: TrustPolicy, statePath: string, checkLogEntry: VerifyOptions['checkLogEntry'] = checkLocalLogEntry): VerifiedRelease {
  return verifyRelease(bytes, policy, {
    state: readState(statePath).versions,
    checkLogEntry,
    verifyKernelSignature: checkKernelSignature,
  });
}

export function loadRelease(bytes: Buffer, opts: LoadOptions): LoadResult {
  const verified = verifyWithPolicy(bytes, opts.policy, opts.statePath, opts.checkLogEntry);
  const notes: string[] = [];
  const backend = opts.backend ?? (opts.dryRun ? modelKernel() : realKernel());
  if (backend.kind === 'model') notes.push(MODEL_DISCLAIMER);
  let signatures: Map<string, Buffer> | undefined;
  if (verified.kernelSignatures.size && backend.kind === 'kernel') {
    if (kernelVerifiesSignatures()) {
      signatures = verified.kernelSignatures;
      notes.push(`kernel verifies program signatures: passing ${signatures.size} PKCS#7 signature(s) with keyring ${opts.policy.keyring ?? -3}`);
    } else if (opts.policy.requireKernelSignatures) {
      throw new BpfsealError('kernel', 'KERNEL_SIGNATURES_UNSUPPORTED',
        'policy requires kernel-enforced program signatures, but this kernel answers EOPNOTSUPP (built without CONFIG_SYSTEM_DATA_VERIFICATION); nothing was loaded');
    } else {
      notes.push('this kernel cannot verify program signatures (EOPNOTSUPP); loading without kernel enforcement, as the policy allows');
    }
  }
  let undoState = () => {};
  const loaded = replay(verified.plan, verified.digest, backend, {
    host: opts.host, pinDir: opts.pinDir, maxEntries: opts.maxEntries, signatures, keyringId: opts.policy.keyring ?? -3, onStep: opts.onStep,
    commit: () => {
      if (backend.kind === 'kernel') undoState = recordVersion(opts.statePath, verified.plan.name, verified.version);
    },
  });
  return {
    verified, notes,
    // Undoing a load after the fact also gives back the anti-rollback floor it raised.
    loaded: { ...loaded, rollback: () => { loaded.rollback(); undoState(); } },
  };
}
