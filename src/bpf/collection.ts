/**
 * ELF object -> CollectionSpec: functions and programs, maps, externs, license and version.
 * Follows libbpf's conventions (bpf_object__elf_collect, bpf_object__add_programs, collect_externs).
 */
import { InputError } from '../errors.js';
import { parseElf, sectionByName, SHF_EXECINSTR, SHN_UNDEF, STB, STT, SHT, type ElfObject, type ElfSection, type ElfSymbol } from '../elf/reader.js';
import { BtfError, KIND, parseBtf, skipMods, type Btf, type BtfDatasec } from './btf.js';
import { parseBtfExt } from './btfext.js';
import { MAP_TYPE } from './constants.js';
import { BPF_F_MMAPABLE, BPF_F_RDONLY_PROG, btfMaps, dataMap, isDataSection, legacyMaps, secinfoType } from './maps.js';
import { knownSections, overrideInfo, sectionInfo, type SectionOverride } from './sections.js';
import type { CollectionSpec, ExternSpec, FuncSpec, KconfigVar, MapSpec, ProgramSpec } from './spec.js';
import { INSN_SIZE } from './insn.js';

export function objectNames(fileName: string): { name: string; objName: string } {
  const base = fileName.replace(/^.*\//, '');
  const name = base.endsWith('.o') ? base.slice(0, -2) : base;
  const dot = base.indexOf('.');
  return { name, objName: dot > 0 ? base.slice(0, dot) : base };
}

export interface LoadOptions {
  /** Program types for sections libbpf's table does not know; these take precedence over it. */
  sectionTypes?: readonly SectionOverride[];
}

export function loadCollection(buf: Buffer, fileName: string, opts: LoadOptions = {}): CollectionSpec {
  const elf = parseElf(buf);
  const { name, objName } = objectNames(fileName);
  const byName = (n: string) => sectionByName(elf, n);
  const licSec = byName('license');
  const license = licSec ? cstring(licSec) : '';
  const verSec = byName('version');
  let kernVersion = 0;
  if (verSec) {
    if (verSec.size !== 4 || verSec.data.length !== 4) throw new InputError('ELF_BAD_VERSION', `'version' section must hold 4 bytes of data (size ${verSec.size}, type ${verSec.type})`);
    kernVersion = verSec.data.readUInt32LE(0);
  }
  const btfSec = byName('.BTF');
  const btf = btfSec ? parseBtf(btfSec.data) : undefined;
  const extSec = byName('.BTF.ext');
  const btfExt = extSec && btf ? parseBtfExt(extSec.data, btf) : undefined;

  const funcs = collectFuncs(elf);
  const programs: ProgramSpec[] = [];
  for (const f of funcs) {
    if (f.section === '.text') continue;
    const info = overrideInfo(f.section, opts.sectionTypes ?? []) ?? sectionInfo(f.section);
    if (!info) {
      throw new InputError('PROG_UNKNOWN_SECTION',
        `program '${f.name}' is in section '${f.section}', which names no known program type (libbpf conventions: ${knownSections().slice(0, 6).join(', ')}, ...; ` +
        `if its loader knows the type, say so: bpfseal plan --section-type '${f.section}=<prog_type>')`);
    }
    programs.push({
      name: f.name, sectionIndex: f.sectionIndex, section: f.section, start: f.start, count: f.count, global: f.global,
      progType: info.progType, expectedAttachType: info.expectedAttachType, progFlags: info.progFlags,
      attachTarget: info.attachTarget, needsAttachBtf: info.needsAttachBtf,
    });
  }

  const maps: MapSpec[] = [];
  const dataSections = new Map<number, MapSpec>();
  for (const s of elf.sections) {
    if (s.name === '.maps') maps.push(...btfMaps(elf, btf, s));
    else if (s.name === 'maps') maps.push(...legacyMaps(elf, s));
    else if (isDataSection(s.name) && s.size > 0 && (s.type === SHT.PROGBITS || s.type === SHT.NOBITS)) {
      const m = dataMap(btf, s);
      maps.push(m);
      dataSections.set(s.index, m);
    } else if (s.name === '.struct_ops' || s.name === '.struct_ops.link' || s.name === '.addr_space.1') {
      throw new InputError('UNSUPPORTED', `section '${s.name}' (${s.name.startsWith('.struct_ops') ? 'struct_ops maps' : 'BPF arena'}) is not supported yet`);
    }
  }
  const externs = collectExterns(elf, btf);
  const kconfig = kconfigMap(externs, btf);
  if (kconfig) maps.push(kconfig);
  const names = new Set<string>();
  for (const m of maps) {
    if (names.has(m.name)) throw new InputError('MAP_DUPLICATE', `two maps are named '${m.name}'`);
    names.add(m.name);
  }
  return {
    name, objName, license, kernVersion, elf, btf, btfExt, maps, programs, funcs, externs,
    externBySymbol: new Map(externs.map((e) => [e.symbol, e])), dataSections,
  };
}

function cstring(s: ElfSection): string {
  const end = s.data.indexOf(0);
  return s.data.toString('latin1', 0, end < 0 ? s.data.length : end);
}

function collectFuncs(elf: ElfObject): FuncSpec[] {
  const out: FuncSpec[] = [];
  const funcSyms = new Map<number, ElfSymbol[]>();
  for (const s of elf.symbols) {
    if (s.type !== STT.FUNC) continue;
    const l = funcSyms.get(s.shndx);
    if (l) l.push(s); else funcSyms.set(s.shndx, [s]);
  }
  for (const sec of elf.sections) {
    if (sec.type !== SHT.PROGBITS || (sec.flags & BigInt(SHF_EXECINSTR)) === 0n || sec.size === 0) continue;
    if (sec.size % INSN_SIZE !== 0) throw new InputError('PROG_BAD_SIZE', `section '${sec.name}' size ${sec.size} is not a multiple of 8`);
    const syms = (funcSyms.get(sec.index) ?? [])
      .sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
    if (syms.length === 0) {
      throw new InputError('PROG_NO_SYMBOL', `executable section '${sec.name}' has no function symbols (object built by a very old compiler?)`);
    }
    for (const s of syms) {
      const off = Number(s.value), size = Number(s.size);
      if (off % INSN_SIZE || size % INSN_SIZE || size === 0 || off + size > sec.size) {
        throw new InputError('PROG_BAD_SYMBOL', `function '${s.name}' at offset ${off} size ${size} does not fit section '${sec.name}' (${sec.size} bytes)`);
      }
      out.push({ name: s.name, sectionIndex: sec.index, section: sec.name, start: off / INSN_SIZE, count: size / INSN_SIZE, global: s.bind !== STB.LOCAL });
    }
  }
  const seen = new Set<string>();
  for (const f of out) {
    if (f.section !== '.text' && seen.has(f.name)) throw new InputError('PROG_DUPLICATE', `two programs are named '${f.name}'`);
    seen.add(f.name);
  }
  return out;
}

function collectExterns(elf: ElfObject, btf: Btf | undefined): ExternSpec[] {
  const undef = elf.symbols.filter((s) => s.index > 0 && s.shndx === SHN_UNDEF && s.name !== '' && (s.bind === STB.GLOBAL || s.bind === STB.WEAK));
  const [first] = undef;
  if (first === undefined) return [];
  if (!btf) throw new InputError('EXTERN_NO_BTF', `extern '${first.name}' needs BTF to be resolved, but the object has no .BTF section`);
  const where = new Map<string, { sec: string; kind: number; type: number }>();
  for (const t of btf.types) {
    if (t.kind !== KIND.DATASEC || (t.name !== '.kconfig' && t.name !== '.ksyms')) continue;
    for (const vs of t.secinfos) {
      const v = secinfoType(btf, t, vs);
      where.set(v.name, { sec: t.name, kind: v.kind, type: v.sizeOrType });
    }
  }
  return undef.map((s): ExternSpec => {
    const w = where.get(s.name);
    if (!w) throw new InputError('EXTERN_UNKNOWN', `extern '${s.name}' is neither __kconfig nor __ksym (not in a .kconfig/.ksyms BTF DATASEC)`);
    const weak = s.bind === STB.WEAK;
    if (w.sec === '.kconfig') return { name: s.name, kind: 'kconfig', weak, symbol: s.index, typed: true };
    if (w.kind === KIND.FUNC) return { name: s.name, kind: 'kfunc', weak, symbol: s.index, typed: true };
    // `extern const void sym __ksym` (type void after qualifiers) is an address from kallsyms; any other type a BTF id.
    return { name: s.name, kind: 'ksym', weak, symbol: s.index, typed: skipMods(btf, w.type).id !== 0 };
  }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Classify a kconfig extern's type the way libbpf's find_kcfg_type does. */
function kcfgType(btf: Btf, id: number, name: string): { type: KconfigVar['type']; size: number; align: number } {
  const t = skipMods(btf, id);
  if (t.kind === KIND.INT) {
    const enc = (t.intEncoding >>> 24) & 0xf;
    const size = t.sizeOrType;
    if (enc & 4) return { type: 'bool', size: 1, align: 1 };
    if (enc & 2 && size === 1) return { type: 'char', size, align: 1 };
    if (size !== 1 && size !== 2 && size !== 4 && size !== 8) {
      throw new InputError('EXTERN_KCONFIG_TYPE', `kconfig extern '${name}' is a ${size}-byte integer; libbpf fills only 1, 2, 4 or 8 bytes`);
    }
    return { type: enc & 1 ? 'int' : 'uint', size, align: size };
  }
  if (t.kind === KIND.ENUM && t.name === 'libbpf_tristate') return { type: 'tristate', size: 4, align: 4 };
  if (t.kind === KIND.ARRAY) {
    const el = skipMods(btf, t.array.type);
    if (el.kind === KIND.INT && el.sizeOrType === 1 && t.array.nelems > 0 && t.array.nelems <= 4096) return { type: 'string', size: t.array.nelems, align: 1 };
  }
  throw new InputError('EXTERN_KCONFIG_TYPE', `kconfig extern '${name}' has a type libbpf cannot fill (not bool, tristate, char, integer or char array)`);
}

function kconfigMap(externs: ExternSpec[], btf: Btf | undefined): MapSpec | undefined {
  const kc = externs.filter((e) => e.kind === 'kconfig');
  if (kc.length === 0 || !btf) return undefined;
  const all = btf.types.filter((t): t is BtfDatasec => t.kind === KIND.DATASEC && t.name === '.kconfig');
  const [ds] = all;
  if (!ds) throw new InputError('EXTERN_NO_BTF', 'the object has __kconfig externs but no .kconfig DATASEC in its BTF');
  // One map holds every kconfig value, described by one DATASEC (libbpf looks up only the first).
  if (all.length > 1) throw new BtfError(`${all.length} .kconfig DATASECs (type ids ${all.map((t) => t.id).join(', ')}); the kconfig map has one`);
  const vars = kc.map((e) => {
    const vs = ds.secinfos.find((v) => secinfoType(btf, ds, v).name === e.name);
    if (!vs) throw new BtfError(`kconfig extern '${e.name}' is not in the .kconfig DATASEC`);
    return { e, ...kcfgType(btf, secinfoType(btf, ds, vs).sizeOrType, e.name) };
  });
  // libbpf's cmp_externs: descending alignment, then ascending size, then name.
  vars.sort((a, b) => b.align - a.align || a.size - b.size || (a.e.name < b.e.name ? -1 : a.e.name > b.e.name ? 1 : 0));
  let off = 0;
  const out: KconfigVar[] = [];
  for (const v of vars) {
    off = Math.ceil(off / v.align) * v.align;
    out.push({ name: v.e.name, offset: off, size: v.size, type: v.type, weak: v.e.weak });
    off += v.size;
  }
  return {
    name: '.kconfig', kind: 'kconfig', type: MAP_TYPE.get('array')!, keySize: 4, valueSize: off, maxEntries: 1,
    flags: BPF_F_RDONLY_PROG | BPF_F_MMAPABLE, mapExtra: 0n, numaNode: 0, pinning: 0, btfKeyTypeId: 0, btfValueTypeId: ds.id,
    freeze: true, kconfig: out, sectionIndex: -1, offset: 0, size: off,
  };
}
