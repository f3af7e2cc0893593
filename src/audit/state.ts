/**
 * What `audit` remembers between runs, to catch a log rewritten behind its back: for each log key, the
 * last checkpoint it accepted (a later tree must be an extension of it: RFC 6962 consistency), and for
 * each log directory, which log key it held. A directory whose log was deleted and started again with
 * a new key is caught by the second; a log whose history was replaced under the same key by the first.
 *
 *   { "format": "bpfseal-audit-state/1",
 *     "logs": { "<log id hex>": { "origin": ..., "checkpoint": "<signed note>" } },
 *     "dirs": { "<real path>": "<log id hex>" } }
 *
 * A file holding just a signed checkpoint (what audit --state wrote before) is read as that log's entry.
 * Updates are a locked read-modify-write, written durably.
 */
import { dirname, join } from 'node:path';
import { writeFileDurable } from '../fsx/durable.js';
import { ensureDirectory } from '../fsx/dirs.js';
import { FileLock } from '../fsx/lock.js';
import { TRUST_FILE_UNSAFE } from '../fsx/trusted.js';
import { readInput } from '../fsx/read.js';
import { BpfsealError, InputError } from '../errors.js';

export const AUDIT_STATE_FORMAT = 'bpfseal-audit-state/1';

export interface AuditState {
  logs: Map<string, { origin: string; checkpoint: string }>;
  dirs: Map<string, string>;
  /** A bare checkpoint from an old state file, not yet assigned to a log. */
  legacyCheckpoint?: string;
}

export function defaultAuditStatePath(): string {
  return join(process.env.BPFSEAL_STATE_DIR ?? '/var/lib/bpfseal', 'audit-state.json');
}

export function readAuditState(path: string): AuditState {
  let text: string;
  try {
    text = readInput(path, { kind: 'state', trusted: 'the audit state' }).toString('utf8');
  } catch (e) {
    if ((e as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT') return { logs: new Map(), dirs: new Map() };
    if (e instanceof BpfsealError && e.code === TRUST_FILE_UNSAFE) throw e;
    throw new InputError('AUDIT_STATE_UNREADABLE', `${path}: cannot read the audit state (${(e as Error).message.replace(`${path}: `, '')})`, { file: path });
  }
  if (!text.trimStart().startsWith('{')) return { logs: new Map(), dirs: new Map(), legacyCheckpoint: text };
  const bad = () => new InputError('AUDIT_STATE_INVALID', `${path}: the audit state is corrupt; refusing to guess (inspect or remove it, and the next audit starts over)`, { file: path });
  let v: { format?: unknown; logs?: Record<string, { origin?: unknown; checkpoint?: unknown }>; dirs?: Record<string, unknown> };
  try {
    v = JSON.parse(text) as typeof v;
  } catch {
    throw bad();
  }
  if (v.format !== AUDIT_STATE_FORMAT || !v.logs || typeof v.logs !== 'object' || !v.dirs || typeof v.dirs !== 'object') throw bad();
  const logs = new Map<string, { origin: string; checkpoint: string }>();
  for (const [id, l] of Object.entries(v.logs)) {
    if (!/^[0-9a-f]{64}$/.test(id) || typeof l?.origin !== 'string' || typeof l.checkpoint !== 'string') throw bad();
    logs.set(id, { origin: l.origin, checkpoint: l.checkpoint });
  }
  const dirs = new Map<string, string>();
  for (const [d, id] of Object.entries(v.dirs)) {
    if (typeof id !== 'string') throw bad();
    dirs.set(d, id);
  }
  return { logs, dirs };
}

/** Apply `update` to the state under its lock and write it back durably. */
export function updateAuditState(path: string, update: (s: AuditState) => void): void {
  ensureDirectory(dirname(path), 0o755, 'AUDIT_STATE_UNWRITABLE');
  const lock = new FileLock(`${path}.lock`, `the audit state ${path}`);
  try {
    lock.hold(() => {
      const s = readAuditState(path);
      update(s);
      const doc = { format: AUDIT_STATE_FORMAT, logs: Object.fromEntries(s.logs), dirs: Object.fromEntries(s.dirs) };
      writeFileDurable(path, `${JSON.stringify(doc, null, 2)}\n`, 0o644, 'AUDIT_STATE_UNWRITABLE');
    });
  } finally {
    lock.close();
  }
}
