/**
 * Unloading: remove exactly the pins a recorded bpfseal load made, nothing else. Under the host lock,
 * the pin directory must be the one an allowed, not aborted or unloaded, record names; the whole tree
 * is checked before anything is removed (no symlinks, nothing the record does not list, and each
 * program pin is the very object the record names, by kernel id); then the pins go, and an `unloaded`
 * record is appended.
 */
import { lstatSync, readdirSync, realpathSync, rmdirSync, unlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BpfsealError } from '../errors.js';
import { mapInfo, objGet, progInfo } from '../kernel/bpf.js';
import { linkInfo } from '../kernel/link.js';
import { appendDecision, readDecisions } from '../hostlog/hostlog.js';
import { decision, type LoadDecision } from '../hostlog/records.js';
import { onBpffs } from './bpffs.js';
import { pinFileName } from '../plan/names.js';
import { LINKS_DIR, withHostLock, type RecoveredLoad } from './commit.js';

/** Is the pin at `path` the kernel object (`kind`, `id`)? False when absent, or another object. */
export function pinHolds(path: string, kind: 'prog' | 'map' | 'link', id: number): boolean {
  let fd;
  try {
    fd = objGet(path);
    return (kind === 'prog' ? progInfo(fd).id : kind === 'link' ? linkInfo(fd).id : mapInfo(fd).id) === id;
  } catch {
    return false;
  } finally {
    fd?.close();
  }
}

/** What an allowed record pinned (records older than `pinned` listed only program ids). */
function pinnedOf(rec: LoadDecision): { path: string; kind: 'prog' | 'map' | 'link'; id: number }[] {
  return rec.pinned ?? (rec.programs ?? []).map((p) => ({ path: join(rec.pinDir!, pinFileName(p.name)), kind: 'prog' as const, id: p.id }));
}

/**
 * Are the pins of an allowed record in place: its pin directory a real directory, and every pin the
 * object with the recorded id? (What recovery asks before calling a load complete; nothing vacuous: a
 * record that pins nothing is not in place.)
 */
export function pinsInPlace(rec: LoadDecision): boolean {
  if (!rec.pinDir) return false;
  try {
    if (!lstatSync(rec.pinDir).isDirectory()) return false;
  } catch {
    return false;
  }
  const pinned = pinnedOf(rec);
  return pinned.length > 0 && pinned.every((p) => pinHolds(p.path, p.kind, p.id));
}

function foreign(msg: string, file: string): BpfsealError {
  return new BpfsealError('usage', 'PIN_DIR_FOREIGN', `${msg}; refusing to remove anything`, { file });
}

/** The tree under `dir`, as relative paths; symlinks and unexpected directories are refused. */
function tree(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = lstatSync(p);
    if (st.isSymbolicLink()) throw foreign(`${p} is a symbolic link`, dir);
    if (st.isDirectory()) {
      if (name !== 'maps' && name !== LINKS_DIR) throw foreign(`${p} is a directory bpfseal did not make`, dir);
      for (const m of readdirSync(p)) {
        const q = join(p, m);
        if (!lstatSync(q).isFile()) throw foreign(`${q} is not a pin`, dir);
        out.push(`${name}/${m}`);
      }
    } else out.push(name);
  }
  return out.sort();
}

export interface UnloadResult {
  dir: string;
  removed: string[];
  loadId: string;
  plan: string;
  recovered: RecoveredLoad[];
}

export async function unloadDir(dirIn: string, hostLog: string): Promise<UnloadResult> {
  let dir: string;
  try {
    if (lstatSync(dirIn).isSymbolicLink()) throw foreign(`${dirIn} is a symbolic link`, dirIn);
    dir = realpathSync(dirIn);
  } catch (e) {
    if (e instanceof BpfsealError) throw e;
    throw new BpfsealError('usage', 'PIN_DIR_MISSING', `${dirIn} does not exist`, { file: dirIn });
  }
  if (!onBpffs(dir)) throw new BpfsealError('usage', 'BPFFS_NOT_MOUNTED', `${dir} is not on a bpf filesystem; refusing to remove anything there`, { file: dir });
  return withHostLock(hostLog, pinsInPlace, async (log, recovered) => {
    const gone = new Set<string>();
    let rec: LoadDecision | undefined;
    for (const { decision: d } of readDecisions(log)) {
      if (!d?.loadId) continue;
      if (d.decision === 'aborted' || d.decision === 'unloaded') gone.add(d.loadId);
      else if (d.decision === 'allowed' && d.pinDir === dir) rec = d;
    }
    if (!rec || gone.has(rec.loadId!)) throw foreign(`${dir}: the host log ${hostLog} records no bpfseal load pinned here that still stands`, dir);
    const pinned = pinnedOf(rec);
    const expected = new Map(pinned.map((p) => [relative(dir, p.path), p]));
    const found = tree(dir);
    const extra = found.filter((f) => !expected.has(f));
    if (extra.length) throw foreign(`${dir} holds ${extra.map((x) => `'${x}'`).join(', ')}, which the load did not pin`, dir);
    // Every pin still there must hold the object the load pinned (an unload killed midway left fewer).
    const swapped = found.filter((f) => { const p = expected.get(f)!; return !pinHolds(p.path, p.kind, p.id); });
    if (swapped.length) throw foreign(`${dir}: ${swapped.map((x) => `'${x}'`).join(', ')} no longer hold${swapped.length === 1 ? 's' : ''} the object load ${rec.loadId} recorded (replaced since?)`, dir);
    const removed: string[] = [];
    for (const f of found) {
      unlinkSync(join(dir, f));
      removed.push(join(dir, f));
    }
    for (const sub of ['maps', LINKS_DIR]) {
      try { rmdirSync(join(dir, sub)); } catch { /* the load had none */ }
    }
    rmdirSync(dir);
    await appendDecision(log, decision({ decision: 'unloaded', loadId: rec.loadId, plan: rec.plan, version: rec.version, pinDir: dir }));
    return { dir, removed, loadId: rec.loadId!, plan: rec.plan!, recovered };
  });
}

/** Finish or undo loads that a crash interrupted (`bpfseal recover`). */
export async function recoverHost(hostLog: string): Promise<RecoveredLoad[]> {
  return withHostLock(hostLog, pinsInPlace, async (_log, recovered) => recovered);
}
