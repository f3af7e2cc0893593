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
import { KIND, VAR_LINKAGE, FUNC_LINKAGE, type BtfType } from '../bpf/btf.js';
import { STT } from '../elf/reader.js';
import { InputError } from '../errors.js';
import type { CollectionSpec } from '../bpf/spec.js';

const STV_INTERNAL = 1, STV_HIDDEN = 2;

export function sanitizeBtf(spec: CollectionSpec): Buffer {
  const btf = spec.btf;
  if (!btf) return Buffer.alloc(0);
  const types = Buffer.from(btf.raw.subarray(btf.hdrLen + btf.typeOff, btf.hdrLen + btf.typeOff + btf.typeLen));
  const extraStrings: string[] = [];
  const extraTypes: Buffer[] = [];
  let nextId = btf.types.length;
  let strEnd = btf.strLen;
  const addString = (s: string) => {
    const off = strEnd;
    extraStrings.push(s);
    strEnd += Buffer.byteLength(s, 'latin1') + 1;
    return off;
  };
  const rec = (t: BtfType) => t.recordOffset;
  const secinfoAt = (t: BtfType, i: number) => rec(t) + 12 + i * 12;

  const elfSize = new Map(spec.elf.sections.map((s) => [s.name, s.size]));
  // Variable symbols by section and name, built only when a DATASEC needs them.
  let elfSymsCache: Map<string, { value: number; vis: number }> | undefined;
  const elfSyms = () => {
    if (elfSymsCache) return elfSymsCache;
    elfSymsCache = new Map();
    for (const s of spec.elf.symbols) {
      if (s.type === STT.OBJECT || s.type === STT.NOTYPE) elfSymsCache.set(`${s.shndx}:${s.name}`, { value: Number(s.value), vis: s.visibility });
    }
    return elfSymsCache;
  };
  const secIndex = new Map(spec.elf.sections.map((s) => [s.name, s.index]));

  let intId = 0;
  let dummyVarId = 0;
  let dummyNameOff = 0;
  const ensureInt = () => {
    if (intId) return intId;
    const found = btf.types.find((t) => t.kind === KIND.INT && t.sizeOrType === 4);
    if (found) return (intId = found.id);
    const b = Buffer.alloc(16);
    b.writeUInt32LE(addString('int'), 0);
    b.writeUInt32LE(KIND.INT << 24, 4);
    b.writeUInt32LE(4, 8);
    b.writeUInt32LE((1 << 24) | 32, 12); // BTF_INT_SIGNED, 32 bits
    extraTypes.push(b);
    return (intId = nextId++);
  };
  const ensureDummy = () => {
    if (dummyVarId) return dummyVarId;
    const int = ensureInt();
    dummyNameOff = addString('dummy_ksym');
    const b = Buffer.alloc(16);
    b.writeUInt32LE(dummyNameOff, 0);
    b.writeUInt32LE(KIND.VAR << 24, 4);
    b.writeUInt32LE(int, 8);
    b.writeUInt32LE(VAR_LINKAGE.GLOBAL_ALLOCATED, 12);
    extraTypes.push(b);
    return (dummyVarId = nextId++);
  };
  const setLinkage = (v: BtfType, l: number) => types.writeUInt32LE(l, rec(v) + 12);

  for (const t of btf.types) {
    if (t.kind !== KIND.DATASEC) continue;
    const entries = t.secinfos.map((v) => ({ ...v }));
    if (t.name === '.ksyms') {
      entries.forEach((e, i) => {
        const v = btf.types[e.type];
        if (v.kind === KIND.FUNC) {
          const proto = btf.types[v.sizeOrType];
          const dummy = ensureDummy();
          if (proto.kind === KIND.FUNC_PROTO) proto.params.forEach((p, j) => {
            if (p.type && !p.nameOff) types.writeUInt32LE(dummyNameOff, rec(proto) + 12 + j * 8);
          });
          types.writeUInt32LE((KIND.FUNC << 24) | FUNC_LINKAGE.GLOBAL, rec(v) + 4);
          e.type = dummy;
        } else if (v.kind === KIND.VAR) {
          setLinkage(v, VAR_LINKAGE.GLOBAL_ALLOCATED);
          types.writeUInt32LE(ensureInt(), rec(v) + 8);
        }
        e.offset = i * 4;
        e.size = 4;
      });
      types.writeUInt32LE(entries.length * 4, rec(t) + 8);
    } else if (t.name === '.kconfig') {
      const layout = spec.maps.find((m) => m.kind === 'kconfig')?.kconfig ?? [];
      for (const e of entries) {
        const v = btf.types[e.type];
        const k = layout.find((x) => x.name === v.name);
        if (k) e.offset = k.offset;
        if (v.kind === KIND.VAR) setLinkage(v, VAR_LINKAGE.GLOBAL_ALLOCATED);
      }
      types.writeUInt32LE(layout.reduce((n, k) => Math.max(n, k.offset + k.size), 0), rec(t) + 8);
    } else {
      const fixOffsets = t.sizeOrType === 0;
      if (fixOffsets) types.writeUInt32LE(elfSize.get(t.name) ?? 0, rec(t) + 8);
      const shndx = secIndex.get(t.name);
      for (const e of entries) {
        const v = btf.types[e.type];
        if (v.kind !== KIND.VAR || v.linkage === VAR_LINKAGE.STATIC || v.linkage === VAR_LINKAGE.GLOBAL_EXTERN) continue;
        const sym = shndx === undefined ? undefined : elfSyms().get(`${shndx}:${v.name}`);
        if (!sym) continue;
        if (fixOffsets) {
          const secSize = elfSize.get(t.name) ?? 0;
          if (sym.value < 0 || sym.value >= Math.max(secSize, 1)) {
            throw new InputError('BTF_DATASEC_RANGE', `BTF variable '${v.name}' lies at offset ${sym.value}, outside section '${t.name}' (${secSize} bytes)`);
          }
          e.offset = sym.value;
        }
        if (sym.vis === STV_HIDDEN || sym.vis === STV_INTERNAL) setLinkage(v, VAR_LINKAGE.STATIC);
      }
    }
    entries.sort((a, b) => a.offset - b.offset);
    entries.forEach((e, i) => {
      const o = secinfoAt(t, i);
      types.writeUInt32LE(e.type, o);
      types.writeUInt32LE(e.offset, o + 4);
      types.writeUInt32LE(e.size, o + 8);
    });
  }
  const strings = Buffer.concat([btf.strings, ...extraStrings.map((s) => Buffer.from(s + '\0', 'latin1'))]);
  const allTypes = Buffer.concat([types, ...extraTypes]);
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

