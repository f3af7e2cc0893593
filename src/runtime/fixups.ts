/**
 * Applying the plan's declared fix-ups against host facts. Nothing here is guessed: every value that
 * changes comes from a fix-up the signed plan declares, and every applied value goes into the load record.
 */
import { BpfsealError, InputError } from '../errors.js';
import { INSN_SIZE, PSEUDO } from '../bpf/insn.js';
import type { PlanMap, PlanProgram } from '../plan/types.js';
import type { HostFacts } from './host.js';
import type { FixupRecord } from '../hostlog/records.js';

/** libbpf's POISON_CALL_KFUNC_BASE: an unresolved weak kfunc call becomes an invalid helper call, rejected only if reachable. */
const POISON_CALL_KFUNC = 2002000000;

/** A host value a load supplied (kfunc/ksym address, kconfig value, max_entries), as the host log records it. */
export type AppliedFixup = FixupRecord;

export class FixupError extends InputError {
  constructor(message: string) {
    super('FIXUP_UNRESOLVED', message);
    this.name = 'FixupError';
  }
}

export interface ResolvedProgram {
  insns: Buffer;
  attachBtfId: number;
  applied: AppliedFixup[];
}

export function resolveProgram(p: PlanProgram, host: HostFacts): ResolvedProgram {
  const applied: AppliedFixup[] = [];
  let attachBtfId = 0;
  if (p.attach) {
    if (!p.attach.name) throw new FixupError(`program '${p.name}' (section '${p.section}') names no attach target; the loader must supply one`);
    const id = host.btfId(p.attach.name, p.attach.btfKind);
    if (id === undefined) throw new FixupError(`program '${p.name}': attach target ${p.attach.btfKind} '${p.attach.name}' is not in the kernel's BTF`);
    attachBtfId = id;
    applied.push({ program: p.name, kind: 'attach_btf', name: p.attach.name, value: String(id) });
  }
  if (p.fixups.length === 0) return { insns: p.insns, attachBtfId, applied };
  const insns = Buffer.from(p.insns);
  // validatePlan checked f.insn < the instruction count; the bytes are read and written bounds-checked.
  const setSrcReg = (o: number, src: number) => insns.writeUInt8((insns.readUInt8(o + 1) & 0x0f) | (src << 4), o + 1);
  for (const f of p.fixups) {
    const o = f.insn * INSN_SIZE;
    const record = (value: string) => applied.push({ program: p.name, insn: f.insn, kind: f.kind, name: f.name, value });
    const missing = (what: string) => {
      if (!f.weak) throw new FixupError(`program '${p.name}': ${what} '${f.name}' not found on this host`);
    };
    if (f.kind === 'kfunc') {
      const id = host.btfId(f.name, 'func');
      if (id === undefined) {
        missing('kfunc');
        setSrcReg(o, 0);
        insns.writeInt32LE(POISON_CALL_KFUNC + f.insn, o + 4);
        record('unresolved (weak): call poisoned');
      } else {
        insns.writeInt16LE(0, o + 2);
        insns.writeInt32LE(id, o + 4);
        record(String(id));
      }
    } else if (f.kind === 'ksym_btf') {
      const id = host.btfId(f.name, 'var');
      if (id === undefined) {
        missing('typed ksym');
        setSrcReg(o, 0); // src_reg 0, imm 0: the weak symbol reads as NULL
        insns.writeInt32LE(0, o + 4);
        insns.writeInt32LE(0, o + 12);
        record('unresolved (weak): 0');
      } else {
        setSrcReg(o, PSEUDO.BTF_ID);
        insns.writeInt32LE(id, o + 4);
        insns.writeInt32LE(0, o + 12);
        record(String(id));
      }
    } else {
      const addr = host.ksymAddress(f.name);
      if (addr === undefined) missing('kernel symbol');
      const a = addr ?? 0n;
      insns.writeUInt32LE(Number(a & 0xffffffffn), o + 4);
      insns.writeUInt32LE(Number(a >> 32n), o + 12);
      record(addr === undefined ? 'unresolved (weak): 0' : `0x${a.toString(16)}`);
    }
  }
  return { insns, attachBtfId, applied };
}

function parseInt64(s: string): bigint | undefined {
  try {
    return /^-?(0x[0-9a-f]+|\d+)$/i.test(s) ? BigInt(s) : undefined;
  } catch {
    return undefined;
  }
}

/** The .kconfig map's value, built as libbpf's set_kcfg_value_* would. */
export function kconfigValue(m: PlanMap, host: HostFacts): { value: Buffer; applied: AppliedFixup[] } {
  const value = Buffer.alloc(m.valueSize);
  const applied: AppliedFixup[] = [];
  for (const k of m.kconfig) {
    let raw: string | undefined;
    if (k.name === 'LINUX_KERNEL_VERSION') raw = String(host.kernelVersion());
    else if (k.name === 'LINUX_HAS_BPF_COOKIE' || k.name === 'LINUX_HAS_SYSCALL_WRAPPER') raw = 'y';
    else raw = host.kconfig(k.name);
    const bad = (why: string) => new FixupError(`kconfig '${k.name}' = ${raw}: ${why}`);
    if (raw === undefined) {
      if (!k.weak) throw new FixupError(`kconfig '${k.name}' is not set on this host and the extern is not __weak`);
      applied.push({ map: m.name, kind: 'kconfig', name: k.name, value: 'unset (weak): 0' });
      continue;
    }
    const o = k.offset;
    switch (k.type) {
      case 'bool':
        if (raw !== 'y' && raw !== 'n') throw bad('not a bool (y/n)');
        value[o] = raw === 'y' ? 1 : 0;
        break;
      case 'tristate':
        if (raw !== 'y' && raw !== 'n' && raw !== 'm') throw bad('not a tristate (y/n/m)');
        value.writeUInt32LE(raw === 'y' ? 1 : raw === 'm' ? 2 : 0, o);
        break;
      case 'char':
        value[o] = raw.charCodeAt(0) & 0xff;
        break;
      case 'string': {
        if (!raw.startsWith('"') || !raw.endsWith('"')) throw bad('not a string');
        const s = Buffer.from(raw.slice(1, -1), 'latin1');
        s.copy(value, o, 0, Math.min(s.length, k.size - 1));
        break;
      }
      default: {
        const n = raw === 'y' ? 1n : raw === 'n' ? 0n : parseInt64(raw);
        if (n === undefined) throw bad('not an integer');
        const bits = BigInt(k.size * 8);
        const fits = k.type === 'int' ? n >= -(1n << (bits - 1n)) && n < 1n << (bits - 1n) : n >= 0n && n < 1n << bits;
        if (!fits) throw bad(`does not fit ${k.size} bytes`);
        const b = Buffer.alloc(8);
        b.writeBigUInt64LE(BigInt.asUintN(64, n));
        b.copy(value, o, 0, k.size);
      }
    }
    applied.push({ map: m.name, kind: 'kconfig', name: k.name, value: raw });
  }
  return { value, applied };
}

export function resolveMaxEntries(m: PlanMap, host: HostFacts, overrides: ReadonlyMap<string, number>): { maxEntries: number; applied?: AppliedFixup } {
  const o = overrides.get(m.name);
  if (m.maxEntriesFixup === 'none') {
    if (o !== undefined) throw new BpfsealError('usage', 'USAGE_MAX_ENTRIES', `map '${m.name}' has max_entries ${m.maxEntries} in the plan; only maps declared with 0 can be sized at load`);
    return { maxEntries: m.maxEntries };
  }
  if (o !== undefined) return { maxEntries: o, applied: { map: m.name, kind: 'max_entries', name: m.name, value: String(o) } };
  if (m.maxEntriesFixup === 'possible_cpus') {
    const n = host.possibleCpus();
    return { maxEntries: n, applied: { map: m.name, kind: 'max_entries', name: 'possible_cpus', value: String(n) } };
  }
  throw new FixupError(`map '${m.name}' has max_entries 0 in the object (sized by its loader); give it with --max-entries ${m.name}=N`);
}
