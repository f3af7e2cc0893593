/**
 * The loader plan: everything a load needs, as data, with maps referenced by index (never by fd).
 * Replay order (docs/plan-format.md): BTF load -> map creation in index order -> initial values ->
 * map-in-map slots -> freezes -> program loads in index order -> prog_array slots -> pins.
 */
import type { KconfigVar, MapAttrs, MapKind } from '../bpf/spec.js';

export const PLAN_MAGIC = 'BPFSEALP';
export const PLAN_VERSION = 1;

/** A map whose max_entries the host decides (0 in the object). */
export type MaxEntriesFixup = 'none' | 'possible_cpus' | 'loader';

export interface PlanMap extends MapAttrs {
  name: string;
  /** The name given to the kernel (BPF_OBJ_NAME_LEN - 1 = 15 characters at most). */
  kernelName: string;
  kind: MapKind;
  pinning: number;
  /** Index of the inner map template, or -1. */
  inner: number;
  /** Value of key 0 written after creation; null when the map starts empty (or zeroed, like .bss). */
  initData: Buffer | null;
  freeze: boolean;
  maxEntriesFixup: MaxEntriesFixup;
  /** .kconfig variables whose values the host supplies (the map's initial value is built from them). */
  kconfig: KconfigVar[];
}

export type InsnFixupKind = 'kfunc' | 'ksym_btf' | 'ksym_addr';

/** A load-time change to one instruction, declared in the signed plan and applied by the runtime. */
export interface InsnFixup {
  insn: number;
  kind: InsnFixupKind;
  name: string;
  weak: boolean;
}

export interface AttachTarget {
  /** Name to look up in the kernel's BTF, with libbpf's prefix applied (bpf_lsm_, bpf_iter_, btf_trace_). */
  name: string;
  /** BTF kind to look for: 'func' or 'typedef'. Empty name: the loader must be told the target. */
  btfKind: 'func' | 'typedef';
}

export interface ExtInfo {
  recSize: number;
  /** Records, insn_off already converted to instruction indices of the linked program. */
  data: Buffer;
}

export interface PlanProgram {
  name: string;
  section: string;
  progType: number;
  expectedAttachType: number;
  progFlags: number;
  attach: AttachTarget | null;
  /** Linked instructions, FD-index stable: exactly the bytes given to BPF_PROG_LOAD when no fix-ups apply. */
  insns: Buffer;
  /** fd_array: plan map indices, in order of first reference. */
  fdArray: number[];
  funcInfo: ExtInfo;
  lineInfo: ExtInfo;
  coreRelos: ExtInfo;
  fixups: InsnFixup[];
}

export interface SlotInit {
  map: number;
  index: number;
  kind: 'map' | 'prog';
  /** Map index or program index. */
  target: number;
}

export interface Plan {
  version: number;
  /** Plan name: the object's file name without ".o". */
  name: string;
  objectSha256: Buffer;
  license: string;
  kernVersion: number;
  /** Sanitised BTF blob for BPF_BTF_LOAD, or empty when the object has none. */
  btf: Buffer;
  maps: PlanMap[];
  programs: PlanProgram[];
  slots: SlotInit[];
}
