/**
 * src/elf/reader.ts against llvm-readobj: every section header field, every symbol and every
 * relocation of every little-endian fixture must match what LLVM reads from the same bytes.
 */
import { describe, expect, it } from 'vitest';
import { parseElf, ElfError, SHT, STT } from '../src/elf/reader.js';
import { BpfsealError } from '../src/errors.js';
import { readobjBinaries, readobjDump, READOBJ } from './helpers/readobj.js';
import { fixturePath, leFixtures, readFixture } from './helpers/paths.js';

const binaries = readobjBinaries();
const fixtures = leFixtures();

describe('fixture set', () => {
  it('has the little-endian fixtures the README lists', () => {
    for (const f of ['minimal.o', 'maps_btf.o', 'globals.o', 'legacy_maps.o', 'legacy_maps_nobtf.o', 'subprogs.o', 'map_in_map.o',
      'core.o', 'externs.o', 'ksym_typed.o', 'sections.o', 'testrun.o']) expect(fixtures).toContain(f);
    expect(fixtures).not.toContain('minimal_be.o');
  });
});

describe.skipIf(binaries.length === 0)(`parseElf agrees with llvm-readobj (${binaries.join(', ') || `${READOBJ} not installed: skipped`})`, () => {
  for (const bin of binaries) {
    describe(bin, () => {
      it.each(fixtures)('%s', (name) => {
        const buf = readFixture(name);
        const elf = parseElf(buf);
        const ro = readobjDump(bin, fixturePath(name));
        expect(elf.littleEndian).toBe(true);

        // Sections: every header field.
        expect(elf.sections.length).toBe(ro.sections.length);
        for (const r of ro.sections) {
          const s = elf.sections[r.index];
          const ctx = `${name} section ${r.index} (${r.name})`;
          expect({ index: s.index, name: s.name, type: s.type, flags: s.flags, offset: s.offset, size: s.size, link: s.link, info: s.info, addralign: s.addralign, entsize: s.entsize }, ctx)
            .toEqual({ index: r.index, name: r.name, type: r.type, flags: BigInt(r.flags), offset: r.offset, size: r.size, link: r.link, info: r.info, addralign: BigInt(r.addralign), entsize: BigInt(r.entsize) });
          // Section data is exactly the file bytes (none for NOBITS/NULL).
          const expected = r.type === SHT.NOBITS || r.type === SHT.NULL ? Buffer.alloc(0) : buf.subarray(r.offset, r.offset + r.size);
          expect(s.data.equals(expected), `${ctx} data`).toBe(true);
        }

        // Symbols: name, value, size, type, binding, visibility, section index.
        expect(elf.symbols.length).toBe(ro.symbols.length);
        ro.symbols.forEach((r, i) => {
          const s = elf.symbols[i];
          const ctx = `${name} symbol ${i} (${r.name})`;
          // llvm-readobj shows a section symbol (st_name 0) under its section's name; the reader keeps ''.
          const expName = r.type === STT.SECTION && r.nameOff === 0 ? '' : r.name;
          expect({ index: s.index, name: s.name, value: s.value, size: s.size, type: s.type, bind: s.bind, visibility: s.visibility, shndx: s.shndx }, ctx)
            .toEqual({ index: i, name: expName, value: BigInt(r.value), size: BigInt(r.size), type: r.type, bind: r.binding, visibility: r.other & 3, shndx: r.shndx });
          if (r.type === STT.SECTION) expect(elf.sections[s.shndx].name, ctx).toBe(r.name);
        });

        // Relocations: one entry per SHT_REL/RELA section, every (offset, type, symbol).
        const relSections = ro.sections.filter((s) => s.type === SHT.REL || s.type === SHT.RELA);
        expect(elf.relocations.map((r) => r.section.index)).toEqual(relSections.map((s) => s.index));
        for (const rs of elf.relocations) {
          const expected = ro.relocations.get(rs.section.index) ?? [];
          const ctx = `${name} ${rs.section.name}`;
          expect(rs.target, ctx).toBe(rs.section.info);
          expect(rs.relocs.map((r) => ({ offset: r.offset, type: r.type, symbol: r.symbol })), ctx)
            .toEqual(expected.map((r) => ({ offset: BigInt(r.offset), type: r.type, symbol: r.symbol })));
          // the symbol named by readobj is the one at that index
          rs.relocs.forEach((r, i) => {
            const sym = elf.symbols[r.symbol];
            const shown = sym.type === STT.SECTION ? elf.sections[sym.shndx].name : sym.name;
            expect(shown, `${ctx} reloc ${i}`).toBe(expected[i].symbolName);
          });
        }
        // Every fixture with code has relocations worth checking (sanity of the comparison itself).
        expect(elf.relocations.reduce((n, r) => n + r.relocs.length, 0)).toBeGreaterThan(0);
      });
    });
  }
});

describe('big-endian object', () => {
  it('minimal_be.o is rejected with ELF_BIG_ENDIAN', () => {
    const buf = readFixture('minimal_be.o');
    expect(buf[5]).toBe(2); // ELFDATA2MSB: the fixture really is big-endian
    let err: unknown;
    try {
      parseElf(buf);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ElfError);
    expect(err).toBeInstanceOf(BpfsealError);
    const e = err as ElfError;
    expect(e.code).toBe('ELF_BIG_ENDIAN');
    expect(e.kind).toBe('input');
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain('big-endian object; this host is little-endian');
  });
});
