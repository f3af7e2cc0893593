/**
 * Verify, then replay, then commit: the only path from a release file to the kernel. The release bytes
 * are read once by the caller; verification decodes the plan from those bytes and replay uses that
 * decoded plan, so nothing is re-read between check and use. Every decision of a real load, allowed
 * or refused, goes into the host log, and an allowed load is committed by commit.ts (record or undo,
 * crash-safe); dry runs decide nothing and record nothing.
 */
import { checkKernelSignature } from '../attest/pkcs7.js';
import { checkLocalLogEntry } from '../attest/rekor.js';
import { verifyRelease, type VerifiedRelease, type VerifyOptions } from '../attest/verify.js';
import { BpfsealError } from '../errors.js';
import { recordDecision } from '../hostlog/hostlog.js';
import { decision } from '../hostlog/records.js';
import { signatureSupport, type SignatureSupport } from '../kernel/probe.js';
import { loaderOf } from '../loader/claim.js';
import { runKernelLoader } from './kernel-loader.js';
import { requirePreflight, type HostKernel } from '../preflight/require.js';
import type { TrustPolicy } from '../trust/policy.js';
import { readState } from '../trust/state.js';
import { realKernel, type KernelBackend } from './backend.js';
import { ensureBpffs } from './bpffs.js';
import { commitLoad, type Committed, type CommitInput, type LinkPin } from './commit.js';
import type { HostFacts } from './host.js';
import { MODEL_DISCLAIMER, modelKernel } from './model.js';
import { pinTarget } from './pindir.js';
import { replay, type LoadedCollection } from './replay.js';
import { pinsInPlace } from './unload.js';

export interface LoadOptions {
  policy: TrustPolicy;
  statePath: string;
  /** Host load log directory (required for a real load). */
  hostLog?: string;
  /** The release's path, for the host log record. */
  release?: string;
  pinDir?: string;
  dryRun?: boolean;
  maxEntries?: ReadonlyMap<string, number>;
  host?: HostFacts;
  backend?: KernelBackend;
  checkLogEntry?: VerifyOptions['checkLogEntry'];
  onStep?: (step: string) => void;
  /** Commit steps ('record', 'pin', 'rename', 'done'); tests inject failures or kills there. */
  onCommitStep?: CommitInput['onStep'];
  /**
   * How to load: 'kernel' runs the plan's loader program in the kernel, 'user' replays the plan from
   * user space, 'auto' (default) takes the kernel loader where the kernel verifies loader signatures
   * and the release carries one, else user space.
   */
  loader?: LoaderChoice;
  /** requirePreflight: attestation logs to search (default $BPFSEAL_LOG or ./attestations) and the host kernel (default this one). */
  preflight?: VerifyWithPolicyOptions['preflight'];
  /** After verification, before the kernel is touched: refuse a release the caller cannot use (enforce: not an enforcer). */
  accept?: (v: VerifiedRelease) => void;
  /**
   * After the load, before the commit (real loads only): e.g. attach. The links returned are pinned by
   * the commit with the rest, and closed afterwards whatever happens (a link not pinned detaches).
   */
  beforeCommit?: (loaded: LoadedCollection, v: VerifiedRelease) => LinkPin[] | Promise<LinkPin[]>;
}

export type LoaderChoice = 'kernel' | 'user' | 'auto';

export interface LoadResult {
  verified: VerifiedRelease;
  /** Which loader ran, and whether the kernel verified a signature over what it loaded. */
  loader: 'kernel' | 'user' | 'model';
  kernelVerified: 'loader' | 'programs' | 'none';
  /** The loaded objects; their descriptors are closed once the load is committed (pins hold them). */
  loaded: LoadedCollection;
  committed?: Committed;
  /** Things the operator should know: model-kernel disclaimer, unenforced kernel signatures. */
  notes: string[];
}

// checkLocalLogEntry lives in attest/rekor.ts (preflight/ verifies releases with it too); kept importable here.
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

function checkMaxEntries(v: VerifiedRelease, overrides: ReadonlyMap<string, number>): void {
  for (const name of overrides.keys()) {
    const m = v.plan.maps.find((x) => x.name === name);
    const sized = v.plan.maps.filter((x) => x.maxEntriesFixup !== 'none').map((x) => x.name);
    if (!m) throw new BpfsealError('usage', 'USAGE_MAX_ENTRIES', `--max-entries ${name}=N: plan '${v.plan.name}' has no map '${name}' (${sized.length ? `maps sized at load: ${sized.join(', ')}` : 'no map of it is sized at load'})`);
  }
}

export async function loadRelease(bytes: Buffer, opts: LoadOptions): Promise<LoadResult> {
  const real = !opts.dryRun && (opts.backend?.kind ?? 'kernel') === 'kernel';
  try {
    return await load(bytes, opts, real);
  } catch (e) {
    // A refusal is a decision too; a failed host log write is not retried here.
    if (real && opts.hostLog && e instanceof BpfsealError && e.code !== 'HOST_LOG_FAILED' && !(e as { recorded?: boolean }).recorded) {
      await recordDecision(opts.hostLog, decision({ decision: 'refused', release: opts.release, code: e.code, reason: e.message })).catch((le: Error) => {
        e.message += `; the refusal could not be recorded in the host log ${opts.hostLog} (${le.message})`;
      });
    }
    throw e;
  }
}

async function load(bytes: Buffer, opts: LoadOptions, real: boolean): Promise<LoadResult> {
  const verified = verifyWithPolicy(bytes, opts.policy, opts.statePath, { checkLogEntry: opts.checkLogEntry, preflight: opts.preflight });
  checkMaxEntries(verified, opts.maxEntries ?? new Map());
  opts.accept?.(verified);
  const notes = [...verified.notes];
  const backend = opts.backend ?? (opts.dryRun ? modelKernel() : realKernel());
  if (backend.kind === 'model') notes.push(MODEL_DISCLAIMER);
  if (real) {
    if (!opts.pinDir || !opts.hostLog) throw new BpfsealError('usage', 'USAGE_NO_PIN', 'a real load needs a pin directory and a host log (objects would die with this process, unrecorded)');
    ensureBpffs(opts.pinDir);
    pinTarget(opts.pinDir); // a clear error before anything is created
  }
  // The model kernel replays in user space (it checks the sequence, not a loader program).
  const how = backend.kind === 'model' ? { loader: 'user' as const, kernelVerified: 'none' as const } : chooseLoader(verified, signatureSupport(), opts, notes);
  const loaded = how.loader === 'kernel'
    ? runKernelLoader(verified.plan, verified.digest, loaderOf(verified.plan), {
      host: opts.host, maxEntries: opts.maxEntries, ...(how.kernelVerified === 'loader' ? { signature: verified.loader!.signature, keyringId: opts.policy.keyring ?? -3, exclusive: true } : {}),
    })
    : replay(verified.plan, verified.digest, backend, {
      host: opts.host, maxEntries: opts.maxEntries, signatures: how.kernelVerified === 'programs' ? verified.kernelSignatures : undefined,
      keyringId: opts.policy.keyring ?? -3, onStep: opts.onStep,
    });
  const kind = backend.kind === 'model' ? 'model' as const : how.loader;
  if (!real) return { verified, loaded, notes, loader: kind, kernelVerified: how.kernelVerified };
  let committed: Committed;
  let links: LinkPin[] = [];
  try {
    links = (await opts.beforeCommit?.(loaded, verified)) ?? [];
    committed = await commitLoad({
      plan: verified.plan, collection: loaded, backend, pinDir: opts.pinDir!, hostLog: opts.hostLog!, statePath: opts.statePath,
      allowRollback: opts.policy.allowRollback, onStep: opts.onCommitStep, planBytes: verified.planBytes, links,
      facts: {
        release: opts.release, plan: verified.plan.name, digest: `sha256:${verified.digest}`, version: verified.version, signer: verified.signer,
        loader: how.loader, kernelVerified: how.kernelVerified, fixups: loaded.record.fixups,
      },
    }, pinsInPlace);
  } finally {
    for (const l of links) l.link.close();
    loaded.close();
  }
  notes.push(...committed.notes);
  for (const r of committed.recovered) notes.push(`recovered an interrupted load (${r.loadId}, ${r.pinDir ?? '?'}): ${r.outcome}${r.problems ? ` (${r.problems.join('; ')}; run bpfseal recover once fixed)` : ''}`);
  return { verified, loaded, committed, notes, loader: kind, kernelVerified: how.kernelVerified };
}

/**
 * Which loader runs and what the kernel verifies (README, "Kernels"): from 7.3 the kernel verifies the
 * signed loader (`insns || blob`: everything the load creates); 6.18-7.2 verify per-program signatures
 * (instructions only); other kernels verify nothing. requireKernelSignatures refuses any load the
 * kernel would not verify completely in its own way.
 */
function chooseLoader(v: VerifiedRelease, support: SignatureSupport, opts: LoadOptions, notes: string[]): { loader: 'kernel' | 'user'; kernelVerified: 'loader' | 'programs' | 'none' } {
  const want = opts.loader ?? 'auto';
  const require = opts.policy.requireKernelSignatures;
  const keyring = opts.policy.keyring ?? -3;
  if (support === 'loader') {
    if (v.loader && want !== 'user') {
      notes.push(`kernel verifies the signed loader (insns || blob) with keyring ${keyring}`);
      return { loader: 'kernel', kernelVerified: 'loader' };
    }
    if (require) {
      throw new BpfsealError(v.loader ? 'usage' : 'verify', v.loader ? 'USAGE_LOADER' : 'KERNEL_SIGNATURE_REQUIRED', v.loader
        ? 'policy requires kernel-verified loads; on this kernel only the kernel loader is verified: drop --loader user'
        : `policy requires kernel-verified loads; this kernel (7.3+) verifies only a signed loader, and release '${v.plan.name}' signs none (sign with --cert)`);
    }
    // Per-program signatures of programs that use maps are refused from 7.3 on: do not pass them.
    return { loader: want === 'kernel' ? 'kernel' : 'user', kernelVerified: 'none' };
  }
  if (support === 'program') {
    const all = v.plan.programs.length > 0 && v.plan.programs.every((p) => v.kernelSignatures.has(p.name));
    if (require && (!all || want === 'kernel')) {
      throw new BpfsealError('verify', 'KERNEL_SIGNATURE_REQUIRED', want === 'kernel'
        ? 'policy requires kernel-verified loads; this kernel verifies per-program signatures, not a loader: use the user-space loader'
        : `policy requires kernel-verified loads; this kernel verifies per-program signatures, and release '${v.plan.name}' lacks them for ${v.plan.programs.filter((p) => !v.kernelSignatures.has(p.name)).map((p) => p.name).join(', ') || 'every program'}`);
    }
    if (want === 'kernel') return { loader: 'kernel', kernelVerified: 'none' };
    if (v.kernelSignatures.size) notes.push(`kernel verifies program signatures: passing ${v.kernelSignatures.size} PKCS#7 signature(s) with keyring ${keyring} (instructions only)`);
    return { loader: 'user', kernelVerified: v.kernelSignatures.size ? 'programs' : 'none' };
  }
  if (require && support === 'none' && (opts.backend?.kind ?? (opts.dryRun ? 'model' : 'kernel')) === 'kernel') {
    throw new BpfsealError('kernel', 'KERNEL_SIGNATURES_UNSUPPORTED',
      'policy requires kernel-enforced program signatures, but this kernel answers EOPNOTSUPP (built without CONFIG_SYSTEM_DATA_VERIFICATION); nothing was loaded');
  }
  if (v.kernelSignatures.size || v.loader) notes.push('this kernel cannot verify program signatures (EOPNOTSUPP); loading without kernel enforcement, as the policy allows');
  return { loader: want === 'kernel' ? 'kernel' : 'user', kernelVerified: 'none' };
}
