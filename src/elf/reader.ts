/**
 * ELF64 reader for relocatable BPF objects (ET_REL, EM_BPF). Layouts from the System V gABI and
 * <elf.h>: Elf64_Ehdr (64 bytes), Elf64_Shdr (64), Elf64_Sym (24), Elf64_Rel (16), Elf64_Rela (24).
 *
 * Every offset, size and count is checked against the file before it is read, so a malformed file
 * becomes an ElfError with a specific code, never a RangeError from a Buffer read. Section data is a
 * view (subarray) of the caller's buffer: nothing is copied and the input is never written.
 */
import type { ErrorCode } from '../errors.js';
import { at, InputError } from '../errors.js';

export class ElfError extends InputError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = 'ElfError';
  }
}

export const EM_BPF = 247;
export const ET_REL = 1;
export const SHT = { NULL: 0, PROGBITS: 1, SYMTAB: 2, STRTAB: 3, RELA: 4, NOBITS: 8, REL: 9 } as const;
export const SHF_WRITE = 0x1;
export const SHF_ALLOC = 0x2;
export const SHF_EXECINSTR = 0x4;
export const STT = { NOTYPE: 0, OBJECT: 1, FUNC: 2, SECTION: 3, FILE: 4 } as const;
export const STB = { LOCAL: 0, GLOBAL: 1, WEAK: 2 } as const;
export const SHN_UNDEF = 0;
export const SHN_LORESERVE = 0xff00;
export const SHN_ABS = 0xfff1;
export const SHN_COMMON = 0xfff2;
export const SHN_XINDEX = 0xffff;

export interface ElfSection {
  index: number;
  name: string;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: bigint;
  entsize: bigint;
  /** File bytes of the section; empty for SHT_NOBITS (whose size is still `size`). */
  data: Buffer;
}

export interface ElfSymbol {
  index: number;
  name: string;
  value: bigint;
  size: bigint;
  type: number;
  bind: number;
  visibility: number;
  shndx: number;
}

export interface ElfReloc {
  offset: bigint;
  symbol: number;
  type: number;
  addend: bigint;
}

export interface ElfRelocSection {
  section: ElfSection;
  /** Index of the section the relocations apply to (sh_info). */
  target: number;
  /** Decoded on first access (bounds-checked then); may throw ElfError. */
  readonly relocs: ElfReloc[];
}

export interface ElfObject {
  littleEndian: boolean;
  type: number;
  machine: number;
  flags: number;
  sections: ElfSection[];
  symbols: ElfSymbol[];
  relocations: ElfRelocSection[];
}

/** Hard caps: an honest BPF object is far below these; an absurd header must not make us allocate. */
const MAX_SECTIONS = 65_535;

function fail(code: ErrorCode, msg: string): never {
  throw new ElfError(code, msg);
}

function checkRange(buf: Buffer, off: number | bigint, len: number | bigint, what: string): [number, number] {
  const o = BigInt(off);
  const l = BigInt(len);
  if (o < 0n || l < 0n || o + l > BigInt(buf.length)) {
    fail('ELF_OUT_OF_RANGE', `${what} (offset ${o}, size ${l}) lies outside the file (${buf.length} bytes)`);
  }
  return [Number(o), Number(l)];
}

function cstr(table: Buffer, off: number, what: string): string {
  if (off >= table.length) {
    if (off === 0 && table.length === 0) return '';
    fail('ELF_BAD_STRING', `${what}: string offset ${off} is outside its string table (${table.length} bytes)`);
  }
  const end = table.indexOf(0, off);
  if (end < 0) fail('ELF_BAD_STRING', `${what}: string at offset ${off} is not NUL-terminated`);
  return table.toString('latin1', off, end);
}

export function parseElf(buf: Buffer): ElfObject {
  if (buf.length < 64) fail('ELF_TRUNCATED', `file is ${buf.length} bytes, shorter than an ELF64 header (64)`);
  if (buf.readUInt32BE(0) !== 0x7f454c46) fail('ELF_NOT_ELF', 'not an ELF file (bad magic)');
  const cls = buf[4];
  if (cls !== 2) fail('ELF_NOT_64BIT', `ELF class ${cls} is not ELFCLASS64; BPF objects are 64-bit`);
  const data = buf[5];
  if (data !== 1 && data !== 2) fail('ELF_BAD_ENCODING', `unknown ELF data encoding ${data}`);
  const le = data === 1;
  const u16 = (o: number) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const u64 = (o: number) => (le ? buf.readBigUInt64LE(o) : buf.readBigUInt64BE(o));

  const type = u16(16);
  const machine = u16(18);
  if (machine !== EM_BPF) fail('ELF_NOT_BPF', `e_machine ${machine} is not EM_BPF (247)`);
  if (!le) {
    fail('ELF_BIG_ENDIAN', 'big-endian object; this host is little-endian (rebuild with clang -target bpfel)');
  }
  if (type !== ET_REL) fail('ELF_NOT_RELOCATABLE', `e_type ${type} is not ET_REL; expected a relocatable object (clang -c)`);
  const flags = u32(48);
  const shoff = u64(40);
  const shentsize = u16(58);
  let shnum = u16(60);
  let shstrndx = u16(62);
  if (shoff === 0n) fail('ELF_NO_SECTIONS', 'the object has no section header table');
  if (shentsize !== 64) fail('ELF_BAD_SHENTSIZE', `e_shentsize ${shentsize} is not 64`);
  // Extended numbering (gABI): counts that do not fit in 16 bits live in section 0's header.
  checkRange(buf, shoff, 64, 'section header 0');
  const sh0 = Number(shoff);
  if (shnum === 0) shnum = Number(u64(sh0 + 32));
  if (shstrndx === SHN_XINDEX) shstrndx = u32(sh0 + 40);
  if (shnum > MAX_SECTIONS) fail('ELF_ABSURD_COUNT', `section count ${shnum} exceeds ${MAX_SECTIONS}`);
  checkRange(buf, shoff, BigInt(shnum) * 64n, 'section header table');

  const sections: ElfSection[] = [];
  const nameOffs: number[] = [];
  for (let i = 0; i < shnum; i++) {
    const h = sh0 + i * 64;
    const stype = u32(h + 4);
    const offset = u64(h + 24);
    const size = u64(h + 32);
    let sdata = buf.subarray(0, 0);
    if (stype !== SHT.NOBITS && stype !== SHT.NULL) {
      const [o, l] = checkRange(buf, offset, size, `section ${i} data`);
      sdata = buf.subarray(o, o + l);
    } else if (size > 0xffffffffn) {
      fail('ELF_ABSURD_SIZE', `section ${i} has size ${size}`);
    }
    nameOffs.push(u32(h));
    sections.push({
      index: i, name: '', type: stype, flags: u64(h + 8), addr: u64(h + 16), offset: Number(offset), size: Number(size),
      link: u32(h + 40), info: u32(h + 44), addralign: u64(h + 48), entsize: u64(h + 56), data: sdata,
    });
  }
  if (shstrndx >= shnum) fail('ELF_BAD_SHSTRNDX', `e_shstrndx ${shstrndx} is not a section (${shnum} sections)`);
  const shstr = at(sections, shstrndx, 'section').data;
  for (const [i, s] of sections.entries()) s.name = i === 0 ? '' : cstr(shstr, at(nameOffs, i, 'section name offset'), `name of section ${i}`);

  const symtabs = sections.filter((s) => s.type === SHT.SYMTAB);
  if (symtabs.length > 1) fail('ELF_MULTIPLE_SYMTAB', `${symtabs.length} SHT_SYMTAB sections; expected one`);
  const [symtab] = symtabs;
  const symbols = symtab !== undefined ? readSymbols(symtab, sections, u16, u32, u64) : [];
  const relocations: ElfRelocSection[] = [];
  for (const s of sections) {
    if (s.type !== SHT.REL && s.type !== SHT.RELA) continue;
    relocations.push(readRelocs(s, sections, symbols.length, u32, u64, le));
  }
  return { littleEndian: le, type, machine, flags, sections, symbols, relocations };
}

function readSymbols(
  symtab: ElfSection, sections: ElfSection[],
  u16: (o: number) => number, u32: (o: number) => number, u64: (o: number) => bigint,
): ElfSymbol[] {
  if (symtab.entsize !== 24n) fail('ELF_BAD_ENTSIZE', `symbol table '${symtab.name}' has entry size ${symtab.entsize}, not 24`);
  if (symtab.size % 24 !== 0) fail('ELF_BAD_SIZE', `symbol table size ${symtab.size} is not a multiple of 24`);
  const strsec = sections[symtab.link];
  if (strsec === undefined || strsec.type !== SHT.STRTAB) {
    fail('ELF_BAD_LINK', `symbol table's string table link ${symtab.link} is not a string table`);
  }
  const strtab = strsec.data;
  const base = symtab.offset;
  const n = symtab.size / 24;
  const out: ElfSymbol[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const o = base + i * 24;
    // symtab.data is the section's bytes, exactly n * 24 of them (checked above).
    const info = at(symtab.data, i * 24 + 4, 'symbol byte');
    out[i] = {
      index: i,
      name: cstr(strtab, u32(o), `name of symbol ${i}`),
      type: info & 0xf,
      bind: info >> 4,
      visibility: at(symtab.data, i * 24 + 5, 'symbol byte') & 0x3,
      shndx: u16(o + 6),
      value: u64(o + 8),
      size: u64(o + 16),
    };
  }
  return out;
}

function readRelocs(
  s: ElfSection, sections: ElfSection[], nsyms: number,
  u32: (o: number) => number, u64: (o: number) => bigint, le: boolean,
): ElfRelocSection {
  // r_info = (sym << 32) | type, read as two u32 halves to avoid BigInt work per entry.
  const u32lo = (o: number) => u32(le ? o : o + 4);
  const u32hi = (o: number) => u32(le ? o + 4 : o);
  const rela = s.type === SHT.RELA;
  const esz = rela ? 24 : 16;
  if (s.size % esz !== 0) fail('ELF_BAD_SIZE', `relocation section '${s.name}' size ${s.size} is not a multiple of ${esz}`);
  if (s.info === 0 || s.info >= sections.length) {
    fail('ELF_BAD_RELOC_TARGET', `relocation section '${s.name}' applies to section ${s.info}, which does not exist`);
  }
  const n = s.size / esz;
  // Entries are decoded on first use: a plan reads only the relocations of code and .maps, while
  // .rel.BTF.ext and .rel.debug_* (most of an object's relocations, ignored by loaders) stay unread.
  let relocs: ElfReloc[] | undefined;
  const decode = (): ElfReloc[] => {
    const out: ElfReloc[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const o = s.offset + i * esz;
      const sym = u32hi(o + 8);
      if (sym >= nsyms) fail('ELF_BAD_RELOC_SYMBOL', `relocation ${i} in '${s.name}' names symbol ${sym}; the symbol table has ${nsyms}`);
      out[i] = { offset: u64(o), symbol: sym, type: u32lo(o + 8), addend: rela ? BigInt.asIntN(64, u64(o + 16)) : 0n };
    }
    return out;
  };
  return {
    section: s,
    target: s.info,
    get relocs() {
      relocs ??= decode();
      return relocs;
    },
  };
}

export function sectionByName(elf: ElfObject, name: string): ElfSection | undefined {
  return elf.sections.find((s) => s.name === name);
}
