/**
 * Spec types: plain data read from an ELF object, no kernel objects (cilium/ebpf's CollectionSpec idea).
 */
import type { Btf } from './btf.js';
import type { BtfExt } from './btfext.js';
import type { ElfObject } from '../elf/reader.js';

export type MapKind = 'btf' | 'legacy' | 'data' | 'rodata' | 'bss' | 'kconfig' | 'inner';

export interface KconfigVar {
  name: string;
  offset: number;
  size: number;
  /** How the runtime turns a config value into bytes. */
  type: 'bool' | 'tristate' | 'char' | 'int' | 'uint' | 'string';
  weak: boolean;
}

/**
 * The attributes BPF_MAP_CREATE takes from a map definition, written out once: the object's specs,
 * the signed plan, the backend and the kernel binding all extend this (and copy it with mapAttrs()).
 */
export interface MapAttrs {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  mapExtra: bigint;
  numaNode: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

const MAP_ATTR_KEYS = ['type', 'keySize', 'valueSize', 'maxEntries', 'flags', 'mapExtra', 'numaNode', 'btfKeyTypeId', 'btfValueTypeId'] as const satisfies readonly (keyof MapAttrs)[];

/** Exactly the MapAttrs of `m` (a spec, a plan map, ...), in one place. */
export function mapAttrs(m: MapAttrs): MapAttrs {
  const out = {} as Record<keyof MapAttrs, unknown>;
  for (const k of MAP_ATTR_KEYS) out[k] = m[k];
  return out as unknown as MapAttrs;
}

export interface MapSpec extends MapAttrs {
  name: string;
  kind: MapKind;
  /** 0 none, 1 LIBBPF_PIN_BY_NAME. */
  pinning: number;
  /** Name of the inner map template (map-in-map). */
  inner?: string;
  /** Initial value bytes for key 0 (global data); absent for maps without initial data. */
  initData?: Buffer;
  freeze: boolean;
  /** Byte offset of the 'values' member inside a BTF map definition (prog_array / map-in-map). */
  valuesOffset?: number;
  kconfig?: KconfigVar[];
  /** Where the definition lives in the ELF, for relocation lookup. */
  sectionIndex: number;
  offset: number;
  size: number;
}

export interface FuncSpec {
  name: string;
  sectionIndex: number;
  section: string;
  /** First instruction (index within the section) and count. */
  start: number;
  count: number;
  global: boolean;
}

export interface ProgramSpec extends FuncSpec {
  progType: number;
  expectedAttachType: number;
  progFlags: number;
  /** For BTF-attached programs: the kernel name to resolve (for example "do_unlinkat"). */
  attachTarget?: string;
  needsAttachBtf: boolean;
}

export type ExternKind = 'kconfig' | 'ksym' | 'kfunc';

export interface ExternSpec {
  name: string;
  kind: ExternKind;
  weak: boolean;
  symbol: number;
  /** ksym: typed (BTF type other than void), so resolved to a BTF id rather than an address. */
  typed: boolean;
}

export interface CollectionSpec {
  /** Object name: file base name without a trailing ".o" (no path). */
  name: string;
  /** libbpf's object name (base name cut at the first dot), used as the kernel-name prefix of data maps. */
  objName: string;
  license: string;
  kernVersion: number;
  elf: ElfObject;
  btf?: Btf;
  btfExt?: BtfExt;
  maps: MapSpec[];
  programs: ProgramSpec[];
  /** Every function in an executable section, by section index then start. */
  funcs: FuncSpec[];
  externs: ExternSpec[];
  /** Symbol index -> extern, for relocation handling. */
  externBySymbol: Map<number, ExternSpec>;
  /** Sections that hold data maps, by index. */
  dataSections: Map<number, MapSpec>;
}
