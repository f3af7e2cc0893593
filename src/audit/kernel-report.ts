/** `audit --kernel`: tags from the audited attestation log and the host load log, matched against the kernel. */
import { logExists, openLog } from '../tlog/store.js';
import type { AttestationAudit } from './attestations.js';
import { hostLogDir, readDecisions } from './hostlog.js';
import { kernelPrograms, markAttested, type AttestedTag, type KernelProgram } from './kernel.js';

export interface KernelReport {
  programs: KernelProgram[];
  hostLog?: { dir: string; decisions: number };
  findings: string[];
}

export function kernelAudit(attestations: AttestationAudit, hostLog?: string): KernelReport {
  const tags: AttestedTag[] = [];
  for (const e of attestations.entries) {
    if (e.status !== 'verified' && e.status !== 'signature-ok') continue;
    for (const t of e.tags) tags.push({ tag: t.tag, plan: e.plan!, digest: e.digest, program: t.program, source: 'attestation-log' });
  }
  const findings: string[] = [];
  const dir = hostLogDir(hostLog);
  let host: KernelReport['hostLog'];
  if (logExists(dir)) {
    let log: ReturnType<typeof openLog> | undefined;
    try {
      log = openLog(dir, { create: false });
      log.verifyAll();
      const decisions = readDecisions(log);
      host = { dir, decisions: decisions.length };
      for (const { decision } of decisions) {
        if (decision.decision !== 'allowed') continue;
        for (const p of decision.programs ?? []) {
          if (p.tag) tags.push({ tag: p.tag, plan: decision.plan ?? '?', digest: decision.digest, program: p.name, source: 'host-log' });
        }
      }
    } catch (e) {
      findings.push(`host log ${dir} does not verify: ${(e as Error).message}`);
    } finally {
      log?.close();
    }
  }
  return { programs: markAttested(kernelPrograms(), tags), ...(host ? { hostLog: host } : {}), findings };
}
