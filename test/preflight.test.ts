/**
 * bpfseal preflight on the host, without a VM: the guest job against this host's own kernel (real
 * bpf(2): the same code the guest runs), the preflight statement (build, strict parse), signing it into
 * the attestation log, requirePreflight (the judge, the log search, verify and load refusing or
 * allowing), audit listing preflight entries, the matrix, and the CLI's usage and infrastructure errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { runJob } from '../src/runtime/preflight-guest.js';
import { buildPreflightStatement, parsePreflightStatement, PREFLIGHT_PREDICATE_TYPE, type PreflightStatement } from '../src/preflight/statement.js';
import { attestPreflight } from '../src/preflight/attest.js';
import { requirePreflight } from '../src/preflight/require.js';
import { prepareInputs, type PreparedInput } from '../src/preflight/inputs.js';
import { renderMatrix } from '../src/preflight/report.js';
import type { KernelRun, KernelIdentity } from '../src/preflight/run.js';
import type { InputOutcome } from '../src/preflight/types.js';
import { loadPolicy, parsePolicy, trustedLog } from '../src/trust/policy.js';
import { logIdentity } from '../src/tlog/keys.js';
import { runCli } from './helpers/cli.js';
import { probeBpf, newPinDir, removePinDirs } from './helpers/kernel.js';
import { cleanupTmpDirs, fixturePath, makeTmpDir, ROOT } from './helpers/paths.js';

const bpf = probeBpf();
const corpus = (n: string): string => join(ROOT, 'test/fixtures/corpus', `${n}.bpf.o`);

/** A passing (or failing) outcome for every program of an input, as the guest would report it. */
function outcome(p: PreparedInput, passed = true): InputOutcome {
  const v = passed ? 'loaded' as const : 'refused' as const;
  return {
    name: p.path, plan: p.plan.name, digest: p.digest, passed,
    kernelLoader: { verdict: v, signed: false, ms: 1, ...(passed ? {} : { refusal: { code: 'KERNEL_EPERM', message: 'x', errno: 1 } }) },
    replay: { verdict: 'loaded', signed: false, ms: 1 },
    programs: p.plan.programs.map((x) => ({ name: x.name, section: x.section, type: 'xdp', kernelLoader: { verdict: v }, replay: { verdict: 'loaded', tag: '0123456789abcdef' } })),
  };
}

const kernelId = (rel: string, config?: string): KernelIdentity => ({
  spec: rel, release: rel, vmlinuzSha256: `sha256:${'a'.repeat(64)}`, source: 'path', ...(config ? { configSha256: config } : {}),
});

function statementFor(p: PreparedInput, rel: string, o: { passed?: boolean; config?: string } = {}): PreflightStatement {
  return buildPreflightStatement(p, kernelId(rel, o.config), rel, 'loader', outcome(p, o.passed ?? true), { toolVersion: 'test' });
}

describe.skipIf(!bpf.ok)(`the guest job on this host's kernel (${release()})`, () => {
  it('loads with both loaders, and gives each program the kernel\'s own verdict (trampolines: EPERM here)', async () => {
    const inputs = prepareInputs([fixturePath('minimal'), fixturePath('sections'), corpus('tcpsynbl')], {});
    const r = await runJob({ inputs: inputs.map((i) => i.guest), maxEntries: {} });
    expect(r.release).toBe(release());
    expect(r.enforcement).toBe('none'); // this kernel is built without signature verification
    const [minimal, sections, tcpsynbl] = r.inputs;
    expect(minimal.passed).toBe(true);
    expect(minimal.programs[0].replay).toMatchObject({ verdict: 'loaded', tag: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(minimal.programs[0].kernelLoader.tag).toBe(minimal.programs[0].replay.tag);
    expect(sections.passed).toBe(false);
    const byName = new Map(sections.programs.map((p) => [p.name, p]));
    for (const n of ['s_fentry', 's_fexit', 's_fmod_ret', 's_fentry_s', 's_lsm', 's_lsm_s']) {
      expect(byName.get(n)!.replay, n).toMatchObject({ verdict: 'refused', refusal: { code: 'KERNEL_EPERM', errno: 1, step: `load program '${n}'` } });
    }
    expect(byName.get('s_kprobe')!.replay.verdict).toBe('loaded');
    // The kernel loader stops at its first refusal; then each program is loaded alone by a loader of its own.
    expect(byName.get('s_fentry')!.kernelLoader).toMatchObject({ verdict: 'refused', refusal: { code: 'KERNEL_EPERM', step: "kernel loader: load program 's_fentry'" } });
    expect(byName.get('s_fexit')!.kernelLoader.verdict).toBe('refused');
    expect(byName.get('s_kprobe')!.kernelLoader).toMatchObject({ verdict: 'loaded', tag: byName.get('s_kprobe')!.replay.tag });
    expect(sections.kernelLoader).toMatchObject({ verdict: 'refused', refusal: { code: 'KERNEL_EPERM' } });
    expect(tcpsynbl.programs.map((p) => p.replay.verdict)).toEqual(['loaded', 'loaded', 'refused', 'refused']);
  });
});

describe('preflight statement', () => {
  const p = prepareInputs([fixturePath('minimal')], {})[0];

  it('names the plan as subject and the kernel, enforcement and verdicts in its predicate; parses back', () => {
    const s = statementFor(p, '7.3.4+deb13-cloud-amd64', { config: `sha256:${'b'.repeat(64)}` });
    expect(s.predicateType).toBe(PREFLIGHT_PREDICATE_TYPE);
    expect(s.subject).toEqual([{ name: 'minimal.plan', digest: { sha256: p.digest } }]);
    expect(s.predicate).toMatchObject({ result: 'pass', enforcement: 'loader', kernel: { release: '7.3.4+deb13-cloud-amd64', config: { sha256: 'b'.repeat(64) } } });
    expect(parsePreflightStatement(Buffer.from(JSON.stringify(s)))).toEqual(s);
  });

  it('is parsed strictly: unknown fields, unknown verdicts, bad tags, another predicate type are refused', () => {
    const s = statementFor(p, 'r');
    const text = JSON.stringify(s);
    const edits: [string, string][] = [
      ['"time":', '"extra":1,"time":'],
      ['"replay":"loaded"', '"replay":"maybe"'],
      ['"tag":"0123456789abcdef"', '"tag":"xyz"'],
      [PREFLIGHT_PREDICATE_TYPE, 'https://bpfseal.dev/attestation/bpf-loader-plan/v1'],
      ['"result":"pass"', '"result":"ok"'],
      ['"vmlinuz":', '"vmlinux":'],
    ];
    for (const [from, to] of edits) {
      expect(text).toContain(from);
      expect(() => parsePreflightStatement(Buffer.from(text.replace(from, to))), to).toThrow(/preflight statement/);
    }
  });
});

describe('requirePreflight', () => {
  let dir: string;
  let policyPath: string;
  let input: PreparedInput;
  beforeAll(async () => {
    dir = makeTmpDir('bpfseal-preflight-');
    expect((await runCli(['keygen', '--out', join(dir, 'keys'), '--name', 'rel'])).code).toBe(0);
    expect((await runCli(['keygen', '--out', join(dir, 'keys'), '--name', 'other'])).code).toBe(0);
    expect((await runCli(['sign', fixturePath('minimal'), '--key', join(dir, 'keys/rel.key'), '-o', join(dir, 'minimal.bpfseal'), '--log', join(dir, 'log')])).code).toBe(0);
    policyPath = join(dir, 'policy.json');
    writeFileSync(policyPath, JSON.stringify({ version: 1, signers: [{ name: 'rel', key: 'keys/rel.pub', plans: ['*'], programTypes: ['*'] }], requirePreflight: true }));
    input = prepareInputs([join(dir, 'minimal.bpfseal')], {})[0];
  });
  afterAll(() => {
    removePinDirs();
    cleanupTmpDirs();
  });

  const policy = () => {
    const p = loadPolicy(policyPath);
    const id = logIdentity(join(dir, 'log'));
    p.logs.push(trustedLog(id.key, id.origin));
    return p;
  };
  const req = (host: { release: string; configSha256?: string }, logs = [join(dir, 'log')]) => requirePreflight(input.plan.name, input.digest, policy(), { logs, host });

  it('the policy field is a boolean, parsed strictly', () => {
    const base = { version: 1, signers: [{ name: 'x', key: 'keys/rel.pub', plans: ['*'], programTypes: ['*'] }] };
    expect(parsePolicy(JSON.stringify({ ...base, requirePreflight: true }), policyPath).requirePreflight).toBe(true);
    expect(parsePolicy(JSON.stringify(base), policyPath).requirePreflight).toBe(false);
    expect(() => parsePolicy(JSON.stringify({ ...base, requirePreflight: 'yes' }), policyPath)).toThrow(/requirePreflight/);
  });

  it('refuses a plan with no preflight in the log (PREFLIGHT_REQUIRED)', () => {
    expect(() => req({ release: 'k1' })).toThrow(expect.objectContaining({ code: 'PREFLIGHT_REQUIRED' }));
  });

  it('accepts a trusted, passing preflight for exactly this kernel release and config; refuses every other', async () => {
    const cfg = `sha256:${'c'.repeat(64)}`;
    await attestPreflight([
      statementFor(input, 'k-fail', { passed: false }),
      statementFor(input, 'k-cfg', { config: cfg }),
      statementFor(input, 'k-noconfig'),
    ], { key: join(dir, 'keys/rel.key'), log: join(dir, 'log') });
    await attestPreflight([statementFor(input, 'k-other')], { key: join(dir, 'keys/other.key'), log: join(dir, 'log') });
    expect(req({ release: 'k-cfg', configSha256: cfg }).accepted).toMatchObject({ kernelRelease: 'k-cfg', signer: 'rel', configMatched: true });
    const noCfg = req({ release: 'k-noconfig' });
    expect(noCfg.notes.join()).toMatch(/kernel release only/);
    const refused = (host: { release: string; configSha256?: string }, why: RegExp) => {
      expect(() => req(host)).toThrow(expect.objectContaining({ code: 'PREFLIGHT_REQUIRED', message: expect.stringMatching(why) }));
    };
    refused({ release: 'k-fail' }, /the plan failed on k-fail/);
    refused({ release: 'k-cfg', configSha256: `sha256:${'d'.repeat(64)}` }, /built with another config/);
    refused({ release: 'k-noconfig', configSha256: cfg }, /another config \(none recorded/);
    refused({ release: 'k-other' }, /not trusted for plan 'minimal'/);
    refused({ release: 'k-unknown' }, /for kernel k-cfg/);
    // A log the policy does not trust is not searched.
    const untrusted = loadPolicy(policyPath);
    expect(() => requirePreflight(input.plan.name, input.digest, untrusted, { logs: [join(dir, 'log')], host: { release: 'k-cfg', configSha256: cfg } }))
      .toThrow(/not a trusted log/);
  });

  it('an envelope changed on disk is not taken (its hash no longer matches the log entry)', async () => {
    const d = makeTmpDir('bpfseal-preflight-tamper-');
    await attestPreflight([statementFor(input, 'k-tamper')], { key: join(dir, 'keys/rel.key'), log: d });
    const id = logIdentity(d);
    const p = loadPolicy(policyPath);
    p.logs.push(trustedLog(id.key, id.origin));
    expect(requirePreflight(input.plan.name, input.digest, p, { logs: [d], host: { release: 'k-tamper' } }).accepted.kernelRelease).toBe('k-tamper');
    const { readdirSync } = await import('node:fs');
    const f = readdirSync(join(d, 'envelopes')).find((x) => x.endsWith('.json'))!;
    const text = readFileSync(join(d, 'envelopes', f), 'utf8');
    writeFileSync(join(d, 'envelopes', f), text.replace('"payloadType"', ' "payloadType"'));
    expect(() => requirePreflight(input.plan.name, input.digest, p, { logs: [d], host: { release: 'k-tamper' } })).toThrow(expect.objectContaining({ code: 'PREFLIGHT_REQUIRED' }));
  });

  it(`verify and load refuse without a preflight for this host's kernel (${release()}), and pass with one`, async () => {
    const rel = join(dir, 'minimal.bpfseal');
    const state = join(dir, 'state.json');
    const args = ['--policy', policyPath, '--log', join(dir, 'log'), '--state', state];
    const v1 = await runCli(['verify', rel, ...args]);
    expect(v1.code).toBe(1);
    expect(v1.stderr).toContain('PREFLIGHT_REQUIRED');
    expect(v1.stderr).toContain(`this host's kernel ${release()}`);
    const load = async (extra: string[]) => await runCli(['load', rel, ...args, ...extra, '--json']);
    const mode = bpf.ok ? ['--pin', newPinDir(), '--host-log', join(dir, 'host-log')] : ['--dry-run'];
    const l1 = await load(mode);
    expect(l1.code).toBe(1);
    expect(l1.stderr).toContain('PREFLIGHT_REQUIRED');
    // The attestation a VM run would make for this kernel, built and signed here for the host's release.
    await attestPreflight([statementFor(input, release())], { key: join(dir, 'keys/rel.key'), log: join(dir, 'log') });
    const v2 = await runCli(['verify', rel, ...args, '--json']);
    expect(v2.code, v2.stderr).toBe(0);
    expect(JSON.parse(v2.stdout)[0].preflight).toMatchObject({ kernelRelease: release(), signer: 'rel' });
    const l2 = await load(bpf.ok ? ['--pin', newPinDir(), '--host-log', join(dir, 'host-log')] : ['--dry-run']);
    expect(l2.code, l2.stderr).toBe(0);
    expect(JSON.parse(l2.stdout).preflight).toMatchObject({ kernelRelease: release() });
  });

  it('audit lists preflight entries as preflight, not as invalid attestations', async () => {
    const r = await runCli(['audit', '--log', join(dir, 'log'), '--key', join(dir, 'keys/rel.pub'), '--state', join(dir, 'audit-state.json'), '--json']);
    const a = JSON.parse(r.stdout) as { entries: { status: string; plan?: string; reason?: string; code?: string }[]; findings: { code: string }[] };
    const pre = a.entries.filter((e) => e.status === 'preflight');
    expect(pre.length).toBeGreaterThanOrEqual(4);
    expect(pre[0]).toMatchObject({ plan: 'minimal', reason: expect.stringMatching(/^preflight (pass|fail) on /) });
    // The entry signed by a key the --key policy does not trust is untrusted, as a release would be.
    expect(a.entries.filter((e) => e.status === 'untrusted').map((e) => e.code)).toEqual(['UNTRUSTED_SIGNER']);
    expect(a.findings.map((f) => f.code)).toEqual(['UNTRUSTED_SIGNER']);
    expect(a.entries.some((e) => e.status === 'not-attestation')).toBe(false);
  });
});

describe('the matrix', () => {
  it('shows each kernel\'s enforcement and timings, and per program the two loaders\' verdicts and the tag', () => {
    const inputs = prepareInputs([fixturePath('minimal')], {});
    const ok = outcome(inputs[0]);
    const refused: InputOutcome = { ...ok, passed: false, replay: { verdict: 'refused', signed: false, ms: 3 }, programs: [{ ...ok.programs[0], replay: { verdict: 'refused', refusal: { code: 'KERNEL_EACCES', errno: 13, message: "load program 'xdp_pass': BPF_PROG_LOAD failed with EACCES", log: 'R1 invalid mem access\nprocessed 3 insns' } } }] };
    const runs: KernelRun[] = [
      { spec: 'a', guest: { release: '7.3.4+deb13-cloud-amd64', enforcement: 'loader', ms: 5, inputs: [ok] }, timings: { resolveMs: 1, bootMs: 4100, loadMs: 900, totalMs: 9000 } },
      { spec: 'b', guest: { release: '6.12.117+deb13-cloud-amd64', enforcement: 'none', ms: 5, inputs: [refused] }, timings: { resolveMs: 1, bootMs: 5000, loadMs: 800, totalMs: 8000 } },
      { spec: 'c', timings: { resolveMs: 1, totalMs: 1 }, error: { code: 'VM_NOT_CACHED', message: 'x', exit: 3 } },
    ];
    const m = renderMatrix(inputs, runs);
    expect(m).toMatch(/7\.3\.4\+deb13-cloud-amd64\s+loader\s+4\.1 s\s+0\.9 s/);
    expect(m).toMatch(/6\.12\.117\+deb13-cloud-amd64\s+none/);
    expect(m).toMatch(/c\s+VM_NOT_CACHED/);
    expect(m).toMatch(/xdp_pass\s+xdp\s+ok\|ok\s+ok\|EACCES\s+0123456789abcdef/);
    expect(m).toContain('6.12.117 ');
    expect(m).toContain('| R1 invalid mem access');
  });
});

describe('bpfseal preflight (CLI, no VM)', () => {
  it('needs a --kernel (exit 2, USAGE_PREFLIGHT)', async () => {
    const r = await runCli(['preflight', fixturePath('minimal')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('USAGE_PREFLIGHT');
  });
  it('--attest needs --key (exit 2)', async () => {
    const r = await runCli(['preflight', fixturePath('minimal'), '--kernel', '7.3.4', '--attest']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--attest needs --key');
  });
  it('a bad input is reported before any kernel boots (exit 2, its code and file)', async () => {
    const r = await runCli(['preflight', fixturePath('minimal_be'), '--kernel', '7.3.4', '--offline', '--cache', makeTmpDir()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/minimal_be\.o: ELF_BIG_ENDIAN/);
  });
  it('a bad kernel spec is a usage error (exit 2, VM_BAD_SPEC)', async () => {
    const r = await runCli(['preflight', fixturePath('minimal'), '--kernel', '7.3.4', '--kernel', 'not a kernel', '--offline']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/VM_BAD_SPEC: kernel spec "not a kernel"/);
  });
  it('--offline with an empty --cache: exit 3, VM_NOT_CACHED naming the fetch command; --json is one document', async () => {
    const cache = makeTmpDir('bpfseal-preflight-cache-');
    const r = await runCli(['preflight', fixturePath('minimal'), '--kernel', '7.3.4', '--offline', '--cache', cache, '--json']);
    expect(r.code).toBe(3);
    const doc = JSON.parse(r.stdout) as { ok: boolean; exit: number; kernels: { error: { code: string; message: string } }[] };
    expect(doc).toMatchObject({ ok: false, exit: 3 });
    expect(doc.kernels[0].error.code).toBe('VM_NOT_CACHED');
    expect(doc.kernels[0].error.message).toContain(`BPFSEAL_VM_CACHE=${cache} node `);
    expect(doc.kernels[0].error.message).toContain('dist/vm/cli.js fetch 7.3.4');
    expect(r.stderr).toContain('bpfseal: 7.3.4: VM_NOT_CACHED');
  });
  it('a release that does not verify under --policy is refused before anything boots (exit 1)', async () => {
    const d = makeTmpDir('bpfseal-preflight-policy-');
    expect((await runCli(['keygen', '--out', d, '--name', 'a'])).code).toBe(0);
    expect((await runCli(['keygen', '--out', d, '--name', 'b'])).code).toBe(0);
    expect((await runCli(['sign', fixturePath('minimal'), '--key', join(d, 'a.key'), '-o', join(d, 'm.bpfseal'), '--no-log'])).code).toBe(0);
    writeFileSync(join(d, 'p.json'), JSON.stringify({ version: 1, signers: [{ name: 'b', key: 'b.pub', plans: ['*'], programTypes: ['*'] }] }));
    const r = await runCli(['preflight', join(d, 'm.bpfseal'), '--kernel', '7.3.4', '--policy', join(d, 'p.json'), '--offline', '--cache', d]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('UNTRUSTED_SIGNER');
  });
});
