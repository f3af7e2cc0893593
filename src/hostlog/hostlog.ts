/**
 * The host load log: every `load` decision appended to a transparency log of the host's own (the same
 * machinery as the attestation log: RFC 6962 tree, signed checkpoints, crash safety). Default
 * /var/lib/bpfseal/host-log, or $BPFSEAL_HOST_LOG, or --host-log. Beside it:
 *   load.lock   the host lock: every commit, unload and recovery holds it (runtime/commit.ts);
 *   loads-pending/ one marker per load between its allowed record and its completion, so that a load
 *               killed at any moment is found and finished or undone by the next holder of the lock.
 */
import { readdirSync, unlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { createExclusive, fsyncDir } from '../fsx/durable.js';
import { ensureDirectory } from '../fsx/dirs.js';
import { FileLock } from '../fsx/lock.js';
import { readInput } from '../fsx/read.js';
import { openLog, type TransparencyLog } from '../tlog/store.js';
import { openLogForWriting } from '../tlog/migrate.js';
import { rekorKind } from '../attest/rekor-body.js';
import { emptyState, readState, writeState, type HostState } from '../trust/state.js';
import { parseHostRecord, type EnforcementRecord, type LoadDecision } from './records.js';

export const DEFAULT_HOST_LOG = '/var/lib/bpfseal/host-log';

export function hostLogDir(flag?: string): string {
  return resolve(flag ?? process.env.BPFSEAL_HOST_LOG ?? DEFAULT_HOST_LOG);
}

export function openHostLog(dir: string, create = true): TransparencyLog {
  return openLog(dir, { create });
}

/** The host log for appending: created on first use, converted from the first layout if need be. */
export function openHostLogForWriting(dir: string): Promise<TransparencyLog> {
  return openLogForWriting(dir);
}

/** Append a decision; resolves with its index once it is durable. */
export async function appendDecision(log: TransparencyLog, d: LoadDecision): Promise<number> {
  return (await log.append(Buffer.from(JSON.stringify(d)))).index;
}

/** Open, append one decision, close. */
export async function recordDecision(dir: string, d: LoadDecision): Promise<number> {
  const log = await openHostLogForWriting(dir);
  try {
    return await appendDecision(log, d);
  } finally {
    log.close();
  }
}

export interface ReadDecision {
  index: number;
  /** undefined: the entry is not a well-formed load decision (an enforcement record, or malformed). */
  decision?: LoadDecision;
  /**
   * The entry is a Rekor "dsse" body: a signed host report that `audit --kernel --attest` appended
   * (src/audit/kernel/attest.ts), not a load decision. It decides nothing about loads.
   */
  report?: true;
  /** An enforcement record (bpfseal enforce); an entry with neither is malformed (audit reports it). */
  enforcement?: EnforcementRecord;
}

/** Every entry of a host log from `from` up to `to` (default: its size), parsed; entries that are not decisions have no `decision`. */
export function readDecisions(log: TransparencyLog, from = 0, to = log.size): ReadDecision[] {
  const out: ReadDecision[] = [];
  for (const { index, entry } of log.entries(from, to)) out.push(readDecision(index, entry));
  return out;
}

/** One host-log entry as a decision, an enforcement record, a signed report, or neither. */
export function readDecision(index: number, entry: Buffer): ReadDecision {
  const { decision, enforcement } = parseHostRecord(entry);
  if (decision) return { index, decision };
  if (enforcement) return { index, enforcement };
  return rekorKind(entry)?.kind === 'dsse' ? { index, report: true } : { index };
}

/** The host lock of a host log directory (created with the log). */
export function hostLock(dir: string): FileLock {
  return new FileLock(join(dir, 'load.lock'), `the host lock of ${dir}`);
}

// ---------------------------------------------------------------------------------------------------
// Pending markers

export interface PendingLoad {
  loadId: string;
  plan: string;
  version: number;
  /** Final pin directory (real path) and the staging directory the pins are made in first. */
  pinDir: string;
  staging: string;
  time: string;
}

const PENDING = 'loads-pending';

export function writePending(dir: string, p: PendingLoad): void {
  ensureDirectory(join(dir, PENDING), 0o755, 'HOST_LOG_FAILED');
  if (!createExclusive(join(dir, PENDING, `${p.loadId}.json`), JSON.stringify(p), 0o644, 'HOST_LOG_FAILED')) {
    throw new InputError('HOST_LOG_FAILED', `load id ${p.loadId} is already pending in ${dir}`);
  }
}

export function removePending(dir: string, loadId: string): void {
  try {
    unlinkSync(join(dir, PENDING, `${loadId}.json`));
    fsyncDir(join(dir, PENDING));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new InputError('HOST_LOG_FAILED', `${join(dir, PENDING, `${loadId}.json`)}: cannot remove (${(e as NodeJS.ErrnoException).code})`);
  }
}

/** Pending loads (markers that do not parse are returned as ids with no load, for the caller to report). */
export function listPending(dir: string): { loadId: string; load?: PendingLoad }[] {
  let names: string[];
  try {
    names = readdirSync(join(dir, PENDING));
  } catch {
    return [];
  }
  return names.filter((n) => /^[0-9a-f]{32}\.json$/.test(n)).sort().map((n) => {
    const loadId = n.slice(0, -5);
    try {
      const v = JSON.parse(readInput(join(dir, PENDING, n), { kind: 'key', noFollow: true }).toString('utf8')) as PendingLoad;
      const ok = v.loadId === loadId && typeof v.plan === 'string' && Number.isSafeInteger(v.version) && typeof v.pinDir === 'string' && typeof v.staging === 'string';
      return ok ? { loadId, load: v } : { loadId };
    } catch {
      return { loadId };
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// Anti-rollback floor, derived from the log

/** Floors from every record: the highest version per plan of an allowed load that was not aborted. */
function deriveFloors(decisions: readonly ReadDecision[]): Map<string, number> {
  const aborted = new Set<string>();
  for (const { decision: d } of decisions) if (d?.decision === 'aborted' && d.loadId) aborted.add(d.loadId);
  const floors = new Map<string, number>();
  for (const { decision: d } of decisions) {
    if (d?.decision !== 'allowed' || aborted.has(d.loadId!)) continue;
    floors.set(d.plan!, Math.max(floors.get(d.plan!) ?? -1, d.version!));
  }
  return floors;
}

function merge(base: Map<string, number>, derived: Map<string, number>): Map<string, number> {
  const out = new Map(base);
  for (const [k, v] of derived) out.set(k, Math.max(out.get(k) ?? -1, v));
  return out;
}

/**
 * Bring the state cache up to date with the host log and return it. Caller holds the host lock.
 * Incremental when the cache covers a prefix of this log and nothing in the new records was aborted;
 * otherwise every record is read again (after a failure or a crash: rare).
 */
export function refreshState(log: TransparencyLog, statePath: string): HostState {
  const cached = readState(statePath);
  const logId = log.publicKey.logId.toString('hex');
  const size = log.size;
  const h = cached.hostLog;
  let state: HostState;
  if (h && h.logId === logId && h.size <= size) {
    const fresh = readDecisions(log, h.size);
    if (fresh.some((r) => r.decision?.decision === 'aborted')) state = { base: cached.base, versions: merge(cached.base, deriveFloors(readDecisions(log))) };
    else state = { base: cached.base, versions: merge(cached.versions, deriveFloors(fresh)) };
  } else {
    // Another log (or none yet): what the file held stays a floor; the log can only raise it.
    const base = h ? merge(cached.base, cached.versions) : cached.base;
    state = { base, versions: merge(base, deriveFloors(readDecisions(log))) };
  }
  state.hostLog = { logId, size };
  const same = h && h.logId === logId && h.size === size;
  if (!same) writeState(statePath, state);
  return state;
}

export { emptyState };
