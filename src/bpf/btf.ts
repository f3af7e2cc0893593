/**
 * BTF reader (Documentation/bpf/btf.rst; include/uapi/linux/btf.h). Reads the header, the string
 * section and every type record, keeping each record's byte offset so the plan builder can sanitise
 * a copy in place. Type ids are 1-based; id 0 is void.
 */
import { InputError } from '../errors.js';

export const BTF_MAGIC = 0xeb9f;
export const KIND = {
  UNKN: 0, INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9,
  CONST: 10, RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17,
  TYPE_TAG: 18, ENUM64: 19,
} as const;
export const VAR_LINKAGE = { STATIC: 0, GLOBAL_ALLOCATED: 1, GLOBAL_EXTERN: 2 } as const;
export const FUNC_LINKAGE = { STATIC: 0, GLOBAL: 1, EXTERN: 2 } as const;

export interface BtfMember { name: string; nameOff: number; type: number; /** bit offset (bitfield bits masked off when kflag) */ bitOffset: number }
export interface BtfVarSecinfo { type: number; offset: number; size: number }
export interface BtfParam { name: string; nameOff: number; type: number }

interface BtfTypeBase {
  id: number;
  name: string;
  nameOff: number;
  vlen: number;
  kflag: boolean;
  /** size for INT/STRUCT/UNION/ENUM/DATASEC/FLOAT/ENUM64, referenced type otherwise. */
  sizeOrType: number;
  /** Byte offset of this record inside the type section. */
  recordOffset: number;
}

type Kinds = typeof KIND;
type KindOf<K extends keyof Kinds> = Kinds[K];
export type BtfInt = BtfTypeBase & { kind: KindOf<'INT'>; intEncoding: number };
export type BtfArray = BtfTypeBase & { kind: KindOf<'ARRAY'>; array: { type: number; indexType: number; nelems: number } };
export type BtfComposite = BtfTypeBase & { kind: KindOf<'STRUCT'> | KindOf<'UNION'>; members: BtfMember[] };
export type BtfFuncProto = BtfTypeBase & { kind: KindOf<'FUNC_PROTO'>; params: BtfParam[] };
export type BtfVar = BtfTypeBase & { kind: KindOf<'VAR'>; linkage: number };
export type BtfDatasec = BtfTypeBase & { kind: KindOf<'DATASEC'>; secinfos: BtfVarSecinfo[] };
/** The kinds whose record carries nothing beyond the common header that bpfseal reads. */
export type BtfPlain = BtfTypeBase & { kind: Exclude<Kinds[keyof Kinds], BtfWithData['kind']> };
type BtfWithData = BtfInt | BtfArray | BtfComposite | BtfFuncProto | BtfVar | BtfDatasec;
/** One BTF type record: kind-specific fields exist exactly on their kinds (narrow on `kind`). */
export type BtfType = BtfWithData | BtfPlain;

/** The variant(s) of BtfType whose kind includes K (STRUCT and UNION share one). */
type Narrow<K extends BtfType['kind']> = BtfType extends infer T ? (T extends BtfType ? (K extends T['kind'] ? T : never) : never) : never;

/** `t` as the kind a caller needs, or a BtfError naming what it is instead (malformed BTF, never a crash). */
export function expectKind<K extends BtfType['kind']>(t: BtfType, kind: K, what: string): Narrow<K> {
  if (t.kind !== kind) throw new BtfError(`${what}: type ${t.id} is kind ${t.kind}, not ${kind}`);
  return t as Narrow<K>;
}

/** Type `id`, or a BtfError naming what refers to it: ids come from the BTF itself, so a missing one is malformed input. */
export function typeById(btf: Btf, id: number, what: string): BtfType {
  const t = btf.types[id];
  if (t === undefined) throw new BtfError(`${what} refers to missing type ${id}`);
  return t;
}

export interface Btf {
  /** The raw BTF blob (a view of the ELF section). */
  raw: Buffer;
  hdrLen: number;
  typeOff: number;
  typeLen: number;
  strOff: number;
  strLen: number;
  types: BtfType[]; // index = id; types[0] is void
  strings: Buffer;
  str(off: number): string;
}

export class BtfError extends InputError {
  constructor(message: string) {
    super('BTF_INVALID', `bad BTF: ${message}`);
    this.name = 'BtfError';
  }
}

const MAX_TYPES = 1 << 20;

/** The header fields parseBtf needs, after checking them against the blob. */
interface BtfHeader {
  hdrLen: number;
  typeOff: number;
  typeLen: number;
  strOff: number;
  strLen: number;
}

/** Parse a BTF blob: header, string section, every type record, then check every reference between types. */
export function parseBtf(raw: Buffer): Btf {
  const { hdrLen, typeOff, typeLen, strOff, strLen } = readHeader(raw);
  const { strings, str } = readStrings(raw, hdrLen + strOff, strLen);
  const types = readTypes(raw, hdrLen + typeOff, typeLen, str);
  const n = types.length;
  for (const t of types) checkRefs(t, n);
  return { raw, hdrLen, typeOff, typeLen, strOff, strLen, types, strings, str };
}

/** Check magic, version and header length, and that both sections lie inside the blob. */
function readHeader(raw: Buffer): BtfHeader {
  if (raw.length < 24) throw new BtfError(`section is ${raw.length} bytes, shorter than the BTF header`);
  const magic = raw.readUInt16LE(0);
  if (magic !== BTF_MAGIC) throw new BtfError(`magic 0x${magic.toString(16)} is not 0xeb9f (or the BTF is big-endian)`);
  if (raw[2] !== 1) throw new BtfError(`version ${raw[2]} is not 1`);
  const hdrLen = raw.readUInt32LE(4);
  if (hdrLen < 24 || hdrLen > raw.length) throw new BtfError(`header length ${hdrLen} is out of range`);
  const typeOff = raw.readUInt32LE(8), typeLen = raw.readUInt32LE(12);
  const strOff = raw.readUInt32LE(16), strLen = raw.readUInt32LE(20);
  const body = raw.length - hdrLen;
  if (typeOff + typeLen > body || strOff + strLen > body || typeOff % 4 !== 0) {
    throw new BtfError(`type section [${typeOff}, +${typeLen}) or string section [${strOff}, +${strLen}) exceeds the ${body} bytes after the header`);
  }
  return { hdrLen, typeOff, typeLen, strOff, strLen };
}

/** Check the string section's framing (empty first string, NUL at the end) and make its cached lookup. */
function readStrings(raw: Buffer, sbase: number, strLen: number): { strings: Buffer; str: (off: number) => string } {
  if (strLen === 0 || raw[sbase] !== 0) throw new BtfError('string section does not start with an empty string');
  const strings = raw.subarray(sbase, sbase + strLen);
  if (strings[strLen - 1] !== 0) throw new BtfError('string section is not NUL-terminated');
  const strCache = new Map<number, string>();
  const str = (off: number): string => {
    let s = strCache.get(off);
    if (s !== undefined) return s;
    if (off >= strLen) throw new BtfError(`string offset ${off} is outside the string section (${strLen} bytes)`);
    s = strings.toString('latin1', off, strings.indexOf(0, off));
    strCache.set(off, s);
    return s;
  };
  return { strings, str };
}

/** Where the type reader is: the blob, the next byte to read, the end of the type section, the id being read. */
interface TypeCursor {
  raw: Buffer;
  p: number;
  end: number;
  id: number;
}

/** Fail unless `n` more bytes of the type being read lie inside the type section. */
function need(c: TypeCursor, n: number, what: string): void {
  if (c.p + n > c.end) throw new BtfError(`type ${c.id} (${what}) runs past the end of the type section`);
}

/** void (id 0), then every type record of the type section, in id order. */
function readTypes(raw: Buffer, tbase: number, typeLen: number, str: (off: number) => string): BtfType[] {
  const types: BtfType[] = [{ id: 0, kind: 0, name: 'void', nameOff: 0, vlen: 0, kflag: false, sizeOrType: 0, recordOffset: -1 }];
  const c: TypeCursor = { raw, p: tbase, end: tbase + typeLen, id: types.length };
  while (c.p < c.end) {
    if (types.length > MAX_TYPES) throw new BtfError(`more than ${MAX_TYPES} types`);
    c.id = types.length;
    types.push(readType(c, tbase, str));
  }
  return types;
}

/** One type record at the cursor: the 12-byte common header, then what its kind carries (btf.rst, "Type encoding"). */
function readType(c: TypeCursor, tbase: number, str: (off: number) => string): BtfType {
  const { raw } = c;
  need(c, 12, 'header');
  const nameOff = raw.readUInt32LE(c.p);
  const info = raw.readUInt32LE(c.p + 4);
  const base: BtfTypeBase = {
    id: c.id, name: str(nameOff), nameOff, vlen: info & 0xffff, kflag: (info >>> 31) === 1,
    sizeOrType: raw.readUInt32LE(c.p + 8), recordOffset: c.p - tbase,
  };
  const kind = (info >>> 24) & 0x1f;
  c.p += 12;
  let t: BtfType;
  switch (kind) {
    case KIND.INT: need(c, 4, 'int'); t = { ...base, kind, intEncoding: raw.readUInt32LE(c.p) }; c.p += 4; break;
    case KIND.PTR: case KIND.FWD: case KIND.TYPEDEF: case KIND.VOLATILE: case KIND.CONST: case KIND.RESTRICT:
    case KIND.FUNC: case KIND.FLOAT: case KIND.TYPE_TAG: t = { ...base, kind }; break;
    case KIND.ARRAY:
      need(c, 12, 'array');
      t = { ...base, kind, array: { type: raw.readUInt32LE(c.p), indexType: raw.readUInt32LE(c.p + 4), nelems: raw.readUInt32LE(c.p + 8) } };
      c.p += 12;
      break;
    case KIND.STRUCT: case KIND.UNION: t = { ...base, kind, members: readMembers(c, base, str) }; break;
    case KIND.ENUM: need(c, 8 * base.vlen, 'enum values'); c.p += 8 * base.vlen; t = { ...base, kind }; break;
    case KIND.ENUM64: need(c, 12 * base.vlen, 'enum64 values'); c.p += 12 * base.vlen; t = { ...base, kind }; break;
    case KIND.FUNC_PROTO: t = { ...base, kind, params: readParams(c, base, str) }; break;
    case KIND.VAR: need(c, 4, 'var'); t = { ...base, kind, linkage: raw.readUInt32LE(c.p) }; c.p += 4; break;
    case KIND.DATASEC: t = { ...base, kind, secinfos: readSecinfos(c, base) }; break;
    case KIND.DECL_TAG: need(c, 4, 'decl tag'); c.p += 4; t = { ...base, kind }; break;
    default: throw new BtfError(`type ${base.id} has unknown kind ${kind}`);
  }
  return t;
}

/** The vlen records of `size` bytes after a type's header, each read at its offset by `read`. */
function readRecords<T>(c: TypeCursor, base: BtfTypeBase, size: number, what: string, read: (at: number) => T): T[] {
  need(c, size * base.vlen, what);
  const out: T[] = new Array(base.vlen);
  for (let i = 0; i < base.vlen; i++, c.p += size) out[i] = read(c.p);
  return out;
}

/** The 12-byte btf_member records of a STRUCT or UNION. */
function readMembers(c: TypeCursor, base: BtfTypeBase, str: (off: number) => string): BtfMember[] {
  const { raw } = c;
  return readRecords(c, base, 12, 'members', (at) => {
    const mo = raw.readUInt32LE(at + 8);
    return { nameOff: raw.readUInt32LE(at), name: str(raw.readUInt32LE(at)), type: raw.readUInt32LE(at + 4), bitOffset: base.kflag ? mo & 0xffffff : mo };
  });
}

/** The 8-byte btf_param records of a FUNC_PROTO. */
function readParams(c: TypeCursor, base: BtfTypeBase, str: (off: number) => string): BtfParam[] {
  const { raw } = c;
  return readRecords(c, base, 8, 'params', (at) => ({ nameOff: raw.readUInt32LE(at), name: str(raw.readUInt32LE(at)), type: raw.readUInt32LE(at + 4) }));
}

/** The 12-byte btf_var_secinfo records of a DATASEC. */
function readSecinfos(c: TypeCursor, base: BtfTypeBase): BtfVarSecinfo[] {
  const { raw } = c;
  return readRecords(c, base, 12, 'datasec entries', (at) => ({ type: raw.readUInt32LE(at), offset: raw.readUInt32LE(at + 4), size: raw.readUInt32LE(at + 8) }));
}

/** Kinds whose size/type field is a type id. */
const REF_KINDS = new Set<number>([KIND.PTR, KIND.TYPEDEF, KIND.VOLATILE, KIND.CONST, KIND.RESTRICT, KIND.FUNC, KIND.VAR, KIND.TYPE_TAG, KIND.DECL_TAG, KIND.FUNC_PROTO]);

function checkRefs(t: BtfType, n: number): void {
  const bad = (id: number) => id >= n;
  if (REF_KINDS.has(t.kind) && bad(t.sizeOrType)) throw new BtfError(`type ${t.id} refers to type ${t.sizeOrType}; there are ${n - 1}`);
  if (t.kind === KIND.ARRAY && (bad(t.array.type) || bad(t.array.indexType))) throw new BtfError(`array type ${t.id} refers to a missing type`);
  if (t.kind === KIND.STRUCT || t.kind === KIND.UNION) for (const m of t.members) if (bad(m.type)) throw new BtfError(`member '${m.name}' of type ${t.id} refers to missing type ${m.type}`);
  if (t.kind === KIND.FUNC_PROTO) for (const p of t.params) if (bad(p.type)) throw new BtfError(`parameter of type ${t.id} refers to missing type ${p.type}`);
  if (t.kind === KIND.DATASEC) for (const v of t.secinfos) if (bad(v.type)) throw new BtfError(`datasec ${t.name} refers to missing type ${v.type}`);
}

const MODIFIERS: number[] = [KIND.TYPEDEF, KIND.VOLATILE, KIND.CONST, KIND.RESTRICT, KIND.TYPE_TAG];

/** Follow typedefs and qualifiers to the underlying type (bounded, so a cycle is an error). */
export function skipMods(btf: Btf, id: number): BtfType {
  let t = btf.types[id];
  for (let depth = 0; t && MODIFIERS.includes(t.kind); depth++) {
    if (depth > 64) throw new BtfError(`type ${id}: modifier chain too long or cyclic`);
    t = btf.types[t.sizeOrType];
  }
  if (!t) throw new BtfError(`type ${id} does not exist`);
  return t;
}

/** sizeof() of a type, as the kernel computes it (btf_resolve_size). */
export function typeSize(btf: Btf, id: number, depth = 0): number {
  if (depth > 64) throw new BtfError(`type ${id}: size resolution too deep or cyclic`);
  const t = skipMods(btf, id);
  switch (t.kind) {
    case KIND.INT: case KIND.STRUCT: case KIND.UNION: case KIND.ENUM: case KIND.ENUM64: case KIND.DATASEC: case KIND.FLOAT:
      return t.sizeOrType;
    case KIND.PTR: return 8;
    case KIND.ARRAY: return t.array.nelems * typeSize(btf, t.array.type, depth + 1);
    case KIND.VAR: return typeSize(btf, t.sizeOrType, depth + 1);
    default: throw new BtfError(`type ${id} (${kindName(t.kind)}) has no size`);
  }
}

export function kindName(k: number): string {
  return Object.entries(KIND).find(([, v]) => v === k)?.[0].toLowerCase() ?? `kind_${k}`;
}


/** Bytes that follow the 12-byte common header of a type record of this kind (btf.rst, "Type encoding"). */
export function recordExtra(kind: number, vlen: number): number {
  switch (kind) {
    case KIND.INT: case KIND.VAR: case KIND.DECL_TAG: return 4;
    case KIND.ARRAY: return 12;
    case KIND.STRUCT: case KIND.UNION: case KIND.DATASEC: case KIND.ENUM64: return 12 * vlen;
    case KIND.ENUM: case KIND.FUNC_PROTO: return 8 * vlen;
    case KIND.PTR: case KIND.FWD: case KIND.TYPEDEF: case KIND.VOLATILE: case KIND.CONST: case KIND.RESTRICT:
    case KIND.FUNC: case KIND.FLOAT: case KIND.TYPE_TAG: return 0;
    default: return -1;
  }
}

/**
 * Name -> type id for the given kinds, walking the records without building them: enough to resolve
 * kfuncs, ksyms and attach targets against the kernel's BTF (/sys/kernel/btf/vmlinux, ~100k types).
 */
export function indexBtfNames(raw: Buffer, kinds: readonly number[]): Map<string, { id: number; kind: number }> {
  if (raw.length < 24 || raw.readUInt16LE(0) !== BTF_MAGIC) throw new BtfError('kernel BTF has a bad header');
  const hdrLen = raw.readUInt32LE(4);
  const tbase = hdrLen + raw.readUInt32LE(8), tend = tbase + raw.readUInt32LE(12);
  const sbase = hdrLen + raw.readUInt32LE(16), slen = raw.readUInt32LE(20);
  if (tend > raw.length || sbase + slen > raw.length) throw new BtfError('kernel BTF sections exceed the blob');
  const want = new Set(kinds);
  const out = new Map<string, { id: number; kind: number }>();
  let id = 1;
  for (let p = tbase; p < tend; id++) {
    if (p + 12 > tend) throw new BtfError(`kernel BTF type ${id} is truncated`);
    const info = raw.readUInt32LE(p + 4);
    const kind = (info >>> 24) & 0x1f;
    const extra = recordExtra(kind, info & 0xffff);
    if (extra < 0) throw new BtfError(`kernel BTF type ${id} has unknown kind ${kind}`);
    if (want.has(kind)) {
      const off = raw.readUInt32LE(p);
      if (off < slen) {
        const name = raw.toString('latin1', sbase + off, raw.indexOf(0, sbase + off));
        if (name && !out.has(`${kind}:${name}`)) out.set(`${kind}:${name}`, { id, kind });
      }
    }
    p += 12 + extra;
  }
  return out;
}

