/** `audit --kernel`: tags from the audited attestation log and the host load log, matched against the kernel. */
import { logExists } from '../tlog/store.js';
import type { AttestationAudit, Finding } from './attestations.js';
import { hostLogDir, listPending, openHostLog, readDecisions } from '../hostlog/hostlog.js';
import { kernelPrograms, markAttested, type AttestedTag, type KernelProgram } from './kernel.js';
import { enforcementSummary, type EnforcementSummary } from '../enforce/decisions.js';

export interface KernelReport {
  programs: KernelProgram[];
  hostLog?: { dir: string; decisions: number };
  findings: Finding[];
  /** bpfseal enforce: its decisions in the host log, denials listed (enforce/decisions.ts). */
  enforcement?: EnforcementSummary;
}

export function kernelAudit(attestations: AttestationAudit, hostLog?: string): KernelReport {
  const tags: AttestedTag[] = [];
  // Only entries judged trusted attest (an audit without a policy judges no trust), listed or not.
  for (const e of attestations.judged) {
    if (e.status !== 'verified') continue;
    for (const t of e.tags) tags.push({ tag: t.tag, plan: e.plan!, digest: e.digest, program: t.program, source: 'attestation-log' });
  }
  const findings: Finding[] = [];
  const dir = hostLogDir(hostLog);
  let host: KernelReport['hostLog'];
  let enforcement: EnforcementSummary | undefined;
  if (logExists(dir)) {
    let log: ReturnType<typeof openHostLog> | undefined;
    try {
      log = openHostLog(dir, false);
      log.verifyAll();
      const decisions = readDecisions(log);
      host = { dir, decisions: decisions.length };
      const aborted = new Set(decisions.filter((d) => d.decision?.decision === 'aborted').map((d) => d.decision!.loadId));
      enforcement = enforcementSummary(decisions);
      for (const { index, decision, enforcement: enf } of decisions) {
        if (!decision && enf) continue;
        if (!decision) {
          findings.push({ code: 'HOST_LOG_RECORD_INVALID', index, message: `host log entry ${index} is not a well-formed load record` });
          continue;
        }
        if (decision.decision !== 'allowed' || aborted.has(decision.loadId)) continue;
        for (const p of decision.programs ?? []) {
          if (p.tag) tags.push({ tag: p.tag, plan: decision.plan ?? '?', digest: decision.digest, program: p.name, source: 'host-log' });
        }
      }
      for (const p of listPending(dir)) {
        findings.push({ code: 'LOAD_INCOMPLETE', message: `load ${p.loadId}${p.load ? ` of ${p.load.plan} v${p.load.version} into ${p.load.pinDir}` : ''} was interrupted and not yet recovered (bpfseal recover)` });
      }
    } catch (e) {
      findings.push({ code: 'HOST_LOG_INVALID', message: `host log ${dir} does not verify: ${(e as Error).message}` });
    } finally {
      log?.close();
    }
  }
  return { programs: markAttested(kernelPrograms(), tags), ...(host ? { hostLog: host } : {}), findings, ...(enforcement?.decisions ? { enforcement } : {}) };
}
