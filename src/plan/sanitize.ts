/**
 * Make an object's BTF acceptable to BPF_BTF_LOAD, as libbpf does before loading
 * (btf_fixup_datasec, bpf_object__collect_externs):
 *  - DATASECs that clang left with size 0 get the ELF section's size and their variables' offsets
 *    from the ELF symbols; hidden globals become static; entries are sorted by offset;
 *  - .kconfig variables get the offsets of the .kconfig map layout and GLOBAL_ALLOCATED linkage;
 *  - .ksyms entries become 4-byte int variables (the kernel rejects extern linkage); extern kfunc
 *    FUNCs become GLOBAL and their unnamed parameters borrow the name of a dummy variable.
 * The output is a fresh blob (24-byte header, types, strings), deterministic for a given object.
 */
import { KIND, VAR_LINKAGE, FUNC_LINKAGE, typeById, type Btf, type BtfDatasec, type BtfType, type BtfVarSecinfo } from '../bpf/btf.js';
import { STT } from '../elf/reader.js';
import { InputError } from '../errors.js';
import type { CollectionSpec } from '../bpf/spec.js';

const STV_INTERNAL = 1, STV_HIDDEN = 2;

/** The copy of the type section being rewritten, and the strings and types appended to it. */
interface BtfEdit {
  btf: Btf;
  /** The object's type section, copied: records are rewritten here in place. */
  types: Buffer;
  extraStrings: string[];
  extraTypes: Buffer[];
  /** Id the next appended type gets. */
  nextId: number;
  /** Offset the next appended string gets. */
  strEnd: number;
  /** The 4-byte int (found or appended) and the dummy ksym VAR with its name, once made; 0 before. */
  intId: number;
  dummyVarId: number;
  dummyNameOff: number;
}

/** What DATASEC fixing needs of the ELF file: section sizes and indices by name, variable symbols on demand. */
interface ElfFacts {
  size: Map<string, number>;
  index: Map<string, number>;
  /** Variable symbols by `${section index}:${name}`, built only when a DATASEC needs them. */
  syms(): Map<string, { value: number; vis: number }>;
}

/** The object's BTF made loadable (see above): a fresh blob, or empty when the object has none. */
export function sanitizeBtf(spec: CollectionSpec): Buffer {
  const btf = spec.btf;
  if (!btf) return Buffer.alloc(0);
  const ed: BtfEdit = {
    btf, types: Buffer.from(btf.raw.subarray(btf.hdrLen + btf.typeOff, btf.hdrLen + btf.typeOff + btf.typeLen)),
    extraStrings: [], extraTypes: [], nextId: btf.types.length, strEnd: btf.strLen, intId: 0, dummyVarId: 0, dummyNameOff: 0,
  };
  const elf = elfFacts(spec);
  for (const t of btf.types) {
    if (t.kind !== KIND.DATASEC) continue;
    const entries = t.secinfos.map((v) => ({ ...v }));
    if (t.name === '.ksyms') fixKsyms(ed, t, entries);
    else if (t.name === '.kconfig') fixKconfig(ed, spec, t, entries);
    else fixDataSec(ed, elf, t, entries);
    writeEntries(ed, t, entries);
  }
  return assemble(ed);
}

/** Section sizes and indices by name, and a lazily built table of the ELF's variable symbols. */
function elfFacts(spec: CollectionSpec): ElfFacts {
  let elfSymsCache: Map<string, { value: number; vis: number }> | undefined;
  const syms = () => {
    if (elfSymsCache) return elfSymsCache;
    elfSymsCache = new Map();
    for (const s of spec.elf.symbols) {
      if (s.type === STT.OBJECT || s.type === STT.NOTYPE) elfSymsCache.set(`${s.shndx}:${s.name}`, { value: Number(s.value), vis: s.visibility });
    }
    return elfSymsCache;
  };
  return {
    size: new Map(spec.elf.sections.map((s) => [s.name, s.size])),
    index: new Map(spec.elf.sections.map((s) => [s.name, s.index])),
    syms,
  };
}

/** Byte offset of a type's record in the type section. */
const rec = (t: BtfType) => t.recordOffset;

/** Append a string to the string section; its offset. */
function addString(ed: BtfEdit, s: string): number {
  const off = ed.strEnd;
  ed.extraStrings.push(s);
  ed.strEnd += Buffer.byteLength(s, 'latin1') + 1;
  return off;
}

/** Id of a 4-byte int: the object's own, else one appended (once). */
function ensureInt(ed: BtfEdit): number {
  if (ed.intId) return ed.intId;
  const found = ed.btf.types.find((t) => t.kind === KIND.INT && t.sizeOrType === 4);
  if (found) return (ed.intId = found.id);
  const b = Buffer.alloc(16);
  b.writeUInt32LE(addString(ed, 'int'), 0);
  b.writeUInt32LE(KIND.INT << 24, 4);
  b.writeUInt32LE(4, 8);
  b.writeUInt32LE((1 << 24) | 32, 12); // BTF_INT_SIGNED, 32 bits
  ed.extraTypes.push(b);
  return (ed.intId = ed.nextId++);
}

/** Id of the 'dummy_ksym' int VAR that stands in for extern kfuncs in .ksyms (appended once). */
function ensureDummy(ed: BtfEdit): number {
  if (ed.dummyVarId) return ed.dummyVarId;
  const int = ensureInt(ed);
  ed.dummyNameOff = addString(ed, 'dummy_ksym');
  const b = Buffer.alloc(16);
  b.writeUInt32LE(ed.dummyNameOff, 0);
  b.writeUInt32LE(KIND.VAR << 24, 4);
  b.writeUInt32LE(int, 8);
  b.writeUInt32LE(VAR_LINKAGE.GLOBAL_ALLOCATED, 12);
  ed.extraTypes.push(b);
  return (ed.dummyVarId = ed.nextId++);
}

/** Rewrite a VAR's linkage. */
function setLinkage(ed: BtfEdit, v: BtfType, l: number): void {
  ed.types.writeUInt32LE(l, rec(v) + 12);
}

/** .ksyms: kfuncs become GLOBAL FUNCs (entry: the dummy VAR), ksym VARs 4-byte ints; entries 4 bytes apart. */
function fixKsyms(ed: BtfEdit, t: BtfDatasec, entries: BtfVarSecinfo[]): void {
  const { btf, types } = ed;
  entries.forEach((e, i) => {
    const v = typeById(btf, e.type, `datasec ${t.name}`);
    if (v.kind === KIND.FUNC) {
      const proto = typeById(btf, v.sizeOrType, `type ${v.id}`);
      const dummy = ensureDummy(ed);
      if (proto.kind === KIND.FUNC_PROTO) proto.params.forEach((p, j) => {
        if (p.type && !p.nameOff) types.writeUInt32LE(ed.dummyNameOff, rec(proto) + 12 + j * 8);
      });
      types.writeUInt32LE((KIND.FUNC << 24) | FUNC_LINKAGE.GLOBAL, rec(v) + 4);
      e.type = dummy;
    } else if (v.kind === KIND.VAR) {
      setLinkage(ed, v, VAR_LINKAGE.GLOBAL_ALLOCATED);
      types.writeUInt32LE(ensureInt(ed), rec(v) + 8);
    }
    e.offset = i * 4;
    e.size = 4;
  });
  types.writeUInt32LE(entries.length * 4, rec(t) + 8);
}

/** .kconfig: offsets and size from the .kconfig map layout, GLOBAL_ALLOCATED linkage. */
function fixKconfig(ed: BtfEdit, spec: CollectionSpec, t: BtfDatasec, entries: BtfVarSecinfo[]): void {
  const { btf, types } = ed;
  const layout = spec.maps.find((m) => m.kind === 'kconfig')?.kconfig ?? [];
  for (const e of entries) {
    const v = typeById(btf, e.type, `datasec ${t.name}`);
    const k = layout.find((x) => x.name === v.name);
    if (k) e.offset = k.offset;
    if (v.kind === KIND.VAR) setLinkage(ed, v, VAR_LINKAGE.GLOBAL_ALLOCATED);
  }
  types.writeUInt32LE(layout.reduce((n, k) => Math.max(n, k.offset + k.size), 0), rec(t) + 8);
}

/** Any other DATASEC: size and variable offsets from the ELF when clang left them 0; hidden globals become static. */
function fixDataSec(ed: BtfEdit, elf: ElfFacts, t: BtfDatasec, entries: BtfVarSecinfo[]): void {
  const { btf, types } = ed;
  const fixOffsets = t.sizeOrType === 0;
  if (fixOffsets) types.writeUInt32LE(elf.size.get(t.name) ?? 0, rec(t) + 8);
  const shndx = elf.index.get(t.name);
  for (const e of entries) {
    const v = typeById(btf, e.type, `datasec ${t.name}`);
    if (v.kind !== KIND.VAR || v.linkage === VAR_LINKAGE.STATIC || v.linkage === VAR_LINKAGE.GLOBAL_EXTERN) continue;
    const sym = shndx === undefined ? undefined : elf.syms().get(`${shndx}:${v.name}`);
    if (!sym) continue;
    if (fixOffsets) {
      const secSize = elf.size.get(t.name) ?? 0;
      if (sym.value < 0 || sym.value >= Math.max(secSize, 1)) {
        throw new InputError('BTF_DATASEC_RANGE', `BTF variable '${v.name}' lies at offset ${sym.value}, outside section '${t.name}' (${secSize} bytes)`);
      }
      e.offset = sym.value;
    }
    if (sym.vis === STV_HIDDEN || sym.vis === STV_INTERNAL) setLinkage(ed, v, VAR_LINKAGE.STATIC);
  }
}

/** Write a DATASEC's entries back, sorted by offset. */
function writeEntries(ed: BtfEdit, t: BtfDatasec, entries: BtfVarSecinfo[]): void {
  entries.sort((a, b) => a.offset - b.offset);
  entries.forEach((e, i) => {
    const o = rec(t) + 12 + i * 12;
    ed.types.writeUInt32LE(e.type, o);
    ed.types.writeUInt32LE(e.offset, o + 4);
    ed.types.writeUInt32LE(e.size, o + 8);
  });
}

/** The fresh blob: a 24-byte header, the rewritten and appended types, the strings with those appended. */
function assemble(ed: BtfEdit): Buffer {
  const strings = Buffer.concat([ed.btf.strings, ...ed.extraStrings.map((s) => Buffer.from(s + '\0', 'latin1'))]);
  const allTypes = Buffer.concat([ed.types, ...ed.extraTypes]);
  const hdr = Buffer.alloc(24);
  hdr.writeUInt16LE(0xeb9f, 0);
  hdr[2] = 1;
  hdr[3] = 0;
  hdr.writeUInt32LE(24, 4);
  hdr.writeUInt32LE(0, 8);
  hdr.writeUInt32LE(allTypes.length, 12);
  hdr.writeUInt32LE(allTypes.length, 16);
  hdr.writeUInt32LE(strings.length, 20);
  return Buffer.concat([hdr, allTypes, strings]);
}
