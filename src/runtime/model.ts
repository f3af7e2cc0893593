/**
 * The model kernel: replays a plan in-process, without privileges, checking the sequence the way the
 * kernel's front door would (fd_array indices in range, referenced maps exist and fit, value offsets
 * inside the value, frozen maps not written, slots hold compatible objects, fix-ups resolved).
 * It is NOT the BPF verifier: it does not check program safety, and its reports say so.
 */
import { BpfsealError } from '../errors.js';
import { parseBtf, type Btf } from '../bpf/btf.js';
import { MAP_TYPE, MAP_TYPES, PROG_TYPES, ZERO_MAX_ENTRIES_MAP_TYPES } from '../bpf/constants.js';
import { CALL, INSN_SIZE, LD_IMM64, PSEUDO, PSEUDO_CALL, PSEUDO_KFUNC_CALL } from '../bpf/insn.js';
import { computeTag } from '../plan/tag.js';
import type { Handle, KernelBackend, MapCreateSpec, ObjectInfo, ProgLoadSpec } from './backend.js';

export const MODEL_DISCLAIMER = 'model kernel: structural checks only; the BPF verifier did not run';

export class ModelRejection extends BpfsealError {
  constructor(message: string) {
    super('kernel', 'MODEL_REJECTED', `model kernel: ${message}`);
    this.name = 'ModelRejection';
  }
}

type Kind = 'btf' | 'map' | 'prog';

class ModelObj implements Handle {
  closed = false;
  frozen = false;
  constructor(readonly kind: Kind, readonly value: number, readonly map?: MapCreateSpec, readonly prog?: ProgLoadSpec, readonly btf?: Btf) {}
  close(): void {
    this.closed = true;
  }
}

const T = (n: string) => MAP_TYPE.get(n)!;
const ARRAYS = new Set(['array', 'percpu_array', 'prog_array', 'perf_event_array', 'array_of_maps', 'cgroup_array'].map(T));
const FD_VALUE = new Set(['prog_array', 'array_of_maps', 'hash_of_maps', 'perf_event_array', 'cgroup_array'].map(T));
const NO_KEY_VALUE = new Set(['ringbuf', 'user_ringbuf'].map(T));

export interface ModelKernel extends KernelBackend {
  /** Pins the dry run would have made. */
  readonly wouldPin: string[];
}

export function modelKernel(): ModelKernel {
  let nextId = 1;
  const objects = new Map<number, ModelObj>();
  const wouldPin: string[] = [];
  const live = (h: Handle, kind: Kind, what: string): ModelObj => {
    if (!(h instanceof ModelObj) || h.closed || h.kind !== kind) throw new ModelRejection(`${what}: not a live ${kind}`);
    return h;
  };
  const make = (kind: Kind, map?: MapCreateSpec, prog?: ProgLoadSpec, btf?: Btf) => {
    const o = new ModelObj(kind, nextId++, map, prog, btf);
    objects.set(o.value, o);
    return o;
  };
  return {
    kind: 'model',
    wouldPin,
    btfLoad(raw) {
      try {
        return make('btf', undefined, undefined, parseBtf(raw));
      } catch (e) {
        throw new ModelRejection(`BTF does not parse: ${(e as Error).message}`);
      }
    },
    mapCreate(m) {
      const what = `map '${m.name}'`;
      if (!MAP_TYPES[m.type]) throw new ModelRejection(`${what}: unknown map type ${m.type}`);
      if (m.maxEntries === 0 && !ZERO_MAX_ENTRIES_MAP_TYPES.has(m.type)) throw new ModelRejection(`${what}: max_entries is 0`);
      if (m.maxEntries !== 0 && ZERO_MAX_ENTRIES_MAP_TYPES.has(m.type)) throw new ModelRejection(`${what}: a local-storage map takes max_entries 0`);
      if (!/^[A-Za-z0-9_.]{0,15}$/.test(m.name)) throw new ModelRejection(`${what}: name not accepted by the kernel`);
      if (ARRAYS.has(m.type) && m.keySize !== 4) throw new ModelRejection(`${what}: array maps need a 4-byte key, got ${m.keySize}`);
      if (FD_VALUE.has(m.type) && m.valueSize !== 4) throw new ModelRejection(`${what}: value must be a 4-byte fd`);
      if (NO_KEY_VALUE.has(m.type) && (m.keySize || m.valueSize)) throw new ModelRejection(`${what}: ring buffers take no key or value size`);
      if (!NO_KEY_VALUE.has(m.type) && m.type !== T('bloom_filter') && m.type !== T('queue') && m.type !== T('stack') && m.keySize === 0 && m.type !== T('arena')) {
        throw new ModelRejection(`${what}: key size 0`);
      }
      if ((m.type === T('array_of_maps') || m.type === T('hash_of_maps')) && !m.inner) throw new ModelRejection(`${what}: map-in-map without an inner map`);
      if (m.inner) live(m.inner, 'map', `${what} inner map`);
      if (m.btfKeyTypeId || m.btfValueTypeId) {
        const b = m.btf ? live(m.btf, 'btf', `${what} BTF`).btf! : undefined;
        if (!b) throw new ModelRejection(`${what}: BTF type ids without BTF`);
        for (const id of [m.btfKeyTypeId, m.btfValueTypeId]) if (id >= b.types.length) throw new ModelRejection(`${what}: BTF type id ${id} does not exist`);
      }
      return make('map', m);
    },
    mapUpdate(h, key, value) {
      const o = live(h, 'map', 'map update');
      const m = o.map!;
      if (o.frozen) throw new ModelRejection(`map '${m.name}' is frozen and cannot be written`);
      if (key.length !== m.keySize) throw new ModelRejection(`map '${m.name}': key of ${key.length} bytes, map key size ${m.keySize}`);
      if (value.length !== m.valueSize) throw new ModelRejection(`map '${m.name}': value of ${value.length} bytes, map value size ${m.valueSize}`);
      if (ARRAYS.has(m.type) && key.readUInt32LE(0) >= m.maxEntries) throw new ModelRejection(`map '${m.name}': index ${key.readUInt32LE(0)} beyond max_entries ${m.maxEntries}`);
      if (FD_VALUE.has(m.type) && m.type !== T('perf_event_array')) {
        const target = objects.get(value.readUInt32LE(0));
        const want: Kind = m.type === T('prog_array') ? 'prog' : 'map';
        if (!target || target.closed || target.kind !== want) throw new ModelRejection(`map '${m.name}': slot value is not a live ${want}`);
      }
    },
    mapFreeze(h) {
      live(h, 'map', 'map freeze').frozen = true;
    },
    progLoad(p) {
      const what = `program '${p.name}'`;
      if (!PROG_TYPES[p.type]) throw new ModelRejection(`${what}: unknown program type ${p.type}`);
      const n = p.insns.length / INSN_SIZE;
      if (n === 0 || n > 1_000_000) throw new ModelRejection(`${what}: ${n} instructions`);
      const maps = p.fdArray.map((h, i) => live(h, 'map', `${what} fd_array[${i}]`).map!);
      if ((p.funcInfo.data.length || p.lineInfo.data.length || p.coreRelos.data.length) && !p.btf) throw new ModelRejection(`${what}: func/line info or CO-RE without BTF`);
      for (let i = 0; i < n; i++) {
        const o = i * INSN_SIZE;
        const code = p.insns.readUInt8(o), src = p.insns.readUInt8(o + 1) >> 4, imm = p.insns.readInt32LE(o + 4);
        if (code === CALL) {
          if (src === PSEUDO_CALL && (i + imm + 1 < 0 || i + imm + 1 >= n)) throw new ModelRejection(`${what}: insn ${i} calls outside the program`);
          if (src === PSEUDO_KFUNC_CALL && imm <= 0) throw new ModelRejection(`${what}: insn ${i} kfunc call not resolved`);
          continue;
        }
        if (code !== LD_IMM64) continue;
        if (i + 1 >= n) throw new ModelRejection(`${what}: ld_imm64 at ${i} is cut off`);
        if (src === PSEUDO.MAP_FD || src === PSEUDO.MAP_VALUE) throw new ModelRejection(`${what}: insn ${i} uses a raw fd (src_reg ${src})`);
        if (src === PSEUDO.MAP_IDX || src === PSEUDO.MAP_IDX_VALUE) {
          const m = maps[imm];
          if (imm < 0 || m === undefined) throw new ModelRejection(`${what}: insn ${i} names fd_array[${imm}]; the array has ${maps.length}`);
          if (src === PSEUDO.MAP_IDX_VALUE) {
            const off = p.insns.readInt32LE(o + 12);
            if (off < 0 || off >= m.valueSize) throw new ModelRejection(`${what}: insn ${i} reads offset ${off} of map '${m.name}' (value ${m.valueSize} bytes)`);
          }
        }
        if (src === PSEUDO.BTF_ID && imm <= 0) throw new ModelRejection(`${what}: insn ${i} ksym not resolved`);
        if (src === PSEUDO.FUNC && (i + imm + 1 < 0 || i + imm + 1 >= n)) throw new ModelRejection(`${what}: insn ${i} references code outside the program`);
        i++;
      }
      return make('prog', undefined, p);
    },
    info(h: Handle, what: 'map' | 'prog'): ObjectInfo {
      const o = live(h, what, 'info');
      return what === 'prog' ? { id: o.value, tag: computeTag(o.prog!.insns) } : { id: o.value };
    },
    pin(h, path) {
      if (!(h instanceof ModelObj) || h.closed) throw new ModelRejection(`pin ${path}: not a live object`);
      wouldPin.push(path);
    },
    unpin(path) {
      const i = wouldPin.indexOf(path);
      if (i >= 0) wouldPin.splice(i, 1);
    },
  };
}
