/**
 * The host side of the audit, on the real kernel (skipped when bpf(2) is not permitted): `load --pin`
 * recording allowed and refused decisions in the host load log, undoing a load it cannot record, and
 * `audit --kernel`'s JSON and text for loaded programs (attested by the host-log load that made them;
 * known by code only; unattested), with a damaged host log. The attribution rules on the real kernel:
 * audit-kernel-truth.test.ts.
 *
 * Other processes load BPF programs concurrently, so assertions concern only programs loaded here:
 * every signed object is a minimal.o variant with a unique return value (hence a unique kernel tag and
 * plan name), found by the id from the load JSON or by that tag. Pins go to unique
 * /sys/fs/bpf/bpfseal-audit-<pid>-<n> directories, removed after each test.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTmpDirs, makeTmpDir, requireDist } from './helpers/paths.js';
import { bundleWith } from './helpers/tlog-files.js';
import { probeBpf } from './helpers/kernel.js';
import {
  cliJson, copyDir, type Key, kernelTestResources, eventually, foreignSocketFilter, hostDecisions, kernelTagOf, programExists, programIdsWithTag,
  runCli, show, signOk, writeVariant,
} from './helpers/audit.js';

const probe = probeBpf();
if (!probe.ok) console.warn(`audit-kernel.test.ts: skipping every test: ${probe.why}`);

let work: string;
let k: Key;
let other: Key;
let att: string;
let out: string;
let seq = 0;
const fresh = (name: string) => join(work, `${seq++}-${name}`);

const { pins, fds } = kernelTestResources();

async function keygen(name: string): Promise<Key> {
  const r = await cliJson<Key>(['keygen', '--out', join(work, 'keys'), '--name', name, '--json']);
  if (r.code !== 0 || !r.json) throw new Error(`keygen failed: ${show(r)}`);
  return r.json;
}

beforeAll(async () => {
  if (!probe.ok) return;
  requireDist();
  work = makeTmpDir('bpfseal-audit-kernel-');
  k = await keygen('k');
  other = await keygen('other');
  att = fresh('att');
  out = fresh('rel');
  mkdirSync(out);
});
afterAll(cleanupTmpDirs);

/** Sign a fresh unique variant into the attestation log (or --no-log). */
async function release(plan: string, logArgs: string[] = ['--log', att]): Promise<{ release: string; digest: string; insns: Buffer }> {
  const v = writeVariant(work, plan);
  const s = await signOk(v.path, k.key, out, logArgs);
  return { release: s.release, digest: s.digest, insns: v.insns };
}

interface LoadJson { plan: string; digest: string; version: number; signer: { name: string; keyId: string }; programs: { name: string; id: number; tag: string }[]; pins: string[] }

async function loadPin(rel: string, hostLog: string, key = k.pub): Promise<{ code: number | null; json: LoadJson | undefined; pin: string; r: Awaited<ReturnType<typeof runCli>> }> {
  const pin = pins.next();
  const r = await cliJson<LoadJson>(['load', rel, '--key', key, '--state', fresh('state.json'), '--host-log', hostLog, '--pin', pin, '--json']);
  return { code: r.code, json: r.json, pin, r };
}

describe.skipIf(!probe.ok)('load --pin and the host load log', () => {
  it('an allowed load appends a decision: plan, digest, version, signer, programs (ids, tags), pins; the host log verifies', async () => {
    const rel = await release('hk-allowed');
    const hl = fresh('host-log');
    const l = await loadPin(rel.release, hl);
    expect(l.code, show(l.r)).toBe(0);
    const rec = l.json!;
    expect(rec.programs).toHaveLength(1);
    const prog = rec.programs[0];
    expect(programExists(prog.id)).toBe(true);
    expect(prog.tag).toBe(kernelTagOf(rel.insns));
    const ds = await hostDecisions(hl);
    expect(ds).toHaveLength(1);
    expect(ds[0]).toMatchObject({
      type: 'bpfseal.load/v1', decision: 'allowed', release: rel.release, plan: 'hk-allowed', digest: rel.digest, version: 1,
      signer: { keyId: k.keyId }, programs: [{ name: 'xdp_pass', id: prog.id, tag: prog.tag }], pins: rec.pins,
    });
    expect(rec.pins).toContain(join(l.pin, 'xdp_pass'));
    expect(Date.parse(ds[0].time)).not.toBeNaN();
    expect(ds[0].code).toBeUndefined();
    const v = await cliJson(['log', 'verify', '--log', hl, '--json']);
    expect(v.code, show(v)).toBe(0);
    expect(v.json).toMatchObject({ ok: true, size: 1 });
  });

  it('a refused load (untrusted key) appends a refused decision with UNTRUSTED_SIGNER, exits 1 and pins nothing', async () => {
    const rel = await release('hk-refused');
    const hl = fresh('host-log');
    const l = await loadPin(rel.release, hl, other.pub);
    expect(l.code, show(l.r)).toBe(1);
    expect(existsSync(l.pin)).toBe(false);
    const ds = await hostDecisions(hl);
    expect(ds).toHaveLength(1);
    expect(ds[0]).toMatchObject({ type: 'bpfseal.load/v1', decision: 'refused', release: rel.release, code: 'UNTRUSTED_SIGNER' });
    expect(ds[0].reason).toContain(k.keyId);
    expect(ds[0].programs).toBeUndefined();
    const tag = kernelTagOf(rel.insns); // loads (and closes) a probe program with that tag
    expect(await eventually(() => programIdsWithTag(tag).length === 0)).toBe(true);
    expect((await runCli(['log', 'verify', '--log', hl])).code).toBe(0);
  });

  it('decisions accumulate in order; a dry run appends nothing', async () => {
    const rel = await release('hk-seq');
    const hl = fresh('host-log');
    expect((await loadPin(rel.release, hl, other.pub)).code).toBe(1);
    const ok = await loadPin(rel.release, hl);
    expect(ok.code, show(ok.r)).toBe(0);
    const dry = await runCli(['load', rel.release, '--dry-run', '--key', k.pub, '--state', fresh('state.json'), '--host-log', hl]);
    expect(dry.code, show(dry)).toBe(0);
    const dryRefused = await runCli(['load', rel.release, '--dry-run', '--key', other.pub, '--state', fresh('state.json'), '--host-log', hl]);
    expect(dryRefused.code).toBe(1);
    expect((await hostDecisions(hl)).map((d) => d.decision)).toEqual(['refused', 'allowed']);
    expect((await cliJson(['log', 'verify', '--log', hl, '--json'])).json).toMatchObject({ ok: true, size: 2 });
  });

  it('when the host log cannot be written, load --pin fails (exit 2), leaves no pins and unloads what it loaded', async () => {
    const rel = await release('hk-unrecorded');
    const tag = kernelTagOf(rel.insns);
    // The probe program above is ours alone (unique instructions); wait until the kernel has freed it.
    expect(await eventually(() => programIdsWithTag(tag).length === 0)).toBe(true);
    const hl = fresh('host-log-file');
    writeFileSync(hl, 'not a directory\n');
    const l = await loadPin(rel.release, hl);
    expect(l.code, show(l.r)).toBe(2);
    expect((await l.r).stderr).toMatch(/host log/);
    expect((await l.r).stderr).toMatch(/undone/);
    // --json still gives one document: the error, with its code and exit status.
    expect(l.json).toMatchObject({ error: { code: 'HOST_LOG_FAILED', exit: 2 } });
    expect(existsSync(l.pin)).toBe(false);
    expect(readFileSync(hl, 'utf8')).toBe('not a directory\n');
    // Whatever program id it loaded (the only programs with this tag) is gone once the kernel frees it.
    expect(await eventually(() => programIdsWithTag(tag).length === 0)).toBe(true);
  });

  // Regression: the anti-rollback state is written inside the replay transaction, before the host log
  // records the load; when recording fails the undo must also give back the raised floor.
  it('an undone (unrecorded) load does not raise the anti-rollback floor', async () => {
    const v = writeVariant(work, 'hk-floor');
    const v5 = (await signOk(v.path, k.key, out, ['--log', att, '--version', '5'])).release;
    const dir4 = fresh('rel4');
    mkdirSync(dir4);
    const v4 = (await signOk(v.path, k.key, dir4, ['--log', att, '--version', '4'])).release;
    const state = fresh('state.json');
    const hlFile = fresh('host-log-file');
    writeFileSync(hlFile, 'x');
    const failed = await cliJson(['load', v5, '--key', k.pub, '--state', state, '--host-log', hlFile, '--pin', pins.next()]);
    expect(failed.code, show(failed)).toBe(2);
    expect(failed.stderr).toMatch(/undone/);
    const older = await cliJson(['load', v4, '--key', k.pub, '--state', state, '--host-log', fresh('host-log'), '--pin', pins.next()]);
    expect(older.stderr).not.toMatch(/already loaded on this host/);
    expect(older.code, show(older)).toBe(0);
  });

  it('a load into a pin dir already in use is refused before anything is loaded', async () => {
    const rel = await release('hk-inuse');
    const hl = fresh('host-log');
    const first = await loadPin(rel.release, hl);
    expect(first.code, show(first.r)).toBe(0);
    const again = await cliJson(['load', rel.release, '--key', k.pub, '--state', fresh('state.json'), '--host-log', hl, '--pin', first.pin, '--json']);
    expect(again.code, show(again)).toBe(2);
    expect(programIdsWithTag(first.json!.programs[0].tag)).toEqual([first.json!.programs[0].id]);
  });
});

interface Finding { code: string; message: string; index?: number }

interface KernelAuditJson {
  kernel: { programs: { id: number; name: string; type: string; tag: string; status: string; code: string; attested: boolean; matches: { plan: string; digest?: string; program: string; source: string }[] }[]; hostLog?: { dir: string; decisions: number }; findings: Finding[] };
  findings: Finding[];
  entries: { plan?: string; status: string }[];
}

function auditKernel(hl: string, key = k.pub, log = att): ReturnType<typeof cliJson<KernelAuditJson>> {
  return cliJson<KernelAuditJson>(['audit', '--kernel', '--log', log, '--key', key, '--host-log', hl, '--state', fresh('audit.checkpoint'), '--json']);
}

describe.skipIf(!probe.ok)('audit --kernel', () => {
  it('a program loaded from a logged, signed release is attested (plan named); a program loaded outside bpfseal is not, exit 1', async () => {
    const rel = await release('ka-signed');
    const hl = fresh('host-log');
    const l = await loadPin(rel.release, hl);
    expect(l.code, show(l.r)).toBe(0);
    const id = l.json!.programs[0].id;
    const foreign = foreignSocketFilter(`bpfseal_a${process.pid % 100000}`);
    fds.push(foreign.fd);
    const a = await auditKernel(hl);
    expect(a.code, show(a)).toBe(1);
    const progs = a.json!.kernel.programs;
    const mine = progs.find((p) => p.id === id);
    expect(mine, 'the loaded program is listed').toBeDefined();
    expect(mine).toMatchObject({ name: 'xdp_pass', type: 'xdp', tag: l.json!.programs[0].tag, attested: true });
    expect(mine!.matches).toEqual(expect.arrayContaining([
      { plan: 'ka-signed', digest: rel.digest, program: 'xdp_pass', source: 'attestation-log' },
      { plan: 'ka-signed', digest: rel.digest, program: 'xdp_pass', source: 'host-log' },
    ]));
    const theirs = progs.find((p) => p.id === foreign.id);
    expect(theirs, 'the foreign program is listed').toBeDefined();
    expect(theirs).toMatchObject({ name: foreign.name, type: 'socket_filter', attested: false, matches: [] });
    expect(a.json!.findings).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'PROGRAM_UNATTESTED', message: expect.stringContaining(`kernel program ${foreign.id} '${foreign.name}'`) })]));
    expect(a.json!.findings.some((f) => f.message.includes(`kernel program ${id} `))).toBe(false);
    expect(a.json!.kernel.hostLog).toMatchObject({ dir: hl, decisions: 1, size: 1 });
    // Text form: the same verdicts.
    const t = await runCli(['audit', '--kernel', '--log', att, '--key', k.pub, '--host-log', hl, '--state', fresh('audit.checkpoint')]);
    expect(t.code).toBe(1);
    expect(t.stdout).toMatch(new RegExp(`id ${id} .*attested: .*ka-signed/xdp_pass`));
    expect(t.stdout).toMatch(new RegExp(`id ${foreign.id} .*UNATTESTED`));
  });

  it('a release signed with --no-log but loaded here is attested by the host log alone', async () => {
    const rel = await release('ka-hostonly', ['--no-log']);
    const hl = fresh('host-log');
    const l = await loadPin(rel.release, hl);
    expect(l.code, show(l.r)).toBe(0);
    const id = l.json!.programs[0].id;
    const a = await auditKernel(hl);
    const mine = a.json!.kernel.programs.find((p) => p.id === id);
    expect(mine, show(a)).toBeDefined();
    expect(mine!.attested).toBe(true);
    expect(mine!.matches).toEqual([{ plan: 'ka-hostonly', digest: rel.digest, program: 'xdp_pass', source: 'host-log' }]);
  });

  // Before attribution by load, a tag in the attestation log was enough; now the code is only known.
  it('a logged release loaded under another host log is known-code, not attested; untrusted entries do not even make it known', async () => {
    const rel = await release('ka-attonly');
    const l = await loadPin(rel.release, fresh('host-log'));
    expect(l.code, show(l.r)).toBe(0);
    const id = l.json!.programs[0].id;
    const empty = fresh('no-host-log');
    const a = await auditKernel(empty);
    expect(a.code).toBe(1);
    const mine = a.json!.kernel.programs.find((p) => p.id === id);
    expect(mine, show(a)).toBeDefined();
    expect(mine).toMatchObject({ status: 'known-code', code: 'PROGRAM_KNOWN_CODE', attested: false });
    expect(mine!.matches.map((m) => m.source)).toEqual(['attestation-log']);
    expect(a.json!.kernel.hostLog).toBeUndefined();
    expect(a.json!.findings).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'PROGRAM_KNOWN_CODE', message: expect.stringContaining(`kernel program ${id} `) })]));
    // Judged under a key that does not trust the signer: the entry is untrusted, so it attests nothing.
    const u = await auditKernel(empty, other.pub);
    expect(u.code).toBe(1);
    const again = u.json!.kernel.programs.find((p) => p.id === id);
    expect(again).toMatchObject({ status: 'unattested', attested: false, matches: [] });
    expect(u.json!.findings.some((f) => f.message.includes(`kernel program ${id} `))).toBe(true);
  });

  // Regression: a host log that openLog() rejects (checkpoint signature, short entries file, bad
  // log.json) is a finding in the report, like one that openLog accepts but verifyAll rejects.
  it.each([
    ['a forged checkpoint', (d: string) => {
      const lines = readFileSync(join(d, 'checkpoint'), 'utf8').split('\n');
      lines[1] = '0';
      writeFileSync(join(d, 'checkpoint'), lines.join('\n'));
    }],
    ['a truncated entry bundle', (d: string) => writeFileSync(bundleWith(d, '{'), readFileSync(bundleWith(d, '{')).subarray(0, 10))],
  ] as const)('a host log with %s is a finding in the report (exit 1), not an aborted audit', async (_what, damage) => {
    const rel = await release(`ka-openfail-${seq}`, ['--no-log']);
    const hl = fresh('host-log');
    expect((await loadPin(rel.release, hl)).code).toBe(0);
    damage(hl);
    const a = await auditKernel(hl);
    expect(a.code, show(a)).toBe(1);
    expect(a.json, `no JSON report: ${show(a)}`).toBeDefined();
    expect(a.json!.findings.map((f) => f.message).join('\n')).toMatch(/host log .* does not verify/);
  });

  it('a damaged host log is a finding and its decisions attest nothing', async () => {
    const rel = await release('ka-damaged', ['--no-log']);
    const hl = fresh('host-log');
    const l = await loadPin(rel.release, hl);
    expect(l.code, show(l.r)).toBe(0);
    const id = l.json!.programs[0].id;
    const damaged = fresh('host-log-damaged');
    copyDir(hl, damaged);
    const p = bundleWith(damaged, '"decision":"allowed"');
    const b = readFileSync(p);
    const at = b.indexOf('"decision":"allowed"') + '"decision":"'.length;
    b.write('A', at); // "Allowed": same length, still JSON
    writeFileSync(p, b);
    expect((await runCli(['log', 'verify', '--log', damaged])).code).toBe(1);
    const a = await auditKernel(damaged);
    expect(a.code, show(a)).toBe(1);
    expect(a.json!.findings.map((f) => f.message).join('\n')).toMatch(/host log .* does not verify/);
    expect(a.json!.kernel.programs.find((x) => x.id === id)).toMatchObject({ attested: false });
    // The intact log still attests it.
    expect((await auditKernel(hl)).json!.kernel.programs.find((x) => x.id === id)).toMatchObject({ attested: true });
  });
});
