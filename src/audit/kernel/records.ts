/**
 * The host load log as `audit --kernel` needs it, in one pass over its decisions (hostlog/records.ts):
 *   - byProgId: every program id that an `allowed` load of THIS boot created and that still stands
 *     (no `aborted` or `unloaded` record for its load id); when two such loads name one id (the kernel
 *     reuses ids only after wrapping around), the later record wins;
 *   - ended / otherBoot: the loads that do not attest any more, or never could here (evidence only);
 *   - standing: the code (tag, type, name) of every standing load of this boot, for `known-code`.
 * Records without a boot id, or with another one, never attest: kernel ids mean something only within
 * one boot (/proc/sys/kernel/random/boot_id).
 */
import type { ReadDecision } from '../../hostlog/hostlog.js';
import type { LoadDecision, ProgramRecord } from '../../hostlog/records.js';
import type { Finding } from '../attestations.js';

export interface LoadRef {
  /** Index of the `allowed` record in the host log. */
  index: number;
  decision: LoadDecision;
}

export interface ProgramOfLoad {
  load: LoadRef;
  program: ProgramRecord;
}

export interface EndedProgram extends ProgramOfLoad {
  ended: 'aborted' | 'unloaded';
  /** Index of the record that ended the load. */
  endIndex: number;
}

/** A program whose code bpfseal knows: from a verified attestation or a standing load. */
export interface CodeRef {
  tag: string;
  /** bpftool's program type name. */
  type?: string;
  program: string;
  plan: string;
  digest?: string;
  source: 'attestation-log' | 'host-log';
  /** host-log: the index of the allowed record; attestation-log: the entry index. */
  index?: number;
}

export interface HostIndex {
  bootId: string;
  byProgId: Map<number, ProgramOfLoad>;
  ended: Map<number, EndedProgram>;
  otherBoot: Map<number, ProgramOfLoad[]>;
  standing: CodeRef[];
  decisions: number;
  reports: number;
  findings: Finding[];
}

export function emptyHostIndex(bootId: string): HostIndex {
  return { bootId, byProgId: new Map(), ended: new Map(), otherBoot: new Map(), standing: [], decisions: 0, reports: 0, findings: [] };
}

/** Which loads ended (aborted or unloaded), by load id, with the record that ended them. */
function endedLoads(decisions: readonly ReadDecision[]): Map<string, { how: 'aborted' | 'unloaded'; index: number }> {
  const out = new Map<string, { how: 'aborted' | 'unloaded'; index: number }>();
  for (const { index, decision: d } of decisions) {
    if ((d?.decision === 'aborted' || d?.decision === 'unloaded') && d.loadId && !out.has(d.loadId)) out.set(d.loadId, { how: d.decision, index });
  }
  return out;
}

export function indexHostLog(decisions: readonly ReadDecision[], bootId: string): HostIndex {
  const h = emptyHostIndex(bootId);
  h.decisions = decisions.length;
  const ended = endedLoads(decisions);
  for (const { index, decision: d, report, enforcement } of decisions) {
    if (report) {
      h.reports++;
      continue;
    }
    if (enforcement) continue; // bpfseal enforce's own records: summarized by the report (enforce/decisions.ts)
    if (!d) {
      h.findings.push({ code: 'HOST_LOG_RECORD_INVALID', index, message: `host log entry ${index} is not a well-formed load record` });
      continue;
    }
    if (d.decision !== 'allowed') continue;
    const load = { index, decision: d };
    const thisBoot = bootId !== '' && d.bootId === bootId;
    const end = ended.get(d.loadId!);
    for (const program of d.programs ?? []) {
      if (!thisBoot) {
        const list = h.otherBoot.get(program.id) ?? [];
        list.push({ load, program });
        h.otherBoot.set(program.id, list);
      } else if (end) {
        h.ended.set(program.id, { load, program, ended: end.how, endIndex: end.index });
        h.byProgId.delete(program.id);
      } else {
        h.byProgId.set(program.id, { load, program });
        h.ended.delete(program.id);
        if (program.tag) h.standing.push({ tag: program.tag, type: program.type, program: program.name, plan: d.plan!, digest: d.digest, source: 'host-log', index });
      }
    }
  }
  return h;
}
