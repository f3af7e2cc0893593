/**
 * What a load records about the kernel objects it made, read back from the kernel just before the
 * `allowed` record is written, so that `audit --kernel` can later tell the same objects, unchanged,
 * from anything else (src/audit/kernel/attribution.ts):
 *   - per program, the map ids the kernel bound to it (bpf_prog_info.map_ids);
 *   - per frozen map (.rodata, .kconfig), the SHA-256 of its value at key 0 as the kernel holds it
 *     (BPF_MAP_LOOKUP_ELEM), which for .kconfig includes the host-resolved values;
 *   - the uid that loaded them (the kernel's bpf_prog_info.created_by_uid for each program).
 * Only real-kernel handles are read; a model-kernel collection is returned unchanged.
 */
import { createHash } from 'node:crypto';
import { mapLookup } from '../kernel/bpf.js';
import { Fd } from '../kernel/fd.js';
import { progDetails } from '../kernel/info.js';
import type { MapRecord, ProgramRecord } from '../hostlog/records.js';
import type { Plan } from '../plan/types.js';
import type { LoadedCollection } from './replay.js';

export interface LoadEvidence {
  programs: ProgramRecord[];
  maps: MapRecord[];
  uid?: number;
}

const KEY0 = Buffer.alloc(4);

export function sha256Hex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export function loadEvidence(plan: Plan, c: LoadedCollection): LoadEvidence {
  const rec = c.record;
  const real = [...c.programs.values(), ...c.maps.values()].every((h) => h instanceof Fd);
  if (!real) return { programs: rec.programs, maps: rec.maps };
  let uid: number | undefined;
  const programs = rec.programs.map((p) => {
    const d = progDetails(c.programs.get(p.name) as Fd);
    uid ??= d.uid;
    return { ...p, mapIds: d.mapIds };
  });
  const maps = rec.maps.map((m) => {
    const pm = plan.maps.find((x) => x.name === m.name);
    if (!pm?.freeze) return m;
    const value = mapLookup(c.maps.get(m.name) as Fd, KEY0, pm.valueSize);
    return { ...m, frozenSha256: sha256Hex(value) };
  });
  return { programs, maps, ...(uid !== undefined ? { uid } : {}) };
}
