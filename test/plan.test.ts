/** Loader plans built from the fixtures: determinism, FD-index-stable instructions, codec, features. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { planFromObject, type BuiltPlan } from '../src/plan/build.js';
import { decodePlan, encodePlan, planDigest } from '../src/plan/codec.js';
import type { Plan, PlanProgram } from '../src/plan/types.js';
import { BpfsealError } from '../src/errors.js';
import { ATTACH_TYPE, MAP_TYPE, PROG_TYPE } from '../src/bpf/constants.js';
import { parseBtf, KIND } from '../src/bpf/btf.js';
import { type CliResult, parseDigestLines, runCliProcess } from './helpers/cli.js';
import { decodeInsns, OP } from './helpers/insn.js';
import { cleanupTmpDirs, fixturePath, leFixtures, makeTmpDir, readFixture, sha256hex } from './helpers/paths.js';
import { prng } from './helpers/mutate.mjs';

afterAll(cleanupTmpDirs);

const FIXTURES = leFixtures();
const built = new Map<string, BuiltPlan>();
function build(name: string): BuiltPlan {
  let b = built.get(name);
  if (!b) {
    b = planFromObject(readFixture(name), name);
    built.set(name, b);
  }
  return b;
}
const plan = (name: string): Plan => build(name).plan;
const prog = (p: Plan, name: string): PlanProgram => {
  const x = p.programs.find((q) => q.name === name);
  if (!x) throw new Error(`no program '${name}' in ${p.name}: ${p.programs.map((q) => q.name).join(', ')}`);
  return x;
};
const mapIdx = (p: Plan, name: string): number => {
  const i = p.maps.findIndex((m) => m.name === name);
  if (i < 0) throw new Error(`no map '${name}' in ${p.name}: ${p.maps.map((m) => m.name).join(', ')}`);
  return i;
};
const T = (table: Map<string, number>, n: string): number => {
  const v = table.get(n);
  if (v === undefined) throw new Error(`unknown name ${n}`);
  return v;
};
const u32s = (b: Buffer, recSize: number, field = 0): number[] => {
  const out: number[] = [];
  for (let o = 0; o + recSize <= b.length; o += recSize) out.push(b.readUInt32LE(o + field));
  return out;
};

const BPF_F_NO_COMMON_LRU = 0x2;
const BPF_F_NO_PREALLOC = 0x1;
const BPF_F_NUMA_NODE = 0x4;
const BPF_F_RDONLY_PROG = 0x80;
const BPF_F_SLEEPABLE = 0x10;
const BPF_F_XDP_HAS_FRAGS = 0x20;

// ---------------------------------------------------------------------------------------------------
describe('(a) determinism across processes', () => {
  let dirA: string, dirB: string, copies: string;
  let outA: CliResult, outB: CliResult;
  beforeAll(async () => {
    dirA = makeTmpDir('bpfseal-planA-');
    dirB = makeTmpDir('bpfseal-planB-');
    // Process B plans copies at a different path, from a different cwd, with a different locale and TZ.
    copies = join(makeTmpDir('bpfseal-copies-'), 'some', 'other', 'place');
    mkdirSync(copies, { recursive: true });
    for (const f of FIXTURES) copyFileSync(fixturePath(f), join(copies, f));
    // Two real processes: the environment that differs (TZ, locale) is read at process start.
    outA = runCliProcess(['plan', ...FIXTURES.map(fixturePath), '-o', `${dirA}/`]);
    outB = runCliProcess(['plan', ...FIXTURES, '-o', `${dirB}/`], { cwd: copies, env: { TZ: 'Pacific/Chatham', LANG: 'tr_TR.UTF-8', LC_ALL: 'tr_TR.UTF-8' } });
  });

  it('both runs succeed and print one digest line per object', () => {
    expect(outA.code, outA.stderr).toBe(0);
    expect(outB.code, outB.stderr).toBe(0);
    expect(outA.stderr).toBe('');
    expect(parseDigestLines(outA.stdout)).toHaveLength(FIXTURES.length);
    expect(parseDigestLines(outB.stdout)).toHaveLength(FIXTURES.length);
  });

  it.each(FIXTURES)('%s: byte-identical plans, equal printed digests', (f) => {
    const planName = f.replace(/\.o$/, '.plan');
    const a = readFileSync(join(dirA, planName));
    const b = readFileSync(join(dirB, planName));
    expect(a.equals(b)).toBe(true);
    const la = parseDigestLines(outA.stdout).find((l) => l.path === join(dirA, planName));
    const lb = parseDigestLines(outB.stdout).find((l) => l.path === join(dirB, planName));
    expect(la?.digest).toBe(sha256hex(a));
    expect(lb?.digest).toBe(la?.digest);
    // and the same bytes as this (vitest) process builds from src/
    expect(encodePlan(plan(f)).equals(a)).toBe(true);
  });

  it('the plan records the object digest and depends on the file name, not the path', () => {
    const p = plan('minimal.o');
    expect(p.objectSha256.toString('hex')).toBe(sha256hex(readFixture('minimal.o')));
    expect(p.name).toBe('minimal');
    const other = planFromObject(readFixture('minimal.o'), '/elsewhere/dir/minimal.o').plan;
    expect(encodePlan(other).equals(encodePlan(p))).toBe(true);
    const renamed = planFromObject(readFixture('minimal.o'), 'renamed.o').plan;
    expect(renamed.name).toBe('renamed');
    expect(encodePlan(renamed).equals(encodePlan(p))).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('(b) FD-index-stable instructions', () => {
  it.each(FIXTURES)('%s', (f) => {
    const p = plan(f);
    expect(p.programs.length).toBeGreaterThan(0);
    for (const pr of p.programs) {
      const ctx = `${f} ${pr.name}`;
      const insns = decodeInsns(pr.insns);
      const n = pr.insns.length / 8;
      const firstUse: number[] = [];
      for (const i of insns) {
        if (i.code !== OP.LD_IMM64) continue;
        const at = `${ctx} insn ${i.pc}`;
        expect([1, 2], `${at}: ld_imm64 with an fd-based src_reg`).not.toContain(i.src);
        expect([0, 3, 4, 5, 6], `${at}: src_reg ${i.src}`).toContain(i.src);
        if (i.src === 5 || i.src === 6) {
          expect(i.imm, at).toBeGreaterThanOrEqual(0);
          expect(i.imm, `${at}: fd_array index`).toBeLessThan(pr.fdArray.length);
          const m = p.maps[pr.fdArray[i.imm]];
          if (i.src === 5) {
            expect(['btf', 'legacy'], `${at}: map reference to ${m.name}`).toContain(m.kind);
            expect(i.imm2, at).toBe(0);
          } else {
            expect(['data', 'rodata', 'bss', 'kconfig'], `${at}: value reference to ${m.name}`).toContain(m.kind);
            expect(i.imm2!, `${at}: offset inside ${m.name}`).toBeGreaterThanOrEqual(0);
            expect(i.imm2!, `${at}: offset inside ${m.name}`).toBeLessThan(m.valueSize);
          }
          if (!firstUse.includes(i.imm)) firstUse.push(i.imm);
        }
        if (i.src === 4) {
          const target = i.pc + i.imm + 1;
          expect(target, `${at}: callback target`).toBeGreaterThan(0);
          expect(target, `${at}: callback target`).toBeLessThan(n);
        }
      }
      // fd_array lists maps in order of first reference, each once, all referenced.
      expect(firstUse, ctx).toEqual(pr.fdArray.map((_, k) => k));
      expect(new Set(pr.fdArray).size).toBe(pr.fdArray.length);
      for (const mi of pr.fdArray) expect(mi).toBeLessThan(p.maps.length);
      // Calls: bpf-to-bpf targets inside the program; kfunc calls are declared fix-ups.
      for (const i of insns) {
        if (i.code !== OP.CALL) continue;
        if (i.src === 1) {
          const target = i.pc + i.imm + 1;
          expect(target, `${ctx} call at ${i.pc}`).toBeGreaterThan(0);
          expect(target, `${ctx} call at ${i.pc}`).toBeLessThan(n);
        } else if (i.src === 2) {
          expect(pr.fixups.some((x) => x.insn === i.pc && x.kind === 'kfunc'), `${ctx} kfunc call at ${i.pc}`).toBe(true);
        } else {
          expect(i.src, `${ctx} helper call at ${i.pc}`).toBe(0);
        }
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------
function decodeOutcome(b: Buffer): { plan?: Plan; error?: unknown } {
  try {
    return { plan: decodePlan(b) };
  } catch (error) {
    return { error };
  }
}
function checkFlip(orig: Buffer, pos: number, xor: number): string | null {
  const b = Buffer.from(orig);
  b[pos] ^= xor;
  const r = decodeOutcome(b);
  if (r.error) {
    if (!(r.error instanceof BpfsealError)) return `byte ${pos} ^ 0x${xor.toString(16)}: ${String(r.error)} is not a BpfsealError`;
    if (r.error.code !== 'PLAN_INVALID') return `byte ${pos} ^ 0x${xor.toString(16)}: code ${r.error.code}`;
    return null;
  }
  if (!encodePlan(r.plan!).equals(b)) return `byte ${pos} ^ 0x${xor.toString(16)}: decoded to a plan that re-encodes differently`;
  return null;
}

describe('(c) canonical codec', () => {
  it.each(FIXTURES)('%s: decode(encode(plan)) deep-equals and re-encodes identically', (f) => {
    const p = plan(f);
    const bytes = encodePlan(p);
    const d = decodePlan(bytes);
    expect(d).toEqual(p);
    expect(encodePlan(d).equals(bytes)).toBe(true);
    expect(planDigest(bytes)).toBe(sha256hex(bytes));
  });

  it('minimal: every single-byte flip is rejected (PLAN_INVALID) or decodes to exactly the flipped bytes', () => {
    const bytes = encodePlan(plan('minimal.o'));
    expect(bytes.length).toBeGreaterThan(100);
    const bad: string[] = [];
    let accepted = 0;
    for (let pos = 0; pos < bytes.length; pos++) {
      for (const xor of [0x01, 0x80, 0xff]) {
        const e = checkFlip(bytes, pos, xor);
        if (e) bad.push(e);
        else if (decodeOutcome(Buffer.from(bytes).fill(bytes[pos] ^ xor, pos, pos + 1)).plan) accepted++;
      }
    }
    expect(bad, bad.slice(0, 20).join('\n')).toEqual([]);
    // Both outcomes occur: flips in instruction bytes decode, flips in the magic do not.
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(bytes.length * 3);
  });

  it.each(['maps_btf.o', 'subprogs.o', 'externs.o'])('%s: ~500 sampled single-byte flips', (f) => {
    const bytes = encodePlan(plan(f));
    const rnd = prng(0xc0dec + bytes.length);
    const bad: string[] = [];
    for (let k = 0; k < 500; k++) {
      const pos = Math.floor(rnd() * bytes.length);
      const xor = 1 + Math.floor(rnd() * 255);
      const e = checkFlip(bytes, pos, xor);
      if (e) bad.push(e);
    }
    expect(bad, bad.slice(0, 20).join('\n')).toEqual([]);
  });

  it.each(FIXTURES)('%s: a trailing byte or a missing last byte is rejected', (f) => {
    const bytes = encodePlan(plan(f));
    for (const b of [Buffer.concat([bytes, Buffer.from([0])]), Buffer.concat([bytes, Buffer.from([0x41])]), bytes.subarray(0, bytes.length - 1)]) {
      const r = decodeOutcome(b);
      expect(r.error).toBeInstanceOf(BpfsealError);
      expect((r.error as BpfsealError).code).toBe('PLAN_INVALID');
      expect((r.error as BpfsealError).kind).toBe('input');
    }
  });
});

// ---------------------------------------------------------------------------------------------------
describe('(d) features', () => {
  it('globals.o: data maps with the initial bytes of their sections', () => {
    const p = plan('globals.o');
    const names = p.maps.map((m) => m.name);
    for (const n of ['.data', '.rodata', '.bss', '.data.foo', '.rodata.str1.1', 'result']) expect(names).toContain(n);
    const arr = T(MAP_TYPE, 'array');
    for (const n of ['.data', '.rodata', '.bss', '.data.foo', '.rodata.str1.1']) {
      const m = p.maps[mapIdx(p, n)];
      expect({ type: m.type, keySize: m.keySize, maxEntries: m.maxEntries }, n).toEqual({ type: arr, keySize: 4, maxEntries: 1 });
      if (m.initData) expect(m.initData.length, n).toBe(m.valueSize);
    }
    const data = p.maps[mapIdx(p, '.data')];
    expect(data.kind).toBe('data');
    const dv = data.initData!;
    expect(dv.readUInt32LE(0)).toBe(0x11223344);
    expect(dv.readBigUInt64LE(8)).toBe(0x0102030405060708n);
    expect(dv.readBigUInt64LE(16)).toBe(0xa1a2a3a4a5a6a7a8n);
    expect(data.freeze).toBe(false);
    expect(data.flags & BPF_F_RDONLY_PROG).toBe(0);

    const ro = p.maps[mapIdx(p, '.rodata')];
    expect(ro.kind).toBe('rodata');
    const deadbeef = Buffer.alloc(4);
    deadbeef.writeUInt32LE(0xdeadbeef);
    expect(ro.initData!.indexOf(deadbeef)).toBeGreaterThanOrEqual(0);
    expect(ro.initData!.includes(Buffer.from('bpfseal\0', 'latin1'))).toBe(true);
    expect(ro.freeze).toBe(true);
    expect(ro.flags & BPF_F_RDONLY_PROG).toBe(BPF_F_RDONLY_PROG);

    const str = p.maps[mapIdx(p, '.rodata.str1.1')];
    expect(str.initData!.toString('latin1')).toBe('bpfseal str1\n\0');
    expect(str.freeze).toBe(true);
    expect(str.flags & BPF_F_RDONLY_PROG).toBe(BPF_F_RDONLY_PROG);

    const foo = p.maps[mapIdx(p, '.data.foo')];
    expect(foo.initData!.readUInt32LE(0)).toBe(0xcafef00d);
    expect(foo.initData!.readUInt16LE(4)).toBe(0xbeef);

    const bss = p.maps[mapIdx(p, '.bss')];
    expect(bss.kind).toBe('bss');
    expect(bss.initData).toBeNull();
    expect(bss.valueSize).toBe(12);
    expect(bss.freeze).toBe(false);

    // libbpf's internal map names: object prefix + section name, at most 15 characters.
    expect(data.kernelName).toBe('globals.data');
    expect(ro.kernelName).toBe('globals.rodata');
    for (const m of p.maps) expect(m.kernelName.length).toBeLessThanOrEqual(15);

    // Each section's bytes, as the ELF has them.
    const elf = build('globals.o').spec.elf;
    for (const n of ['.data', '.rodata', '.data.foo', '.rodata.str1.1']) {
      const s = elf.sections.find((x) => x.name === n)!;
      expect(p.maps[mapIdx(p, n)].initData!.equals(s.data), n).toBe(true);
    }
  });

  it('legacy_maps.o: two legacy maps and kern_version 0x060100', () => {
    const p = plan('legacy_maps.o');
    expect(p.kernVersion).toBe(0x060100);
    expect(p.license).toBe('GPL');
    const legacy = p.maps.filter((m) => m.kind === 'legacy');
    expect(legacy).toHaveLength(2);
    const pick = (m: Plan['maps'][number]) => ({ type: m.type, keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, flags: m.flags });
    expect(pick(p.maps[mapIdx(p, 'legacy_array')])).toEqual({ type: T(MAP_TYPE, 'array'), keySize: 4, valueSize: 8, maxEntries: 8, flags: 0 });
    expect(pick(p.maps[mapIdx(p, 'legacy_hash')])).toEqual({ type: T(MAP_TYPE, 'hash'), keySize: 4, valueSize: 4, maxEntries: 64, flags: BPF_F_NO_PREALLOC });
    for (const m of legacy) expect([m.btfKeyTypeId, m.btfValueTypeId]).toEqual([0, 0]);
  });

  it('legacy_maps_nobtf.o: plans without BTF, func_info or line_info', () => {
    const p = plan('legacy_maps_nobtf.o');
    expect(p.btf.length).toBe(0);
    expect(p.kernVersion).toBe(0x060100);
    expect(p.maps.filter((m) => m.kind === 'legacy')).toHaveLength(2);
    for (const pr of p.programs) {
      expect(pr.funcInfo).toEqual({ recSize: 0, data: Buffer.alloc(0) });
      expect(pr.lineInfo).toEqual({ recSize: 0, data: Buffer.alloc(0) });
      expect(pr.coreRelos.data.length).toBe(0);
    }
    // Same instructions as the -g build: debug info does not change code.
    expect(prog(p, 'legacy_prog').insns.equals(prog(plan('legacy_maps.o'), 'legacy_prog').insns)).toBe(true);
  });

  it('map_in_map.o: inner templates, initial slots, no BTF ids on prog_array / map-in-map', () => {
    const p = plan('map_in_map.o');
    const arr = mapIdx(p, 'outer_arr'), hash = mapIdx(p, 'outer_hash'), jmp = mapIdx(p, 'jmp_table');
    const a = mapIdx(p, 'inner_a'), b = mapIdx(p, 'inner_b');
    expect(p.maps[arr].type).toBe(T(MAP_TYPE, 'array_of_maps'));
    expect(p.maps[hash].type).toBe(T(MAP_TYPE, 'hash_of_maps'));
    expect(p.maps[jmp].type).toBe(T(MAP_TYPE, 'prog_array'));
    for (const i of [arr, hash]) {
      const inner = p.maps[i].inner;
      expect(inner).toBeGreaterThanOrEqual(0);
      expect(inner).toBeLessThan(i);
      expect(p.maps[inner].kind).toBe('inner');
      expect(p.maps[inner].type).toBe(T(MAP_TYPE, 'array'));
    }
    expect(p.maps[jmp].inner).toBe(-1);
    for (const i of [arr, hash, jmp]) {
      expect([p.maps[i].btfKeyTypeId, p.maps[i].btfValueTypeId], p.maps[i].name).toEqual([0, 0]);
      expect(p.maps[i].valueSize).toBe(4);
    }
    const tail = p.programs.findIndex((x) => x.name === 'tail_target');
    expect(p.slots).toEqual([
      { map: arr, index: 0, kind: 'map', target: a },
      { map: arr, index: 2, kind: 'map', target: b },
      { map: hash, index: 1, kind: 'map', target: b },
      { map: jmp, index: 0, kind: 'prog', target: tail },
    ].sort((x, y) => x.map - y.map || x.index - y.index));
  });

  it('subprogs.o: subprograms appended, calls and callbacks inside, func_info per function', () => {
    const { plan: p, spec, linked } = build('subprogs.o');
    expect(p.programs.map((x) => x.name).sort()).toEqual(['socket_calls', 'xdp_calls']);
    const btf = parseBtf(p.btf);
    for (const [k, pr] of p.programs.entries()) {
      const entry = spec.programs[k];
      expect(entry.name).toBe(pr.name);
      const n = pr.insns.length / 8;
      expect(n, pr.name).toBeGreaterThan(entry.count);
      // The entry function comes first, unchanged apart from relocated instructions.
      const insns = decodeInsns(pr.insns);
      const calls = insns.filter((i) => i.code === OP.CALL && i.src === 1);
      const cbs = insns.filter((i) => i.code === OP.LD_IMM64 && i.src === 4);
      expect(calls.length, pr.name).toBeGreaterThan(0);
      expect(cbs.length, pr.name).toBeGreaterThan(0);
      // func_info: one record per placed function, sorted, starting at 0, each at a function start.
      const layout = linked[k].layout;
      expect(layout.length).toBeGreaterThan(1);
      expect(pr.funcInfo.recSize).toBe(8);
      const offs = u32s(pr.funcInfo.data, 8, 0);
      expect(offs).toHaveLength(layout.length);
      expect(offs[0]).toBe(0);
      expect([...offs].sort((x, y) => x - y)).toEqual(offs);
      expect(new Set(offs).size).toBe(offs.length);
      expect(offs.at(-1)!).toBeLessThan(n);
      const starts = new Set(offs);
      for (const i of [...calls, ...cbs]) expect(starts.has(i.pc + i.imm + 1), `${pr.name}: target of insn ${i.pc} is a function start`).toBe(true);
      // func_info names the functions (BTF FUNC types), the entry first.
      const fnames = u32s(pr.funcInfo.data, 8, 4).map((id) => btf.types[id]);
      for (const t of fnames) expect(t.kind).toBe(KIND.FUNC);
      expect(fnames[0].name).toBe(pr.name);
      expect(fnames.map((t) => t.name)).toEqual(layout.map((l) => l.func.name));
      // the callbacks and subprograms the source uses
      const used = new Set(fnames.map((t) => t.name));
      expect(used.has('mix')).toBe(true);
    }
    expect(fnamesOf(p, 'xdp_calls', btf)).toEqual(expect.arrayContaining(['loop_cb', 'twice_mix', 'global_clamp', 'mix']));
    expect(fnamesOf(p, 'socket_calls', btf)).toEqual(expect.arrayContaining(['for_each_cb']));
  });

  it('externs.o: kfunc and ksym fix-ups, .kconfig map read through src_reg 6', () => {
    const p = plan('externs.o');
    const pr = prog(p, 'externs_prog');
    const byPc = new Map(decodeInsns(pr.insns).map((i) => [i.pc, i]));
    const kfuncs = pr.fixups.filter((f) => f.kind === 'kfunc');
    expect(kfuncs.map((f) => f.name).sort()).toEqual(['bpf_rcu_read_lock', 'bpf_rcu_read_unlock', 'bpf_task_from_pid', 'bpf_task_release']);
    for (const f of kfuncs) {
      const i = byPc.get(f.insn)!;
      expect(i, f.name).toBeDefined();
      expect({ code: i.code, src: i.src, imm: i.imm, off: i.off }, f.name).toEqual({ code: OP.CALL, src: 2, imm: 0, off: 0 });
      expect(f.weak).toBe(false);
    }
    const addr = pr.fixups.filter((f) => f.kind === 'ksym_addr');
    expect(addr.map((f) => [f.name, f.weak]).sort()).toEqual([['_stext', false], ['bpf_prog_active', true]]);
    for (const f of addr) {
      const i = byPc.get(f.insn)!;
      expect({ code: i.code, src: i.src, imm: i.imm, imm2: i.imm2 }, f.name).toEqual({ code: OP.LD_IMM64, src: 0, imm: 0, imm2: 0 });
    }
    const btfKsym = pr.fixups.filter((f) => f.kind === 'ksym_btf');
    expect(btfKsym.map((f) => [f.name, f.weak])).toEqual([['bpfseal_missing_var', true]]);
    expect(byPc.get(btfKsym[0].insn)).toMatchObject({ code: OP.LD_IMM64, src: 3 });
    // every kfunc call in the code is declared
    const kcalls = [...byPc.values()].filter((i) => i.code === OP.CALL && i.src === 2).map((i) => i.pc);
    expect(kcalls.sort((a, b) => a - b)).toEqual(kfuncs.map((f) => f.insn).sort((a, b) => a - b));

    const ki = mapIdx(p, '.kconfig');
    const kc = p.maps[ki];
    expect(kc.kind).toBe('kconfig');
    expect(kc.freeze).toBe(true);
    expect(kc.flags & BPF_F_RDONLY_PROG).toBe(BPF_F_RDONLY_PROG);
    expect(kc.initData).toBeNull();
    const vars = new Map(kc.kconfig.map((v) => [v.name, v]));
    expect([...vars.keys()].sort()).toEqual(['CONFIG_BPFSEAL_DOES_NOT_EXIST', 'CONFIG_BPF_SYSCALL', 'LINUX_KERNEL_VERSION']);
    expect(vars.get('LINUX_KERNEL_VERSION')).toMatchObject({ size: 4, weak: false });
    expect(vars.get('CONFIG_BPF_SYSCALL')).toMatchObject({ type: 'bool', size: 1, weak: true });
    expect(vars.get('CONFIG_BPFSEAL_DOES_NOT_EXIST')).toMatchObject({ size: 4, weak: true });
    for (const v of kc.kconfig) {
      expect(v.offset % Math.min(v.size, 8)).toBe(0);
      expect(v.offset + v.size).toBeLessThanOrEqual(kc.valueSize);
    }
    // no two variables overlap
    const spans = kc.kconfig.map((v) => [v.offset, v.offset + v.size]).sort((a, b) => a[0] - b[0]);
    for (let k = 1; k < spans.length; k++) expect(spans[k][0]).toBeGreaterThanOrEqual(spans[k - 1][1]);
    // the program reads each variable through src_reg 6 at its offset
    const fdk = pr.fdArray.indexOf(ki);
    expect(fdk).toBeGreaterThanOrEqual(0);
    const reads = [...byPc.values()].filter((i) => i.code === OP.LD_IMM64 && i.src === 6 && i.imm === fdk).map((i) => i.imm2);
    expect(reads.sort()).toEqual(kc.kconfig.map((v) => v.offset).sort());
  });

  it('core.o: 9 CO-RE relocation records at instructions of the program', () => {
    const p = plan('core.o');
    expect(p.programs).toHaveLength(1);
    const pr = p.programs[0];
    expect(pr.coreRelos.recSize).toBeGreaterThanOrEqual(16);
    const n = pr.insns.length / 8;
    const recs = pr.coreRelos.data.length / pr.coreRelos.recSize;
    expect(recs).toBe(9);
    // bpf_core_relo.insn_off is a byte offset of an instruction (the kernel checks insn_off % 8, / 8 < len)
    for (const off of u32s(pr.coreRelos.data, pr.coreRelos.recSize, 0)) {
      expect(off % 8).toBe(0);
      expect(off / 8).toBeLessThan(n);
    }
    const btf = parseBtf(p.btf);
    for (const id of u32s(pr.coreRelos.data, pr.coreRelos.recSize, 4)) expect(id).toBeLessThan(btf.types.length);
    expect(pr.progType).toBe(T(PROG_TYPE, 'kprobe'));
  });

  it('maps_btf.o: map attributes', () => {
    const p = plan('maps_btf.o');
    const m = (n: string) => p.maps[mapIdx(p, n)];
    expect(m('perf_map').type).toBe(T(MAP_TYPE, 'perf_event_array'));
    expect(m('perf_map').maxEntries).toBe(0);
    expect(m('perf_map').maxEntriesFixup).toBe('possible_cpus');
    expect(m('pinned_map').pinning).toBe(1);
    expect(m('bloom_map').type).toBe(T(MAP_TYPE, 'bloom_filter'));
    expect(m('bloom_map').mapExtra).toBe(3n);
    expect(m('lru_map').type).toBe(T(MAP_TYPE, 'lru_hash'));
    expect(m('lru_map').flags & BPF_F_NO_COMMON_LRU).toBe(BPF_F_NO_COMMON_LRU);
    expect(m('numa_map').flags & BPF_F_NUMA_NODE).toBe(BPF_F_NUMA_NODE);
    expect(m('ringbuf').type).toBe(T(MAP_TYPE, 'ringbuf'));
    expect(m('sized_map')).toMatchObject({ keySize: 8, valueSize: 16, btfKeyTypeId: 0, btfValueTypeId: 0 });
    expect(m('hash_map')).toMatchObject({ type: T(MAP_TYPE, 'hash'), keySize: 16, valueSize: 16 });
    for (const x of p.maps) if (x.name !== 'perf_map') expect(x.maxEntriesFixup, x.name).toBe('none');
    // BTF key/value ids point at types of the declared sizes
    const btf = parseBtf(p.btf);
    expect(m('array_map').btfKeyTypeId).toBeGreaterThan(0);
    expect(btf.types[m('array_map').btfKeyTypeId]).toBeDefined();
    expect(m('perf_map').btfKeyTypeId).toBe(0);
    expect(p.programs.map((x) => x.progType)).toEqual([T(PROG_TYPE, 'xdp'), T(PROG_TYPE, 'sched_cls'), T(PROG_TYPE, 'socket_filter')]);
  });

  it('sections.o: program types, attach types, flags and BTF attach targets', () => {
    const p = plan('sections.o');
    expect(p.programs).toHaveLength(44);
    const bySec = new Map(p.programs.map((x) => [x.section, x]));
    const s = (sec: string) => {
      const x = bySec.get(sec);
      if (!x) throw new Error(`no program in section ${sec}`);
      return x;
    };
    const expectProg = (sec: string, progType: string, attach: string | 0, flags: number, target: { name: string; btfKind: 'func' | 'typedef' } | null) => {
      const x = s(sec);
      expect({ progType: x.progType, expectedAttachType: x.expectedAttachType, progFlags: x.progFlags, attach: x.attach }, sec).toEqual({
        progType: T(PROG_TYPE, progType), expectedAttachType: attach === 0 ? 0 : T(ATTACH_TYPE, attach), progFlags: flags, attach: target,
      });
    };
    expectProg('xdp.frags', 'xdp', 'xdp', BPF_F_XDP_HAS_FRAGS, null);
    expectProg('xdp', 'xdp', 'xdp', 0, null);
    expectProg('lsm.s/bprm_committed_creds', 'lsm', 'lsm_mac', BPF_F_SLEEPABLE, { name: 'bpf_lsm_bprm_committed_creds', btfKind: 'func' });
    expectProg('lsm/file_open', 'lsm', 'lsm_mac', 0, { name: 'bpf_lsm_file_open', btfKind: 'func' });
    expectProg('fentry.s/__x64_sys_nanosleep', 'tracing', 'trace_fentry', BPF_F_SLEEPABLE, { name: '__x64_sys_nanosleep', btfKind: 'func' });
    expectProg('fentry/do_unlinkat', 'tracing', 'trace_fentry', 0, { name: 'do_unlinkat', btfKind: 'func' });
    expectProg('fexit/do_unlinkat', 'tracing', 'trace_fexit', 0, { name: 'do_unlinkat', btfKind: 'func' });
    expectProg('fmod_ret/bpf_modify_return_test', 'tracing', 'modify_return', 0, { name: 'bpf_modify_return_test', btfKind: 'func' });
    expectProg('tp_btf/sched_switch', 'tracing', 'trace_raw_tp', 0, { name: 'btf_trace_sched_switch', btfKind: 'typedef' });
    expectProg('iter/task', 'tracing', 'trace_iter', 0, { name: 'bpf_iter_task', btfKind: 'func' });
    expectProg('tc/ingress', 'sched_cls', 'tcx_ingress', 0, null);
    expectProg('tcx/egress', 'sched_cls', 'tcx_egress', 0, null);
    expectProg('tc', 'sched_cls', 0, 0, null);
    expectProg('classifier', 'sched_cls', 0, 0, null);
    expectProg('kprobe/do_unlinkat', 'kprobe', 0, 0, null);
    expectProg('kretprobe/do_unlinkat', 'kprobe', 0, 0, null);
    expectProg('kprobe.multi/do_unlinkat', 'kprobe', 'trace_kprobe_multi', 0, null);
    expectProg('uprobe', 'kprobe', 0, 0, null);
    expectProg('ksyscall/openat', 'kprobe', 0, 0, null);
    expectProg('tracepoint/syscalls/sys_enter_openat', 'tracepoint', 0, 0, null);
    expectProg('raw_tp/sys_enter', 'raw_tracepoint', 0, 0, null);
    expectProg('cgroup_skb/ingress', 'cgroup_skb', 'cgroup_inet_ingress', 0, null);
    expectProg('cgroup_skb/egress', 'cgroup_skb', 'cgroup_inet_egress', 0, null);
    expectProg('cgroup/connect4', 'cgroup_sock_addr', 'cgroup_inet4_connect', 0, null);
    expectProg('cgroup/sendmsg6', 'cgroup_sock_addr', 'cgroup_udp6_sendmsg', 0, null);
    expectProg('cgroup/sock_create', 'cgroup_sock', 'cgroup_inet_sock_create', 0, null);
    expectProg('cgroup/sysctl', 'cgroup_sysctl', 'cgroup_sysctl', 0, null);
    expectProg('cgroup/getsockopt', 'cgroup_sockopt', 'cgroup_getsockopt', 0, null);
    expectProg('cgroup/dev', 'cgroup_device', 'cgroup_device', 0, null);
    expectProg('socket', 'socket_filter', 0, 0, null);
    expectProg('sockops', 'sock_ops', 'cgroup_sock_ops', 0, null);
    expectProg('sk_skb/stream_parser', 'sk_skb', 'sk_skb_stream_parser', 0, null);
    expectProg('sk_msg', 'sk_msg', 'sk_msg_verdict', 0, null);
    expectProg('sk_lookup', 'sk_lookup', 'sk_lookup', 0, null);
    expectProg('flow_dissector', 'flow_dissector', 'flow_dissector', 0, null);
    expectProg('lwt_xmit', 'lwt_xmit', 0, 0, null);
    expectProg('perf_event', 'perf_event', 0, 0, null);
    expectProg('syscall', 'syscall', 0, BPF_F_SLEEPABLE, null);
    // Only the BTF-attached sections carry an attach target.
    const withTarget = p.programs.filter((x) => x.attach).map((x) => x.section.split('/')[0]).sort();
    expect(withTarget).toEqual(['fentry', 'fentry.s', 'fexit', 'fmod_ret', 'iter', 'lsm', 'lsm.s', 'tp_btf']);
  });
});

function fnamesOf(p: Plan, progName: string, btf: ReturnType<typeof parseBtf>): string[] {
  const pr = prog(p, progName);
  return u32s(pr.funcInfo.data, 8, 4).map((id) => btf.types[id].name);
}

describe('(e) fix-ups name the instruction they rewrite', () => {
  // Every fix-up kind, from the fixtures that have them (externs.o: kfunc, ksym; ksym_typed.o: typed ksym).
  const withFixups = ['externs.o', 'ksym_typed.o'].map((f) => plan(f));

  it('the fixtures carry every kind, each on a call (kfunc) or a ld_imm64 with its second half', () => {
    const kinds = new Set(withFixups.flatMap((p) => p.programs.flatMap((x) => x.fixups.map((f) => f.kind))));
    expect([...kinds].sort()).toEqual(['kfunc', 'ksym_addr', 'ksym_btf']);
    for (const p of withFixups) expect(decodePlan(encodePlan(p))).toEqual(p);
  });

  it('a fix-up moved to another instruction, or a ld_imm64 fix-up on the last instruction, is PLAN_INVALID, not a crash at load', () => {
    for (const p of withFixups) {
      for (const [pi, prog] of p.programs.entries()) {
        const n = prog.insns.length / 8;
        for (const [fi, f] of prog.fixups.entries()) {
          // The same kind on an instruction of the other shape (a call for ld_imm64 kinds, and back).
          const other = [...Array(n).keys()].find((i) => prog.insns[i * 8] === (f.kind === 'kfunc' ? 0x18 : 0x85));
          const bad: number[] = [n - 1, ...(other === undefined ? [] : [other])];
          for (const insn of bad) {
            if (insn === f.insn) continue;
            const copy = decodePlan(encodePlan(p)); // a deep copy, Buffers included
            copy.programs[pi]!.fixups[fi] = { ...f, insn };
            if (f.kind !== 'kfunc' && insn === n - 1) copy.programs[pi]!.insns[insn * 8] = 0x18; // even a ld_imm64 there has no second half
            const r = decodeOutcome(encodePlan(copy));
            expect(r.error, `${p.name} ${prog.name} fix-up ${fi} (${f.kind}) at ${insn}`).toBeInstanceOf(BpfsealError);
            expect((r.error as BpfsealError).code).toBe('PLAN_INVALID');
          }
        }
      }
    }
  });
});
