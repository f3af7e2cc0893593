/**
 * Link one program: copy its instructions, append every subprogram it calls or takes the address of
 * (bpf-to-bpf calls, callbacks), and rewrite every relocated instruction into its FD-index-stable form:
 * map references -> BPF_PSEUDO_MAP_IDX, global data -> BPF_PSEUDO_MAP_IDX_VALUE, externs -> declared
 * fix-ups. Mirrors libbpf's bpf_object__reloc_code / bpf_object__relocate_data with gen_loader semantics,
 * except that indices point into a per-program fd_array.
 */
import { at, InputError } from '../errors.js';
import { SHN_LORESERVE, SHN_UNDEF, type ElfReloc, type ElfSymbol } from '../elf/reader.js';
import { CALL, INSN_SIZE, LD_IMM64, PSEUDO, PSEUDO_CALL, PSEUDO_KFUNC_CALL } from '../bpf/insn.js';
import type { CollectionSpec, ExternSpec, FuncSpec, MapSpec, ProgramSpec } from '../bpf/spec.js';
import type { ExtInfo, InsnFixup } from './types.js';
import type { ExtRecords } from '../bpf/btfext.js';

const R_BPF_NONE = 0;
const R_BPF_64_64 = 1;
const R_BPF_64_32 = 10;

/** Per-collection lookup tables, built once and shared by every program's link. */
export interface LinkContext {
  spec: CollectionSpec;
  mapIndex: Map<MapSpec, number>;
  /** sectionIndex -> insn index -> relocation */
  relocs: Map<number, Map<number, ElfReloc>>;
  /** sectionIndex -> functions sorted by start */
  funcsBySection: Map<number, FuncSpec[]>;
  /** `${sectionIndex}:${offset}` -> map defined there (.maps / legacy maps) */
  mapAt: Map<string, MapSpec>;
  kconfig?: MapSpec;
}

export function linkContext(spec: CollectionSpec, mapIndex: Map<MapSpec, number>): LinkContext {
  const relocs = new Map<number, Map<number, ElfReloc>>();
  const exec = new Set(spec.funcs.map((f) => f.sectionIndex));
  for (const rs of spec.elf.relocations) {
    if (!exec.has(rs.target)) continue;
    const m = new Map<number, ElfReloc>();
    for (const r of rs.relocs) {
      if (r.type === R_BPF_NONE) continue;
      if (r.offset % BigInt(INSN_SIZE) !== 0n) {
        throw new InputError('RELOC_MISALIGNED', `relocation in '${rs.section.name}' at offset ${r.offset} is not instruction-aligned`);
      }
      m.set(Number(r.offset / BigInt(INSN_SIZE)), r);
    }
    relocs.set(rs.target, m);
  }
  const funcsBySection = new Map<number, FuncSpec[]>();
  for (const f of spec.funcs) {
    const l = funcsBySection.get(f.sectionIndex) ?? [];
    l.push(f);
    funcsBySection.set(f.sectionIndex, l);
  }
  const mapAt = new Map<string, MapSpec>();
  for (const m of spec.maps) if (m.kind === 'btf' || m.kind === 'legacy') mapAt.set(`${m.sectionIndex}:${m.offset}`, m);
  return { spec, mapIndex, relocs, funcsBySection, mapAt, kconfig: spec.maps.find((m) => m.kind === 'kconfig') };
}

export interface LinkedProgram {
  insns: Buffer;
  fdArray: number[];
  fixups: InsnFixup[];
  funcInfo: ExtInfo;
  lineInfo: ExtInfo;
  coreRelos: ExtInfo;
  /** Placed functions with their position, for disassembly labels. */
  layout: { func: FuncSpec; pos: number }[];
}

/** Set src_reg of the instruction at byte offset `o` (dst_reg in the low nibble, src_reg in the high). */
function setSrcAt(code: Buffer, o: number, src: number): void {
  code[o + 1] = (at(code, o + 1, 'instruction byte') & 0x0f) | (src << 4);
}

/** One program's link in progress: where each function is placed, and the fd_array and fix-ups so far. */
interface LinkState {
  ctx: LinkContext;
  prog: ProgramSpec;
  /** Function -> position of its first instruction in the linked program. */
  placed: Map<FuncSpec, number>;
  /** Placed functions in placement order, the program first; grows while the program is linked. */
  order: FuncSpec[];
  /** Instructions placed so far. */
  total: number;
  /** Map index (in the plan) -> its index in fdArray. */
  fdIndex: Map<number, number>;
  fdArray: number[];
  fixups: InsnFixup[];
}

/** The instruction being rewritten: its function, the function's copied code and position, and its index there. */
interface Site {
  f: FuncSpec;
  code: Buffer;
  base: number;
  i: number;
}

/** Link `prog`: place it and every function it reaches, rewrite each in turn, then relocate their .BTF.ext records. */
export function linkProgram(ctx: LinkContext, prog: ProgramSpec): LinkedProgram {
  const st: LinkState = { ctx, prog, placed: new Map([[prog, 0]]), order: [prog], total: prog.count, fdIndex: new Map(), fdArray: [], fixups: [] };
  const chunks: Buffer[] = [];
  // Linking a function can place more (callees, taken addresses) at the end of `order`; they are linked in
  // turn (an array's iterator reads its length at every step, so it visits what is appended meanwhile).
  for (const f of st.order) chunks.push(linkFunction(st, f));
  const layout = st.order.map((func) => ({ func, pos: st.placed.get(func)! }));
  const { spec } = ctx;
  const ext = spec.btfExt;
  return {
    insns: Buffer.concat(chunks, st.total * INSN_SIZE), fdArray: st.fdArray, fixups: st.fixups, layout,
    funcInfo: relocateExt(ext?.funcInfo, layout, spec),
    lineInfo: relocateExt(ext?.lineInfo, layout, spec),
    coreRelos: relocateExt(ext?.coreRelo, layout, spec, INSN_SIZE),
  };
}

/** Where an error is, for its message: the program, the instruction and the function it is in. */
function where(st: LinkState, f: FuncSpec, i: number): string {
  return `program '${st.prog.name}': instruction ${i} of '${f.name}' (section '${f.section}')`;
}

/** The index of map `m` in the program's fd_array, appending it on first use. */
function fdOf(st: LinkState, m: MapSpec): number {
  const mi = st.ctx.mapIndex.get(m)!;
  let i = st.fdIndex.get(mi);
  if (i === undefined) {
    i = st.fdArray.length;
    st.fdIndex.set(mi, i);
    st.fdArray.push(mi);
  }
  return i;
}

/** Position in the linked program of instruction `target` of section `secIdx`, placing its function at the end on first reference. */
function place(st: LinkState, secIdx: number, target: number, f: FuncSpec, i: number): number {
  const cands = st.ctx.funcsBySection.get(secIdx) ?? [];
  const callee = cands.find((c) => target >= c.start && target < c.start + c.count);
  if (!callee) {
    const secName = st.ctx.spec.elf.sections[secIdx]?.name ?? `#${secIdx}`;
    throw new InputError('LINK_BAD_TARGET', `${where(st, f, i)}: call or function reference to instruction ${target} of section '${secName}', which is inside no function`);
  }
  let pos = st.placed.get(callee);
  if (pos === undefined) {
    pos = st.total;
    st.placed.set(callee, pos);
    st.order.push(callee);
    st.total += callee.count;
  }
  return pos + (target - callee.start);
}

/** The symbol a relocation names (the ELF reader bounds it; checked here too, as input, not a crash). */
function relocSymbol(st: LinkState, rel: ElfReloc, f: FuncSpec, i: number): ElfSymbol {
  const { symbols } = st.ctx.spec.elf;
  const sym = symbols[rel.symbol];
  if (sym === undefined) throw new InputError('ELF_BAD_RELOC_SYMBOL', `${where(st, f, i)}: relocation names symbol ${rel.symbol}; the symbol table has ${symbols.length}`);
  return sym;
}

/** Copy one placed function's instructions and rewrite its calls and ld_imm64s in the copy. */
function linkFunction(st: LinkState, f: FuncSpec): Buffer {
  const { spec } = st.ctx;
  const base = st.placed.get(f)!;
  // collectFuncs made `f` from this section, and only if it lies inside it: `code` holds f.count instructions.
  const sec = at(spec.elf.sections, f.sectionIndex, 'section of a function');
  const code = Buffer.from(sec.data.subarray(f.start * INSN_SIZE, (f.start + f.count) * INSN_SIZE));
  const relocs = st.ctx.relocs.get(f.sectionIndex);
  for (let i = 0; i < f.count; i++) {
    const o = i * INSN_SIZE;
    const op = at(code, o, 'instruction byte');
    const src = at(code, o + 1, 'instruction byte') >> 4;
    const rel = relocs?.get(f.start + i);
    if (op === CALL) {
      linkCall(st, { f, code, base, i }, src, rel);
      continue;
    }
    if (op !== LD_IMM64) {
      if (rel) throw new InputError('RELOC_BAD_INSN', `${where(st, f, i)}: relocation on opcode 0x${op.toString(16)}, which is neither a call nor ld_imm64`);
      continue;
    }
    if (i + 1 >= f.count) throw new InputError('INSN_TRUNCATED', `${where(st, f, i)}: ld_imm64 is missing its second half`);
    linkLdImm64(st, { f, code, base, i }, src, rel);
    i++; // its second half, rewritten with the first
  }
  return code;
}

/** A call: to a kfunc extern (becomes a fix-up), a bpf-to-bpf call (callee placed, offset rewritten), or a helper (kept). */
function linkCall(st: LinkState, s: Site, src: number, rel: ElfReloc | undefined): void {
  const { spec } = st.ctx;
  const { f, code, base, i } = s;
  const o = i * INSN_SIZE;
  if (rel && rel.type !== R_BPF_64_32 && rel.type !== R_BPF_64_64) {
    throw new InputError('RELOC_UNKNOWN_TYPE', `${where(st, f, i)}: unknown relocation type ${rel.type} on a call`);
  }
  const sym = rel ? relocSymbol(st, rel, f, i) : undefined;
  const ext = rel ? spec.externBySymbol.get(rel.symbol) : undefined;
  if (ext) {
    if (ext.kind !== 'kfunc') throw new InputError('RELOC_BAD_EXTERN', `${where(st, f, i)}: call to extern '${ext.name}', which is not a kfunc`);
    setSrcAt(code, o, PSEUDO_KFUNC_CALL);
    code.writeInt16LE(0, o + 2);
    code.writeInt32LE(0, o + 4);
    st.fixups.push({ insn: base + i, kind: 'kfunc', name: ext.name, weak: ext.weak });
    return;
  }
  if (src !== PSEUDO_CALL) {
    if (sym) throw new InputError('RELOC_BAD_INSN', `${where(st, f, i)}: relocation against '${sym.name}' on a helper call`);
    return;
  }
  const imm = code.readInt32LE(o + 4);
  let secIdx = f.sectionIndex, target = f.start + i + imm + 1;
  if (sym) {
    if (sym.shndx === SHN_UNDEF || sym.shndx >= SHN_LORESERVE) throw new InputError('RELOC_BAD_CALL', `${where(st, f, i)}: call to undefined function '${sym.name}'`);
    secIdx = sym.shndx;
    target = Number(sym.value) / INSN_SIZE + imm + 1;
  }
  const to = place(st, secIdx, target, f, i);
  code.writeInt32LE(to - (base + i) - 1, o + 4);
}

/**
 * An ld_imm64 whose first half is instruction `s.i`: without a relocation it must be a plain constant;
 * with one, it becomes what its symbol names: an extern, code (a function's address), global data or a map.
 */
function linkLdImm64(st: LinkState, s: Site, src: number, rel: ElfReloc | undefined): void {
  const { spec } = st.ctx;
  const { f, code, i } = s;
  if (!rel) {
    if (src === PSEUDO.FUNC) throw new InputError('RELOC_MISSING', `${where(st, f, i)}: function reference without a relocation`);
    if (src !== 0) throw new InputError('INSN_PSEUDO', `${where(st, f, i)}: ld_imm64 with src_reg ${src} but no relocation (object pre-patched by another loader?)`);
    return;
  }
  if (rel.type !== R_BPF_64_64) throw new InputError('RELOC_UNKNOWN_TYPE', `${where(st, f, i)}: unknown relocation type ${rel.type} on ld_imm64`);
  const sym = relocSymbol(st, rel, f, i);
  const ext = spec.externBySymbol.get(rel.symbol);
  const imm = code.readInt32LE(i * INSN_SIZE + 4);
  if (ext) {
    linkExternLoad(st, s, ext);
    return;
  }
  if (sym.shndx === SHN_UNDEF || sym.shndx >= SHN_LORESERVE) {
    throw new InputError('RELOC_SPECIAL_SECTION', `${where(st, f, i)}: relocation against '${sym.name}' in special section 0x${sym.shndx.toString(16)} (an uninitialised global variable? compile with -fno-common)`);
  }
  if (st.ctx.funcsBySection.has(sym.shndx)) {
    linkFuncRef(st, s, src, sym, imm);
    return;
  }
  const data = spec.dataSections.get(sym.shndx);
  if (data) {
    linkDataRef(st, s, sym, imm, data);
    return;
  }
  linkMapRef(st, s, sym);
}

/** ld_imm64 of an extern: a kconfig value (its slot in the .kconfig map) or a ksym (a fix-up); a kfunc's address is refused. */
function linkExternLoad(st: LinkState, s: Site, ext: ExternSpec): void {
  const { f, code, base, i } = s;
  const o = i * INSN_SIZE;
  if (ext.kind === 'kconfig') {
    const m = st.ctx.kconfig!;
    const v = m.kconfig!.find((x) => x.name === ext.name)!;
    setSrcAt(code, o, PSEUDO.MAP_IDX_VALUE);
    code.writeInt32LE(fdOf(st, m), o + 4);
    code.writeInt32LE(v.offset, o + 12);
  } else if (ext.kind === 'ksym') {
    setSrcAt(code, o, ext.typed ? PSEUDO.BTF_ID : 0);
    code.writeInt32LE(0, o + 4);
    code.writeInt32LE(0, o + 12);
    st.fixups.push({ insn: base + i, kind: ext.typed ? 'ksym_btf' : 'ksym_addr', name: ext.name, weak: ext.weak });
  } else {
    throw new InputError('RELOC_BAD_EXTERN', `${where(st, f, i)}: ld_imm64 of kfunc '${ext.name}' (taking a kfunc's address is not supported)`);
  }
}

/** ld_imm64 of a function's address (a callback): BPF_PSEUDO_FUNC with the offset to the placed function. */
function linkFuncRef(st: LinkState, s: Site, src: number, sym: ElfSymbol, imm: number): void {
  const { f, code, base, i } = s;
  const o = i * INSN_SIZE;
  // clang emits src_reg 0 for a function's address; the kernel wants BPF_PSEUDO_FUNC (as libbpf sets it).
  if (src !== 0 && src !== PSEUDO.FUNC) throw new InputError('RELOC_BAD_INSN', `${where(st, f, i)}: ld_imm64 of code with src_reg ${src}`);
  setSrcAt(code, o, PSEUDO.FUNC);
  code.writeInt32LE(0, o + 12);
  const off = Number(sym.value) + imm;
  if (off % INSN_SIZE) throw new InputError('RELOC_MISALIGNED', `${where(st, f, i)}: function reference to byte offset ${off}`);
  const to = place(st, sym.shndx, off / INSN_SIZE, f, i);
  code.writeInt32LE(to - (base + i) - 1, o + 4);
}

/** ld_imm64 of global data: BPF_PSEUDO_MAP_IDX_VALUE of the data section's map, at the variable's offset. */
function linkDataRef(st: LinkState, s: Site, sym: ElfSymbol, imm: number, data: MapSpec): void {
  const { f, code, i } = s;
  const o = i * INSN_SIZE;
  const off = imm + Number(sym.value);
  if (off < 0 || off >= data.valueSize) {
    throw new InputError('RELOC_OUT_OF_RANGE', `${where(st, f, i)}: reference to '${sym.name}' at offset ${off} of '${data.name}', which is ${data.valueSize} bytes`);
  }
  setSrcAt(code, o, PSEUDO.MAP_IDX_VALUE);
  code.writeInt32LE(fdOf(st, data), o + 4);
  code.writeInt32LE(off, o + 12);
}

/** ld_imm64 of a map (.maps or legacy maps): BPF_PSEUDO_MAP_IDX of the map defined at the symbol. */
function linkMapRef(st: LinkState, s: Site, sym: ElfSymbol): void {
  const { spec } = st.ctx;
  const { f, code, i } = s;
  const o = i * INSN_SIZE;
  const m = st.ctx.mapAt.get(`${sym.shndx}:${Number(sym.value)}`);
  if (!m) {
    const secName = spec.elf.sections[sym.shndx]?.name ?? `#${sym.shndx}`;
    throw new InputError('RELOC_NO_MAP', `${where(st, f, i)}: relocation against '${sym.name}' in section '${secName}' at offset ${sym.value}, where no map or data section is defined`);
  }
  setSrcAt(code, o, PSEUDO.MAP_IDX);
  code.writeInt32LE(fdOf(st, m), o + 4);
  code.writeInt32LE(0, o + 12);
}

/**
 * Copy each placed function's .BTF.ext records, turning insn_off (bytes in the section) into positions in
 * the linked program. The kernel wants instruction indices in func_info/line_info but byte offsets in
 * bpf_core_relo (check_core_relo: insn_off % 8, insn_off / 8 < len), hence `unit`.
 */
function relocateExt(recs: ExtRecords | undefined, layout: { func: FuncSpec; pos: number }[], spec: CollectionSpec, unit = 1): ExtInfo {
  if (!recs) return { recSize: 0, data: Buffer.alloc(0) };
  const size = recs.recSize;
  const chunks: Buffer[] = [];
  let total = 0;
  for (const { func, pos } of layout) {
    const sec = recs.bySection.get(at(spec.elf.sections, func.sectionIndex, 'section of a function').name);
    if (!sec) continue;
    const lo = func.start * INSN_SIZE, hi = (func.start + func.count) * INSN_SIZE;
    // Records of this function: one run found by binary search when sorted, else a scan in file order.
    let first = 0, n = 0;
    let pick: number[] | undefined;
    if (sec.sorted) {
      let a = 0, b = sec.insnOffs.length;
      while (a < b) {
        const m = (a + b) >> 1;
        if (at(sec.insnOffs, m, 'record') < lo) a = m + 1; else b = m;
      }
      first = a;
      while (first + n < sec.insnOffs.length && at(sec.insnOffs, first + n, 'record') < hi) n++;
    } else {
      pick = [];
      for (const [i, off] of sec.insnOffs.entries()) if (off >= lo && off < hi) pick.push(i);
      n = pick.length;
    }
    if (!n) continue;
    const c = Buffer.allocUnsafe(n * size);
    if (!pick) sec.data.copy(c, 0, first * size, (first + n) * size);
    for (let k = 0; k < n; k++) {
      const i = pick ? at(pick, k, 'record') : first + k;
      if (pick) sec.data.copy(c, k * size, i * size, (i + 1) * size);
      const off = at(sec.insnOffs, i, 'record');
      if (off % INSN_SIZE) throw new InputError('BTF_EXT_MISALIGNED', `.BTF.ext record for '${func.section}' has insn_off ${off}, not instruction-aligned`);
      c.writeUInt32LE((pos + off / INSN_SIZE - func.start) * unit, k * size);
    }
    chunks.push(c);
    total += c.length;
  }
  return { recSize: total ? size : 0, data: Buffer.concat(chunks, total) };
}
