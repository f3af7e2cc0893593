/**
 * Canonical plan encoding, version 1 (docs/plan-format.md). Little-endian integers; `str` and `bytes`
 * are a u32 length then the bytes (UTF-8 for strings); lists are a u32 count then the items; enums are
 * u8 indices into the tables below. There is exactly one encoding of a plan: decode() re-encodes what it
 * read and rejects the input unless the bytes are identical. The plan digest is SHA-256 of these bytes.
 */
import { createHash } from 'node:crypto';
import { InputError } from '../errors.js';
import type { KconfigVar, MapKind } from '../bpf/spec.js';
import { CALL, INSN_SIZE, LD_IMM64 } from '../bpf/insn.js';
import { kernelNameProblem, labelProblem, nameProblem, pinFileName } from './names.js';
import {
  PLAN_MAGIC, PLAN_VERSION, type ExtInfo, type InsnFixup, type InsnFixupKind, type MaxEntriesFixup, type Plan,
  type PlanMap, type PlanProgram, type SlotInit,
} from './types.js';

const MAP_KINDS: readonly MapKind[] = ['btf', 'legacy', 'data', 'rodata', 'bss', 'kconfig', 'inner'];
const MAX_ENTRIES_FIXUPS: readonly MaxEntriesFixup[] = ['none', 'possible_cpus', 'loader'];
const KCONFIG_TYPES: readonly KconfigVar['type'][] = ['bool', 'tristate', 'char', 'int', 'uint', 'string'];
const FIXUP_KINDS: readonly InsnFixupKind[] = ['kfunc', 'ksym_btf', 'ksym_addr'];
const SLOT_KINDS: readonly SlotInit['kind'][] = ['map', 'prog'];
const BTF_KINDS = ['func', 'typedef'] as const;

class Writer {
  private buf: Buffer;
  private n = 0;
  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(capacity);
  }
  private ensure(k: number) {
    if (this.n + k <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.n + k) size *= 2;
    const b = Buffer.allocUnsafe(size);
    this.buf.copy(b, 0, 0, this.n);
    this.buf = b;
  }
  u8(v: number) { this.ensure(1); this.buf[this.n++] = v; }
  u32(v: number) { this.ensure(4); this.buf.writeUInt32LE(v >>> 0, this.n); this.n += 4; }
  i32(v: number) { this.ensure(4); this.buf.writeInt32LE(v, this.n); this.n += 4; }
  u64(v: bigint) { this.ensure(8); this.buf.writeBigUInt64LE(v, this.n); this.n += 8; }
  raw(b: Buffer) { this.ensure(b.length); b.copy(this.buf, this.n); this.n += b.length; }
  bytes(b: Buffer) { this.u32(b.length); this.raw(b); }
  str(s: string) { this.bytes(Buffer.from(s, 'utf8')); }
  bool(v: boolean) { this.u8(v ? 1 : 0); }
  done(): Buffer { return this.buf.subarray(0, this.n); }
}

function enc<T>(table: readonly T[], v: T): number {
  const i = table.indexOf(v);
  if (i < 0) throw new Error(`internal: cannot encode ${String(v)}`);
  return i;
}

function writeExt(w: Writer, e: ExtInfo) {
  w.u32(e.recSize);
  w.bytes(e.data);
}

/** Bytes the large fields take, so the writer allocates once for typical plans. */
function sizeHint(plan: Plan): number {
  let n = 4096 + plan.btf.length + plan.maps.length * 256;
  for (const m of plan.maps) n += m.initData?.length ?? 0;
  for (const p of plan.programs) n += 512 + p.insns.length + p.funcInfo.data.length + p.lineInfo.data.length + p.coreRelos.data.length + p.fdArray.length * 4 + p.fixups.length * 64;
  return n;
}

export function encodePlan(plan: Plan): Buffer {
  const w = new Writer(sizeHint(plan));
  w.raw(Buffer.from(PLAN_MAGIC, 'latin1'));
  w.u32(plan.version);
  w.str(plan.name);
  w.raw(plan.objectSha256);
  w.str(plan.license);
  w.u32(plan.kernVersion);
  w.bytes(plan.btf);
  w.u32(plan.maps.length);
  for (const m of plan.maps) {
    w.str(m.name); w.str(m.kernelName); w.u8(enc(MAP_KINDS, m.kind));
    w.u32(m.type); w.u32(m.keySize); w.u32(m.valueSize); w.u32(m.maxEntries); w.u32(m.flags); w.u64(m.mapExtra);
    w.u32(m.numaNode); w.u32(m.pinning); w.u32(m.btfKeyTypeId); w.u32(m.btfValueTypeId); w.i32(m.inner);
    w.bool(m.initData !== null);
    if (m.initData) w.bytes(m.initData);
    w.bool(m.freeze); w.u8(enc(MAX_ENTRIES_FIXUPS, m.maxEntriesFixup));
    w.u32(m.kconfig.length);
    for (const k of m.kconfig) { w.str(k.name); w.u32(k.offset); w.u32(k.size); w.u8(enc(KCONFIG_TYPES, k.type)); w.bool(k.weak); }
  }
  w.u32(plan.programs.length);
  for (const p of plan.programs) {
    w.str(p.name); w.str(p.section); w.u32(p.progType); w.u32(p.expectedAttachType); w.u32(p.progFlags);
    w.bool(p.attach !== null);
    if (p.attach) { w.str(p.attach.name); w.u8(enc(BTF_KINDS, p.attach.btfKind)); }
    w.bytes(p.insns);
    w.u32(p.fdArray.length);
    for (const f of p.fdArray) w.u32(f);
    writeExt(w, p.funcInfo); writeExt(w, p.lineInfo); writeExt(w, p.coreRelos);
    w.u32(p.fixups.length);
    for (const f of p.fixups) { w.u32(f.insn); w.u8(enc(FIXUP_KINDS, f.kind)); w.str(f.name); w.bool(f.weak); }
  }
  w.u32(plan.slots.length);
  for (const s of plan.slots) { w.u32(s.map); w.u32(s.index); w.u8(enc(SLOT_KINDS, s.kind)); w.u32(s.target); }
  return w.done();
}

export class PlanFormatError extends InputError {
  constructor(message: string) {
    super('PLAN_INVALID', `invalid plan: ${message}`);
    this.name = 'PlanFormatError';
  }
}

class Reader {
  p = 0;
  constructor(private b: Buffer) {}
  need(k: number, what: string) {
    if (this.p + k > this.b.length) throw new PlanFormatError(`truncated at byte ${this.p} reading ${what}`);
  }
  u8(what: string) { this.need(1, what); const v = this.b.readUInt8(this.p); this.p += 1; return v; }
  u32(what: string) { this.need(4, what); const v = this.b.readUInt32LE(this.p); this.p += 4; return v; }
  i32(what: string) { this.need(4, what); const v = this.b.readInt32LE(this.p); this.p += 4; return v; }
  u64(what: string) { this.need(8, what); const v = this.b.readBigUInt64LE(this.p); this.p += 8; return v; }
  raw(k: number, what: string) { this.need(k, what); const v = this.b.subarray(this.p, this.p + k); this.p += k; return v; }
  bytes(what: string) { return Buffer.from(this.raw(this.u32(`${what} length`), what)); }
  str(what: string) { return this.raw(this.u32(`${what} length`), what).toString('utf8'); }
  bool(what: string) {
    const v = this.u8(what);
    if (v > 1) throw new PlanFormatError(`${what}: boolean byte ${v}`);
    return v === 1;
  }
  /** A count, bounded by what the remaining bytes could hold (each item takes at least minSize). */
  count(what: string, minSize: number) {
    const n = this.u32(what);
    if (n * minSize > this.b.length - this.p) throw new PlanFormatError(`${what} ${n} exceeds what the remaining ${this.b.length - this.p} bytes can hold`);
    return n;
  }
  oneOf<T>(table: readonly T[], what: string): T {
    const v = this.u8(what);
    const t = table[v];
    if (t === undefined) throw new PlanFormatError(`${what}: unknown value ${v}`);
    return t;
  }
  get left() { return this.b.length - this.p; }
}

function readExt(r: Reader, what: string): ExtInfo {
  const recSize = r.u32(`${what} record size`);
  const data = r.bytes(what);
  if ((recSize === 0) !== (data.length === 0) || (recSize && data.length % recSize)) {
    throw new PlanFormatError(`${what}: ${data.length} bytes do not hold records of ${recSize} bytes`);
  }
  return { recSize, data };
}

export function decodePlan(bytes: Buffer): Plan {
  const r = new Reader(bytes);
  if (r.raw(8, 'magic').toString('latin1') !== PLAN_MAGIC) throw new PlanFormatError('not a bpfseal plan (bad magic)');
  const version = r.u32('version');
  if (version !== PLAN_VERSION) throw new PlanFormatError(`format version ${version} is not supported (this bpfseal reads version ${PLAN_VERSION})`);
  const name = r.str('name');
  const objectSha256 = Buffer.from(r.raw(32, 'object digest'));
  const license = r.str('license');
  const kernVersion = r.u32('kern_version');
  const btf = r.bytes('btf');
  const maps: PlanMap[] = [];
  const nMaps = r.count('map count', 60);
  for (let i = 0; i < nMaps; i++) {
    const w = `map ${i}`;
    const m: PlanMap = {
      name: r.str(`${w} name`), kernelName: r.str(`${w} kernel name`), kind: r.oneOf(MAP_KINDS, `${w} kind`),
      type: r.u32(w), keySize: r.u32(w), valueSize: r.u32(w), maxEntries: r.u32(w), flags: r.u32(w), mapExtra: r.u64(w),
      numaNode: r.u32(w), pinning: r.u32(w), btfKeyTypeId: r.u32(w), btfValueTypeId: r.u32(w), inner: r.i32(w),
      initData: null, freeze: false, maxEntriesFixup: 'none', kconfig: [],
    };
    if (r.bool(`${w} has init`)) m.initData = r.bytes(`${w} init`);
    m.freeze = r.bool(`${w} freeze`);
    m.maxEntriesFixup = r.oneOf(MAX_ENTRIES_FIXUPS, `${w} max_entries fix-up`);
    const nk = r.count(`${w} kconfig count`, 14);
    for (let k = 0; k < nk; k++) {
      m.kconfig.push({ name: r.str('kconfig name'), offset: r.u32('kconfig'), size: r.u32('kconfig'), type: r.oneOf(KCONFIG_TYPES, 'kconfig type'), weak: r.bool('kconfig weak') });
    }
    maps.push(m);
  }
  const programs: PlanProgram[] = [];
  const nProgs = r.count('program count', 60);
  for (let i = 0; i < nProgs; i++) {
    const w = `program ${i}`;
    const p: PlanProgram = {
      name: r.str(`${w} name`), section: r.str(`${w} section`), progType: r.u32(w), expectedAttachType: r.u32(w), progFlags: r.u32(w),
      attach: null, insns: Buffer.alloc(0), fdArray: [], funcInfo: { recSize: 0, data: Buffer.alloc(0) }, lineInfo: { recSize: 0, data: Buffer.alloc(0) },
      coreRelos: { recSize: 0, data: Buffer.alloc(0) }, fixups: [],
    };
    if (r.bool(`${w} has attach`)) p.attach = { name: r.str(`${w} attach`), btfKind: r.oneOf(BTF_KINDS, `${w} attach kind`) };
    p.insns = r.bytes(`${w} instructions`);
    const nfd = r.count(`${w} fd_array count`, 4);
    for (let k = 0; k < nfd; k++) p.fdArray.push(r.u32(`${w} fd_array`));
    p.funcInfo = readExt(r, `${w} func_info`);
    p.lineInfo = readExt(r, `${w} line_info`);
    p.coreRelos = readExt(r, `${w} core_relos`);
    const nf = r.count(`${w} fix-up count`, 10);
    for (let k = 0; k < nf; k++) {
      const f: InsnFixup = { insn: r.u32('fix-up'), kind: r.oneOf(FIXUP_KINDS, 'fix-up kind'), name: r.str('fix-up name'), weak: r.bool('fix-up weak') };
      p.fixups.push(f);
    }
    programs.push(p);
  }
  const slots: SlotInit[] = [];
  const nSlots = r.count('slot count', 13);
  for (let i = 0; i < nSlots; i++) slots.push({ map: r.u32('slot'), index: r.u32('slot'), kind: r.oneOf(SLOT_KINDS, 'slot kind'), target: r.u32('slot') });
  if (r.left !== 0) throw new PlanFormatError(`${r.left} trailing bytes after the plan`);
  const plan: Plan = { version, name, objectSha256, license, kernVersion, btf, maps, programs, slots };
  validatePlan(plan);
  if (!encodePlan(plan).equals(bytes)) throw new PlanFormatError('not canonical: the bytes do not re-encode identically');
  return plan;
}

/** Cross-references a well-formed plan must satisfy; checked on decode so the runtime can rely on them. */
export function validatePlan(plan: Plan): void {
  const nm = plan.maps.length, np = plan.programs.length;
  const named = (s: string, what: string, label = false) => {
    const why = label ? labelProblem(s) : nameProblem(s);
    if (why) throw new PlanFormatError(`${what} ${JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s)} ${why}`);
  };
  named(plan.name, 'plan name');
  named(plan.license, 'license', true);
  const pins = new Map<string, string>();
  const pinOnce = (file: string, what: string) => {
    const other = pins.get(file);
    if (other) throw new PlanFormatError(`${what} and ${other} would both be pinned as '${file}'`);
    pins.set(file, what);
  };
  // The maps directory holds map pins: a program pinned as 'maps' would take its place.
  pins.set('maps', 'the maps directory');
  const once = (seen: Set<string>, n: string, what: string) => {
    if (seen.has(n)) throw new PlanFormatError(`two ${what}s are named ${JSON.stringify(n)} (names identify objects in records and pins)`);
    seen.add(n);
  };
  const mapNames = new Set<string>(), progNames = new Set<string>();
  for (const m of plan.maps) {
    named(m.name, 'map name');
    once(mapNames, m.name, 'map');
    const kn = kernelNameProblem(m.kernelName);
    if (kn) throw new PlanFormatError(`map '${m.name}': kernel name ${JSON.stringify(m.kernelName)} ${kn}`);
    if (m.name.startsWith('.')) named(pinName(m), `map '${m.name}': pin name`);
    for (const k of m.kconfig) named(k.name, `map '${m.name}': kconfig name`, true);
    if (m.kind !== 'inner') pinOnce(`maps/${pinName(m)}`, `map '${m.name}'`);
  }
  for (const p of plan.programs) {
    named(p.name, 'program name');
    once(progNames, p.name, 'program');
    named(p.section, `program '${p.name}': section`, true);
    if (p.attach) named(p.attach.name, `program '${p.name}': attach target`, true);
    for (const f of p.fixups) named(f.name, `program '${p.name}': fix-up name`, true);
    pinOnce(pinFileName(p.name), `program '${p.name}'`);
  }
  plan.maps.forEach((m, i) => {
    if (m.inner !== -1 && (m.inner < 0 || m.inner >= i)) throw new PlanFormatError(`map '${m.name}': inner map index ${m.inner} must name an earlier map`);
    for (const k of m.kconfig) {
      if (k.offset + k.size > m.valueSize) throw new PlanFormatError(`map '${m.name}': kconfig '${k.name}' lies outside the value`);
    }
    if (m.initData && m.initData.length !== m.valueSize) throw new PlanFormatError(`map '${m.name}': initial value is ${m.initData.length} bytes, value size ${m.valueSize}`);
  });
  for (const p of plan.programs) {
    if (p.insns.length === 0 || p.insns.length % INSN_SIZE) throw new PlanFormatError(`program '${p.name}': instruction bytes ${p.insns.length} not a non-zero multiple of 8`);
    const n = p.insns.length / INSN_SIZE;
    for (const f of p.fdArray) if (f >= nm) throw new PlanFormatError(`program '${p.name}': fd_array names map ${f}; the plan has ${nm}`);
    if (new Set(p.fdArray).size !== p.fdArray.length) throw new PlanFormatError(`program '${p.name}': fd_array lists a map twice`);
    for (const f of p.fixups) {
      if (f.insn >= n) throw new PlanFormatError(`program '${p.name}': fix-up at instruction ${f.insn} of ${n}`);
      // The host value is written into the instruction the fix-up names: a kfunc call, or both halves
      // of a ld_imm64 (its second slot must be in the program: the writers do not look further).
      const code = p.insns[f.insn * INSN_SIZE];
      const want = f.kind === 'kfunc' ? CALL : LD_IMM64;
      if (code !== want) throw new PlanFormatError(`program '${p.name}': ${f.kind} fix-up at instruction ${f.insn}, which is not a ${f.kind === 'kfunc' ? 'call' : 'ld_imm64'}`);
      if (want === LD_IMM64 && f.insn + 1 >= n) throw new PlanFormatError(`program '${p.name}': ${f.kind} fix-up at the last instruction (${f.insn}): its ld_imm64 has no second half`);
    }
  }
  for (const s of plan.slots) {
    if (s.map >= nm || s.target >= (s.kind === 'map' ? nm : np)) throw new PlanFormatError(`slot ${s.index} of map ${s.map}: reference out of range`);
  }
}

export function planDigest(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * File name of a map's pin. Global-data maps are pinned under their kernel name (e.g. "testrun_data"),
 * as libbpf does, other maps under their own name; bpffs refuses '.', so it becomes '_'.
 */
export function pinName(m: PlanMap): string {
  return pinFileName(m.name.startsWith('.') ? m.kernelName : m.name);
}
