/** Byte-level edits of fixture objects (copies; the fixtures are never written). */
import { parseElf, type ElfObject, type ElfSection } from '../../src/elf/reader.js';
import { parseBtf, type Btf } from '../../src/bpf/btf.js';

/** Elf64_Shdr field offsets. */
export const SH = { name: 0, type: 4, flags: 8, addr: 16, offset: 24, size: 32, link: 40, info: 44, addralign: 48, entsize: 56 } as const;
/** Elf64_Ehdr field offsets. */
export const EH = { class: 4, data: 5, type: 16, machine: 18, shoff: 40, shentsize: 58, shnum: 60, shstrndx: 62 } as const;

export function shdrAt(buf: Buffer, index: number): number {
  return Number(buf.readBigUInt64LE(EH.shoff)) + index * 64;
}

export function section(elf: ElfObject, name: string): ElfSection {
  const s = elf.sections.find((x) => x.name === name);
  if (!s) throw new Error(`no section '${name}'`);
  return s;
}

/** A copy of `orig` edited by `edit`, which gets the copy and the parsed original. */
export function patched(orig: Buffer, edit: (b: Buffer, elf: ElfObject) => void): Buffer {
  const b = Buffer.from(orig);
  edit(b, parseElf(orig));
  return b;
}

/** File offset of the .BTF section and its parsed form (from the unedited object). */
export function btfOf(orig: Buffer): { base: number; btf: Btf; typesAt: number } {
  const s = section(parseElf(orig), '.BTF');
  const btf = parseBtf(s.data);
  return { base: s.offset, btf, typesAt: s.offset + btf.hdrLen + btf.typeOff };
}
