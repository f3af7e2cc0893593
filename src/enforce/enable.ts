/**
 * `bpfseal enforce`: attach the enforcer, a bpfseal release like any other, all or nothing.
 *
 *  1. The kernel must be able to enforce (kernel/probe.ts enforcementSupport: BPF LSM active, the
 *     verdict fields and the 4-argument bpf_prog_load hook in its BTF, signature verification): else
 *     ENFORCE_UNSUPPORTED, exit 3, before anything is loaded.
 *  2. The allowlist is resolved: the policy's keyring, its enforceKeyrings, each --keyring (an unknown
 *     keyring is a usage error before anything is loaded).
 *  3. runtime/load.ts loads the release as every load: verified under the policy from the bytes read
 *     once, with kernel verification required (7.3+: the signed kernel loader, signing.rst "The
 *     trusted loader"; 7.2: per-program signatures); shape/checkEnforcerPlan refuses another release.
 *  4. Before the commit: the allowlist maps are filled, then the program is attached (BPF_LINK_CREATE,
 *     BPF_LSM_MAC); the commit pins the link at <dir>/links/bpfseal_admit with the program and maps and
 *     records the load. Any failure closes every fd, the link's too: nothing stays attached or pinned.
 *  5. An `on` record (the allowlist, link and program ids) follows the load's `allowed` record.
 */
import { BpfsealError } from '../errors.js';
import { enforcementSupport, type EnforcementSupport } from '../kernel/probe.js';
import { KernelError } from '../kernel/errors.js';
import type { Fd } from '../kernel/fd.js';
import { BPF_LSM_MAC, linkCreate, linkInfo } from '../kernel/link.js';
import { openHostLog, readDecisions } from '../hostlog/hostlog.js';
import { enforcementRecord, type AllowEntry } from '../hostlog/records.js';
import { logExists } from '../tlog/store.js';
import { loadRelease, type LoadOptions, type LoadResult } from '../runtime/load.js';
import { openHostLogForWriting } from '../hostlog/hostlog.js';
import { pinsInPlace } from '../runtime/unload.js';
import type { TrustPolicy } from '../trust/policy.js';
import { fillAllowlist, resolveAllowlist } from './allowlist.js';
import { checkEnforcerPlan, ENFORCER } from './shape.js';
import { standingAt } from './standing.js';

export interface EnableOptions {
  policy: TrustPolicy;
  statePath: string;
  hostLog: string;
  pinDir: string;
  /** The release file's path (for the host log). */
  release: string;
  /** --keyring specs, beside the policy's keyring and enforceKeyrings. */
  keyrings: readonly string[];
  checkLogEntry?: LoadOptions['checkLogEntry'];
}

export interface Enabled {
  loadId: string;
  pinDir: string;
  plan: string;
  version: number;
  digest: string;
  signer: LoadResult['verified']['signer'];
  loader: LoadResult['loader'];
  kernelVerified: LoadResult['kernelVerified'];
  programId: number;
  linkId: number;
  allow: AllowEntry[];
  notes: string[];
  ms: { probe: number; load: number; total: number };
}

/** Refuse when an enforcer already stands at `pinDir` (its pins in place): `--off` first. */
function refuseActive(hostLog: string, pinDir: string): void {
  if (!logExists(hostLog)) return;
  const log = openHostLog(hostLog, false);
  try {
    const s = standingAt(readDecisions(log), pinDir);
    if (s && pinsInPlace(s.rec)) {
      throw new BpfsealError('usage', 'ENFORCE_ACTIVE', `enforcement is already active at ${s.pinDir} (load ${s.loadId}); run bpfseal enforce --off first`);
    }
  } finally {
    log.close();
  }
}

/** ENFORCE_UNSUPPORTED (exit 3) naming every missing piece, on a kernel that cannot enforce. */
export function requireEnforcementSupport(): EnforcementSupport {
  const support = enforcementSupport();
  if (!support.ok) throw new BpfsealError('kernel', 'ENFORCE_UNSUPPORTED', `this kernel cannot enforce signed BPF loads: ${support.reasons.join('; ')}; nothing was loaded`);
  return support;
}

export async function enableEnforcement(bytes: Buffer, o: EnableOptions): Promise<Enabled> {
  const t0 = performance.now();
  const probeMs = requireEnforcementSupport().ms;
  refuseActive(o.hostLog, o.pinDir);
  const allow = resolveAllowlist(o.policy.keyring, [...(o.policy.enforceKeyrings ?? []).map((spec) => ({ spec, from: 'policy' as const })), ...o.keyrings.map((spec) => ({ spec, from: '--keyring' as const }))]);
  let attached: { programId: number; linkId: number } | undefined;
  const r = await loadRelease(bytes, {
    policy: { ...o.policy, requireKernelSignatures: true }, statePath: o.statePath, hostLog: o.hostLog, pinDir: o.pinDir, release: o.release,
    checkLogEntry: o.checkLogEntry, loader: 'auto',
    accept: (v) => checkEnforcerPlan(v.plan),
    beforeCommit: (loaded) => {
      const map = (name: string) => loaded.maps.get(name) as Fd;
      fillAllowlist({ allowSerial: map(ENFORCER.maps.allowSerial), allowType: map(ENFORCER.maps.allowType) }, allow);
      const prog = loaded.programs.get(ENFORCER.program) as Fd;
      let link: Fd;
      try {
        link = linkCreate(prog, BPF_LSM_MAC, `link ${ENFORCER.program}`);
      } catch (e) {
        throw e instanceof KernelError ? e.at(`attach '${ENFORCER.program}' (BPF_LINK_CREATE, BPF_LSM_MAC)`) : e;
      }
      try {
        const info = linkInfo(link);
        attached = { programId: info.progId, linkId: info.id };
        return [{ name: ENFORCER.program, link, id: info.id }];
      } catch (e) {
        link.close(); // not pinned: closing it detaches the program
        throw e;
      }
    },
  });
  const tLoad = performance.now();
  const c = r.committed!;
  const notes = [...r.notes];
  try {
    const log = await openHostLogForWriting(o.hostLog);
    try {
      await log.append(Buffer.from(JSON.stringify(enforcementRecord({ event: 'on', loadId: c.loadId, pinDir: c.pinDir, allow, linkId: attached!.linkId, progId: attached!.programId }))));
    } finally {
      log.close();
    }
  } catch (e) {
    notes.push(`enforcement is on, but its 'on' record could not be appended to the host log ${o.hostLog} (${(e as Error).message}); the load record stands`);
  }
  return {
    loadId: c.loadId, pinDir: c.pinDir, plan: r.verified.plan.name, version: r.verified.version, digest: `sha256:${r.verified.digest}`,
    signer: r.verified.signer, loader: r.loader, kernelVerified: r.kernelVerified, ...attached!, allow, notes,
    ms: { probe: probeMs, load: Math.round(tLoad - t0), total: Math.round(performance.now() - t0 + probeMs) },
  };
}
