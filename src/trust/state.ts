/**
 * Host anti-rollback state: the lowest release version the host still accepts per plan name.
 *
 * The host load log is the source of truth (hostlog/floor.ts derives the floor from its allowed and
 * aborted records under the host lock); this file caches the result so that `verify` — unprivileged,
 * lock-free, advisory — can check rollback without reading the log, and records how much of which log
 * it covers. Versions a file holds from elsewhere (an older bpfseal, or an operator) are a `base` that
 * the log can raise but never lower. The file is world-readable (versions are not secret) and written
 * durably; a missing file is an empty state, a corrupt one is an error, never a guess.
 */
import { BpfsealError, InputError } from '../errors.js';
import { writeFileDurable } from '../fsx/durable.js';
import { ensureDirectory } from '../fsx/dirs.js';
import { TRUST_FILE_UNSAFE } from '../fsx/trusted.js';
import { readInput } from '../fsx/read.js';
import { dirname } from 'node:path';

export const DEFAULT_STATE = '/var/lib/bpfseal/state.json';

export interface HostState {
  /** Floor per plan: max(base, highest version of an allowed, not aborted load in the host log). */
  versions: Map<string, number>;
  /** Versions that did not come from the host log (never lowered by it). */
  base: Map<string, number>;
  /** Which host log, and how many of its entries, `versions` covers. */
  hostLog?: { logId: string; size: number };
}

function toMap(v: unknown, path: string): Map<string, number> {
  if (v === undefined) return new Map();
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw corrupt(path);
  const m = new Map<string, number>();
  for (const [k, n] of Object.entries(v)) {
    if (!Number.isSafeInteger(n) || (n as number) < 0) throw corrupt(path);
    m.set(k, n as number);
  }
  return m;
}

function corrupt(path: string): InputError {
  return new InputError('STATE_INVALID', `${path}: anti-rollback state is corrupt; refusing to guess (inspect or remove it)`, { file: path });
}

export function emptyState(): HostState {
  return { versions: new Map(), base: new Map() };
}

/** Read the state file; ENOENT is an empty state. Throws STATE_UNREADABLE (e.g. EACCES) or STATE_INVALID. */
export function readState(path: string): HostState {
  let text: string;
  try {
    text = readInput(path, { kind: 'state', trusted: 'the anti-rollback state' }).toString('utf8');
  } catch (e) {
    if ((e as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT') return emptyState();
    if (e instanceof BpfsealError && e.code === TRUST_FILE_UNSAFE) throw e;
    throw new InputError('STATE_UNREADABLE', `${path}: cannot read anti-rollback state (${(e as Error).message.replace(`${path}: `, '')})`, { file: path, cause: e });
  }
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw corrupt(path);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw corrupt(path);
  const versions = toMap(v.versions, path);
  // Format 1 files ({versions}) came from before the host log was the source of truth: all base.
  const base = v.format === undefined ? new Map(versions) : toMap(v.base, path);
  const h = v.hostLog as { logId?: unknown; size?: unknown } | undefined;
  if (h !== undefined && (typeof h !== 'object' || typeof h.logId !== 'string' || !Number.isSafeInteger(h.size))) throw corrupt(path);
  return { versions, base, ...(h ? { hostLog: { logId: h.logId as string, size: h.size as number } } : {}) };
}

export function writeState(path: string, s: HostState): void {
  ensureDirectory(dirname(path), 0o755, 'STATE_UNWRITABLE');
  const obj = (m: Map<string, number>) => Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const doc = { format: 2, versions: obj(s.versions), base: obj(s.base), ...(s.hostLog ? { hostLog: s.hostLog } : {}) };
  writeFileDurable(path, `${JSON.stringify(doc, null, 2)}\n`, 0o644, 'STATE_UNWRITABLE');
}
