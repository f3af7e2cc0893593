/**
 * Host anti-rollback state: the highest release version loaded per plan name. One small JSON file,
 * replaced atomically; a missing file is an empty state.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { InputError } from '../errors.js';
import { writeFileDurable } from '../fsx/durable.js';

export const DEFAULT_STATE = '/var/lib/bpfseal/state.json';

export interface HostState {
  versions: Record<string, number>;
}

export function readState(path: string): HostState {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { versions: {} };
    throw new InputError('STATE_UNREADABLE', `${path}: cannot read anti-rollback state (${(e as NodeJS.ErrnoException).code})`, { file: path });
  }
  try {
    const v = JSON.parse(text) as HostState;
    if (typeof v.versions !== 'object' || v.versions === null || !Object.values(v.versions).every((n) => Number.isSafeInteger(n))) throw new Error('shape');
    return v;
  } catch {
    throw new InputError('STATE_INVALID', `${path}: anti-rollback state is corrupt; refusing to guess (inspect or remove it)`, { file: path });
  }
}

/**
 * Record that `version` of `plan` was loaded; never lowers a recorded version. Returns an undo for a
 * load that is rolled back afterwards (it restores the previous entry).
 */
export function recordVersion(path: string, plan: string, version: number): () => void {
  const s = readState(path);
  const before = s.versions[plan];
  if ((before ?? -1) >= version) return () => {};
  s.versions[plan] = version;
  write(path, s);
  return () => {
    const now = readState(path);
    if (now.versions[plan] !== version) return; // someone recorded a newer load meanwhile: keep it
    if (before === undefined) delete now.versions[plan];
    else now.versions[plan] = before;
    write(path, now);
  };
}

function write(path: string, s: HostState): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileDurable(path, JSON.stringify(s, null, 2) + '\n', 0o600);
}
