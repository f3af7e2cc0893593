/**
 * Looking inside (issue 12 §3): `inspect <release>` (what a user must know before trusting one, said to
 * be unverified), `log show` (what each entry records), `features` / `version --json` (the host probe,
 * the same one load and preflight use). Releases are signed here with fresh keys through the CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { release as osRelease } from 'node:os';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';
import { cleanupTmpDirs, fixturePath, makeTmpDir, ROOT, sha256hex } from './helpers/paths.js';
import { newPinDir, probeBpf, removePinDirs } from './helpers/kernel.js';
import { canUseBpf, lsmProbe, signatureProbe } from '../src/kernel/probe.js';

const canBpf = probeBpf().ok;
let d: string;
let keyId: string;
const digests: Record<string, string> = {};

async function json<T = any>(args: string[], exit = 0): Promise<T> {
  const r = await runCli(args);
  expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(exit);
  return JSON.parse(r.stdout) as T;
}

async function sign(fixture: string, out: string, extra: string[]): Promise<void> {
  const [s] = await json<{ digest: string }[]>(['sign', fixturePath(fixture), '--key', join(d, 'keys/rel.key'), '--log', join(d, 'att'), '-o', join(d, out), '--json', ...extra]);
  digests[out] = s.digest;
}

beforeAll(async () => {
  d = makeTmpDir('bpfseal-inside-');
  keyId = (await json<{ keyId: string }>(['keygen', '--out', join(d, 'keys'), '--name', 'rel', '--json'])).keyId;
  await sign('minimal', 'minimal.bpfseal', ['--version', '5', '--builder', 'ci=github', '--builder', 'run=42']);
  await sign('globals', 'globals.bpfseal', ['--cert', join(d, 'keys/rel.crt'), '--version', '2']);
  await sign('externs', 'externs.bpfseal', ['--cert', join(d, 'keys/rel.crt')]);
  await sign('minimal', 'nolog.bpfseal', ['--no-log']);
});

afterAll(() => {
  removePinDirs();
  cleanupTmpDirs();
});

const releaseDoc = (name: string) => JSON.parse(readFileSync(join(d, name), 'utf8'));

describe('inspect <release>', () => {
  it('says what the release claims and carries, and that none of it is verified', async () => {
    const r = await runCli(['inspect', join(d, 'minimal.bpfseal')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^release .*minimal\.bpfseal/);
    expect(r.stdout).toContain('NOT VERIFIED');
    expect(r.stdout).toContain('run: bpfseal verify');
    expect(r.stdout).toContain(`plan      minimal  ${digests['minimal.bpfseal']}  (the signed subject; matches the plan bytes)`);
    expect(r.stdout).toMatch(/^ {2}version {3}5$/m);
    expect(r.stdout).toContain(`signer    key ${keyId}`);
    expect(r.stdout).toContain('builder   ci=github  run=42');
    expect(r.stdout).toContain('kernel signatures: none (signed without --cert)');
    // Then the plan, exactly as inspect describes the object it came from.
    const obj = await runCli(['inspect', fixturePath('minimal')]);
    expect(r.stdout.endsWith(obj.stdout)).toBe(true);
  });

  it('--json: a `release` object beside the plan document inspect gives for the object', async () => {
    const j = await json(['inspect', join(d, 'minimal.bpfseal'), '--json']);
    const { release, ...planDoc } = j;
    expect(planDoc).toEqual(await json(['inspect', fixturePath('minimal'), '--json']));
    expect(release).toMatchObject({
      mediaType: 'application/vnd.bpfseal.release.v1+json', verified: false,
      plan: { name: 'minimal', digest: digests['minimal.bpfseal'], subjectMatches: true },
      version: 5, signer: { kind: 'key', keyId }, builder: { ci: 'github', run: '42' }, tool: { name: 'bpfseal' }, timestamps: 0,
      kernelSignatures: { certificate: null, loader: { signed: false }, programs: [{ program: 'xdp_pass', signed: false, kernels: '6.18-7.2', reason: 'signed without --cert' }] },
    });
    expect(release.notice).toMatch(/^not verified: .*bpfseal verify/);
    // The log entry as the bundle holds it, read here independently of bpfseal's decoder.
    const e = releaseDoc('minimal.bpfseal').bundle.verificationMaterial.tlogEntries[0];
    const [origin, size, root] = e.inclusionProof.checkpoint.envelope.split('\n');
    expect(release.log).toEqual([{
      origin, logId: Buffer.from(e.logId.keyId, 'base64').toString('hex'), index: Number(e.logIndex ?? 0), kind: 'dsse 0.0.1',
      integratedTime: new Date(Number(e.integratedTime) * 1000).toISOString().replace('.000Z', 'Z'), signedEntryTimestamp: true,
      checkpoint: { size: Number(size), rootHash: Buffer.from(root, 'base64').toString('hex') },
    }]);
    expect(release.signedAt).toEqual({ time: release.log[0].integratedTime, source: 'log' });
    // And the entry is the log's: log show lists the same index with the same digest.
    const shown = (await json<any[]>(['log', 'show', '--log', join(d, 'att'), '--json'])).find((x) => x.index === release.log[0].index);
    expect(shown).toMatchObject({ kind: 'attestation', plan: 'minimal', version: 5, digest: digests['minimal.bpfseal'] });
  });

  it('with --cert: the signed loader (7.3+) and a signature per program (6.18-7.2), and the certificate they need', async () => {
    const { release } = await json(['inspect', join(d, 'globals.bpfseal'), '--json']);
    const crt = readFileSync(join(d, 'keys/rel.crt'), 'utf8');
    const der = Buffer.from(crt.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    expect(release.kernelSignatures.certificate).toMatchObject({ subject: 'CN=rel', keyId, signerKey: true, sha256: sha256hex(der) });
    const claimed = JSON.parse(Buffer.from(releaseDoc('globals.bpfseal').bundle.dsseEnvelope.payload, 'base64').toString()).predicate.loader.sha256;
    expect(release.kernelSignatures.loader).toEqual({ signed: true, kernels: '7.3+', sha256: `sha256:${claimed}`, matchesPlan: true });
    expect(release.kernelSignatures.programs).toEqual([
      { program: 'xdp_globals', signed: true, kernels: '6.18-7.2' },
      { program: 'socket_printk', signed: true, kernels: '6.18-7.2' },
    ]);
    const t = (await runCli(['inspect', join(d, 'globals.bpfseal')])).stdout;
    expect(t).toContain(`loader    signed  sha256:${claimed}  for kernels 7.3+`);
    expect(t).toMatch(/^ {6}xdp_globals {2}signed$/m);
  });

  it('programs the host patches carry no per-program signature; the loader and the host inputs say what covers them', async () => {
    const j = await json(['inspect', join(d, 'externs.bpfseal'), '--json']);
    expect(j.release.kernelSignatures.loader.signed).toBe(true);
    for (const p of j.release.kernelSignatures.programs) expect(p).toMatchObject({ signed: false, reason: 'host fix-ups change its bytes' });
    expect(j.loader.hostInputs).toEqual([{ kind: 'kconfig', map: '.kconfig', bytes: 9 }]);
    expect(j.loader.resolvedByKernel.map((r: { name: string }) => r.name)).toContain('bpf_task_from_pid');
    const t = (await runCli(['inspect', join(d, 'externs.bpfseal')])).stdout;
    expect(t).toContain('not signed (host fix-ups change its bytes)');
    expect(t).toContain("host inputs (from the load's context, not signed; recorded in the host log): kconfig of '.kconfig' (9 bytes)");
  });

  it('--disasm as for plans', async () => {
    const j = await json(['inspect', join(d, 'globals.bpfseal'), '--json', '--disasm']);
    expect(Object.keys(j.disassembly)).toEqual(['xdp_globals', 'socket_printk']);
    expect(j.disassembly).toEqual((await json(['inspect', fixturePath('globals'), '--json', '--disasm'])).disassembly);
    const t = (await runCli(['inspect', join(d, 'globals.bpfseal'), '--disasm'])).stdout;
    expect(t.endsWith((await runCli(['inspect', fixturePath('globals'), '--disasm'])).stdout)).toBe(true);
  });

  it('a release without a log entry says it records no time', async () => {
    const { release } = await json(['inspect', join(d, 'nolog.bpfseal'), '--json']);
    expect(release.log).toEqual([]);
    expect(release.signedAt).toBeNull();
    expect((await runCli(['inspect', join(d, 'nolog.bpfseal')])).stdout).toContain('signed    no time recorded');
  });

  it('a plan swapped for another is shown as not matching the signed subject (still exit 0: inspect judges nothing)', async () => {
    const doc = releaseDoc('minimal.bpfseal');
    expect((await runCli(['plan', fixturePath('globals'), '-o', join(d, 'g.plan')])).code).toBe(0);
    doc.plan = readFileSync(join(d, 'g.plan')).toString('base64');
    writeFileSync(join(d, 'swapped.bpfseal'), JSON.stringify(doc, null, 2) + '\n');
    const j = await json(['inspect', join(d, 'swapped.bpfseal'), '--json']);
    expect(j.release.plan).toEqual({ name: 'minimal', digest: digests['minimal.bpfseal'], subjectMatches: false });
    expect(j.name).toBe('globals');
    expect((await runCli(['inspect', join(d, 'swapped.bpfseal')])).stdout).toContain('DOES NOT match the plan bytes');
    // verify agrees that this release is bad.
    expect((await runCli(['verify', join(d, 'swapped.bpfseal'), '--key', join(d, 'keys/rel.pub')])).code).toBe(1);
  });

  it.each([
    ['truncated', (b: Buffer) => b.subarray(0, b.length >> 1), 'RELEASE_INVALID'],
    ['garbage', () => Buffer.from('this is not a release\n'), 'RELEASE_INVALID'],
    ['edited (not canonical)', (b: Buffer) => Buffer.from(b.toString().replace('\n  "plan"', '\n "plan"')), 'RELEASE_INVALID'],
    ['empty JSON object', () => Buffer.from('{}\n'), 'RELEASE_INVALID'],
    ['truncated-plan', (b: Buffer) => {
      const doc = JSON.parse(b.toString());
      doc.plan = Buffer.from(doc.plan, 'base64').subarray(0, 40).toString('base64');
      return Buffer.from(JSON.stringify(doc, null, 2) + '\n');
    }, /^PLAN_/],
  ])('a %s release is refused with exit 2 and a JSON error document', async (name, mutate, code) => {
    const f = join(d, `bad-${name.replace(/\W+/g, '-')}.bpfseal`);
    writeFileSync(f, mutate(readFileSync(join(d, 'minimal.bpfseal'))));
    const r = await runCli(['inspect', f, '--json']);
    expect(r.code, r.stderr).toBe(2);
    const { error } = JSON.parse(r.stdout);
    expect(error).toEqual({ code: expect.stringMatching(code), message: expect.stringMatching(/^(not a bpfseal )?release/), file: f, exit: 2 });
    expect(r.stderr).toContain(`bpfseal: ${f}: ${error.code}: `);
    expect((await runCli(['inspect', f])).stdout).toBe('');
  });

  it('--section-type does not apply to a release (its plan is signed as it is)', async () => {
    const r = await runCli(['inspect', join(d, 'minimal.bpfseal'), '--section-type', 'x=xdp']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('USAGE_SECTION_TYPE');
  });
});

describe('log show', () => {
  it('one line per entry: index, time, what it records, plan and version, signer, short digest', async () => {
    const r = await runCli(['log', 'show', '--log', join(d, 'att')]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.replace(/\n$/, '').split('\n');
    expect(lines).toHaveLength(3); // nolog.bpfseal is not in the log
    const short = (s: string) => s.slice(0, 'sha256:'.length + 12);
    expect(lines[0]).toMatch(new RegExp(`^ +0  \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ +attestation +minimal v5 +key ${keyId.slice(0, 16)} +${short(digests['minimal.bpfseal'])}$`));
    expect(lines[1]).toContain(`globals v2`);
    expect(lines[2]).toContain(short(digests['externs.bpfseal']));
    expect(r.stdout).not.toContain(digests['minimal.bpfseal']); // short on a terminal
  });

  it('--json keeps index, leafHash, bytes and entry, and adds time, kind, plan, version, digest (full), signer', async () => {
    const j = await json<any[]>(['log', 'show', '--log', join(d, 'att'), '--json']);
    expect(j.map((e) => [e.plan, e.version, e.digest])).toEqual([['minimal', 5, digests['minimal.bpfseal']], ['globals', 2, digests['globals.bpfseal']], ['externs', 1, digests['externs.bpfseal']]]);
    for (const e of j) {
      expect(e).toMatchObject({ kind: 'attestation', envelope: 'found', signer: { keyId }, predicateType: 'https://bpfseal.dev/attestation/bpf-loader-plan/v1' });
      expect(e.entry).toMatchObject({ kind: 'dsse', apiVersion: '0.0.1' });
      expect(e.leafHash).toMatch(/^[0-9a-f]{64}$/);
      expect(e.bytes).toBe(Buffer.byteLength(JSON.stringify(e.entry)));
      expect(Date.parse(e.time)).not.toBeNaN();
    }
  });

  it('an envelope missing from beside the log: the entry is still listed, with its signer, and says so', async () => {
    const att = makeTmpDir('bpfseal-inside-log-');
    await runCli(['sign', fixturePath('minimal'), '--key', join(d, 'keys/rel.key'), '--log', att, '-o', join(att, 'm.bpfseal')]);
    for (const f of readdirSync(join(att, 'envelopes'))) rmSync(join(att, 'envelopes', f));
    const [e] = await json<any[]>(['log', 'show', '--log', att, '--json']);
    expect(e).toMatchObject({ kind: 'dsse', envelope: 'missing', signer: { keyId } });
    expect(e.plan).toBeUndefined();
    expect((await runCli(['log', 'show', '--log', att])).stdout).toContain('(envelope not beside the log)');
  });

  it.skipIf(!canBpf)('a host log: each load decision with its plan, version, signer and digest', async () => {
    const pin = newPinDir();
    const hl = join(d, 'hl');
    const l = await runCli(['load', join(d, 'minimal.bpfseal'), '--key', join(d, 'keys/rel.pub'), '--pin', pin, '--host-log', hl, '--state', join(d, 'st.json')]);
    expect(l.code, l.stderr).toBe(0);
    expect((await runCli(['unload', pin, '--host-log', hl])).code).toBe(0);
    const j = await json<any[]>(['log', 'show', '--log', hl, '--json']);
    const loads = j.filter((e) => e.kind === 'load');
    expect(loads.map((e) => e.decision)).toEqual(['allowed', 'unloaded']);
    expect(loads[0]).toMatchObject({ plan: 'minimal', version: 5, digest: digests['minimal.bpfseal'], signer: { keyId } });
    const t = (await runCli(['log', 'show', '--log', hl])).stdout;
    expect(t).toMatch(/load allowed +minimal v5/);
  });
});

describe('features / version', () => {
  it('features --json: the same answers as the probes load and preflight use', async () => {
    const f = await json(['features', '--json']);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(f).toMatchObject({ bpfseal: pkg.version, node: process.version, kernel: { release: osRelease(), arch: process.arch }, uid: process.getuid!() });
    expect(f.bpf.permitted).toBe(canUseBpf());
    let mounted = false;
    try {
      mounted = statfsSync('/sys/fs/bpf').type === 0xcafe4a11;
    } catch { /* not there */ }
    expect(f.bpffs).toEqual({ path: '/sys/fs/bpf', mounted });
    const lsm = lsmProbe();
    expect(f.lsm).toEqual({ readable: !!lsm.lsms, active: lsm.lsms ?? [], bpf: lsm.bpfLsm ?? false });
    if (canUseBpf()) {
      const p = signatureProbe();
      expect(f.signatures).toEqual({ verification: p.support === 'program' ? 'per-program' : p.support, answer: p.answer });
      expect(f.load).toEqual(p.support === 'loader' ? { loader: 'kernel', kernelVerifies: 'loader' } : { loader: 'user', kernelVerifies: p.support === 'program' ? 'programs' : 'none' });
    } else {
      expect(f.signatures.verification).toBe('unknown');
    }
    expect(typeof f.enforce.possible).toBe('boolean');
    if (!f.enforce.possible) expect(f.enforce.reasons.length).toBeGreaterThan(0);
  });

  it.skipIf(!canBpf)('what features says load --loader auto does is what a real load of a --cert release does here', async () => {
    const f = await json(['features', '--json']);
    const pin = newPinDir();
    const hl = join(d, 'hl-features');
    const l = await json(['load', join(d, 'globals.bpfseal'), '--key', join(d, 'keys/rel.pub'), '--pin', pin, '--host-log', hl, '--state', join(d, 'st-features.json'), '--json']);
    expect((await runCli(['unload', pin, '--host-log', hl])).code).toBe(0);
    expect({ loader: l.loader, kernelVerifies: l.kernelVerified }).toEqual(f.load);
  });

  it.skipIf(!canBpf || !osRelease().startsWith('6.18'))('on this 6.18 host the kernel verifies no signature (EOPNOTSUPP)', async () => {
    const f = await json(['features', '--json']);
    expect(f.signatures).toEqual({ verification: 'none', answer: 'EOPNOTSUPP' });
  });

  it('features prints one line per probe; version prints the versions; version --json is the features document', async () => {
    const t = await runCli(['features']);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/^bpfseal \S+ {2}node v\S+ {2}kernel /);
    for (const k of ['bpf(2)', 'bpffs /sys/fs/bpf', 'signature verification', 'BPF LSM', 'bpfseal enforce', 'load --loader auto']) expect(t.stdout).toMatch(new RegExp(`^${k.replace(/[()/]/g, '\\$&')} +\\S`, 'm'));
    const v = await runCli(['version']);
    expect(v.stdout).toBe(`bpfseal ${(await json(['features', '--json'])).bpfseal}\nnode ${process.version}\nkernel ${osRelease()} (${process.arch})\n`);
    expect(await json(['version', '--json'])).toEqual(await json(['features', '--json']));
    expect((await runCli(['--version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
