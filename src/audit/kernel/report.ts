/**
 * `audit --kernel`, put together: the kernel's programs (inventory.ts, one pass over prog ids), then
 * the host load log (verified, then one pass indexing this boot's loads by program id: records.ts),
 * the code bpfseal knows (verified attestations and standing loads), each program attributed
 * (attribution.ts), accept rules applied (accept.ts), and every program that is not attested, every
 * unchecked frozen map and every host-log problem turned into a finding with a stable code.
 */
import { hostLogDir, listPending, openHostLog, readDecision, type ReadDecision } from '../../hostlog/hostlog.js';
import { TLOG_CODES, TlogVerifyError } from '../../tlog/errors.js';
import { rootFromLeaves } from '../../tlog/merkle.js';
import type { TransparencyLog } from '../../tlog/store.js';
import { bootId as currentBootId } from '../../hostlog/records.js';
import { logExists } from '../../tlog/store.js';
import type { AttestationAudit, Finding } from '../attestations.js';
import { applyAccept, type AcceptRule } from './accept.js';
import { attribute, STATUS_CODE, type AttributedProgram, type AttributionContext, type ProgramStatus } from './attribution.js';
import { kernelMapReader, loadedPrograms, type LoadedProgram, type MapReader } from './inventory.js';
import { planSource, hostKconfig } from './plans.js';
import { emptyHostIndex, indexHostLog, type CodeRef, type HostIndex } from './records.js';
import { enforcementSummary, type EnforcementSummary } from '../../enforce/decisions.js';

export interface HostLogSummary {
  dir: string;
  /** Entries read (load decisions, signed reports, anything else). */
  decisions: number;
  /** Signed host reports among them (audit --kernel --attest). */
  reports?: number;
  /** The verified checkpoint everything was judged against. */
  origin?: string;
  logId?: string;
  size?: number;
  rootHash?: string;
}

export interface KernelReport {
  programs: AttributedProgram[];
  hostLog?: HostLogSummary;
  findings: Finding[];
  /** This boot (/proc/sys/kernel/random/boot_id): only its records attest. */
  bootId: string;
  summary: Record<ProgramStatus, number>;
  /** bpfseal enforce: its decisions in the host log, denials listed (enforce/decisions.ts); present when there are any. */
  enforcement?: EnforcementSummary;
}

export interface KernelAuditOptions {
  accept?: readonly AcceptRule[];
  /** Tests: the kernel's view and map contents (default: the running kernel). */
  programs?: () => LoadedProgram[];
  readMap?: MapReader;
  bootId?: string;
}

export interface HostRead {
  index: HostIndex;
  summary?: HostLogSummary;
  findings: Finding[];
  enforcement?: EnforcementSummary;
}

/**
 * Every entry of the host log, in one pass, verified: each entry hashes to its leaf in the tiles
 * (storage.entries), and the leaves give the root of the signed checkpoint (RFC 6962 MTH), so the
 * entries are exactly the ones the checkpoint commits to. (`log verify` also checks every stored
 * interior tile, which proofs use and this audit does not.)
 */
function readVerified(log: TransparencyLog): { size: number; rootHash: Buffer; decisions: ReadDecision[] } {
  const cp = log.checkpoint();
  const leaves: Buffer[] = [];
  const decisions: ReadDecision[] = [];
  for (const { index, entry, leafHash } of log.entries(0, cp.size)) {
    leaves.push(leafHash);
    decisions.push(readDecision(index, entry));
  }
  if (!rootFromLeaves(leaves).equals(cp.rootHash)) throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${log.dir}: the entries do not give the root of the signed checkpoint (size ${cp.size})`);
  return { size: cp.size, rootHash: cp.rootHash, decisions };
}

/** The host log, verified, then indexed; a log that does not verify attests nothing (a finding). */
export function readHostLog(dir: string, bootId: string): HostRead {
  if (!logExists(dir)) return { index: emptyHostIndex(bootId), findings: [] };
  let log: ReturnType<typeof openHostLog> | undefined;
  try {
    log = openHostLog(dir, false);
    const v = readVerified(log);
    const decisions = v.decisions;
    const index = indexHostLog(decisions, bootId);
    const findings = [...index.findings];
    for (const p of listPending(dir)) {
      findings.push({ code: 'LOAD_INCOMPLETE', message: `load ${p.loadId}${p.load ? ` of ${p.load.plan} v${p.load.version} into ${p.load.pinDir}` : ''} was interrupted and not yet recovered (bpfseal recover)` });
    }
    const summary: HostLogSummary = {
      dir, decisions: decisions.length, reports: index.reports, origin: log.origin, logId: log.publicKey.logId.toString('hex'), size: v.size, rootHash: v.rootHash.toString('hex'),
    };
    const enforcement = enforcementSummary(decisions);
    return { index, summary, findings, ...(enforcement.decisions ? { enforcement } : {}) };
  } catch (e) {
    return { index: emptyHostIndex(bootId), findings: [{ code: 'HOST_LOG_INVALID', message: `host log ${dir} does not verify: ${(e as Error).message}` }] };
  } finally {
    log?.close();
  }
}

/** Code bpfseal knows, by tag: programs of entries judged verified, and standing loads of this boot. */
function codeIndex(attestations: AttestationAudit, host: HostIndex): Map<string, CodeRef[]> {
  const out = new Map<string, CodeRef[]>();
  const add = (c: CodeRef) => {
    const list = out.get(c.tag);
    if (list) list.push(c);
    else out.set(c.tag, [c]);
  };
  // Only entries judged trusted attest (an audit without a policy judges no trust), listed or not.
  for (const e of attestations.judged) {
    if (e.status !== 'verified') continue;
    for (const t of e.tags) add({ tag: t.tag, type: t.type, program: t.program, plan: e.plan!, digest: e.digest, source: 'attestation-log', index: e.index });
  }
  for (const c of host.standing) add(c);
  return out;
}

function programFinding(p: AttributedProgram): Finding | undefined {
  const what = `kernel program ${p.id} '${p.name}' (${p.type}, tag ${p.tag})`;
  const why = (r: 'differs' | 'unchecked') => p.evidence.filter((e) => e.result === r).map((e) => e.message).join('; ');
  if (p.status === 'unattested') return { code: STATUS_CODE.unattested, message: `${what} is not attested` };
  if (p.status === 'known-code') return { code: STATUS_CODE['known-code'], message: `${what} is not attested: its code is ${p.matches.map((m) => `${m.plan}/${m.program}`).join(', ')}, but no bpfseal load of this boot created it (loaded outside bpfseal)` };
  if (p.status === 'modified') return { code: STATUS_CODE.modified, message: `${what} is not attested: it was created by load ${p.record?.loadId} (host log #${p.record?.hostLogIndex}) but ${why('differs')}` };
  if (p.status === 'attested' && p.evidence.some((e) => e.result === 'unchecked')) return { code: 'FROZEN_MAP_UNCHECKED', message: `${what}: ${why('unchecked')}` };
  return undefined;
}

export function summarize(programs: readonly AttributedProgram[]): Record<ProgramStatus, number> {
  const s: Record<ProgramStatus, number> = { attested: 0, 'known-code': 0, modified: 0, unattested: 0, accepted: 0 };
  for (const p of programs) s[p.status]++;
  return s;
}

export function auditKernel(attestations: AttestationAudit, hostLog: string | undefined, o: KernelAuditOptions = {}): KernelReport {
  const bootId = o.bootId ?? currentBootId();
  // The kernel first: a program loaded after this pass is not listed; one listed here has its
  // record in the log by the time the log is read (records follow loads), so none is missed.
  const kernel = (o.programs ?? loadedPrograms)();
  const dir = hostLogDir(hostLog);
  const host = readHostLog(dir, bootId);
  const findings: Finding[] = [...host.findings];
  if (!bootId) findings.push({ code: 'BOOT_ID_UNREADABLE', message: '/proc/sys/kernel/random/boot_id cannot be read: no host-log record can be tied to this boot, so none attests' });
  const ctx: AttributionContext = {
    host: host.index, code: codeIndex(attestations, host.index), plan: planSource([dir, attestations.log.dir]),
    readMap: o.readMap ?? kernelMapReader(), kconfig: hostKconfig(),
  };
  const programs = kernel.map((p) => attribute(p, ctx));
  applyAccept(programs, o.accept ?? []);
  for (const p of programs) {
    const f = programFinding(p);
    if (f) findings.push(f);
  }
  return { programs, ...(host.summary ? { hostLog: host.summary } : {}), findings, bootId, summary: summarize(programs), ...(host.enforcement ? { enforcement: host.enforcement } : {}) };
}
