/**
 * `enforce --status` and `enforce --off`. Status: the standing enforcer at the pin directory (its load
 * record), whether its link is attached and runs its program, what the allowlist holds, the decision
 * counters, after draining the ring buffer into the host log. Off: drain, detach, remove exactly the
 * recorded pins (runtime/unload.ts, which records `unloaded`), wait until the kernel has released the
 * link, drain what was decided meanwhile, record `off` with the counters.
 */
import { existsSync } from 'node:fs';
import { BpfsealError } from '../errors.js';
import { mapLookup } from '../kernel/bpf.js';
import { describeKey } from '../kernel/keyctl.js';
import { linkDetach, linkExists, linkInfo } from '../kernel/link.js';
import type { Fd } from '../kernel/fd.js';
import { openHostLog, openHostLogForWriting, readDecisions } from '../hostlog/hostlog.js';
import { enforcementRecord, type EnforcementCounts } from '../hostlog/records.js';
import { logExists } from '../tlog/store.js';
import { unloadDir } from '../runtime/unload.js';
import { readAllowlist } from './allowlist.js';
import { drainDecisions, type Drained } from './drain.js';
import { openEnforcer, recordedPinDir, standingAt, type OpenedEnforcer, type Standing } from './standing.js';

export interface EnforceStatus {
  active: boolean;
  pinDir: string;
  loadId?: string;
  plan?: string;
  version?: number;
  signer?: string;
  since?: string;
  programId?: number;
  linkId?: number;
  allow?: { serials: { serial: number; description?: string }[]; types: string[] };
  counts?: EnforcementCounts;
  /** Decisions appended to the host log by this call. */
  drained?: number;
  problems: string[];
}

function findStanding(hostLog: string, pinDir: string): Standing | undefined {
  if (!logExists(hostLog)) return undefined;
  const log = openHostLog(hostLog, false);
  try {
    return standingAt(readDecisions(log), pinDir);
  } finally {
    log.close();
  }
}

/** struct counts { u64 seq, allowed, denied, lost } (bpf/bpfseal_enforcer.bpf.c), key 0. */
export function readCounts(counts: Fd): EnforcementCounts {
  const v = mapLookup(counts, Buffer.alloc(4), 32);
  return { decisions: Number(v.readBigUInt64LE(0)), allowed: Number(v.readBigUInt64LE(8)), denied: Number(v.readBigUInt64LE(16)), lost: Number(v.readBigUInt64LE(24)) };
}

function describe(serial: number): string | undefined {
  try {
    return describeKey(serial).description;
  } catch {
    return undefined; // not visible to this process (another user's, or gone)
  }
}

/** Is the link attached and running the recorded program? */
function linkProblem(e: OpenedEnforcer): string | undefined {
  if (!e.link) return 'the enforcer has no link pinned: it is loaded but not attached';
  const info = linkInfo(e.link);
  if (e.prog && info.progId === 0) return `link ${info.id} is detached`;
  return undefined;
}

export async function enforceStatus(pinDirIn: string, hostLog: string, o: { drain?: boolean } = {}): Promise<EnforceStatus> {
  const pinDir = recordedPinDir(pinDirIn);
  const s = findStanding(hostLog, pinDir);
  if (!s) return { active: false, pinDir, problems: [] };
  const e = openEnforcer(s);
  try {
    const problems = [...e.problems];
    const lp = linkProblem(e);
    if (lp) problems.push(lp);
    let drained: Drained | undefined;
    if (o.drain !== false && e.maps.decisions) drained = await drainDecisions(hostLog, s.loadId, e.maps.decisions);
    if (drained?.invalid) problems.push(`${drained.invalid} ring buffer record(s) did not decode`);
    const allow = e.maps.allowSerial && e.maps.allowType ? readAllowlist({ allowSerial: e.maps.allowSerial, allowType: e.maps.allowType }) : undefined;
    const counts = e.maps.counts ? readCounts(e.maps.counts) : undefined;
    if (counts?.lost) problems.push(`${counts.lost} decision(s) were made while the ring buffer was full: counted, but not in the host log`);
    return {
      active: !lp && !e.problems.length, pinDir, loadId: s.loadId, plan: s.rec.plan, version: s.rec.version, signer: s.rec.signer?.name, since: s.rec.time,
      ...(e.prog ? { programId: s.rec.programs?.[0]?.id } : {}), ...(e.link ? { linkId: linkInfo(e.link).id } : {}),
      ...(allow ? { allow: { serials: allow.serials.map((serial) => ({ serial, ...(describe(serial) ? { description: describe(serial) } : {}) })), types: allow.types } } : {}),
      ...(counts ? { counts } : {}), ...(drained ? { drained: drained.appended } : {}), problems,
    };
  } finally {
    e.close();
  }
}

export interface OffResult {
  /** Was an enforcer standing at the pin directory? */
  wasActive: boolean;
  pinDir: string;
  loadId?: string;
  removed: string[];
  /** BPF_LINK_DETACH detached it at once (else the link went with its last pin). */
  detached?: boolean;
  counts?: EnforcementCounts;
  drained: number;
  notes: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function enforceOff(pinDirIn: string, hostLog: string): Promise<OffResult> {
  const pinDir = recordedPinDir(pinDirIn);
  const s = findStanding(hostLog, pinDir);
  if (!s) return { wasActive: false, pinDir, removed: [], drained: 0, notes: [`no enforcer load is recorded at ${pinDir} in the host log ${hostLog}: nothing to do`] };
  const e = openEnforcer(s);
  const notes = [...e.problems];
  try {
    let drained = 0;
    const ring = e.maps.decisions;
    if (ring) drained += (await drainDecisions(hostLog, s.loadId, ring)).appended;
    const linkId = e.link ? linkInfo(e.link).id : s.rec.pinned?.find((p) => p.kind === 'link')?.id;
    const detached = e.link ? linkDetach(e.link) : false;
    e.link?.close();
    // Pins removed by hand (root can: SECURITY.md) leave nothing to unload; the `off` record says so.
    const gone = !existsSync(pinDir);
    if (gone) notes.push(`${pinDir} was already gone (removed without bpfseal enforce --off); recording the enforcer as off`);
    const u = gone ? { removed: [] as string[] } : await unloadDir(pinDir, hostLog);
    // Without a detach operation the kernel releases the link with its last reference (the pin just
    // removed, after an RCU grace period); another process holding an fd to it keeps it attached.
    if (linkId !== undefined && !detached) {
      const until = Date.now() + 5000;
      while (linkExists(linkId) && Date.now() < until) await sleep(20);
      if (linkExists(linkId)) {
        throw new BpfsealError('kernel', 'ENFORCE_STILL_ATTACHED', `the pins are removed (host log: unloaded), but link ${linkId} still exists after 5 s: another process holds a reference to it (bpftool link show id ${linkId}); enforcement stays on until it closes it`);
      }
    }
    if (ring) drained += (await drainDecisions(hostLog, s.loadId, ring)).appended;
    const counts = e.maps.counts ? readCounts(e.maps.counts) : undefined;
    const log = await openHostLogForWriting(hostLog);
    try {
      await log.append(Buffer.from(JSON.stringify(enforcementRecord({ event: 'off', loadId: s.loadId, pinDir, ...(counts ? { counts } : {}), reason: gone ? 'bpfseal enforce --off: its pins were already gone' : 'bpfseal enforce --off' }))));
    } finally {
      log.close();
    }
    return { wasActive: true, pinDir, loadId: s.loadId, removed: u.removed, detached, ...(counts ? { counts } : {}), drained, notes };
  } finally {
    e.close();
  }
}
