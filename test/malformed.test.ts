/**
 * Malformed objects: each must be rejected by the library with a BpfsealError of kind 'input' and a
 * specific code, and by `bpfseal plan` with exit 2, a message naming the file and the reason, and no
 * plan written. Then a seeded mutation fuzz: nothing but BpfsealError may escape, and nothing may hang.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { planFromObject } from '../src/plan/build.js';
import { decodePlan, encodePlan } from '../src/plan/codec.js';
import { BpfsealError } from '../src/errors.js';
import { KIND } from '../src/bpf/btf.js';
import { parseElf, SHT } from '../src/elf/reader.js';
import { runCli } from './helpers/cli.js';
import { btfOf, EH, patched, section, SH, shdrAt } from './helpers/elfpatch.js';
import { cleanupTmpDirs, DIST, fixturePath, leFixtures, makeTmpDir, readFixture, requireDist } from './helpers/paths.js';
import { applyOps, checkOne, describeOps, mutationAt, regions, type MutationOp } from './helpers/mutate.mjs';

afterAll(cleanupTmpDirs);

interface Case {
  name: string;
  fixture: string;
  make: (orig: Buffer) => Buffer;
  code: string;
  /** A piece of the reason that the message must contain. */
  reason: string | RegExp;
}

/** The first non-empty relocation section that applies to an executable section. */
function codeRelocs(orig: Buffer) {
  const elf = parseElf(orig);
  const rs = elf.relocations.find((r) => (elf.sections[r.target].flags & 4n) !== 0n && r.relocs.length > 0)!;
  return { elf, rs };
}

const CASES: Case[] = [
  // truncation
  { name: 'empty file', fixture: 'minimal.o', make: () => Buffer.alloc(0), code: 'ELF_TRUNCATED', reason: 'file is 0 bytes' },
  { name: 'truncated to 10 bytes', fixture: 'minimal.o', make: (o) => o.subarray(0, 10), code: 'ELF_TRUNCATED', reason: 'file is 10 bytes' },
  { name: 'truncated to 63 bytes', fixture: 'minimal.o', make: (o) => o.subarray(0, 63), code: 'ELF_TRUNCATED', reason: 'file is 63 bytes' },
  { name: 'truncated to half', fixture: 'globals.o', make: (o) => o.subarray(0, o.length >> 1), code: 'ELF_OUT_OF_RANGE', reason: 'lies outside the file' },
  { name: 'truncated by one byte', fixture: 'subprogs.o', make: (o) => o.subarray(0, o.length - 1), code: 'ELF_OUT_OF_RANGE', reason: 'section header table' },
  // ELF header
  { name: 'e_shoff past the end', fixture: 'minimal.o', make: (o) => patched(o, (b) => b.writeBigUInt64LE(BigInt(o.length + 4096), EH.shoff)), code: 'ELF_OUT_OF_RANGE', reason: 'section header 0' },
  { name: 'e_shoff 2^64-1', fixture: 'minimal.o', make: (o) => patched(o, (b) => b.writeBigUInt64LE(0xffffffffffffffffn, EH.shoff)), code: 'ELF_OUT_OF_RANGE', reason: 'lies outside the file' },
  { name: 'e_shoff 0', fixture: 'minimal.o', make: (o) => patched(o, (b) => b.writeBigUInt64LE(0n, EH.shoff)), code: 'ELF_NO_SECTIONS', reason: 'no section header table' },
  { name: 'e_shnum 0xffff', fixture: 'maps_btf.o', make: (o) => patched(o, (b) => b.writeUInt16LE(0xffff, EH.shnum)), code: 'ELF_OUT_OF_RANGE', reason: 'section header table' },
  {
    name: 'extended e_shnum (0 + sh_size of section 0) absurd', fixture: 'maps_btf.o',
    make: (o) => patched(o, (b) => { b.writeUInt16LE(0, EH.shnum); b.writeBigUInt64LE(0xffffffffffn, shdrAt(b, 0) + SH.size); }),
    code: 'ELF_ABSURD_COUNT', reason: 'section count',
  },
  { name: 'e_shentsize 40', fixture: 'minimal.o', make: (o) => patched(o, (b) => b.writeUInt16LE(40, EH.shentsize)), code: 'ELF_BAD_SHENTSIZE', reason: 'e_shentsize 40' },
  { name: 'e_shstrndx out of range', fixture: 'minimal.o', make: (o) => patched(o, (b) => b.writeUInt16LE(200, EH.shstrndx)), code: 'ELF_BAD_SHSTRNDX', reason: 'e_shstrndx 200' },
  { name: 'ELFCLASS32', fixture: 'minimal.o', make: (o) => patched(o, (b) => { b[EH.class] = 1; }), code: 'ELF_NOT_64BIT', reason: 'ELFCLASS64' },
  { name: 'e_machine x86-64', fixture: 'minimal.o', make: (o) => patched(o, (b) => b.writeUInt16LE(62, EH.machine)), code: 'ELF_NOT_BPF', reason: 'e_machine 62' },
  { name: 'e_type ET_EXEC', fixture: 'minimal.o', make: (o) => patched(o, (b) => b.writeUInt16LE(2, EH.type)), code: 'ELF_NOT_RELOCATABLE', reason: 'e_type 2' },
  // section headers
  {
    name: 'program section offset past the end', fixture: 'subprogs.o',
    make: (o) => patched(o, (b, elf) => b.writeBigUInt64LE(BigInt(o.length + 8), shdrAt(b, section(elf, 'xdp').index) + SH.offset)),
    code: 'ELF_OUT_OF_RANGE', reason: /section \d+ data/,
  },
  {
    name: 'program section size beyond the file', fixture: 'subprogs.o',
    make: (o) => patched(o, (b, elf) => b.writeBigUInt64LE(0x10000000n, shdrAt(b, section(elf, 'xdp').index) + SH.size)),
    code: 'ELF_OUT_OF_RANGE', reason: 'lies outside the file',
  },
  {
    name: 'section offset + size overflowing 64 bits', fixture: 'globals.o',
    make: (o) => patched(o, (b, elf) => {
      const h = shdrAt(b, section(elf, '.data').index);
      b.writeBigUInt64LE(0xfffffffffffffff0n, h + SH.offset);
      b.writeBigUInt64LE(0x20n, h + SH.size);
    }),
    code: 'ELF_OUT_OF_RANGE', reason: 'lies outside the file',
  },
  {
    name: 'NOBITS section with absurd size', fixture: 'globals.o',
    make: (o) => patched(o, (b, elf) => b.writeBigUInt64LE(1n << 40n, shdrAt(b, section(elf, '.bss').index) + SH.size)),
    code: 'ELF_ABSURD_SIZE', reason: 'has size',
  },
  {
    name: 'section name outside .shstrtab', fixture: 'minimal.o',
    make: (o) => patched(o, (b) => b.writeUInt32LE(0x7fffffff, shdrAt(b, 3) + SH.name)),
    code: 'ELF_BAD_STRING', reason: 'name of section 3',
  },
  // symbol table
  {
    name: 'symbol table with entsize 16', fixture: 'maps_btf.o',
    make: (o) => patched(o, (b, elf) => b.writeBigUInt64LE(16n, shdrAt(b, section(elf, '.symtab').index) + SH.entsize)),
    code: 'ELF_BAD_ENTSIZE', reason: 'entry size 16, not 24',
  },
  {
    name: 'symbol table size not a multiple of 24', fixture: 'maps_btf.o',
    make: (o) => patched(o, (b, elf) => {
      const h = shdrAt(b, section(elf, '.symtab').index);
      b.writeBigUInt64LE(b.readBigUInt64LE(h + SH.size) - 5n, h + SH.size);
    }),
    code: 'ELF_BAD_SIZE', reason: 'not a multiple of 24',
  },
  {
    name: 'symbol table linked to a non-string-table', fixture: 'maps_btf.o',
    make: (o) => patched(o, (b, elf) => b.writeUInt32LE(section(elf, '.BTF').index, shdrAt(b, section(elf, '.symtab').index) + SH.link)),
    code: 'ELF_BAD_LINK', reason: 'not a string table',
  },
  {
    name: 'symbol name outside .strtab', fixture: 'minimal.o',
    make: (o) => patched(o, (b, elf) => {
      const st = section(elf, '.symtab');
      b.writeUInt32LE(0xfffffff, st.offset + 24 * (elf.symbols.length - 1));
    }),
    code: 'ELF_BAD_STRING', reason: /name of symbol \d+/,
  },
  // relocations
  {
    name: 'relocation naming a symbol index out of range', fixture: 'subprogs.o',
    make: (o) => {
      const { elf, rs } = codeRelocs(o);
      return patched(o, (b) => b.writeUInt32LE(elf.symbols.length + 1000, rs.section.offset + 8 + 4));
    },
    code: 'ELF_BAD_RELOC_SYMBOL', reason: /names symbol \d+; the symbol table has \d+/,
  },
  {
    name: 'relocation with unknown type 77', fixture: 'subprogs.o',
    make: (o) => {
      const { rs } = codeRelocs(o);
      return patched(o, (b) => b.writeUInt32LE(77, rs.section.offset + 8));
    },
    code: 'RELOC_UNKNOWN_TYPE', reason: 'unknown relocation type 77',
  },
  {
    name: 'call relocation with unknown type 77', fixture: 'externs.o',
    make: (o) => {
      // the relocation of the first kfunc call (bpf_task_from_pid)
      const elf = parseElf(o);
      const sym = elf.symbols.findIndex((s) => s.name === 'bpf_task_from_pid');
      const rs = elf.relocations.find((r) => r.relocs.some((x) => x.symbol === sym) && (elf.sections[r.target].flags & 4n) !== 0n)!;
      const k = rs.relocs.findIndex((x) => x.symbol === sym);
      return patched(o, (b) => b.writeUInt32LE(77, rs.section.offset + 16 * k + 8));
    },
    code: 'RELOC_UNKNOWN_TYPE', reason: 'unknown relocation type 77 on a call',
  },
  {
    name: 'relocation section applying to a missing section', fixture: 'subprogs.o',
    make: (o) => {
      const { rs } = codeRelocs(o);
      return patched(o, (b) => b.writeUInt32LE(999, shdrAt(b, rs.section.index) + SH.info));
    },
    code: 'ELF_BAD_RELOC_TARGET', reason: 'which does not exist',
  },
  // BTF
  { name: 'bad BTF magic', fixture: 'globals.o', make: (o) => patched(o, (b) => b.writeUInt16LE(0x1234, btfOf(o).base)), code: 'BTF_INVALID', reason: 'magic 0x1234' },
  {
    name: 'BTF type_len beyond the section', fixture: 'globals.o',
    make: (o) => patched(o, (b, elf) => b.writeUInt32LE(section(elf, '.BTF').size, btfOf(o).base + 12)),
    code: 'BTF_INVALID', reason: 'exceeds',
  },
  {
    name: 'BTF string section beyond the section', fixture: 'map_in_map.o',
    make: (o) => patched(o, (b) => b.writeUInt32LE(0xffffff00, btfOf(o).base + 20)),
    code: 'BTF_INVALID', reason: 'exceeds',
  },
  {
    name: 'BTF type of unknown kind 25', fixture: 'maps_btf.o',
    make: (o) => {
      const { btf, typesAt } = btfOf(o);
      const t = btf.types[3];
      return patched(o, (b) => {
        const at = typesAt + t.recordOffset + 4;
        b.writeUInt32LE(((b.readUInt32LE(at) & ~(0x1f << 24)) | (25 << 24)) >>> 0, at);
      });
    },
    code: 'BTF_INVALID', reason: 'type 3 has unknown kind 25',
  },
  {
    name: 'BTF pointer to a nonexistent type', fixture: 'subprogs.o',
    make: (o) => {
      const { btf, typesAt } = btfOf(o);
      const ptr = btf.types.find((t) => t.kind === KIND.PTR)!;
      return patched(o, (b) => b.writeUInt32LE(btf.types.length + 100, typesAt + ptr.recordOffset + 8));
    },
    code: 'BTF_INVALID', reason: /refers to type \d+; there are \d+/,
  },
  {
    name: 'BTF struct member of a nonexistent type', fixture: 'core.o',
    make: (o) => {
      const { btf, typesAt } = btfOf(o);
      const st = btf.types.find((t) => t.kind === KIND.STRUCT && t.vlen > 0)!;
      return patched(o, (b) => b.writeUInt32LE(0x00ffffff, typesAt + st.recordOffset + 12 + 4));
    },
    code: 'BTF_INVALID', reason: 'refers to missing type 16777215',
  },
  {
    name: '.BTF.ext func_info with an absurd record count', fixture: 'subprogs.o',
    make: (o) => patched(o, (b, elf) => {
      const ext = section(elf, '.BTF.ext');
      const hdrLen = b.readUInt32LE(ext.offset + 4);
      const funcOff = ext.offset + hdrLen + b.readUInt32LE(ext.offset + 8);
      b.writeUInt32LE(0xfffffff0, funcOff + 4 + 4); // rec_size, then {sec_name_off, num_info}
    }),
    code: 'BTF_INVALID', reason: 'claims 4294967280 records',
  },
  {
    name: '.BTF.ext line_info with an absurd record count', fixture: 'core.o',
    make: (o) => patched(o, (b, elf) => {
      const ext = section(elf, '.BTF.ext');
      const hdrLen = b.readUInt32LE(ext.offset + 4);
      const lineOff = ext.offset + hdrLen + b.readUInt32LE(ext.offset + 16);
      b.writeUInt32LE(0x7fffffff, lineOff + 4 + 4);
    }),
    code: 'BTF_INVALID', reason: 'claims 2147483647 records',
  },
  {
    name: '.BTF.ext core_relo with an absurd record count', fixture: 'core.o',
    make: (o) => patched(o, (b, elf) => {
      const ext = section(elf, '.BTF.ext');
      const hdrLen = b.readUInt32LE(ext.offset + 4);
      expect(hdrLen).toBeGreaterThanOrEqual(32);
      const coreOff = ext.offset + hdrLen + b.readUInt32LE(ext.offset + 24);
      b.writeUInt32LE(0x01000000, coreOff + 4 + 4);
    }),
    code: 'BTF_INVALID', reason: 'claims 16777216 records',
  },
  // not ELF at all
  { name: 'text file', fixture: 'minimal.o', make: () => Buffer.from('this is not an ELF object, just some text that is long enough\n'.repeat(4)), code: 'ELF_NOT_ELF', reason: 'not an ELF file' },
  { name: 'PNG header', fixture: 'minimal.o', make: () => Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(120, 7)]), code: 'ELF_NOT_ELF', reason: 'bad magic' },
];

function libraryError(bytes: Buffer, name: string): unknown {
  try {
    planFromObject(bytes, name);
  } catch (e) {
    return e;
  }
  return undefined;
}

const caseFile = (dir: string, c: Case) => join(dir, `${c.name.replace(/[^A-Za-z0-9]+/g, '_')}.o`);

describe('malformed objects', () => {
  let dir: string;
  let out: string;
  const bytesOf = new Map<Case, Buffer>();
  /** One `bpfseal plan --json` over every malformed file: per-file results (exit, code, message) and stderr. */
  let batch: { code: number | null; json: { object: string; plan?: string; error?: { code: string; message: string; exit: number } }[]; stderr: string[] };

  beforeAll(async () => {
    dir = makeTmpDir('bpfseal-malformed-');
    out = makeTmpDir('bpfseal-malformed-out-');
    for (const c of CASES) {
      const orig = readFixture(c.fixture);
      const bytes = c.make(orig);
      expect(bytes.equals(orig), c.name).toBe(false);
      expect(readFixture(c.fixture).equals(orig)).toBe(true); // the fixture itself is untouched
      bytesOf.set(c, bytes);
      writeFileSync(caseFile(dir, c), bytes);
    }
    const r = await runCli(['plan', '--json', ...CASES.map((c) => caseFile(dir, c)), '-o', `${out}/`]);
    batch = { code: r.code, json: JSON.parse(r.stdout), stderr: r.stderr.trimEnd().split('\n') };
  });

  it('CLI: the batch exits 2, reports every file, writes no plan', () => {
    expect(batch.code).toBe(2);
    expect(batch.json.map((x) => x.object)).toEqual(CASES.map((c) => caseFile(dir, c)));
    expect(batch.stderr).toHaveLength(CASES.length);
    expect(readdirSync(out)).toEqual([]);
    expect(readdirSync(dir).filter((f) => !f.endsWith('.o'))).toEqual([]);
  });

  describe.each(CASES)('$name ($fixture)', (c) => {
    it(`library: BpfsealError kind input, code ${c.code}`, () => {
      const e = libraryError(bytesOf.get(c)!, `${c.name}.o`);
      expect(e, 'planFromObject must throw').toBeDefined();
      expect(e).toBeInstanceOf(BpfsealError);
      const be = e as BpfsealError;
      expect({ code: be.code, kind: be.kind, exitCode: be.exitCode }).toEqual({ code: c.code, kind: 'input', exitCode: 2 });
      if (typeof c.reason === 'string') expect(be.message).toContain(c.reason);
      else expect(be.message).toMatch(c.reason);
    });

    it('CLI plan: exit 2, file and reason on stderr, no plan written', () => {
      const file = caseFile(dir, c);
      const e = libraryError(bytesOf.get(c)!, file) as BpfsealError;
      const entry = batch.json.find((x) => x.object === file)!;
      expect(entry.plan).toBeUndefined();
      expect(entry.error).toEqual({ code: c.code, message: e.message, exit: 2 });
      const lines = batch.stderr.filter((l) => l.includes(file));
      expect(lines).toEqual([`bpfseal: ${file}: ${c.code}: ${e.message}`]);
      expect(existsSync(join(out, basename(file).replace(/\.o$/, '.plan')))).toBe(false);
    });
  });

  // The exit status of a single-object run, for a sample of the cases (the batch shows only the maximum).
  it.each(['empty file', 'e_shnum 0xffff', 'relocation with unknown type 77', 'BTF type of unknown kind 25', '.BTF.ext func_info with an absurd record count', 'text file'])(
    'CLI plan alone: %s -> exit 2, one message naming the file, no output',
    async (name) => {
      const c = CASES.find((x) => x.name === name)!;
      const file = caseFile(dir, c);
      const o = makeTmpDir('bpfseal-malformed-one-');
      const r = await runCli(['plan', file, '-o', `${o}/`]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      const e = libraryError(bytesOf.get(c)!, file) as BpfsealError;
      expect(r.stderr).toBe(`bpfseal: ${file}: ${c.code}: ${e.message}\n`);
      expect(r.stderr).not.toMatch(/internal error|at .*\.js:\d+/);
      expect(readdirSync(o)).toEqual([]);
    },
  );
});

// ---------------------------------------------------------------------------------------------------
// Regression tests for bugs the fuzz below found (each was an `it.fails` until fixed): malformed input
// must be a BpfsealError of kind 'input', and a plan from planFromObject must decode.
// ---------------------------------------------------------------------------------------------------

interface Outcome { error?: unknown; plan?: ReturnType<typeof planFromObject>['plan'] }
function outcome(bytes: Buffer, name: string): Outcome {
  try {
    return { plan: planFromObject(bytes, name).plan };
  } catch (error) {
    return { error };
  }
}
function expectInputError(o: Outcome, code?: string) {
  expect(o.error, `expected a BpfsealError, got ${o.error ? String(o.error) : 'a plan'}`).toBeInstanceOf(BpfsealError);
  expect((o.error as BpfsealError).kind).toBe('input');
  if (code) expect((o.error as BpfsealError).code).toBe(code);
}
/** Set the value (st_value) of the named symbol. */
function withSymbolValue(fixture: string, sym: string, value: bigint): Buffer {
  return patched(readFixture(fixture), (b, elf) => {
    const s = elf.symbols.find((x) => x.name === sym)!;
    b.writeBigUInt64LE(value, section(elf, '.symtab').offset + 24 * s.index + 8);
  });
}
/** Set the byte size of the BTF INT named `name`. */
function withIntSize(fixture: string, name: string, size: number): Buffer {
  const orig = readFixture(fixture);
  const { btf, typesAt } = btfOf(orig);
  const t = btf.types.find((x) => x.kind === KIND.INT && x.name === name)!;
  return patched(orig, (b) => b.writeUInt32LE(size, typesAt + t.recordOffset + 8));
}

describe('fuzz-found bugs (regressions)', () => {
  // src/bpf/collection.ts loadCollection: checks verSec.size but reads verSec.data, which is empty for
  // SHT_NOBITS -> RangeError "Attempt to access memory outside buffer bounds".
  it('a NOBITS "version" section is an input error, not a RangeError', () => {
    const b = patched(readFixture('legacy_maps.o'), (x, elf) => x.writeUInt32LE(SHT.NOBITS, shdrAt(x, section(elf, 'version').index) + SH.type));
    expectInputError(outcome(b, 'legacy_maps.o'));
  });

  // src/plan/link.ts (global data): writeInt32LE(imm + Number(sym.value)) throws RangeError when the
  // variable's st_value is >= 2^31 (no range check against the section size).
  it('a global variable whose st_value is 2^31 is an input error, not a RangeError', () => {
    expectInputError(outcome(withSymbolValue('globals.o', 'data_counter', 0x80000000n), 'globals.o'));
  });

  // src/plan/sanitize.ts: DATASEC offsets taken from st_value are written with writeUInt32LE ->
  // RangeError for st_value >= 2^32 (here the LICENSE variable, which no instruction references).
  it('a DATASEC variable whose st_value is 2^40 is an input error, not a RangeError', () => {
    expectInputError(outcome(withSymbolValue('globals.o', 'LICENSE', 1n << 40n), 'globals.o'));
  });

  // src/bpf/collection.ts kcfgType accepts any INT size; src/plan/link.ts then writes the .kconfig
  // offset (>= 2^31) with writeInt32LE -> RangeError.
  it('a kconfig extern of a 2^31-byte int is an input error, not a RangeError', () => {
    expectInputError(outcome(withIntSize('externs.o', 'int', 0x80000000), 'externs.o'));
  });

  // src/bpf/collection.ts kconfigMap looked up each kconfig extern in the first .kconfig DATASEC only,
  // while collectExterns takes them from any: a second one (here .ksyms renamed) was a TypeError.
  it('two .kconfig DATASECs are BTF_INVALID, not a TypeError', () => {
    const orig = readFixture('externs.o');
    const { btf, typesAt } = btfOf(orig);
    const kconfig = btf.types.find((x) => x.kind === KIND.DATASEC && x.name === '.kconfig')!;
    const ksyms = btf.types.find((x) => x.kind === KIND.DATASEC && x.name === '.ksyms')!;
    const b = patched(orig, (x) => x.writeUInt32LE(kconfig.nameOff, typesAt + ksyms.recordOffset));
    expectInputError(outcome(b, 'externs.o'), 'BTF_INVALID');
  });

  // kcfgType claims to classify "the way libbpf's find_kcfg_type does", which accepts integers of
  // 1, 2, 4 or 8 bytes only. Size 0 even yields NaN offsets and a plan that decodePlan rejects.
  it.each([0, 3])('a kconfig extern of a %i-byte int is rejected with EXTERN_KCONFIG_TYPE', (size) => {
    expectInputError(outcome(withIntSize('externs.o', 'int', size), 'externs.o'), 'EXTERN_KCONFIG_TYPE');
  });

  // src/bpf/maps.ts dataMap: initData = sec.data, which is empty for a SHT_NOBITS '.data'; the plan then
  // fails validatePlan ("initial value is 0 bytes, value size 24"): `bpfseal plan` writes a file that
  // `bpfseal inspect` rejects. Either plan it (zero-filled, as libbpf does) or reject the object.
  it('a NOBITS .data either is rejected or plans to a decodable plan', () => {
    const b = patched(readFixture('globals.o'), (x, elf) => x.writeUInt32LE(SHT.NOBITS, shdrAt(x, section(elf, '.data').index) + SH.type));
    const o = outcome(b, 'globals.o');
    if (o.error) expectInputError(o);
    else expect(() => decodePlan(encodePlan(o.plan!))).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------------
// Mutation fuzz
// ---------------------------------------------------------------------------------------------------

const SEED = Number(process.env.BPFSEAL_FUZZ_SEED ?? 0x5ea1f00d) >>> 0;
const WORKER_COUNT = Number(process.env.BPFSEAL_FUZZ_COUNT ?? 3000);
const INPROCESS_COUNT = 600;
/** A call that has not returned after this long is a hang (honest calls take milliseconds). */
const HANG_MS = 20_000;

interface Problem { i: number; fixture: string; ops: MutationOp[]; stage: string; problem: string; name?: string; code?: string; message?: string; stack?: string }

/**
 * Problem classes already reproduced by a failing test; the fuzz counts them but does not fail on them,
 * so it keeps catching new ones. Empty: every class it found is fixed and has a regression test above.
 */
const KNOWN_BUGS: { id: string; match: (p: Problem) => boolean }[] = [];

const fuzzFixtures = leFixtures().map((name) => ({ name, path: fixturePath(name) }));
const regionsByFixture = new Map(fuzzFixtures.map((f) => {
  const orig = readFileSync(f.path);
  return [f.name, { orig, regions: regions(orig) }];
}));

function repro(i: number, fixture: string, ops: MutationOp[]): string {
  const bytes = applyOps(regionsByFixture.get(fixture)!.orig, ops);
  // kept after the run (not a cleaned-up tmp dir), so the failing input can be examined
  const dir = join(tmpdir(), 'bpfseal-fuzz-failures');
  mkdirSync(dir, { recursive: true });
  const saved = join(dir, `seed${SEED}-i${i}-${fixture}`);
  writeFileSync(saved, bytes);
  return `seed=${SEED} iteration=${i} fixture=${fixture} ops=${describeOps(ops)} (input saved to ${saved}; ` +
    `rerun with BPFSEAL_FUZZ_SEED=${SEED})`;
}

/** Split problems into known (tallied by id) and new ones (formatted for the failure message). */
function triage(problems: Problem[]): { known: Record<string, number>; fresh: string[] } {
  const known: Record<string, number> = {};
  const fresh: string[] = [];
  for (const p of problems) {
    const k = KNOWN_BUGS.find((b) => b.match(p));
    if (k) known[k.id] = (known[k.id] ?? 0) + 1;
    else fresh.push(`${p.stage}: ${p.problem}: ${p.message ?? ''}\n${p.stack ?? ''}\n  ${repro(p.i, p.fixture, p.ops)}`);
  }
  if (Object.keys(known).length) console.warn(`fuzz seed ${SEED}: known src bugs hit: ${JSON.stringify(known)}`);
  return { known, fresh };
}

describe('mutation fuzz', () => {
  let hung = false;

  it(`worker: ${WORKER_COUNT} mutations (dist/), only BpfsealError, no hang`, async () => {
    requireDist();
    const problems: Problem[] = [];
    const result = await new Promise<{ stats?: Record<string, unknown>; hangAt?: number }>((resolve, reject) => {
      const w = new Worker(new URL('./helpers/fuzz-worker.mjs', import.meta.url), {
        workerData: { dist: DIST, fixtures: fuzzFixtures, seed: SEED, count: WORKER_COUNT, first: 0 },
      });
      let at = -1;
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          void w.terminate();
          resolve({ hangAt: at });
        }, HANG_MS);
      };
      arm();
      w.on('message', (m) => {
        if (m.type === 'at') { at = m.i; arm(); }
        else if (m.type === 'problem') problems.push(m);
        else if (m.type === 'done') { clearTimeout(timer); void w.terminate(); resolve({ stats: m.stats }); }
      });
      w.on('error', (e) => { clearTimeout(timer); reject(e); });
    });
    if (result.hangAt !== undefined) {
      hung = true;
      const m = mutationAt(SEED, result.hangAt, fuzzFixtures.map((f) => f.name), regionsByFixture);
      expect.fail(`no result after ${HANG_MS} ms: ${repro(result.hangAt, m.fixture, m.ops)}`);
    }
    console.log(`fuzz seed ${SEED}: ${JSON.stringify(result.stats)}`);
    const { fresh } = triage(problems);
    expect(fresh, fresh.join('\n\n')).toEqual([]);
    const stats = result.stats as { total: number; planned: number; rejected: number };
    expect(stats.total).toBe(WORKER_COUNT);
    expect(stats.planned + stats.rejected + problems.length).toBe(WORKER_COUNT);
    // The mutations exercise both paths: some objects still plan, many are rejected.
    expect(stats.planned).toBeGreaterThan(0);
    expect(stats.rejected).toBeGreaterThan(WORKER_COUNT / 4);
  });

  it(`in-process: ${INPROCESS_COUNT} further mutations against src/, only BpfsealError`, (ctx) => {
    if (hung) ctx.skip();
    const lib = { planFromObject, encodePlan, decodePlan, BpfsealError };
    const names = fuzzFixtures.map((f) => f.name);
    const problems: Problem[] = [];
    let planned = 0;
    for (let i = WORKER_COUNT; i < WORKER_COUNT + INPROCESS_COUNT; i++) {
      const m = mutationAt(SEED, i, names, regionsByFixture);
      const r = checkOne(lib, applyOps(regionsByFixture.get(m.fixture)!.orig, m.ops), m.fixture);
      if (!r.ok) problems.push({ i, fixture: m.fixture, ops: m.ops, ...r });
      else if (r.planned) planned++;
    }
    const { fresh } = triage(problems);
    expect(fresh, fresh.join('\n\n')).toEqual([]);
    expect(planned).toBeGreaterThan(0);
  });

  it('the mutation generator is reproducible and actually changes the input', () => {
    const names = fuzzFixtures.map((f) => f.name);
    let changed = 0;
    for (let i = 0; i < 200; i++) {
      const a = mutationAt(SEED, i, names, regionsByFixture);
      const b = mutationAt(SEED, i, names, regionsByFixture);
      expect(describeOps(a.ops)).toBe(describeOps(b.ops));
      const orig = regionsByFixture.get(a.fixture)!.orig;
      if (!applyOps(orig, a.ops).equals(orig)) changed++;
    }
    expect(changed).toBeGreaterThan(190);
  });

  it('the fuzz check itself flags a non-BpfsealError and an undecodable plan', () => {
    const plan = planFromObject(readFixture('minimal.o'), 'minimal.o').plan;
    const throwsRange = { planFromObject: () => { throw new RangeError('boom'); }, encodePlan, decodePlan, BpfsealError };
    expect(checkOne(throwsRange, Buffer.alloc(0), 'x.o')).toMatchObject({ problem: 'RangeError is not a BpfsealError' });
    const badPlan = { planFromObject: () => ({ plan: { ...plan, programs: [{ ...plan.programs[0], insns: Buffer.alloc(0) }] } }), encodePlan, decodePlan, BpfsealError };
    expect(checkOne(badPlan, Buffer.alloc(0), 'x.o')).toMatchObject({ stage: 'decodePlan', code: 'PLAN_INVALID' });
    expect(checkOne({ planFromObject, encodePlan, decodePlan, BpfsealError }, readFixture('minimal.o'), 'minimal.o')).toEqual({ ok: true, planned: true });
  });
});

describe('section types used above exist in the fixtures', () => {
  it('subprogs.o has a REL section for code', () => {
    const { rs } = codeRelocs(readFixture('subprogs.o'));
    expect(rs.section.type).toBe(SHT.REL);
  });
});
