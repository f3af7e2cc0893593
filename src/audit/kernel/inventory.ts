/**
 * The kernel's side of `audit --kernel`: every BPF program loaded now, in one pass over the program id
 * table (BPF_PROG_GET_NEXT_ID, BPF_PROG_GET_FD_BY_ID, one BPF_OBJ_GET_INFO_BY_FD each: kernel/info.ts),
 * and, on demand, the value of a frozen map by id (BPF_MAP_GET_FD_BY_ID, BPF_MAP_LOOKUP_ELEM of key 0).
 * Objects that disappear while we look (ENOENT) are skipped; any other refusal ends the audit.
 */
import { createHash } from 'node:crypto';
import { mapFdById, mapInfo, mapLookup, progFdById, progNextId } from '../../kernel/bpf.js';
import { KernelError } from '../../kernel/errors.js';
import type { Fd } from '../../kernel/fd.js';
import { bootTimeMs, loadTimeIso, progDetails } from '../../kernel/info.js';
import { progTypeName } from '../../bpf/constants.js';

export interface LoadedProgram {
  id: number;
  name: string;
  /** bpftool's program type name. */
  type: string;
  tag: string;
  /** Map ids bound to the program (bpf_prog_info.map_ids), in the kernel's order. */
  mapIds: number[];
  /** bpf_prog_info.load_time placed on the wall clock (10 ms resolution), when /proc/uptime is readable. */
  loadTime?: string;
  /** bpf_prog_info.created_by_uid. */
  uid: number;
}

const ENOENT = 2;

function openById(id: number, open: (id: number) => Fd): Fd | undefined {
  try {
    return open(id);
  } catch (e) {
    if (e instanceof KernelError && e.errno === ENOENT) return undefined; // gone meanwhile
    throw e;
  }
}

/** Every program loaded now, in id order. */
export function loadedPrograms(): LoadedProgram[] {
  const boot = bootTimeMs();
  const out: LoadedProgram[] = [];
  for (let id = progNextId(0); id !== 0; id = progNextId(id)) {
    const fd = openById(id, progFdById);
    if (!fd) continue;
    try {
      const d = progDetails(fd);
      const loadTime = loadTimeIso(d.loadTimeNs, boot);
      out.push({ id: d.id, name: d.name, type: progTypeName(d.type), tag: d.tag, mapIds: d.mapIds, ...(loadTime ? { loadTime } : {}), uid: d.uid });
    } finally {
      fd.close();
    }
  }
  return out;
}

export type MapValue = { sha256: string; valueSize: number; name: string } | { missing: string };

/** Reads a map's value at key 0 by id (what a frozen .rodata/.kconfig array holds). */
export type MapReader = (mapId: number) => MapValue;

export function kernelMapReader(): MapReader {
  const cache = new Map<number, MapValue>();
  return (mapId) => {
    const hit = cache.get(mapId);
    if (hit) return hit;
    let v: MapValue;
    const fd = openById(mapId, mapFdById);
    if (!fd) v = { missing: `map ${mapId} no longer exists` };
    else {
      try {
        const info = mapInfo(fd);
        const value = mapLookup(fd, Buffer.alloc(Math.max(4, info.keySize)), info.valueSize);
        v = { sha256: createHash('sha256').update(value).digest('hex'), valueSize: info.valueSize, name: info.name };
      } catch (e) {
        if (!(e instanceof KernelError)) throw e;
        v = { missing: `map ${mapId}: ${e.message}` };
      } finally {
        fd.close();
      }
    }
    cache.set(mapId, v);
    return v;
  };
}
