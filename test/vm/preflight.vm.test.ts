/**
 * `bpfseal preflight` for real: one run of the CLI over the VM kernels (each booted once) with every
 * fixture that plans, the three Debian corpus objects and one release signed with --cert, attested into
 * a log. Then one more boot where `bpfseal load` inside the guest, under a policy with
 * requirePreflight, is refused with a log that lacks a preflight for that kernel and loads with the
 * log that has it. The expected matrix below is what these kernels did when measured here
 * (README, "bpfseal preflight"); a kernel that starts to accept or refuse differently fails a test.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { runInVm, type RunResult } from '../../src/vm/run.js';
import type { InputOutcome, Refusal } from '../../src/preflight/types.js';
import { CLI, cleanupTmpDirs, FIXTURES, leFixtures, makeTmpDir, ROOT } from '../helpers/paths.js';
import { atLeast, availableKernels, vmSetup } from './helpers.js';

const { setup, why } = vmSetup();
const kernels = availableKernels(setup, why);

interface Doc {
  ok: boolean;
  exit: number;
  kernels: { spec: string; release?: string; enforcement?: string; results?: InputOutcome[]; timings: Record<string, number>; error?: { code: string; message: string } }[];
  attestations?: { plan: string; kernel: string; result: string; logIndex?: number }[];
}

const CORPUS = ['opensnoop', 'tcpsynbl', 'xdp-dispatcher'].map((n) => join(ROOT, 'test/fixtures/corpus', `${n}.bpf.o`));
const FIXTURE_OBJECTS = leFixtures().map((f) => join(FIXTURES, f));
let dir = '';
let doc: Doc | undefined;
let cliMs = 0;
let cliErr = '';
let guard: RunResult | undefined;

function runPreflight(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGTERM'), 540_000);
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }); });
  });
}

/** Every file of a log directory as guest files under `to` (its private keys stay on the host). */
function logFiles(from: string, to: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (!['log.key', 'log.ed25519'].includes(e) && !e.endsWith('.lock')) out[join(to, relative(from, p))] = readFileSync(p);
    }
  };
  walk(from);
  return out;
}

const sh = (cli: string): string => `bpfseal ${cli}`;

beforeAll(async () => {
  if (kernels.length === 0) return;
  dir = makeTmpDir('bpfseal-vm-preflight-');
  const cli = (...a: string[]) => runPreflight(a);
  expect((await cli('keygen', '--out', 'keys', '--name', 'rel')).code).toBe(0);
  expect((await cli('sign', join(FIXTURES, 'testrun.o'), '--key', 'keys/rel.key', '--cert', 'keys/rel.crt', '-o', 'testrun.bpfseal', '--log', 'log')).code).toBe(0);
  cpSync(join(dir, 'log'), join(dir, 'log-without-preflight'), { recursive: true });
  const t0 = Date.now();
  const r = await cli('preflight', ...FIXTURE_OBJECTS, ...CORPUS, 'testrun.bpfseal', ...kernels.flatMap((k) => ['--kernel', k.package ?? k.vmlinuz]),
    '--offline', '--json', '--attest', '--key', 'keys/rel.key', '--log', 'log');
  cliMs = Date.now() - t0;
  cliErr = r.stderr;
  doc = JSON.parse(r.stdout) as Doc;
  // To look at (or render) the measured matrix afterwards: BPFSEAL_PREFLIGHT_DOC=<file>.
  if (process.env.BPFSEAL_PREFLIGHT_DOC) writeFileSync(process.env.BPFSEAL_PREFLIGHT_DOC, r.stdout);
  // requirePreflight, honoured inside a guest whose kernel was preflighted above.
  const target = kernels.find((k) => atLeast(k.release, 7, 3)) ?? kernels[0];
  writeFileSync(join(dir, 'policy.json'), JSON.stringify({ version: 1, signers: [{ name: 'rel', key: 'keys/rel.pub', plans: ['*'], programTypes: ['*'] }], requirePreflight: true }));
  const load = (log: string, n: string) => `${sh(`load /root/p/testrun.bpfseal --policy /root/p/policy.json --log /root/${log} --pin /sys/fs/bpf/pf-${n} --host-log /tmp/hl --state /tmp/state.json --json`)} > /out/${n}.out 2> /out/${n}.err; echo $? > /out/${n}.rc`;
  guard = await runInVm(target, {
    files: {
      // The kernel's config where Debian puts it: requirePreflight then matches the config digest too.
      ...(target.config ? { [`/boot/config-${target.release}`]: readFileSync(target.config) } : {}),
      '/root/p/testrun.bpfseal': readFileSync(join(dir, 'testrun.bpfseal')), '/root/p/policy.json': readFileSync(join(dir, 'policy.json')),
      '/root/p/keys/rel.pub': readFileSync(join(dir, 'keys/rel.pub')), '/root/p/keys/rel.crt': readFileSync(join(dir, 'keys/rel.crt')),
      ...logFiles(join(dir, 'log'), '/root/log'), ...logFiles(join(dir, 'log-without-preflight'), '/root/log0'),
    },
    command: ['node dist/vm/guest/keyctl.js add-cert /root/p/keys/rel.crt > /dev/null', load('log0', 'without'), load('log', 'with')].join('\n'),
    timeoutMs: 300_000,
  });
});

afterAll(() => {
  if (doc) {
    const rows = doc.kernels.map((k) => `${(k.release ?? k.spec).padEnd(28)} ${String(k.enforcement).padEnd(8)} boot ${k.timings.bootMs} ms | loads (guest) ${k.timings.loadMs} ms | guest command ${k.timings.commandMs} ms | total ${k.timings.totalMs} ms`);
    console.log(`[vm] preflight of ${FIXTURE_OBJECTS.length + CORPUS.length + 1} inputs on ${doc.kernels.length} kernels: ${cliMs} ms\n${rows.join('\n')}${guard ? `\n[vm] requirePreflight boot: ${guard.bootMs} ms boot, ${guard.commandMs} ms for two loads` : ''}`);
  }
  cleanupTmpDirs();
});

const result = (release: string, input: string): InputOutcome => {
  const k = doc!.kernels.find((x) => x.release === release);
  const r = k?.results?.find((x) => x.name.endsWith(input));
  if (!r) throw new Error(`${release}: no result for ${input} (${k?.error?.message ?? 'no such kernel'})`);
  return r;
};
const program = (release: string, input: string, name: string) => {
  const p = result(release, input).programs.find((x) => x.name === name);
  if (!p) throw new Error(`${input}: no program ${name}`);
  return p;
};
const isKernels = (r: Refusal | undefined): void => {
  // The kernel's own refusal: an errno from bpf(2) at a named step, or (replay) an attach target that
  // this kernel's BTF does not have; never a bpfseal input error or an internal error.
  if (r?.code === 'FIXUP_UNRESOLVED') {
    expect(r.message).toMatch(/is not in the kernel's BTF$/);
    return;
  }
  expect(r?.code, JSON.stringify(r)).toMatch(/^KERNEL_E[A-Z0-9]+$/);
  expect(r?.errno).toBeGreaterThan(0);
  expect(r?.step).toMatch(/^(kernel loader: )?(load program|load BTF|create map|resolve )/);
};

/** What these kernels did, measured: everything not listed loads with both loaders. */
const ALWAYS_PASS = ['core.o', 'externs.o', 'globals.o', 'ksym_typed.o', 'legacy_maps.o', 'legacy_maps_nobtf.o', 'map_in_map.o', 'minimal.o', 'storage.o',
  'subprogs.o', 'testrun.o', 'opensnoop.bpf.o', 'tcpsynbl.bpf.o', 'xdp-dispatcher.bpf.o', 'testrun.bpfseal'];

for (const k of kernels) {
  const rel = k.release;
  const enforcement = atLeast(rel, 7, 3) ? 'loader' : atLeast(rel, 6, 18) ? 'program' : 'none';
  describe(`preflight on ${k.package ?? rel}`, () => {
    it('booted this kernel and ran every input in it', () => {
      const kr = doc!.kernels.find((x) => x.release === rel);
      expect(kr?.error, cliErr).toBeUndefined();
      expect(kr!.results!.length).toBe(FIXTURE_OBJECTS.length + CORPUS.length + 1);
      expect(kr!.timings.bootMs).toBeGreaterThan(0);
    });

    it(`enforcement column: ${enforcement === 'program' ? 'per-program' : enforcement} (the probe inside the guest)`, () => {
      expect(doc!.kernels.find((x) => x.release === rel)?.enforcement).toBe(enforcement);
    });

    it('the signed release: signed kernel loader on 7.3+, per-program signatures on 6.18-7.2, unsigned before', () => {
      const r = result(rel, 'testrun.bpfseal');
      expect(r.passed, JSON.stringify(r.kernelLoader)).toBe(true);
      expect(r.kernelLoader.signed).toBe(enforcement === 'loader');
      expect(r.replay.signed).toBe(enforcement === 'program');
      for (const p of r.programs) expect(p.replay.tag).toMatch(/^[0-9a-f]{16}$/);
    });

    it('fixtures and real objects: the host\'s trampoline refusals do not happen here; what each kernel refuses is measured', () => {
      for (const f of ALWAYS_PASS) expect(result(rel, f).passed, f).toBe(true);
      // tcpsynbl's fentry programs and the trampolines of sections.o load (this project's host refuses them: EPERM).
      for (const n of ['tcp_v4_syn_recv', 'tcp_v6_syn_recv']) expect(program(rel, 'tcpsynbl.bpf.o', n).replay.verdict).toBe('loaded');
      for (const n of ['s_fmod_ret', 's_lsm', 's_lsm_s', 's_kprobe', 's_tp_btf', 's_iter_task']) expect(program(rel, 'sections.o', n).replay.verdict, n).toBe('loaded');
      expect(result(rel, 'sections.o').passed).toBe(false);
      if (atLeast(rel, 7, 2)) {
        // do_unlinkat is gone from 7.2's BTF: the fentry/fexit on it cannot attach; the sleepable one (on nanosleep) loads.
        for (const n of ['s_fentry', 's_fexit']) expect(program(rel, 'sections.o', n).replay).toMatchObject({ verdict: 'refused', refusal: { code: 'FIXUP_UNRESOLVED' } });
        expect(program(rel, 'sections.o', 's_fentry').kernelLoader).toMatchObject({ verdict: 'refused', refusal: { code: 'KERNEL_ENOENT' } });
        expect(program(rel, 'sections.o', 's_fentry_s').replay.verdict).toBe('loaded');
        // A newer verifier refuses a fixture the older ones accept, with both loaders, in its own words.
        const x = program(rel, 'maps_btf.o', 'xdp_maps');
        for (const v of [x.replay, x.kernelLoader]) expect(v).toMatchObject({ verdict: 'refused', refusal: { code: 'KERNEL_EACCES', log: expect.stringContaining('slot poisoned by dead code elimination') } });
        expect(program(rel, 'maps_btf.o', 'tc_maps').replay.verdict).toBe('loaded');
      } else {
        for (const n of ['s_fentry', 's_fexit']) expect(program(rel, 'sections.o', n).replay.verdict).toBe('loaded');
        const x = program(rel, 'sections.o', 's_fentry_s');
        for (const v of [x.replay, x.kernelLoader]) expect(v).toMatchObject({ verdict: 'refused', refusal: { code: 'KERNEL_EINVAL', log: expect.stringContaining('is not sleepable') } });
        expect(result(rel, 'maps_btf.o').passed).toBe(true);
      }
    });

    it('every refusal is the kernel\'s own (an errno and a step); every loaded program has a tag', () => {
      for (const r of doc!.kernels.find((x) => x.release === rel)!.results!) {
        for (const p of r.programs) {
          for (const v of [p.replay, p.kernelLoader]) {
            if (v.verdict === 'refused') isKernels(v.refusal);
            if (v.verdict === 'loaded') expect(v.tag, `${r.name} ${p.name}`).toMatch(/^[0-9a-f]{16}$/);
          }
        }
      }
    });
  });
}

describe('preflight --attest', () => {
  it.runIf(kernels.length > 0)('signed one preflight attestation per input and kernel into the log, and exits 1 (some loads fail)', () => {
    expect(doc!.exit).toBe(1);
    expect(cliErr).toContain('PREFLIGHT_FAILED');
    const n = FIXTURE_OBJECTS.length + CORPUS.length + 1;
    expect(doc!.attestations?.length).toBe(kernels.length * n);
    expect(doc!.attestations!.filter((a) => a.result === 'fail').map((a) => `${a.kernel.split('+')[0]} ${a.plan}`).sort()).toEqual(
      kernels.flatMap((k) => (atLeast(k.release, 7, 2) ? ['maps_btf', 'sections'] : ['sections']).map((p) => `${k.release.split('+')[0]} ${p}`)).sort(),
    );
    expect(doc!.attestations!.every((a) => Number.isInteger(a.logIndex))).toBe(true);
  });
});

describe('requirePreflight inside a preflighted guest', () => {
  const step = (n: string) => ({ rc: Number(guard?.files[`${n}.rc`]?.toString().trim()), out: guard?.files[`${n}.out`]?.toString() ?? '', err: guard?.files[`${n}.err`]?.toString() ?? '' });
  it.runIf(kernels.length > 0)('a log without a preflight for this kernel: load refused (exit 1, PREFLIGHT_REQUIRED)', () => {
    expect(guard?.exitCode, guard?.stderr).toBe(0);
    const s = step('without');
    expect(s.rc, s.err).toBe(1);
    expect(s.err).toContain('PREFLIGHT_REQUIRED');
  });
  it.runIf(kernels.length > 0)('the log with the passing preflight attestation: it loads', () => {
    const s = step('with');
    expect(s.rc, s.err).toBe(0);
    const out = JSON.parse(s.out) as { preflight?: { kernelRelease: string; configMatched: boolean }; plan: string };
    const target = kernels.find((k) => atLeast(k.release, 7, 3)) ?? kernels[0];
    expect(out.plan).toBe('testrun');
    expect(out.preflight).toMatchObject({ kernelRelease: target.release, configMatched: !!target.config });
  });
});
