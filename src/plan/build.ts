/**
 * CollectionSpec -> Plan. Deterministic: the output depends only on the object's bytes and its file
 * name (not its path), so the same object plans to the same bytes on every machine.
 */
import { createHash } from 'node:crypto';
import { at, InputError } from '../errors.js';
import { sectionByName, STT } from '../elf/reader.js';
import { ATTACH_TYPE, MAP_TYPE, ZERO_MAX_ENTRIES_MAP_TYPES } from '../bpf/constants.js';
import { loadCollection, type LoadOptions } from '../bpf/collection.js';
import { mapAttrs, type CollectionSpec, type MapSpec } from '../bpf/spec.js';
import { linkContext, linkProgram, type LinkedProgram } from './link.js';
import { sanitizeBtf } from './sanitize.js';
import { PlanFormatError, validatePlan } from './codec.js';
import { PLAN_VERSION, type AttachTarget, type MaxEntriesFixup, type Plan, type PlanMap, type SlotInit } from './types.js';

const OBJ_NAME_LEN = 16;

function kernelSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9_.]/g, '_');
}

/** libbpf's internal_map_name: object-name prefix + section name, 15 characters at most. */
export function internalMapName(objName: string, secName: string): string {
  const sfx = Math.min(Math.max(7, secName.length), OBJ_NAME_LEN - 1);
  const pfx = secName.indexOf('.', 1) >= 0 ? 0 : Math.min(OBJ_NAME_LEN - sfx - 1, objName.length);
  return kernelSafe(objName.slice(0, pfx) + secName.slice(0, sfx));
}

function kernelName(spec: CollectionSpec, m: MapSpec): string {
  if (m.kind === 'btf' || m.kind === 'legacy' || m.kind === 'inner') return kernelSafe(m.name.slice(0, OBJ_NAME_LEN - 1));
  return internalMapName(spec.objName, m.name);
}

function maxEntriesFixup(m: MapSpec): MaxEntriesFixup {
  if (m.maxEntries !== 0 || ZERO_MAX_ENTRIES_MAP_TYPES.has(m.type)) return 'none';
  return m.type === MAP_TYPE.get('perf_event_array') ? 'possible_cpus' : 'loader';
}

function attachTarget(expectedAttachType: number, target: string | undefined): AttachTarget {
  const name = target ?? '';
  if (name === '') return { name: '', btfKind: 'func' };
  const at = (n: string) => ATTACH_TYPE.get(n);
  if (expectedAttachType === at('lsm_mac') || expectedAttachType === at('lsm_cgroup')) return { name: `bpf_lsm_${name}`, btfKind: 'func' };
  if (expectedAttachType === at('trace_iter')) return { name: `bpf_iter_${name}`, btfKind: 'func' };
  if (expectedAttachType === at('trace_raw_tp')) return { name: `btf_trace_${name}`, btfKind: 'typedef' };
  return { name, btfKind: 'func' };
}

export interface BuiltPlan {
  plan: Plan;
  spec: CollectionSpec;
  linked: LinkedProgram[];
}

export function planFromObject(bytes: Buffer, fileName: string, opts: LoadOptions = {}): BuiltPlan {
  const spec = loadCollection(bytes, fileName, opts);
  return buildPlan(spec, bytes);
}

export function buildPlan(spec: CollectionSpec, objectBytes: Buffer): BuiltPlan {
  const mapIndex = new Map<MapSpec, number>(spec.maps.map((m, i) => [m, i]));
  const byName = new Map(spec.maps.map((m, i) => [m.name, i]));
  const maps: PlanMap[] = spec.maps.map((m) => ({
    ...mapAttrs(m), name: m.name, kernelName: kernelName(spec, m), kind: m.kind, pinning: m.pinning,
    btfKeyTypeId: spec.btf ? m.btfKeyTypeId : 0, btfValueTypeId: spec.btf ? m.btfValueTypeId : 0,
    inner: m.inner !== undefined ? byName.get(m.inner)! : -1,
    initData: m.initData ? Buffer.from(m.initData) : null,
    freeze: m.freeze, maxEntriesFixup: maxEntriesFixup(m), kconfig: m.kconfig ?? [],
  }));
  const ctx = linkContext(spec, mapIndex);
  const linked = spec.programs.map((p) => linkProgram(ctx, p));
  const programs = spec.programs.map((p, i) => {
    const l = at(linked, i, 'linked program');
    return {
      name: p.name, section: p.section, progType: p.progType, expectedAttachType: p.expectedAttachType, progFlags: p.progFlags,
      attach: p.needsAttachBtf ? attachTarget(p.expectedAttachType, p.attachTarget) : null,
      insns: l.insns, fdArray: l.fdArray,
      funcInfo: l.funcInfo, lineInfo: l.lineInfo, coreRelos: l.coreRelos, fixups: l.fixups,
    };
  });
  const plan: Plan = {
    version: PLAN_VERSION,
    name: spec.name,
    objectSha256: createHash('sha256').update(objectBytes).digest(),
    license: spec.license,
    kernVersion: spec.kernVersion,
    btf: sanitizeBtf(spec),
    maps,
    programs,
    slots: collectSlots(spec, mapIndex),
  };
  try {
    validatePlan(plan); // the names and references a decoder would refuse are refused here, with the object named
  } catch (e) {
    if (e instanceof PlanFormatError) throw new InputError('PLAN_NAME_INVALID', e.message.replace(/^invalid plan: /, ''));
    throw e;
  }
  return { plan, spec, linked };
}

/** Initial slots of prog_array and map-in-map maps, from the relocations of the `.maps` section. */
function collectSlots(spec: CollectionSpec, mapIndex: Map<MapSpec, number>): SlotInit[] {
  const mapsSec = sectionByName(spec.elf, '.maps');
  if (!mapsSec) return [];
  const rs = spec.elf.relocations.find((r) => r.target === mapsSec.index);
  if (!rs) return [];
  const progIndex = new Map(spec.programs.map((p, i) => [p.name, i]));
  const outer = spec.maps.filter((m) => m.kind === 'btf' && m.sectionIndex === mapsSec.index);
  const slots: SlotInit[] = [];
  for (const r of rs.relocs) {
    const off = Number(r.offset);
    const m = outer.find((x) => off >= x.offset && off < x.offset + x.size);
    const sym = at(spec.elf.symbols, r.symbol, 'relocation symbol'); // the ELF reader refused any other (ELF_BAD_RELOC_SYMBOL)
    if (!m || m.valuesOffset === undefined) {
      throw new InputError('MAP_BAD_SLOT', `.maps relocation at offset ${off} against '${sym.name}' is not inside any map's 'values'`);
    }
    const rel = off - m.offset - m.valuesOffset;
    if (rel < 0 || rel % 8) throw new InputError('MAP_BAD_SLOT', `map '${m.name}': relocation at offset ${off} is not a 'values' slot`);
    const index = rel / 8;
    if (index >= m.maxEntries) throw new InputError('MAP_BAD_SLOT', `map '${m.name}': initial slot ${index} is beyond max_entries ${m.maxEntries}`);
    if (sym.type === STT.FUNC) {
      const pi = progIndex.get(sym.name);
      if (pi === undefined) throw new InputError('MAP_BAD_SLOT', `map '${m.name}' slot ${index}: '${sym.name}' is not a program (subprograms cannot be tail-called)`);
      if (m.type !== MAP_TYPE.get('prog_array')) throw new InputError('MAP_BAD_SLOT', `map '${m.name}' slot ${index}: a program in a map that is not a prog_array`);
      slots.push({ map: mapIndex.get(m)!, index, kind: 'prog', target: pi });
    } else {
      const target = spec.maps.find((x) => x.sectionIndex === sym.shndx && x.offset === Number(sym.value) && x.kind === 'btf');
      if (!target) throw new InputError('MAP_BAD_SLOT', `map '${m.name}' slot ${index}: '${sym.name}' is not a map`);
      if (m.type === MAP_TYPE.get('prog_array')) throw new InputError('MAP_BAD_SLOT', `map '${m.name}' slot ${index}: a map in a prog_array`);
      slots.push({ map: mapIndex.get(m)!, index, kind: 'map', target: mapIndex.get(target)! });
    }
  }
  return slots.sort((a, b) => a.map - b.map || a.index - b.index);
}
