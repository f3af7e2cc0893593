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
  // requirePreflight, honoured inside a guest whose kernel was preflighted above.
  const target = kernels.find((k) => atLeast(k.release, 7, 3)) ?? kernels[0];
  writeFileSync(join(dir, 'policy.json'), JSON.stringify({ version: 1, signers: [{ name: 'rel', key: 'keys/rel.pub', plans: ['*'], programTypes: ['*'] }], requirePreflight: true }));
  const load = (log: string, n: string) => `${sh(`load /root/p/testrun.bpfseal --policy /root/p/policy.json --log /root/${log} --pin /sys/fs/bpf/pf-${n} --host-log /tmp/hl --state /tmp/state.json --json`)} > /out/${n}.out 2> /out/${n}.err; echo $? > /out/${n}.rc`;
  guard = await runInVm(target, {
    files: {
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
  // The kernel's own refusal: an errno from bpf(2) at a named step, never a bpfseal input or internal error.
  expect(r?.code, JSON.stringify(r)).toMatch(/^KERNEL_E[A-Z0-9]+$/);
  expect(r?.errno).toBeGreaterThan(0);
  expect(r?.step).toMatch(/^(kernel loader: )?(load program|load BTF|create map)/);
};

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
    const out = JSON.parse(s.out) as { preflight?: { kernelRelease: string }; plan: string };
    expect(out.plan).toBe('testrun');
    expect(out.preflight?.kernelRelease).toBe((kernels.find((k) => atLeast(k.release, 7, 3)) ?? kernels[0]).release);
  });
});
