/**
 * The runtime against the real kernel: every loadable fixture replays (ids, tags = predicted tags),
 * refusals are reported with the step and roll back completely, BPF_PROG_TEST_RUN shows the loaded
 * programs work (global data, map-in-map, tail calls, externs), tags do not depend on fd numbers,
 * failures injected at every step leave nothing behind, and pins land where they should.
 *
 * Needs bpf(2) (root/CAP_BPF). Other processes may load BPF at the same time: every check is about the
 * ids of objects these tests created, never about global counts.
 */
import { loadPlan, planCopy } from './helpers/plans.js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describePlan } from '../src/plan/describe.js';
import type { Plan } from '../src/plan/types.js';
import { replay, pinName, type LoadedCollection } from '../src/runtime/replay.js';
import { runKernelLoader } from '../src/runtime/kernel-loader.js';
import { loaderOf } from '../src/loader/claim.js';
import { realKernel } from '../src/runtime/backend.js';
import { systemHost, type HostFacts } from '../src/runtime/host.js';
import { modelKernel } from '../src/runtime/model.js';
import { ensureBpffs } from '../src/runtime/bpffs.js';
import { commitLoad, type Committed } from '../src/runtime/commit.js';
import { pinsInPlace, unloadDir } from '../src/runtime/unload.js';
import type { KernelBackend } from '../src/runtime/backend.js';
import { listPending, readDecisions, refreshState } from '../src/hostlog/hostlog.js';
import { openLog } from '../src/tlog/store.js';
import { KernelError } from '../src/kernel/errors.js';
import { openFds } from '../src/kernel/fd.js';
import { mapFdById, mapInfo, mapLookup, mapUpdate, objGet, progFdById, progInfo, progTestRun } from '../src/kernel/bpf.js';
import { BpfsealError, type ErrorCode, InputError } from '../src/errors.js';
import { allFixtures, DIST, FIXTURES, makeTmpDir, requireDist, ROOT } from './helpers/paths.js';
import {
  asFd, closeLeftoverFds, datasecLayout, kallsyms, linuxKernelVersion, newPinDir, objectExists, probeBpf, recording,
  removePinDirs, thrown, u32key, waitGone, type CreatedObject,
} from './helpers/kernel.js';

const probe = probeBpf();
const canBpf = probe.ok;
if (!canBpf) console.warn(`runtime-kernel.test.ts: ${probe.why}`);

/** Fixtures bpftool cannot load here: big-endian, trampoline programs (EPERM), typed ksym without KALLSYMS_ALL. */
const NOT_LOADABLE = ['minimal_be.o', 'sections.o', 'ksym_typed.o'];
const LOADABLE = allFixtures().filter((f) => !NOT_LOADABLE.includes(f));

const noOpenFds = () => expect(openFds().map((f) => f.what), 'descriptors left open').toEqual([]);

afterEach(() => {
  // Safety net only (each test checks openFds() itself): close what a failed test left, remove its pins.
  closeLeftoverFds();
  removePinDirs();
});

function packet(len = 64): Buffer {
  const b = Buffer.alloc(len);
  b.fill(0xaa, 0, 6); // dst mac
  b.fill(0xbb, 6, 12); // src mac
  b.writeUInt16BE(0x0800, 12); // IPv4
  for (let i = 14; i < len; i++) b[i] = i & 0xff;
  return b;
}

/** Replay a fixture, run `fn`, always close the collection, then check for leaked descriptors. */
async function withLoaded(name: string, fn: (c: LoadedCollection, plan: Plan) => void | Promise<void>): Promise<CreatedObject[]> {
  const { plan, digest } = loadPlan(name);
  const rec = recording(realKernel());
  const c = replay(plan, digest, rec.backend, { host: systemHost() });
  try {
    await fn(c, plan);
  } finally {
    c.close();
  }
  noOpenFds();
  return rec.created;
}

/** withLoaded through either loader. */
async function withLoadedVia(via: 'user' | 'kernel', name: string, fn: (c: LoadedCollection, plan: Plan) => void | Promise<void>): Promise<void> {
  if (via === 'user') {
    await withLoaded(name, fn);
    return;
  }
  const { plan, digest } = loadPlan(name);
  const c = runKernelLoader(plan, digest, loaderOf(plan), { host: systemHost() });
  try {
    expect(c.record.backend).toBe('kernel');
    await fn(c, plan);
  } finally {
    c.close();
  }
  noOpenFds();
}

const valueSize = (plan: Plan, map: string) => {
  const m = plan.maps.find((x) => x.name === map);
  if (!m) throw new Error(`no map ${map} in ${plan.name}`);
  return m.valueSize;
};
const lookup = (c: LoadedCollection, plan: Plan, map: string, key = 0) => mapLookup(asFd(c.maps.get(map), map), u32key(key), valueSize(plan, map));
const prog = (c: LoadedCollection, name: string) => asFd(c.programs.get(name), name);

// ---------------------------------------------------------------------------------------------------
describe.skipIf(!canBpf)('(a) every fixture bpftool loads replays into the kernel', () => {
  beforeAll(() => {
    expect(LOADABLE).toContain('minimal.o');
    expect(LOADABLE.length).toBe(allFixtures().length - NOT_LOADABLE.length);
  });

  it.each(LOADABLE)('%s: programs get ids, the kernel tags equal the predicted tags', async (f) => {
    const { plan, digest } = loadPlan(f);
    const predicted = new Map(describePlan(plan, digest).programs.map((p) => [p.name, p.tag]));
    const rec = recording(realKernel());
    const c = replay(plan, digest, rec.backend, { host: systemHost() });
    try {
      const r = c.record;
      expect(r.backend).toBe('kernel');
      expect(r.digest).toBe(`sha256:${digest}`);
      expect(r.programs.map((p) => p.name)).toEqual(plan.programs.map((p) => p.name));
      expect(r.programs.map((p) => p.id)).toEqual(rec.created.filter((o) => o.kind === 'prog').map((o) => o.id));
      expect(r.maps.map((m) => m.id)).toEqual(rec.created.filter((o) => o.kind === 'map').map((o) => o.id));
      for (const p of r.programs) {
        expect(p.id).toBeGreaterThan(0);
        expect(p.tag).toMatch(/^[0-9a-f]{16}$/);
        // The kernel, asked by id, agrees on name and tag.
        const fd = progFdById(p.id);
        try {
          const info = progInfo(fd);
          expect(info.id).toBe(p.id);
          expect(info.name).toBe(p.name.slice(0, 15));
          expect(info.tag).toBe(p.tag);
        } finally {
          fd.close();
        }
        const want = predicted.get(p.name);
        if (want !== null) expect(p.tag, `kernel tag of '${p.name}' vs describePlan`).toBe(want);
      }
      for (const m of r.maps) {
        const fd = mapFdById(m.id);
        try {
          expect(mapInfo(fd).name).toBe(plan.maps.find((x) => x.name === m.name)!.kernelName);
        } finally {
          fd.close();
        }
      }
      // Predictions exist exactly for the programs without fix-ups or CO-RE.
      const fixedUp = plan.programs.filter((p) => p.fixups.length || p.coreRelos.data.length).map((p) => p.name);
      expect([...predicted].filter(([, t]) => t === null).map(([n]) => n)).toEqual(fixedUp);
    } finally {
      c.close();
    }
    noOpenFds();
    // Without pins, closing the collection releases every object.
    expect(await waitGone(rec.created)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
describe.skipIf(!canBpf)('(b) kernel refusals name the step and roll back', () => {
  it('sections.o: the first trampoline program gets EPERM; everything created before it is gone', async () => {
    const { plan, digest } = loadPlan('sections.o');
    const first = plan.programs.findIndex((p) => /^(fentry|fexit|fmod_ret|lsm)(\.s)?\//.test(p.section));
    expect(first).toBeGreaterThan(0);
    const name = plan.programs[first].name;
    expect(name).toBe('s_fentry');
    const rec = recording(realKernel());
    const e = thrown(() => replay(plan, digest, rec.backend, { host: systemHost() }));
    expect(e).toBeInstanceOf(KernelError);
    const k = e as KernelError;
    expect(k.exitCode).toBe(3);
    expect(k.code).toBe('KERNEL_EPERM');
    expect(k.errno).toBe(1);
    expect(k.step).toBe(`load program '${name}'`);
    expect(k.message.startsWith(`load program '${name}': BPF_PROG_LOAD failed with EPERM`)).toBe(true);
    // Everything in plan order before it loaded (plus the BTF) ...
    expect(rec.created.filter((o) => o.kind === 'prog').map((o) => o.name)).toEqual(plan.programs.slice(0, first).map((p) => p.name));
    expect(rec.created.filter((o) => o.kind === 'btf')).toHaveLength(1);
    // ... and none of it exists any more.
    expect(await waitGone(rec.created)).toEqual([]);
    noOpenFds();
  });

  it('ksym_typed.o: ENOENT, and the message carries the kernel log', async () => {
    const { plan, digest } = loadPlan('ksym_typed.o');
    const rec = recording(realKernel());
    const e = thrown(() => replay(plan, digest, rec.backend, { host: systemHost() }));
    expect(e).toBeInstanceOf(KernelError);
    const k = e as KernelError;
    expect(k.code).toBe('KERNEL_ENOENT');
    expect(k.exitCode).toBe(3);
    expect(k.step).toBe("load program 'ksym_typed_prog'");
    expect(k.log.trim()).not.toBe('');
    expect(k.log).toContain('runqueues');
    expect(k.message).toContain('--- kernel log ---');
    expect(k.message).toContain(k.log.trimEnd());
    expect(rec.created.map((o) => o.kind)).toEqual(['btf', 'map']);
    expect(await waitGone(rec.created)).toEqual([]);
    noOpenFds();
  });
});

// ---------------------------------------------------------------------------------------------------
// Both loaders: the user-space replay and the kernel loader (a BPF_PROG_TYPE_SYSCALL program) must give
// programs and maps that behave identically.
describe.skipIf(!canBpf).each(['user', 'kernel'] as const)('(c) BPF_PROG_TEST_RUN effects, %s loader', (via) => {
  it('testrun.o xdp_count: XDP_PASS, counters[0] +1 per run, .bss last_xdp_len = 64', async () => {
    await withLoadedVia(via, 'testrun.o', (c, plan) => {
      const bss = datasecLayout(plan, '.bss').get('last_xdp_len')!;
      for (let run = 1; run <= 3; run++) {
        const r = progTestRun(prog(c, 'xdp_count'), { data: packet(64) });
        expect(r.retval).toBe(2);
        expect(lookup(c, plan, 'counters', 0).readBigUInt64LE(0)).toBe(BigInt(run));
      }
      expect(lookup(c, plan, '.bss').readUInt32LE(bss.offset)).toBe(64);
      for (const k of [1, 2, 3]) expect(lookup(c, plan, 'counters', k).readBigUInt64LE(0)).toBe(0n);
    });
  });

  it('testrun.o socket_len: returns 50, counters[1] = 50, .data socket_runs 100 -> 101', async () => {
    await withLoadedVia(via, 'testrun.o', (c, plan) => {
      const runs = datasecLayout(plan, '.data').get('socket_runs')!;
      expect(lookup(c, plan, '.data').readBigUInt64LE(runs.offset)).toBe(100n);
      const r = progTestRun(prog(c, 'socket_len'), { data: packet(64) });
      expect(r.retval).toBe(50);
      expect(lookup(c, plan, 'counters', 1).readBigUInt64LE(0)).toBe(50n);
      expect(lookup(c, plan, '.data').readBigUInt64LE(runs.offset)).toBe(101n);
    });
  });

  it('testrun.o tc_mark: TC_ACT_OK, skb->mark = 0x5ea1, counters[2] += 1', async () => {
    await withLoadedVia(via, 'testrun.o', (c, plan) => {
      const skb = Buffer.alloc(192); // struct __sk_buff; mark at offset 8
      const r = progTestRun(prog(c, 'tc_mark'), { data: packet(64), ctx: skb, ctxOutSize: 192 });
      expect(r.retval).toBe(0);
      expect(r.ctxOut.readUInt32LE(8)).toBe(0x5ea1);
      expect(lookup(c, plan, 'counters', 2).readBigUInt64LE(0)).toBe(1n);
    });
  });

  it('testrun.o syscall_store: ctx {key=2, value} -> counters[2] == value; key 7 -> -1', async () => {
    await withLoadedVia(via, 'testrun.o', (c, plan) => {
      const args = Buffer.alloc(16);
      args.writeUInt32LE(2, 0);
      args.writeBigUInt64LE(0x1122334455667788n, 8);
      const r = progTestRun(prog(c, 'syscall_store'), { ctx: args, repeat: 0 });
      expect(r.retval).toBe(2);
      expect(lookup(c, plan, 'counters', 2).readBigUInt64LE(0)).toBe(0x1122334455667788n);
      args.writeUInt32LE(7, 0);
      expect(progTestRun(prog(c, 'syscall_store'), { ctx: args, repeat: 0 }).retval | 0).toBe(-1);
    });
  });

  it('globals.o xdp_globals: result[0] = 3735977536 and the .data/.bss/.data.foo effects; .rodata is frozen', async () => {
    await withLoadedVia(via, 'globals.o', (c, plan) => {
      const data0 = plan.maps.find((m) => m.name === '.data')!.initData!;
      const foo0 = plan.maps.find((m) => m.name === '.data.foo')!.initData!;
      const r = progTestRun(prog(c, 'xdp_globals'), { data: packet(64) });
      expect(r.retval).toBe(2);
      expect(lookup(c, plan, 'result').readBigUInt64LE(0)).toBe(3735977536n);
      const data = datasecLayout(plan, '.data'), bss = datasecLayout(plan, '.bss'), foo = datasecLayout(plan, '.data.foo');
      const d = lookup(c, plan, '.data');
      expect(d.readUInt32LE(data.get('data_counter')!.offset)).toBe(0x11223345);
      const arr = data.get('data_arr')!;
      expect(d.subarray(arr.offset, arr.offset + 16)).toEqual(data0.subarray(arr.offset, arr.offset + 16));
      const b = lookup(c, plan, '.bss');
      expect(b.readBigUInt64LE(bss.get('bss_hits')!.offset)).toBe(1n);
      expect(b.readUInt32LE(bss.get('bss_last_len')!.offset)).toBe(64);
      const fv = lookup(c, plan, '.data.foo');
      expect(fv.readUInt32LE(foo.get('foo_value')!.offset)).toBe((0xcafef00d ^ 0xdeadbeef) >>> 0);
      expect(fv.readUInt16LE(foo.get('foo_small')!.offset)).toBe(0xbeef);
      expect(foo0.readUInt32LE(foo.get('foo_value')!.offset)).toBe(0xcafef00d);
      // .rodata was frozen by the replay: user space cannot write it.
      const ro = plan.maps.find((m) => m.name === '.rodata')!;
      const e = thrown(() => mapUpdate(asFd(c.maps.get('.rodata')), u32key(0), Buffer.alloc(ro.valueSize)));
      expect((e as KernelError).errno).toBe(1);
    });
  });

  it('map_in_map.o entry: tail call returns 1; inner_b[0] = 50, read through the outer slot id', async () => {
    await withLoadedVia(via, 'map_in_map.o', (c, plan) => {
      const r = progTestRun(prog(c, 'entry'), { data: packet(64) });
      expect(r.retval).toBe(1);
      const ids = new Map(c.record.maps.map((m) => [m.name, m.id]));
      // A user-space lookup of an array_of_maps slot yields the inner map's id.
      const innerId = lookup(c, plan, 'outer_arr', 2).readUInt32LE(0);
      expect(innerId).toBe(ids.get('inner_b'));
      expect(lookup(c, plan, 'outer_arr', 0).readUInt32LE(0)).toBe(ids.get('inner_a'));
      expect(lookup(c, plan, 'outer_hash', 1).readUInt32LE(0)).toBe(ids.get('inner_b'));
      expect(lookup(c, plan, 'jmp_table', 0).readUInt32LE(0)).toBe(c.record.programs.find((p) => p.name === 'tail_target')!.id);
      const inner = mapFdById(innerId);
      try {
        expect(mapLookup(inner, u32key(0), 4).readUInt32LE(0)).toBe(50);
      } finally {
        inner.close();
      }
      expect(lookup(c, plan, 'inner_a').readUInt32LE(0)).toBe(0);
    });
  });

  it('externs.o externs_prog: kconfig, ksym and kfunc values reach the program', async () => {
    await withLoadedVia(via, 'externs.o', (c, plan) => {
      const r = progTestRun(prog(c, 'externs_prog'), { repeat: 0 });
      expect(r.retval).toBe(0);
      const o = lookup(c, plan, 'out');
      expect(o.length).toBe(56);
      const syms = kallsyms();
      const field = (i: number) => o.readBigUInt64LE(i * 8);
      expect(field(0)).toBe(BigInt(linuxKernelVersion())); // kver
      expect(field(1)).toBe(1n); // syscall_on: CONFIG_BPF_SYSCALL=y (we are using bpf(2))
      expect(field(2)).toBe(0n); // missing_kconfig
      expect(field(3)).toBe(syms.get('bpf_prog_active') ?? 0n); // active_addr: weak, absent without KALLSYMS_ALL
      expect(syms.get('_stext')).toBeDefined();
      expect(field(4)).toBe(syms.get('_stext')); // stext_addr
      expect(field(5)).toBe(0n); // missing_ksym
      expect(field(6)).toBe(BigInt(process.pid)); // self_pid
    });
  });
});

// ---------------------------------------------------------------------------------------------------
const run = promisify(execFile);
const WORKER = join(ROOT, 'test', 'helpers', 'kernel-tags.mjs');
const STABLE = ['subprogs.o', 'globals.o', 'map_in_map.o'];

interface WorkerOut {
  k: number;
  pid: number;
  fixtures: Record<string, { tags: Record<string, string>; insnSha256: Record<string, string>; fds: Record<string, number[]> }>;
  leaked: string[];
}

describe.skipIf(!canBpf)('(d) FD-index stability across processes', () => {
  it('the same tags and instruction bytes with 0, 7 and 50 extra descriptors open', async () => {
    requireDist();
    const outs: WorkerOut[] = await Promise.all([0, 7, 50].map(async (k) => {
      const { stdout } = await run(process.execPath, [WORKER, DIST, FIXTURES, String(k), ...STABLE], { cwd: ROOT, timeout: 60_000 });
      return JSON.parse(stdout) as WorkerOut;
    }));
    expect(new Set(outs.map((o) => o.pid)).size).toBe(3);
    for (const o of outs) expect(o.leaked).toEqual([]);
    for (const f of STABLE) {
      const { plan, digest } = loadPlan(f);
      const predicted = describePlan(plan, digest).programs;
      const [a, b, c] = outs.map((o) => o.fixtures[f]);
      expect(b.tags).toEqual(a.tags);
      expect(c.tags).toEqual(a.tags);
      expect(b.insnSha256).toEqual(a.insnSha256);
      expect(c.insnSha256).toEqual(a.insnSha256);
      for (const p of plan.programs) {
        // The bytes passed are exactly the plan's bytes (these programs have no fix-ups) ...
        expect(a.insnSha256[p.name]).toBe(createHash('sha256').update(p.insns).digest('hex'));
        const want = predicted.find((d) => d.name === p.name)!.tag;
        expect(want, `predicted tag of ${f}:${p.name}`).not.toBeNull();
        expect(a.tags[p.name]).toBe(want);
        // ... although the map descriptors really differed between the processes.
        if (p.fdArray.length) expect(c.fds[p.name][0]).toBeGreaterThanOrEqual(a.fds[p.name][0] + 50);
      }
    }
    noOpenFds();
  });
});

// ---------------------------------------------------------------------------------------------------
/** Step names of a replay, from the model kernel. */
const unusedHost: HostFacts = {
  btfId: () => { throw new Error('host not expected'); },
  ksymAddress: () => { throw new Error('host not expected'); },
  kconfig: () => { throw new Error('host not expected'); },
  kernelVersion: () => { throw new Error('host not expected'); },
  possibleCpus: () => { throw new Error('host not expected'); },
};
function stepTemplates(f: string): string[] {
  const { plan, digest } = loadPlan(f);
  const steps: string[] = [];
  replay(plan, digest, modelKernel(), { host: unusedHost, onStep: (s) => steps.push(s) }).close();
  return steps;
}
const FAULT_FIXTURES = ['map_in_map.o', 'globals.o'];
const TEMPLATES = new Map(FAULT_FIXTURES.map((f) => [f, stepTemplates(f)]));
const COMMIT_STEPS = ['record', 'pin', 'rename', 'done'];

/** A host log and state file of this test's own. */
function hostFiles(): { hostLog: string; statePath: string } {
  const d = makeTmpDir('bpfseal-hostlog-');
  return { hostLog: join(d, 'host-log'), statePath: join(d, 'state.json') };
}

interface CommitRun {
  collection: LoadedCollection;
  committed: Committed;
  plan: Plan;
}

/** Replay `f` and commit it into `dir`: what `load` does after verification. */
async function replayAndCommit(f: string, backend: KernelBackend, dir: string, o: {
  files?: { hostLog: string; statePath: string }; onStep?: (s: string) => void; onCommitStep?: (s: string) => void; version?: number;
} = {}): Promise<CommitRun> {
  const { plan, digest } = loadPlan(f);
  const files = o.files ?? hostFiles();
  const collection = replay(plan, digest, backend, { onStep: o.onStep });
  try {
    const committed = await commitLoad({
      plan, collection, backend, pinDir: dir, ...files, allowRollback: false, onStep: o.onCommitStep,
      facts: { plan: plan.name, digest: `sha256:${digest}`, version: o.version ?? 1, loader: 'user', fixups: collection.record.fixups },
    }, pinsInPlace);
    return { collection, committed, plan };
  } finally {
    collection.close();
  }
}

async function expectNothingLeft(created: CreatedObject[], dir: string): Promise<void> {
  expect(await waitGone(created), 'kernel objects of the failed attempt still exist').toEqual([]);
  expect(existsSync(dir), `${dir} left behind`).toBe(false);
  expect(readdirSync('/sys/fs/bpf').filter((n) => n.startsWith('bpfseal_staging_') && existsSync(join('/sys/fs/bpf', n))), 'staging directories left behind').toEqual([]);
  noOpenFds();
}

async function thrownAsync(fn: () => Promise<unknown>): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a failure');
}

describe.skipIf(!canBpf)('(e) fault injection: a failure at any step leaves nothing behind', () => {
  beforeAll(() => ensureBpffs('/sys/fs/bpf'));

  it.each(FAULT_FIXTURES)('%s: the real replay walks the expected steps, then the commit steps', async (f) => {
    const dir = newPinDir();
    const steps: string[] = [];
    const commitSteps: string[] = [];
    const rec = recording(realKernel());
    const files = hostFiles();
    await replayAndCommit(f, rec.backend, dir, { files, onStep: (s) => steps.push(s), onCommitStep: (s) => commitSteps.push(s) });
    expect(steps).toEqual(TEMPLATES.get(f)!);
    expect(commitSteps).toEqual(COMMIT_STEPS);
    expect(readdirSync(dir).length).toBeGreaterThan(0);
    await unloadDir(dir, files.hostLog);
    expect(await waitGone(rec.created)).toEqual([]);
    noOpenFds();
  });

  const cases = FAULT_FIXTURES.flatMap((f) => TEMPLATES.get(f)!.map((t, i) => ({ f, i, t })));

  it.each(cases)('$f: injected kernel error at replay step $i ($t)', async ({ f, i, t }) => {
    const dir = newPinDir();
    const rec = recording(realKernel());
    let n = 0;
    const e = await thrownAsync(() => replayAndCommit(f, rec.backend, dir, {
      onStep: (s) => {
        if (n++ === i) {
          expect(s).toBe(t);
          throw new KernelError('BPF_INJECTED', 5);
        }
      },
    }));
    expect(e).toBeInstanceOf(KernelError);
    expect((e as KernelError).step).toBe(t);
    expect(e.message.startsWith(`${t}: BPF_INJECTED failed with EIO`)).toBe(true);
    if (i > 0) expect(rec.created.length).toBeGreaterThan(0);
    await expectNothingLeft(rec.created, dir);
  });

  it.each(FAULT_FIXTURES.flatMap((f) => COMMIT_STEPS.filter((s) => s !== 'done').map((step) => ({ f, step }))))('$f: a failure at commit step $step: rolled back, recorded as aborted (or never recorded)', async ({ f, step }) => {
    const dir = newPinDir();
    const rec = recording(realKernel());
    const files = hostFiles();
    const e = await thrownAsync(() => replayAndCommit(f, rec.backend, dir, { files, onCommitStep: (s) => { if (s === step) throw new InputError('INJECTED' as ErrorCode, `injected at ${s}`); } }));
    expect((e as BpfsealError).code).toBe(step === 'record' ? 'INJECTED' : 'INJECTED');
    await expectNothingLeft(rec.created, dir);
    const log = openLog(files.hostLog, { create: false });
    try {
      const ds = readDecisions(log).map((d) => d.decision!.decision);
      expect(ds).toEqual(step === 'record' ? [] : ['allowed', 'aborted']);
      expect(listPending(files.hostLog)).toEqual([]);
      expect(refreshState(log, files.statePath).versions.get(loadPlan(f).plan.name)).toBeUndefined();
    } finally {
      log.close();
    }
  });

  it('a pin that the kernel refuses (a plain Error from the backend) is rolled back and names the pin', async () => {
    const dir = newPinDir();
    const rec = recording(realKernel());
    const backend: KernelBackend = { ...rec.backend, pin: (h, path) => { if (path.includes('/maps/')) throw Object.assign(new Error(`EACCES: ${path}`), { code: 'EACCES' }); rec.backend.pin(h, path); } };
    const e = await thrownAsync(() => replayAndCommit('globals.o', backend, dir));
    expect(e).toBeInstanceOf(BpfsealError);
    expect(e.message).toContain('EACCES');
    await expectNothingLeft(rec.created, dir);
  });

  it('a corrupted instruction: EINVAL with the verifier log; nothing left', async () => {
    const plan = planCopy('map_in_map.o');
    const { digest } = loadPlan('map_in_map.o');
    const entry = plan.programs.find((p) => p.name === 'entry')!;
    expect(entry.insns[0]).not.toBe(0x18); // not an ld_imm64: a single-slot instruction
    entry.insns[0] = 0xff; // no such opcode
    const rec = recording(realKernel());
    const e = thrown(() => replay(plan, digest, rec.backend, {}));
    expect(e).toBeInstanceOf(KernelError);
    const k = e as KernelError;
    expect(k.code).toBe('KERNEL_EINVAL');
    expect(k.step).toBe("load program 'entry'");
    expect(k.log.trim()).not.toBe('');
    expect(k.log).toContain('unknown opcode ff');
    expect(k.message).toContain('unknown opcode ff');
    // tail_target (loaded before entry), every map and the BTF were created, and are gone again.
    expect(rec.created.filter((o) => o.kind === 'prog').map((o) => o.name)).toEqual(['tail_target']);
    expect(rec.created.filter((o) => o.kind === 'map')).toHaveLength(plan.maps.length);
    expect(await waitGone(rec.created)).toEqual([]);
    noOpenFds();
  });
});

// ---------------------------------------------------------------------------------------------------
describe.skipIf(!canBpf)('(f) pins', () => {
  beforeAll(() => ensureBpffs('/sys/fs/bpf'));

  it.each(['globals.o', 'map_in_map.o'])('%s: programs at <dir>/<name>, maps at <dir>/maps/<pinName>; unload removes them', async (f) => {
    const dir = newPinDir();
    const rec = recording(realKernel());
    const files = hostFiles();
    const { collection: c, committed, plan } = await replayAndCommit(f, rec.backend, dir, { files });
    const progPins = plan.programs.map((p) => join(dir, p.name));
    const pinnedMaps = plan.maps.filter((m) => m.kind !== 'inner');
    const mapPins = pinnedMaps.map((m) => join(dir, 'maps', pinName(m)));
    expect([...committed.pins].sort()).toEqual([...progPins, ...mapPins].sort());
    expect(readdirSync(dir).sort()).toEqual([...plan.programs.map((p) => p.name), 'maps'].sort());
    expect(readdirSync(join(dir, 'maps')).sort()).toEqual(pinnedMaps.map(pinName).sort());
    for (const n of readdirSync(join(dir, 'maps'))) expect(n).not.toContain('.');
    for (const p of c.record.programs) {
      const fd = objGet(join(dir, p.name));
      try {
        const info = progInfo(fd);
        expect(info.id).toBe(p.id);
        expect(info.tag).toBe(p.tag);
      } finally {
        fd.close();
      }
    }
    for (const m of pinnedMaps) {
      const fd = objGet(join(dir, 'maps', pinName(m)));
      try {
        expect(mapInfo(fd).id).toBe(c.record.maps.find((x) => x.name === m.name)!.id);
      } finally {
        fd.close();
      }
    }
    for (const o of rec.created.filter((x) => x.kind === 'prog' || pinnedMaps.some((m) => m.name === x.name || m.kernelName === x.name))) {
      expect(objectExists(o.kind, o.id), `${o.kind} ${o.name} (pinned) exists`).toBe(true);
    }
    const u = await unloadDir(dir, files.hostLog);
    expect([...u.removed].sort()).toEqual([...committed.pins].sort());
    expect(existsSync(dir)).toBe(false);
    expect(await waitGone(rec.created)).toEqual([]);
    noOpenFds();
  });

  it('a second load into a dir that holds pins is refused; the old pins are kept and the attempt leaves nothing', async () => {
    const dir = newPinDir();
    const files = hostFiles();
    const first = recording(realKernel());
    const r1 = await replayAndCommit('globals.o', first.backend, dir, { files });
    const listing = () => [...readdirSync(dir).map((n) => n), ...readdirSync(join(dir, 'maps')).map((n) => `maps/${n}`)].sort();
    const before = listing();
    const second = recording(realKernel());
    const e = await thrownAsync(() => replayAndCommit('globals.o', second.backend, dir, { files }));
    expect(e).toBeInstanceOf(BpfsealError);
    const b = e as BpfsealError;
    expect(b.code).toBe('PIN_DIR_IN_USE');
    expect(b.exitCode).toBe(2);
    expect(b.message).toContain(`${dir} already holds pins`);
    expect(await waitGone(second.created)).toEqual([]);
    expect(listing()).toEqual(before);
    const fd = objGet(join(dir, r1.plan.programs[0].name));
    try {
      expect(progInfo(fd).id).toBe(r1.collection.record.programs[0].id);
    } finally {
      fd.close();
    }
    await unloadDir(dir, files.hostLog);
    expect(await waitGone(first.created)).toEqual([]);
    noOpenFds();
  });
});
