/**
 * Map definitions: BTF-defined maps in `.maps` (libbpf's parse_btf_map_def), legacy `maps` sections
 * (struct bpf_map_def records) and global-data sections (.data, .rodata, .bss, .data.*, .rodata.*).
 */
import { at, InputError } from '../errors.js';
import { BtfError, KIND, skipMods, typeSize, type Btf, type BtfDatasec, type BtfType, type BtfVarSecinfo } from './btf.js';
import { MAP_TYPE } from './constants.js';
import type { MapSpec } from './spec.js';
import type { ElfObject, ElfSection } from '../elf/reader.js';
import { STT } from '../elf/reader.js';

export const BPF_F_RDONLY_PROG = 1 << 7;
export const BPF_F_MMAPABLE = 1 << 10;

const T = (name: string) => MAP_TYPE.get(name)!;
export const MAP_IN_MAP_TYPES = new Set([T('array_of_maps'), T('hash_of_maps')]);
export const PROG_ARRAY = T('prog_array');
/**
 * Map types whose key/value the kernel refuses to describe with BTF (map_check_no_btf): libbpf clears
 * them for these types, and retries without BTF for prog_array, where the kernel says EINVAL.
 */
export const NO_BTF_TYPES = new Set(
  ['prog_array', 'perf_event_array', 'cgroup_array', 'stack_trace', 'array_of_maps', 'hash_of_maps', 'devmap', 'devmap_hash',
    'cpumap', 'xskmap', 'sockmap', 'sockhash', 'queue', 'stack', 'arena'].map(T),
);

/** The VAR (or FUNC) a DATASEC entry names: parseBtf checked it exists; a BtfError, never undefined, if not. */
export function secinfoType(btf: Btf, ds: BtfDatasec, vs: BtfVarSecinfo): BtfType {
  const v = btf.types[vs.type];
  if (v === undefined) throw new BtfError(`datasec ${ds.name} refers to missing type ${vs.type}`);
  return v;
}

function mapError(map: string, msg: string): InputError {
  return new InputError('MAP_INVALID', `map '${map}': ${msg}`);
}

/** __uint(name, N) is encoded as `int (*name)[N]`: a pointer to an array of N elements. */
function uintField(btf: Btf, type: number, map: string, field: string): number {
  const ptr = skipMods(btf, type);
  if (ptr.kind !== KIND.PTR) throw mapError(map, `field '${field}' is not a pointer (__uint)`);
  const arr = skipMods(btf, ptr.sizeOrType);
  if (arr.kind !== KIND.ARRAY) throw mapError(map, `field '${field}' does not point to an array (__uint)`);
  return arr.array.nelems;
}

function emptyMap(name: string, kind: MapSpec['kind'], sectionIndex: number, offset: number, size: number): MapSpec {
  return {
    name, kind, type: 0, keySize: 0, valueSize: 0, maxEntries: 0, flags: 0, mapExtra: 0n, numaNode: 0, pinning: 0,
    btfKeyTypeId: 0, btfValueTypeId: 0, freeze: false, sectionIndex, offset, size,
  };
}

/**
 * Parse one BTF map definition struct. Returns the map and, for map-in-map, its inner template.
 * `inner` is set when parsing the template itself (libbpf forbids nesting deeper and "values" there).
 */
export function parseBtfMapDef(btf: Btf, def: BtfType, name: string, sectionIndex: number, offset: number, size: number, inner = false): MapSpec[] {
  if (def.kind !== KIND.STRUCT) throw mapError(name, `definition is a ${def.kind === KIND.PTR ? 'pointer' : 'non-struct'} type, not a struct`);
  const m = emptyMap(name, inner ? 'inner' : 'btf', sectionIndex, offset, size);
  let keyType = 0, valueType = 0, keySizeField = -1, valueSizeField = -1;
  const out: MapSpec[] = [];
  let innerDef: BtfType | undefined;
  let hasValues = false;
  for (const mem of def.members) {
    switch (mem.name) {
      case 'type': m.type = uintField(btf, mem.type, name, mem.name); break;
      case 'max_entries': m.maxEntries = uintField(btf, mem.type, name, mem.name); break;
      case 'map_flags': m.flags = uintField(btf, mem.type, name, mem.name); break;
      case 'numa_node': m.numaNode = uintField(btf, mem.type, name, mem.name); break;
      case 'map_extra': m.mapExtra = BigInt(uintField(btf, mem.type, name, mem.name)); break;
      case 'pinning': m.pinning = uintField(btf, mem.type, name, mem.name); break;
      case 'key_size': keySizeField = uintField(btf, mem.type, name, mem.name); break;
      case 'value_size': valueSizeField = uintField(btf, mem.type, name, mem.name); break;
      case 'key': case 'value': {
        const ptr = skipMods(btf, mem.type);
        if (ptr.kind !== KIND.PTR) throw mapError(name, `field '${mem.name}' is not a pointer (__type)`);
        if (mem.name === 'key') keyType = ptr.sizeOrType; else valueType = ptr.sizeOrType;
        break;
      }
      case 'values': {
        if (inner) throw mapError(name, 'an inner map template cannot have initial values');
        const arr = skipMods(btf, mem.type);
        if (arr.kind !== KIND.ARRAY) throw mapError(name, "field 'values' is not an array (__array)");
        const ptr = skipMods(btf, arr.array.type);
        if (ptr.kind !== KIND.PTR) throw mapError(name, "field 'values' is not an array of pointers");
        const target = skipMods(btf, ptr.sizeOrType);
        if (target.kind === KIND.STRUCT) innerDef = target;
        else if (target.kind !== KIND.FUNC_PROTO) throw mapError(name, "'values' must point to a map definition or a function prototype");
        hasValues = true;
        m.valuesOffset = mem.bitOffset / 8;
        break;
      }
      default:
        throw mapError(name, `unknown field '${mem.name}' in the map definition`);
    }
  }
  if (pinningInvalid(m.pinning)) throw mapError(name, `pinning ${m.pinning} is not 0 (none) or 1 (by name)`);
  if (keyType) {
    m.keySize = typeSize(btf, keyType);
    if (keySizeField >= 0 && keySizeField !== m.keySize) throw mapError(name, `key_size ${keySizeField} disagrees with the key type's size ${m.keySize}`);
    m.btfKeyTypeId = keyType;
  } else if (keySizeField >= 0) m.keySize = keySizeField;
  if (valueType) {
    m.valueSize = typeSize(btf, valueType);
    if (valueSizeField >= 0 && valueSizeField !== m.valueSize) throw mapError(name, `value_size ${valueSizeField} disagrees with the value type's size ${m.valueSize}`);
    m.btfValueTypeId = valueType;
  } else if (valueSizeField >= 0) m.valueSize = valueSizeField;
  if (MAP_IN_MAP_TYPES.has(m.type) || m.type === PROG_ARRAY) {
    // The value of a map-in-map or prog_array slot is a 4-byte fd/id (libbpf sets it the same way).
    if (m.valueSize !== 0 && m.valueSize !== 4) throw mapError(name, `value size ${m.valueSize} must be 4 for this map type`);
    m.valueSize = 4;
    if (m.type === PROG_ARRAY && m.keySize === 0) m.keySize = 4;
  } else if (hasValues) {
    throw mapError(name, "only prog_array and map-in-map types may have 'values'");
  }
  if (MAP_IN_MAP_TYPES.has(m.type)) {
    if (!innerDef) throw mapError(name, "map-in-map needs an inner map definition (__array(values, struct ...))");
    const innerName = `${name}.inner`;
    // A template has no 'values' (refused above when `inner`), so its parse is exactly [the template].
    const tmpl = at(parseBtfMapDef(btf, innerDef, innerName, sectionIndex, offset, 0, true), 0, 'inner map template');
    m.inner = innerName;
    out.push(tmpl);
  }
  if (NO_BTF_TYPES.has(m.type)) {
    m.btfKeyTypeId = 0;
    m.btfValueTypeId = 0;
  }
  out.push(m);
  return out;
}

function pinningInvalid(p: number): boolean {
  return p !== 0 && p !== 1;
}

/** BTF-defined maps: one VAR per map in the `.maps` DATASEC, located through its ELF symbol. */
export function btfMaps(elf: ElfObject, btf: Btf | undefined, sec: ElfSection): MapSpec[] {
  if (!btf) throw new InputError('MAP_NO_BTF', `section '${sec.name}' defines BTF maps but the object has no .BTF section (compile with -g)`);
  const datasec = btf.types.find((t): t is BtfDatasec => t.kind === KIND.DATASEC && t.name === sec.name);
  if (!datasec) throw new InputError('MAP_NO_BTF', `no BTF DATASEC for section '${sec.name}'`);
  const syms = new Map(elf.symbols.filter((s) => s.shndx === sec.index && s.type !== STT.SECTION).map((s) => [s.name, s]));
  const out: MapSpec[] = [];
  for (const vs of datasec.secinfos) {
    const v = secinfoType(btf, datasec, vs);
    if (v.kind !== KIND.VAR) throw new InputError('MAP_INVALID', `'${sec.name}' DATASEC entry ${vs.type} is not a VAR`);
    const sym = syms.get(v.name);
    if (!sym) throw mapError(v.name, `no ELF symbol in '${sec.name}'`);
    const def = skipMods(btf, v.sizeOrType);
    out.push(...parseBtfMapDef(btf, def, v.name, sec.index, Number(sym.value), Number(sym.size) || typeSize(btf, v.sizeOrType)));
  }
  return out;
}

/** Legacy `maps` section: struct bpf_map_def {type, key_size, value_size, max_entries, map_flags} records. */
export function legacyMaps(elf: ElfObject, sec: ElfSection): MapSpec[] {
  const syms = elf.symbols.filter((s) => s.shndx === sec.index && s.type !== STT.SECTION && s.name !== '')
    .sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
  if (syms.length === 0) return [];
  if (sec.type === 8 /* NOBITS */) throw new InputError('MAP_INVALID', `legacy '${sec.name}' section has no data`);
  if (sec.size % syms.length !== 0) {
    throw new InputError('MAP_INVALID', `legacy '${sec.name}' section: ${sec.size} bytes do not divide into ${syms.length} map records`);
  }
  const rec = sec.size / syms.length;
  if (rec < 20) throw new InputError('MAP_INVALID', `legacy '${sec.name}' records are ${rec} bytes, smaller than struct bpf_map_def (20)`);
  return syms.map((s) => {
    const off = Number(s.value);
    if (off % rec !== 0 || off + rec > sec.size) throw mapError(s.name, `symbol offset ${off} is not a record boundary in '${sec.name}'`);
    const d = sec.data.subarray(off, off + rec);
    for (let i = 20; i < rec; i++) {
      if (d[i] !== 0) {
        throw mapError(s.name, `legacy definition has non-zero bytes beyond struct bpf_map_def at offset ${i} (record of ${rec} bytes, e.g. iproute2's struct bpf_elf_map); these fields are not supported`);
      }
    }
    const m = emptyMap(s.name, 'legacy', sec.index, off, rec);
    m.type = d.readUInt32LE(0);
    m.keySize = d.readUInt32LE(4);
    m.valueSize = d.readUInt32LE(8);
    m.maxEntries = d.readUInt32LE(12);
    m.flags = d.readUInt32LE(16);
    return m;
  });
}

export function isDataSection(name: string): boolean {
  return name === '.data' || name === '.rodata' || name === '.bss' || name.startsWith('.data.') || name.startsWith('.rodata.');
}

/** A global-data section as a one-element array map (libbpf's internal maps). */
export function dataMap(btf: Btf | undefined, sec: ElfSection): MapSpec {
  const kind = sec.name === '.bss' ? 'bss' : sec.name.startsWith('.rodata') ? 'rodata' : 'data';
  const m = emptyMap(sec.name, kind, sec.index, 0, sec.size);
  m.type = T('array');
  m.keySize = 4;
  m.valueSize = sec.size;
  m.maxEntries = 1;
  m.flags = kind === 'rodata' ? BPF_F_RDONLY_PROG : 0;
  const ds = btf?.types.find((t): t is BtfDatasec => t.kind === KIND.DATASEC && t.name === sec.name);
  if (btf && ds) {
    m.btfValueTypeId = ds.id;
    // libbpf's map_is_mmapable: mmapable when any variable is not static.
    if (ds.secinfos.some((v) => { const x = secinfoType(btf, ds, v); return x.kind === KIND.VAR && x.linkage !== 0; })) m.flags |= BPF_F_MMAPABLE;
  }
  // NOBITS sections (.bss, or any data section the compiler left without bytes) start zeroed.
  if (kind !== 'bss' && sec.type !== 8 /* SHT_NOBITS */) m.initData = sec.data;
  m.freeze = kind === 'rodata';
  return m;
}
