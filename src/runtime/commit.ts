/**
 * Committing a load: record or undo, as a property of the library, under SIGKILL at any moment.
 *
 * Under the host lock (hostlog/hostlog.ts), after finishing any load a crash interrupted:
 *   1. the anti-rollback floor is derived from the host log again and checked (a newer version may
 *      have committed since this release was verified);
 *   2. a pending marker, then the `allowed` record, are made durable — before any pin exists;
 *   3. the objects are pinned into a fresh staging directory (pindir.ts), which is renamed into place;
 *   4. the state cache is refreshed and the marker removed.
 * A failure after the record removes the staging pins and appends `aborted`; a crash leaves the marker,
 * and recovery (the next commit, unload or `bpfseal recover`) removes the staging pins and appends
 * `aborted`, or, when the rename had happened, finds the pins in place and completes the load. So no
 * pin exists without an allowed record, a record whose pins are not there is marked aborted or is
 * still pending (audit --kernel reports it), and the floor equals the highest load that stands.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, renameSync, rmdirSync, unlinkSync } from 'node:fs';
import { onBpffs } from './bpffs.js';
import { dirname, join } from 'node:path';
import { at, BpfsealError, VerifyError } from '../errors.js';
import { appendDecision, hostLock, listPending, openHostLogForWriting, readDecisions, refreshState, removePending, writePending, type PendingLoad } from '../hostlog/hostlog.js';
import { decision, type LoadDecision } from '../hostlog/records.js';
import type { TransparencyLog } from '../tlog/store.js';
import type { Plan } from '../plan/types.js';
import type { Handle, KernelBackend } from './backend.js';
import { makeStaging, pinTarget, STAGING_PREFIX, stagingPath } from './pindir.js';
import type { LoadedCollection } from './replay.js';
import { pinName } from '../plan/codec.js';
import { pinFileName } from '../plan/names.js';
import { savePlan } from '../attest/envelopes.js';
import { loadEvidence } from './evidence.js';

export interface CommitInput {
  plan: Plan;
  collection: LoadedCollection;
  backend: KernelBackend;
  pinDir: string;
  hostLog: string;
  statePath: string;
  allowRollback: boolean;
  /** Facts for the allowed record (plan, digest, version, signer, release, loader, fixups). */
  facts: Omit<LoadDecision, 'type' | 'time' | 'host' | 'bootId' | 'decision' | 'loadId' | 'pinDir' | 'pins' | 'pinned' | 'programs' | 'maps'>;
  /** Called before each step ('record', 'pin', 'rename', 'done'); tests inject failures or kills here. */
  onStep?: (step: string) => void | Promise<void>;
  /**
   * The verified plan's canonical bytes: kept beside the host log (plans/<sha256>.plan) before the
   * record, so `audit --kernel` can compare frozen maps with the plan's initial values from the host
   * log alone.
   */
  planBytes?: Buffer;
  /** BPF links made for this load (enforce attaches its program), pinned at <dir>/links/<name> with the rest. */
  links?: LinkPin[];
}

/** A link to pin with a load: its kernel id goes into the record, like every pin's. */
export interface LinkPin {
  name: string;
  link: Handle;
  id: number;
}

export const LINKS_DIR = 'links';

export interface Committed {
  loadId: string;
  pinDir: string;
  pins: string[];
  hostLogIndex: number;
  /** Loads an earlier crash left pending, finished or undone before this one. */
  recovered: RecoveredLoad[];
  notes: string[];
}

export interface RecoveredLoad {
  loadId: string;
  /** stuck: its staging pins could not be removed (or its staging path is not bpfseal's): the marker stays. */
  outcome: 'aborted' | 'completed' | 'unreadable' | 'stuck';
  pinDir?: string;
  /** stuck: what is in the way, for the operator. */
  problems?: string[];
}

/** Final pin paths of a plan's objects (programs, then maps; inner templates are not pinned). */
export function pinPaths(plan: Plan, dir: string): { programs: string[]; maps: (string | undefined)[] } {
  return {
    programs: plan.programs.map((p) => join(dir, pinFileName(p.name))),
    maps: plan.maps.map((m) => (m.kind === 'inner' ? undefined : join(dir, 'maps', pinName(m)))),
  };
}

/** Remove a staging directory made by makeStaging: only its pins and its maps/ and links/ directories. */
function removeStaging(staging: string): string[] {
  const problems: string[] = [];
  for (const d of [join(staging, 'maps'), join(staging, LINKS_DIR), staging]) {
    let names: string[] = [];
    try {
      names = readdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      problems.push(`${d}: ${(e as NodeJS.ErrnoException).code}`);
    }
    for (const n of names) {
      const p = join(d, n);
      try {
        if (lstatSync(p).isDirectory()) continue;
        unlinkSync(p);
      } catch (e) {
        problems.push(`${p}: ${(e as NodeJS.ErrnoException).code}`);
      }
    }
    try {
      rmdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`${d}: ${(e as NodeJS.ErrnoException).code}`);
    }
  }
  return problems;
}

/** Are the pins of an allowed record in place (every program pin is the object with the recorded id)? */
export type PinCheck = (rec: LoadDecision) => boolean;

/** Finish or undo every load a crash left pending. Caller holds the host lock. */
export async function recoverLocked(log: TransparencyLog, dir: string, pinsInPlace: PinCheck): Promise<RecoveredLoad[]> {
  const pending = listPending(dir);
  if (!pending.length) return [];
  const allowed = new Map<string, LoadDecision>();
  for (const { decision: d } of readDecisions(log)) if (d?.decision === 'allowed') allowed.set(d.loadId!, d);
  const out: RecoveredLoad[] = [];
  for (const { loadId, load } of pending) {
    if (!load) {
      removePending(dir, loadId);
      out.push({ loadId, outcome: 'unreadable' });
      continue;
    }
    const rec = allowed.get(loadId);
    // The marker names its staging directory; recovery only ever removes the one commit would have
    // made for this load (bpfseal_staging_<loadId> beside the pin directory, on a bpffs, a real
    // directory): a marker edited to name another path makes recovery touch nothing.
    const expected = join(dirname(load.pinDir), `${STAGING_PREFIX}${loadId}`);
    if (load.staging !== expected) {
      out.push({ loadId, outcome: 'stuck', pinDir: load.pinDir, problems: [`the marker names staging ${load.staging}, not ${expected}; left alone`] });
      continue;
    }
    let staged = false;
    try {
      const st = lstatSync(load.staging);
      if (!st.isDirectory() || !onBpffs(load.staging)) {
        out.push({ loadId, outcome: 'stuck', pinDir: load.pinDir, problems: [`${load.staging}: not a staging directory on a bpf filesystem; left alone`] });
        continue;
      }
      staged = true;
    } catch {
      staged = false;
    }
    if (staged) {
      const problems = removeStaging(load.staging);
      if (problems.length) {
        // Pins that stay hold kernel objects: keep the marker so the next recovery tries again.
        out.push({ loadId, outcome: 'stuck', pinDir: load.pinDir, problems });
        continue;
      }
    }
    if (rec && !staged && pinsInPlace(rec)) {
      out.push({ loadId, outcome: 'completed', pinDir: load.pinDir });
    } else {
      // Aborted even when no allowed record is visible: a writer killed mid-append may have left a
      // complete record that the next commit (this one) makes durable just before the aborted record.
      await appendDecision(log, decision({ decision: 'aborted', loadId, plan: load.plan, version: load.version, pinDir: load.pinDir, reason: 'interrupted before its pins were in place; recovery removed them' }));
      out.push({ loadId, outcome: 'aborted', pinDir: load.pinDir });
    }
    removePending(dir, loadId);
  }
  return out;
}

/** Run `fn` holding the host lock of `dir`, on its host log, after recovering interrupted loads. */
export async function withHostLock<T>(dir: string, pinsInPlace: PinCheck, fn: (log: TransparencyLog, recovered: RecoveredLoad[]) => Promise<T>): Promise<T> {
  let log: TransparencyLog;
  try {
    log = await openHostLogForWriting(dir);
  } catch (e) {
    throw new BpfsealError('input', 'HOST_LOG_FAILED', `cannot use the host log ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const lock = hostLock(dir);
  try {
    lock.acquire();
    try {
      // The handle was opened before the lock: read the checkpoint again, or records another holder
      // appended meanwhile would be invisible to recovery and to the floor.
      log.checkpoint();
      const recovered = await recoverLocked(log, dir, pinsInPlace);
      return await fn(log, recovered);
    } finally {
      lock.unlock();
    }
  } finally {
    lock.close();
    log.close();
  }
}

/** The plan beside the host log, before the record that names its digest. */
function keepPlan(c: CommitInput): void {
  if (!c.planBytes) return;
  try {
    savePlan(c.hostLog, c.planBytes);
  } catch (e) {
    throw new BpfsealError('input', 'HOST_LOG_FAILED', `could not keep the plan beside the host log ${c.hostLog} (${(e as Error).message}); nothing was pinned`, { cause: e });
  }
}

export async function commitLoad(c: CommitInput, pinsInPlace: PinCheck): Promise<Committed> {
  try {
    return await commit(c, pinsInPlace);
  } catch (e) {
    // The host log could not be opened or written before the record: nothing was pinned.
    if (e instanceof BpfsealError && e.code === 'HOST_LOG_FAILED' && !/nothing was pinned/.test(e.message)) e.message += '; the load was undone: nothing was pinned';
    throw e;
  }
}

async function commit(c: CommitInput, pinsInPlace: PinCheck): Promise<Committed> {
  const target = pinTarget(c.pinDir);
  const step = async (s: string) => { await c.onStep?.(s); };
  return withHostLock(c.hostLog, pinsInPlace, async (log, recovered) => {
    const state = refreshState(log, c.statePath);
    const floor = state.versions.get(c.plan.name);
    const version = c.facts.version!;
    if (floor !== undefined && version < floor && !c.allowRollback) {
      throw new VerifyError('ROLLBACK', `release version ${version} of '${c.plan.name}' is older than version ${floor}, which this host loaded meanwhile (anti-rollback, checked again at commit)`);
    }
    pinTarget(c.pinDir); // again, under the lock: another load may have taken the directory meanwhile
    const loadId = randomBytes(16).toString('hex');
    const paths = pinPaths(c.plan, target.dir);
    const links = c.links ?? [];
    const linkPath = (dir: string, l: LinkPin) => join(dir, LINKS_DIR, pinFileName(l.name));
    const pins = [...paths.programs, ...paths.maps.filter((p): p is string => p !== undefined), ...links.map((l) => linkPath(target.dir, l))];
    const rec0 = c.collection.record;
    const pinned = [
      ...c.plan.programs.map((p, i) => ({ path: at(paths.programs, i, 'program pin'), kind: 'prog' as const, id: rec0.programs.find((x) => x.name === p.name)!.id })),
      ...c.plan.maps.flatMap((m, i) => {
        const path = at(paths.maps, i, 'map pin'); // undefined for an inner map: it is not pinned
        return path ? [{ path, kind: 'map' as const, id: at(rec0.maps, i, 'map record').id }] : [];
      }),
      ...links.map((l) => ({ path: linkPath(target.dir, l), kind: 'link' as const, id: l.id })),
    ];
    if (links.length && c.plan.programs.some((p) => pinFileName(p.name) === LINKS_DIR)) {
      throw new BpfsealError('input', 'PIN_NAME_CONFLICT', `plan '${c.plan.name}' has a program pinned as '${LINKS_DIR}', where this load pins its links`);
    }
    const staging = stagingPath(target, loadId);
    const pending: PendingLoad = { loadId, plan: c.plan.name, version, pinDir: target.dir, staging, time: new Date().toISOString() };
    // Read back before the record: the map ids bound to each program and each frozen map's contents.
    const ev = loadEvidence(c.plan, c.collection);
    keepPlan(c);
    writePending(c.hostLog, pending);
    let index: number;
    try {
      await step('record');
      index = await appendDecision(log, decision({ ...c.facts, decision: 'allowed', loadId, pinDir: target.dir, pins, pinned, programs: ev.programs, maps: ev.maps, ...(ev.uid !== undefined ? { uid: ev.uid } : {}) }));
    } catch (e) {
      removePending(c.hostLog, loadId);
      if (e instanceof BpfsealError && e.code !== 'LOCK_TIMEOUT' && !e.code.startsWith('TLOG_')) throw e;
      throw new BpfsealError('input', 'HOST_LOG_FAILED', `could not record the load in the host log ${c.hostLog} (${(e as Error).message}); the load was undone: nothing was pinned`, { cause: e });
    }
    try {
      await step('pin');
      makeStaging(target, loadId, links.length ? [LINKS_DIR] : []);
      const staged = pinPaths(c.plan, staging);
      c.plan.programs.forEach((p, i) => c.backend.pin(c.collection.programs.get(p.name)!, at(staged.programs, i, 'program pin')));
      c.plan.maps.forEach((m, i) => {
        const path = at(staged.maps, i, 'map pin');
        if (path) c.backend.pin(c.collection.maps.get(m.name)!, path);
      });
      for (const l of links) c.backend.pin(l.link, linkPath(staging, l));
      await step('rename');
      try {
        renameSync(staging, target.dir);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new BpfsealError('usage', code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EPERM' ? 'PIN_DIR_IN_USE' : 'PIN_FAILED',
          `${target.dir}: cannot put the pins in place (${code}${code === 'EPERM' ? ': another user owns a directory there' : code === 'ENOTEMPTY' ? ': it holds pins' : ''})`, { cause: e });
      }
    } catch (e) {
      const problems = removeStaging(staging);
      let aborted = true;
      try {
        await appendDecision(log, decision({ decision: 'aborted', loadId, plan: c.plan.name, version, pinDir: target.dir, reason: (e as Error).message }));
      } catch {
        aborted = false; // the marker stays: recovery appends it
      }
      if (aborted && !problems.length) removePending(c.hostLog, loadId);
      const err = e instanceof BpfsealError ? e : new BpfsealError('input', 'PIN_FAILED', (e as Error).message, { cause: e });
      if (problems.length) err.message += `; rollback could not remove ${problems.join(', ')} (the next load or \`bpfseal recover\` retries)`;
      (err as { recorded?: boolean }).recorded = true; // the host log has this load as allowed, then aborted
      throw err;
    }
    await step('done');
    const notes: string[] = [];
    try {
      refreshState(log, c.statePath);
    } catch (e) {
      notes.push(`the anti-rollback cache ${c.statePath} was not updated (${(e as Error).message}); the host log has the load, and the next load derives the floor from it`);
    }
    removePending(c.hostLog, loadId);
    return { loadId, pinDir: target.dir, pins, hostLogIndex: index, recovered, notes };
  });
}
