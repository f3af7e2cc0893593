/**
 * A readable description of a plan (what `inspect` prints), derived from the plan alone so that an
 * object and its .plan file describe identically.
 */
import { at } from '../errors.js';
import { attachTypeName, mapTypeName, progTypeName } from '../bpf/constants.js';
import { parseBtf } from '../bpf/btf.js';
import { disassemble } from '../bpf/disasm.js';
import { INSN_SIZE } from '../bpf/insn.js';
import { predictTag } from './tag.js';
import type { Plan, PlanProgram } from './types.js';

export interface ProgramDescription {
  name: string;
  section: string;
  type: string;
  attachType: string;
  instructions: number;
  maps: string[];
  /** True when the instruction bytes need no host fix-up: the kernel gets exactly the plan's bytes. */
  stable: boolean;
  fixups: string[];
  tag: string | null;
  flags: number;
  attachTarget?: string;
  coreRelocations: number;
}

export interface MapDescription {
  name: string;
  kernelName: string;
  kind: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  initialData: number;
  frozen: boolean;
  inner?: string;
  fixups: string[];
}

export interface PlanDescription {
  name: string;
  digest: string;
  object: string;
  license: string;
  btf: number;
  programs: ProgramDescription[];
  maps: MapDescription[];
  slots: { map: string; index: number; target: string }[];
}

/** The map a plan reference names (fd_array, inner, slot): validatePlan checked every one, so out of range is a bug. */
function planMap(plan: Plan, i: number) {
  return at(plan.maps, i, 'plan map');
}

function progFixups(plan: Plan, p: PlanProgram): string[] {
  const out = p.fixups.map((f) => `${f.kind} ${f.name}${f.weak ? ' (weak)' : ''} @${f.insn}`);
  if (p.attach) out.push(p.attach.name ? `attach_btf ${p.attach.btfKind} ${p.attach.name}` : 'attach_btf: target must be given at load');
  for (const i of p.fdArray) {
    const m = planMap(plan, i);
    if (m.kconfig.length) out.push(`kconfig values in ${m.name}`);
  }
  return out;
}

export function describePlan(plan: Plan, digest: string): PlanDescription {
  return {
    name: plan.name,
    digest: `sha256:${digest}`,
    object: `sha256:${plan.objectSha256.toString('hex')}`,
    license: plan.license,
    btf: plan.btf.length,
    programs: plan.programs.map((p) => {
      const d: ProgramDescription = {
        name: p.name, section: p.section, type: progTypeName(p.progType), attachType: p.expectedAttachType ? attachTypeName(p.expectedAttachType) : '',
        instructions: p.insns.length / INSN_SIZE, maps: p.fdArray.map((i) => planMap(plan, i).name), stable: p.fixups.length === 0,
        fixups: progFixups(plan, p), tag: predictTag(p), flags: p.progFlags, coreRelocations: p.coreRelos.recSize ? p.coreRelos.data.length / p.coreRelos.recSize : 0,
      };
      if (p.attach) d.attachTarget = p.attach.name;
      return d;
    }),
    maps: plan.maps.map((m) => {
      const d: MapDescription = {
        name: m.name, kernelName: m.kernelName, kind: m.kind, type: mapTypeName(m.type), keySize: m.keySize, valueSize: m.valueSize,
        maxEntries: m.maxEntries, flags: m.flags, initialData: m.initData?.length ?? 0, frozen: m.freeze,
        fixups: [
          ...(m.maxEntriesFixup === 'possible_cpus' ? ['max_entries = number of possible CPUs'] : []),
          ...(m.maxEntriesFixup === 'loader' ? ['max_entries must be given at load'] : []),
          ...m.kconfig.map((k) => `kconfig ${k.name} (${k.type}, ${k.size} bytes @${k.offset}${k.weak ? ', weak' : ''})`),
        ],
      };
      if (m.inner >= 0) d.inner = planMap(plan, m.inner).name;
      return d;
    }),
    slots: plan.slots.map((s) => ({
      map: planMap(plan, s.map).name, index: s.index,
      target: s.kind === 'map' ? `map ${planMap(plan, s.target).name}` : `program ${at(plan.programs, s.target, 'plan program').name}`,
    })),
  };
}

/** A plan's BTF, parsed once however many programs are disassembled. */
const parsedBtf = new WeakMap<Plan, ReturnType<typeof parseBtf>>();
function planBtf(plan: Plan): ReturnType<typeof parseBtf> {
  let b = parsedBtf.get(plan);
  if (!b) {
    b = parseBtf(plan.btf);
    parsedBtf.set(plan, b);
  }
  return b;
}

/** Function names by linked instruction index, from func_info and the plan's BTF. */
function funcLabels(plan: Plan, p: PlanProgram): Map<number, string> {
  const labels = new Map<number, string>([[0, p.name]]);
  if (!plan.btf.length || !p.funcInfo.recSize) return labels;
  try {
    const btf = planBtf(plan);
    for (let o = 0; o < p.funcInfo.data.length; o += p.funcInfo.recSize) {
      const t = btf.types[p.funcInfo.data.readUInt32LE(o + 4)];
      if (t?.name) labels.set(p.funcInfo.data.readUInt32LE(o), t.name);
    }
  } catch {
    // Labels are a convenience; a plan whose BTF does not parse still disassembles.
  }
  return labels;
}

export function disassembleProgram(plan: Plan, p: PlanProgram): string[] {
  const labels = funcLabels(plan, p);
  const fix = new Map(p.fixups.map((f) => [f.insn, f.name]));
  const lines = disassemble(p.insns, {
    mapName: (i) => (i < p.fdArray.length ? planMap(plan, at(p.fdArray, i, 'fd_array index')).name : `idx:${i}`),
    funcName: (t) => labels.get(t),
    fixupName: (i) => fix.get(i),
  });
  const out: string[] = [];
  for (const l of lines) {
    const pc = Number(l.slice(0, 5));
    const label = labels.get(pc);
    if (label) out.push(`${label}:`);
    out.push(l);
  }
  return out;
}
