/**
 * The model kernel (no privileges): every fixture replays; crafted plan mutations are refused with a
 * message that names the problem; declared fix-ups resolve against host facts (unit tests with a fake
 * HostFacts and with systemHost() over temporary files).
 */
import { loadPlan, planCopy } from './helpers/plans.js';
import { afterAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describePlan } from '../src/plan/describe.js';
import type { Plan, PlanMap, PlanProgram } from '../src/plan/types.js';
import type { KconfigVar } from '../src/bpf/spec.js';
import { replay, type LoadedCollection } from '../src/runtime/replay.js';
import { modelKernel, ModelRejection } from '../src/runtime/model.js';
import { FixupError, kconfigValue, resolveMaxEntries } from '../src/runtime/fixups.js';
import { kernelVersionCode, parseCpuList, systemHost, type HostFacts } from '../src/runtime/host.js';
import { openFds } from '../src/kernel/fd.js';
import { BpfsealError, InputError } from '../src/errors.js';
import { allFixtures, cleanupTmpDirs, makeTmpDir } from './helpers/paths.js';
import { thrown } from './helpers/kernel.js';

afterAll(cleanupTmpDirs);

const FIXTURES = allFixtures().filter((f) => f !== 'minimal_be.o');

const digestOf = (name: string) => loadPlan(name).digest;
const progOf = (plan: Plan, name: string): PlanProgram => {
  const p = plan.programs.find((x) => x.name === name);
  if (!p) throw new Error(`no program ${name} in ${plan.name}`);
  return p;
};
const mapOf = (plan: Plan, name: string): PlanMap => {
  const m = plan.maps.find((x) => x.name === name);
  if (!m) throw new Error(`no map ${name} in ${plan.name}`);
  return m;
};
/** Instruction indices of the ld_imm64 instructions with this src_reg. */
const ldImm64With = (p: PlanProgram, src: number): number[] => {
  const out: number[] = [];
  for (let i = 0; i < p.insns.length / 8; i++) {
    if (p.insns[i * 8] !== 0x18) continue;
    if (p.insns[i * 8 + 1] >> 4 === src) out.push(i);
    i++;
  }
  return out;
};

/** Host facts with made-up but plausible values; anything can be overridden. */
function fakeHost(over: Partial<HostFacts> = {}): HostFacts {
  const ids = new Map<string, number>();
  return {
    btfId: (name, kind) => {
      const k = `${kind}:${name}`;
      if (!ids.has(k)) ids.set(k, 1000 + ids.size);
      return ids.get(k);
    },
    ksymAddress: (name) => (name === 'bpf_prog_active' ? undefined : 0xffffffff81000000n),
    kconfig: (name) => ({ CONFIG_BPF_SYSCALL: 'y' } as Record<string, string>)[name],
    kernelVersion: () => kernelVersionCode('6.18.44'),
    possibleCpus: () => 4,
    ...over,
  };
}

function modelReplay(plan: Plan, digest: string, opts: Parameters<typeof replay>[3] = {}): LoadedCollection {
  return replay(plan, digest, modelKernel(), { host: fakeHost(), ...opts });
}

/** The rejection replay throws; fails if it loads. */
function rejection(plan: Plan, digest: string, opts: Parameters<typeof replay>[3] = {}): BpfsealError {
  const e = thrown(() => modelReplay(plan, digest, opts));
  expect(e).toBeInstanceOf(BpfsealError);
  return e as BpfsealError;
}

// ---------------------------------------------------------------------------------------------------
describe('every fixture replays against the model kernel', () => {
  it.each(FIXTURES)('%s', (f) => {
    const { plan, digest } = loadPlan(f);
    const predicted = new Map(describePlan(plan, digest).programs.map((p) => [p.name, p.tag]));
    const c = modelReplay(plan, digest);
    const r = c.record;
    expect(r.backend).toBe('model');
    expect(r.digest).toBe(`sha256:${digest}`);
    expect(r.programs.map((p) => p.name)).toEqual(plan.programs.map((p) => p.name));
    expect(r.maps.map((m) => m.name)).toEqual(plan.maps.map((m) => m.name));
    const ids = [...r.programs.map((p) => p.id), ...r.maps.map((m) => m.id)];
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of r.programs) {
      expect(p.id).toBeGreaterThan(0);
      expect(p.tag).toMatch(/^[0-9a-f]{16}$/);
      const want = predicted.get(p.name);
      if (want !== null) expect(p.tag).toBe(want);
    }
    c.close();
    for (const h of [...c.maps.values(), ...c.programs.values()]) expect(h.closed).toBe(true);
    expect(openFds()).toEqual([]); // the model opens no descriptors
  });

  it('externs.o: the record lists every fix-up applied from the host facts', () => {
    const { plan, digest } = loadPlan('externs.o');
    const host = fakeHost();
    const c = modelReplay(plan, digest, { host });
    const fx = c.record.fixups.map((f) => `${f.kind} ${f.name}=${f.value}`);
    c.close();
    expect(fx).toEqual(expect.arrayContaining([
      `kfunc bpf_task_from_pid=${host.btfId('bpf_task_from_pid', 'func')}`, 'ksym_addr _stext=0xffffffff81000000', 'ksym_addr bpf_prog_active=unresolved (weak): 0',
      `ksym_btf bpfseal_missing_var=${host.btfId('bpfseal_missing_var', 'var')}`, `kconfig LINUX_KERNEL_VERSION=${kernelVersionCode('6.18.44')}`, 'kconfig CONFIG_BPF_SYSCALL=y',
      'kconfig CONFIG_BPFSEAL_DOES_NOT_EXIST=unset (weak): 0',
    ]));
    expect(fx).toHaveLength(10);
  });

});

// ---------------------------------------------------------------------------------------------------
describe('crafted plan mutations are refused, naming the problem', () => {
  it('fd_array index out of range (src_reg 5 ld_imm64 imm)', () => {
    const plan = planCopy('testrun.o');
    const p = progOf(plan, 'xdp_count');
    const at = ldImm64With(p, 5);
    expect(at.length).toBeGreaterThan(0);
    p.insns.writeInt32LE(p.fdArray.length, at[0] * 8 + 4);
    const e = rejection(plan, digestOf('testrun.o'));
    expect(e).toBeInstanceOf(ModelRejection);
    expect(e.exitCode).toBe(3);
    expect(e.message).toBe(`load program 'xdp_count': model kernel: program 'xdp_count': insn ${at[0]} names fd_array[${p.fdArray.length}]; the array has ${p.fdArray.length}`);
  });

  it('value offset outside the map value (src_reg 6 second imm)', () => {
    const plan = planCopy('globals.o');
    const p = progOf(plan, 'xdp_globals');
    const at = ldImm64With(p, 6);
    expect(at.length).toBeGreaterThan(0);
    const o = at[0] * 8;
    const m = plan.maps[p.fdArray[p.insns.readInt32LE(o + 4)]];
    // The last byte of the value is still inside ...
    p.insns.writeInt32LE(m.valueSize - 1, o + 12);
    modelReplay(plan, digestOf('globals.o')).close();
    // ... one past it is not.
    p.insns.writeInt32LE(m.valueSize, o + 12);
    const e = rejection(plan, digestOf('globals.o'));
    expect(e).toBeInstanceOf(ModelRejection);
    expect(e.message).toContain(`load program 'xdp_globals'`);
    expect(e.message).toContain(`insn ${at[0]} reads offset ${m.valueSize} of map '${m.kernelName}' (value ${m.valueSize} bytes)`);
  });

  it('a raw map fd (src_reg 1) is refused: plans carry fd_array indices only', () => {
    const plan = planCopy('testrun.o');
    const p = progOf(plan, 'xdp_count');
    const at = ldImm64With(p, 5)[0];
    p.insns[at * 8 + 1] = (p.insns[at * 8 + 1] & 0x0f) | (1 << 4);
    const e = rejection(plan, digestOf('testrun.o'));
    expect(e).toBeInstanceOf(ModelRejection);
    expect(e.message).toContain(`insn ${at} uses a raw fd (src_reg 1)`);
  });

  it('write to a frozen map: a frozen prog_array cannot get its slot', () => {
    const plan = planCopy('map_in_map.o');
    mapOf(plan, 'jmp_table').freeze = true;
    const e = rejection(plan, digestOf('map_in_map.o'));
    expect(e).toBeInstanceOf(ModelRejection);
    expect(e.message).toBe("set slot 0 of map 'jmp_table': model kernel: map 'jmp_table' is frozen and cannot be written");
  });

  it('write to a frozen map: backend called directly', () => {
    const k = modelKernel();
    const m = k.mapCreate({ name: 'ro', type: 2, keySize: 4, valueSize: 8, maxEntries: 1, flags: 0, numaNode: 0, mapExtra: 0n, btfKeyTypeId: 0, btfValueTypeId: 0 });
    const key = Buffer.alloc(4);
    k.mapUpdate(m, key, Buffer.alloc(8));
    k.mapFreeze(m);
    const e = thrown(() => k.mapUpdate(m, key, Buffer.alloc(8)));
    expect(e).toBeInstanceOf(ModelRejection);
    expect(e.message).toBe("model kernel: map 'ro' is frozen and cannot be written");
    m.close();
    expect(thrown(() => k.mapFreeze(m)).message).toContain('not a live map');
  });

  it('a kfunc call whose declared fix-up was dropped is refused', () => {
    const plan = planCopy('externs.o');
    const p = progOf(plan, 'externs_prog');
    const kf = p.fixups.filter((f) => f.kind === 'kfunc');
    expect(kf.length).toBeGreaterThan(0);
    p.fixups = p.fixups.filter((f) => f.kind !== 'kfunc');
    const e = rejection(plan, digestOf('externs.o'));
    expect(e).toBeInstanceOf(ModelRejection);
    expect(e.message).toContain(`insn ${kf[0].insn} kfunc call not resolved`);
  });

  it('an unresolved non-weak kfunc: FixupError naming the kfunc', () => {
    const { plan, digest } = loadPlan('externs.o');
    const host = fakeHost({ btfId: (name, kind) => (kind === 'func' ? undefined : 7) });
    const e = rejection(plan, digest, { host });
    expect(e).toBeInstanceOf(FixupError);
    expect(e.code).toBe('FIXUP_UNRESOLVED');
    expect(e.exitCode).toBe(2);
    expect(e.message).toBe("load program 'externs_prog': program 'externs_prog': kfunc 'bpf_task_from_pid' not found on this host");
  });

  it('an unresolved weak kfunc is poisoned, recorded, and the model accepts the program', () => {
    const plan = planCopy('externs.o');
    for (const f of progOf(plan, 'externs_prog').fixups) if (f.name === 'bpf_rcu_read_lock') f.weak = true;
    const host = fakeHost({ btfId: (name) => (name === 'bpf_rcu_read_lock' ? undefined : 9) });
    const c = modelReplay(plan, digestOf('externs.o'), { host });
    expect(c.record.fixups).toContainEqual(expect.objectContaining({ kind: 'kfunc', name: 'bpf_rcu_read_lock', value: 'unresolved (weak): call poisoned' }));
    c.close();
  });

  it('an unresolved strong kernel symbol: FixupError naming it', () => {
    const { plan, digest } = loadPlan('externs.o');
    const e = rejection(plan, digest, { host: fakeHost({ ksymAddress: () => undefined }) });
    expect(e).toBeInstanceOf(FixupError);
    expect(e.message).toContain("kernel symbol '_stext' not found on this host");
  });

  it('max_entries 0 without an override: FixupError naming --max-entries; an override sizes it', () => {
    const plan = planCopy('testrun.o');
    const m = mapOf(plan, 'counters');
    m.maxEntries = 0;
    m.maxEntriesFixup = 'loader';
    const e = rejection(plan, digestOf('testrun.o'));
    expect(e).toBeInstanceOf(FixupError);
    expect(e.message).toBe("create map 'counters': map 'counters' has max_entries 0 in the object (sized by its loader); give it with --max-entries counters=N");
    const c = modelReplay(plan, digestOf('testrun.o'), { maxEntries: new Map([['counters', 4]]) });
    expect(c.record.fixups).toContainEqual({ map: 'counters', kind: 'max_entries', name: 'counters', value: '4' });
    c.close();
  });

  it('an override for a map that has a size is a usage error', () => {
    const e = rejection(loadPlan('testrun.o').plan, digestOf('testrun.o'), { maxEntries: new Map([['counters', 8]]) });
    expect(e).toBeInstanceOf(BpfsealError);
    expect(e.kind).toBe('usage'); // as every USAGE_* code (test/error-codes.test.ts); exit 2
    expect(e.code).toBe('USAGE_MAX_ENTRIES');
    expect(e.message).toContain("map 'counters' has max_entries 4 in the plan");
  });

  it('perf_event_array without max_entries is sized by the possible CPUs', () => {
    const { plan, digest } = loadPlan('maps_btf.o');
    expect(mapOf(plan, 'perf_map').maxEntriesFixup).toBe('possible_cpus');
    const c = modelReplay(plan, digest, { host: fakeHost({ possibleCpus: () => 6 }) });
    expect(c.record.fixups).toContainEqual({ map: 'perf_map', kind: 'max_entries', name: 'possible_cpus', value: '6' });
    c.close();
    expect(resolveMaxEntries(mapOf(plan, 'perf_map'), fakeHost(), new Map([['perf_map', 2]])).maxEntries).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('HostFacts', () => {
  it('parseCpuList', () => {
    expect(parseCpuList('0-1,4,6-7')).toBe(5);
    expect(parseCpuList('0\n')).toBe(1);
    expect(parseCpuList('0-63')).toBe(64);
  });

  it('kernelVersionCode', () => {
    expect(kernelVersionCode('6.18.44-fc')).toBe((6 << 16) | (18 << 8) | 44);
    expect(kernelVersionCode('6.18.44-fc-v657')).toBe(397868);
    expect(kernelVersionCode('5.4.300-x')).toBe((5 << 16) | (4 << 8) | 255); // sublevel capped at 255
    expect(kernelVersionCode('6.1')).toBe((6 << 16) | (1 << 8));
    expect(kernelVersionCode('garbage')).toBe(0);
  });

  const kmap = (vars: KconfigVar[], valueSize: number): PlanMap => ({
    name: '.kconfig', kernelName: 'x.kconfig', kind: 'kconfig', type: 2, keySize: 4, valueSize, maxEntries: 1, flags: 0, mapExtra: 0n,
    numaNode: 0, pinning: 0, btfKeyTypeId: 0, btfValueTypeId: 0, inner: -1, initData: null, freeze: true, maxEntriesFixup: 'none', kconfig: vars,
  });
  const v = (name: string, offset: number, size: number, type: KconfigVar['type'], weak = false): KconfigVar => ({ name, offset, size, type, weak });
  const config = (values: Record<string, string>) => fakeHost({ kconfig: (n) => values[n] });

  it('kconfigValue: bool, tristate, int, uint, string, char, LINUX_KERNEL_VERSION, weak missing', () => {
    const m = kmap([
      v('CONFIG_B', 0, 1, 'bool'), v('CONFIG_BN', 1, 1, 'bool'), v('CONFIG_C', 2, 1, 'char'),
      v('CONFIG_T', 4, 4, 'tristate'), v('CONFIG_TY', 8, 4, 'tristate'),
      v('CONFIG_I', 12, 4, 'int'), v('CONFIG_NEG', 16, 4, 'int'), v('CONFIG_HEX', 20, 8, 'uint'),
      v('CONFIG_S', 28, 8, 'string'), v('CONFIG_LONG_S', 36, 4, 'string'),
      v('LINUX_KERNEL_VERSION', 40, 4, 'uint'), v('CONFIG_GONE', 44, 4, 'int', true),
    ], 48);
    const host = config({
      CONFIG_B: 'y', CONFIG_BN: 'n', CONFIG_C: 'y', CONFIG_T: 'm', CONFIG_TY: 'y', CONFIG_I: '42', CONFIG_NEG: '-5', CONFIG_HEX: '0x1122334455',
      CONFIG_S: '"abc"', CONFIG_LONG_S: '"abcdef"',
    });
    const { value, applied } = kconfigValue(m, host);
    expect(value.length).toBe(48);
    expect(value[0]).toBe(1);
    expect(value[1]).toBe(0);
    expect(value[2]).toBe('y'.charCodeAt(0));
    expect(value.readUInt32LE(4)).toBe(2); // m
    expect(value.readUInt32LE(8)).toBe(1); // y
    expect(value.readInt32LE(12)).toBe(42);
    expect(value.readInt32LE(16)).toBe(-5);
    expect(value.readBigUInt64LE(20)).toBe(0x1122334455n);
    expect(value.subarray(28, 36)).toEqual(Buffer.from('abc\0\0\0\0\0', 'latin1'));
    expect(value.subarray(36, 40)).toEqual(Buffer.from('abc\0', 'latin1')); // truncated, NUL-terminated
    expect(value.readUInt32LE(40)).toBe(kernelVersionCode('6.18.44'));
    expect(value.readUInt32LE(44)).toBe(0);
    expect(applied.find((a) => a.name === 'CONFIG_GONE')?.value).toBe('unset (weak): 0');
    expect(applied).toHaveLength(12);
    expect(applied.every((a) => a.map === '.kconfig' && a.kind === 'kconfig')).toBe(true);
  });

  it('kconfigValue: a missing non-weak value is a FixupError naming it', () => {
    const e = thrown(() => kconfigValue(kmap([v('CONFIG_NEEDED', 0, 4, 'int')], 4), config({})));
    expect(e).toBeInstanceOf(FixupError);
    expect(e.message).toBe("kconfig 'CONFIG_NEEDED' is not set on this host and the extern is not __weak");
  });

  it('kconfigValue: values of the wrong shape are refused', () => {
    const bad = (t: KconfigVar['type'], size: number, raw: string) =>
      thrown(() => kconfigValue(kmap([v('CONFIG_X', 0, size, t)], 8), config({ CONFIG_X: raw }))).message;
    expect(bad('bool', 1, 'm')).toBe("kconfig 'CONFIG_X' = m: not a bool (y/n)");
    expect(bad('tristate', 4, '3')).toContain('not a tristate');
    expect(bad('int', 4, 'abc')).toContain('not an integer');
    expect(bad('int', 1, '200')).toContain('does not fit 1 bytes');
    expect(bad('uint', 4, '-1')).toContain('does not fit 4 bytes');
    expect(bad('string', 8, 'abc')).toContain('not a string');
  });

  it('systemHost reads kallsyms, config and possible CPUs from the given paths', () => {
    const d = makeTmpDir();
    const p = (n: string) => join(d, n);
    writeFileSync(p('kallsyms'), 'ffffffff81000000 T _stext\n0000000000000000 T hidden_sym\nffffffff82000000 D some_var\n');
    writeFileSync(p('config'), '# comment\nCONFIG_BPF_SYSCALL=y\nCONFIG_HZ=250\nCONFIG_STR="x y"\n# CONFIG_OFF is not set\n');
    writeFileSync(p('possible'), '0-1,4,6-7\n');
    const host = systemHost({ vmlinuxBtf: p('no-btf'), kallsyms: p('kallsyms'), configGz: p('no-config.gz'), bootConfig: p('config'), possibleCpus: p('possible') });
    expect(host.ksymAddress('_stext')).toBe(0xffffffff81000000n);
    expect(host.ksymAddress('hidden_sym')).toBeUndefined(); // kptr_restrict zeros: unknown
    expect(host.ksymAddress('nope')).toBeUndefined();
    expect(host.kconfig('CONFIG_BPF_SYSCALL')).toBe('y');
    expect(host.kconfig('CONFIG_HZ')).toBe('250');
    expect(host.kconfig('CONFIG_STR')).toBe('"x y"');
    expect(host.kconfig('CONFIG_OFF')).toBeUndefined();
    expect(host.possibleCpus()).toBe(5);
    const e = thrown(() => host.btfId('bpf_task_from_pid', 'func'));
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).code).toBe('HOST_UNREADABLE');
    expect(e.message).toContain(p('no-btf'));
  });
});
