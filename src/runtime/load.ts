/**
 * Verify, then replay, then commit: the only path from a release file to the kernel. The release bytes
 * are read once by the caller; verification decodes the plan from those bytes and replay uses that
 * decoded plan, so nothing is re-read between check and use. Every decision of a real load, allowed
 * or refused, goes into the host log, and an allowed load is committed by commit.ts (record or undo,
 * crash-safe); dry runs decide nothing and record nothing.
 */
import type { VerifiedRelease, VerifyOptions } from '../attest/verify.js';
import { BpfsealError } from '../errors.js';
import { recordDecision } from '../hostlog/hostlog.js';
import { decision } from '../hostlog/records.js';
import { signatureSupport } from '../kernel/probe.js';
import { loaderOf } from '../loader/claim.js';
import { chooseLoader, type LoaderChoice } from './loader-choice.js';
import { runKernelLoader } from './kernel-loader.js';
import type { TrustPolicy } from '../trust/policy.js';
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

export type { LoaderChoice } from './loader-choice.js';

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

// Verification alone lives in verify-policy.ts, so `verify` loads none of the kernel, commit or host-log code.
import { verifyWithPolicy, type VerifyWithPolicyOptions } from './verify-policy.js';
export { checkLocalLogEntry, verifyWithPolicy, type VerifyWithPolicyOptions } from './verify-policy.js';

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
  const how = backend.kind === 'model' ? { loader: 'user' as const, kernelVerified: 'none' as const } : chooseLoader({
    name: verified.plan.name, loader: !!verified.loader, programs: verified.plan.programs.map((p) => p.name), signedPrograms: verified.kernelSignatures,
  }, signatureSupport(), {
    want: opts.loader ?? 'auto', requireKernelSignatures: !!opts.policy.requireKernelSignatures, keyring: opts.policy.keyring ?? -3,
    kernelBackend: (opts.backend?.kind ?? (opts.dryRun ? 'model' : 'kernel')) === 'kernel',
  }, notes);
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

