/**
 * The enforcer that stands on this host: the `allowed` host log record of its load (pin directory,
 * every pin with its kernel id, `links/` included) not followed by `aborted` or `unloaded`, and the
 * pins opened again by path, each checked to be the object the record names.
 */
import { existsSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { mapInfo, objGet, progInfo } from '../kernel/bpf.js';
import { KernelError } from '../kernel/errors.js';
import type { Fd } from '../kernel/fd.js';
import { linkInfo } from '../kernel/link.js';
import type { ReadDecision } from '../hostlog/hostlog.js';
import type { EnforcementRecord, LoadDecision } from '../hostlog/records.js';
import { ENFORCER } from './shape.js';

/** Where `enforce` pins the enforcer unless told otherwise. */
export const DEFAULT_ENFORCE_PIN = '/sys/fs/bpf/bpfseal-enforce';

export interface Standing {
  /** The load's allowed record. */
  rec: LoadDecision;
  loadId: string;
  pinDir: string;
  /** Its `on` record, when the host log has one. */
  on?: EnforcementRecord;
}

/** The real path a load records for `dir` (pindir.ts: the parent resolved, the last component kept). */
export function recordedPinDir(dir: string): string {
  const abs = resolve(dir);
  try {
    return join(realpathSync(dirname(abs)), basename(abs));
  } catch {
    return abs;
  }
}

/** Standing enforcer loads (allowed, not aborted or unloaded, with an `on` record), oldest first. */
export function standingEnforcers(records: readonly ReadDecision[]): Standing[] {
  const gone = new Set<string>();
  const on = new Map<string, EnforcementRecord>();
  for (const { decision: d, enforcement: e } of records) {
    if (d?.loadId && (d.decision === 'aborted' || d.decision === 'unloaded')) gone.add(d.loadId);
    if (e?.event === 'on') on.set(e.loadId, e);
    if (e?.event === 'off') gone.add(e.loadId);
  }
  const out: Standing[] = [];
  for (const { decision: d } of records) {
    if (d?.decision !== 'allowed' || gone.has(d.loadId!) || !on.has(d.loadId!)) continue;
    out.push({ rec: d, loadId: d.loadId!, pinDir: d.pinDir!, on: on.get(d.loadId!) });
  }
  return out;
}

/** The standing load pinned at `dir`, if any (with or without its `on` record). */
export function standingAt(records: readonly ReadDecision[], dir: string): Standing | undefined {
  const want = recordedPinDir(dir);
  const gone = new Set<string>();
  let found: LoadDecision | undefined;
  let on: EnforcementRecord | undefined;
  for (const { decision: d, enforcement: e } of records) {
    if (d?.loadId && (d.decision === 'aborted' || d.decision === 'unloaded')) gone.add(d.loadId);
    else if (d?.decision === 'allowed' && d.pinDir === want) found = d;
    if (e?.event === 'on' && e.pinDir === want) on = e;
  }
  if (!found || gone.has(found.loadId!)) return undefined;
  return { rec: found, loadId: found.loadId!, pinDir: want, ...(on?.loadId === found.loadId ? { on } : {}) };
}

export interface OpenedEnforcer {
  prog?: Fd;
  link?: Fd;
  maps: Partial<Record<keyof typeof ENFORCER.maps, Fd>>;
  /** Pins that are missing or hold another object than the record names. */
  problems: string[];
  close(): void;
}

/** Open the pins of a standing enforcer load; what cannot be opened as recorded is a problem, not an error. */
export function openEnforcer(s: Standing): OpenedEnforcer {
  const fds: Fd[] = [];
  const out: OpenedEnforcer = { maps: {}, problems: [], close: () => { for (const f of fds.reverse()) f.close(); } };
  for (const p of s.rec.pinned ?? []) {
    if (!existsSync(p.path)) {
      out.problems.push(`${p.path} is missing`);
      continue;
    }
    let fd: Fd;
    try {
      fd = objGet(p.path);
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      out.problems.push(`${p.path}: ${e.message}`);
      continue;
    }
    fds.push(fd);
    let id: number;
    try {
      id = p.kind === 'prog' ? progInfo(fd).id : p.kind === 'link' ? linkInfo(fd).id : mapInfo(fd).id;
    } catch (e) {
      out.problems.push(`${p.path} is not a ${p.kind} pin (${(e as Error).message})`);
      continue;
    }
    if (id !== p.id) {
      out.problems.push(`${p.path} holds ${p.kind} id ${id}, not ${p.id} as load ${s.loadId} recorded`);
      continue;
    }
    const name = basename(p.path);
    if (p.kind === 'prog' && name === ENFORCER.program) out.prog = fd;
    else if (p.kind === 'link' && name === ENFORCER.program) out.link = fd;
    else if (p.kind === 'map') {
      const key = (Object.keys(ENFORCER.maps) as (keyof typeof ENFORCER.maps)[]).find((k) => ENFORCER.maps[k] === name);
      if (key) out.maps[key] = fd;
    }
  }
  return out;
}
