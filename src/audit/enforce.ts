/**
 * What `audit --kernel` does about enforcement before it reads the host log: drain the ring buffer of
 * every enforcer the host log says is on (so its decisions, denials included, are in the log the audit
 * reads), and report an enforcer that is recorded as on but no longer attached as recorded (removed
 * without `enforce --off`: root can unpin it, SECURITY.md) and decisions the ring buffer dropped.
 */
import type { Finding } from './attestations.js';
import { BpfsealError } from '../errors.js';
import { openHostLog, readDecisions } from '../hostlog/hostlog.js';
import { linkInfo } from '../kernel/link.js';
import { logExists } from '../tlog/store.js';
import { drainDecisions } from '../enforce/drain.js';
import { openEnforcer, standingEnforcers, type Standing } from '../enforce/standing.js';
import { readCounts } from '../enforce/status.js';

export interface EnforcementAudit {
  /** Enforcers recorded as on, and whether each is attached as recorded. */
  enforcers: { pinDir: string; loadId: string; attached: boolean }[];
  drained: number;
  notes: string[];
  findings: Finding[];
}

export async function drainForAudit(hostLog: string): Promise<EnforcementAudit> {
  const out: EnforcementAudit = { enforcers: [], drained: 0, notes: [], findings: [] };
  if (!logExists(hostLog)) return out;
  let standing: Standing[];
  try {
    const log = openHostLog(hostLog, false);
    try {
      standing = standingEnforcers(readDecisions(log));
    } finally {
      log.close();
    }
  } catch (e) {
    out.notes.push(`enforcement: the host log ${hostLog} could not be read for enforcers (${(e as Error).message})`);
    return out;
  }
  for (const s of standing) {
    const e = openEnforcer(s);
    try {
      const attached = !!e.link && linkInfo(e.link).progId !== 0 && !e.problems.length;
      out.enforcers.push({ pinDir: s.pinDir, loadId: s.loadId, attached });
      if (!attached) {
        out.findings.push({ code: 'ENFORCEMENT_REMOVED', message: `the enforcer loaded as ${s.loadId} is recorded as on at ${s.pinDir}, but is not attached as recorded (${e.problems.join('; ') || 'no link'}): removed without bpfseal enforce --off?` });
      }
      if (e.maps.decisions) {
        try {
          out.drained += (await drainDecisions(hostLog, s.loadId, e.maps.decisions)).appended;
        } catch (err) {
          if (!(err instanceof BpfsealError)) throw err;
          out.notes.push(`enforcement: could not drain the decisions of ${s.pinDir} (${err.code}: ${err.message})`);
        }
      }
      const lost = e.maps.counts ? readCounts(e.maps.counts).lost : 0;
      if (lost) out.findings.push({ code: 'ENFORCEMENT_DECISIONS_LOST', message: `the enforcer at ${s.pinDir} made ${lost} decision(s) while its ring buffer was full: they are not in the host log` });
    } finally {
      e.close();
    }
  }
  return out;
}
