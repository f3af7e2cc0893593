/**
 * Kernel truth (issue 11), on the real kernel (skipped when bpf(2) is not permitted): audit --kernel
 * attributes each loaded program to the host-log load that created it, then to its code.
 *   - a bpfseal load (user-space replay, the kernel loader, a plan with .rodata and one with .kconfig)
 *     is attested, with its record and evidence;
 *   - the same object loaded with `bpftool prog loadall` is known-code; the same instructions loaded
 *     as another program type are unattested; an unknown program is unattested;
 *   - a recorded load whose frozen .rodata was created with other contents, or that got another map
 *     bound (BPF_PROG_BIND_MAP), is modified; an unloaded load attests nothing;
 *   - a record carrying another boot id never matches;
 *   - accept rules (--accept, policy kernelAudit.accept) report programs as accepted;
 *   - --attest appends a signed report that verify-report and log prove check offline.
 * Other processes load BPF concurrently: every assertion concerns ids made here. minimal.o variants
 * have unique instructions (so tags are ours alone); pins go to /sys/fs/bpf/bpfseal-audit-<pid>-<n>.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mapCreate, objGet, progInfo, progLoad } from '../src/kernel/bpf.js';
import type { Fd } from '../src/kernel/fd.js';
import { bpf } from '../src/kernel/sys.js';
import { recordDecision } from '../src/hostlog/hostlog.js';
import { bootId, type LoadDecision } from '../src/hostlog/records.js';
import { realKernel } from '../src/runtime/backend.js';
import { commitLoad } from '../src/runtime/commit.js';
import { replay } from '../src/runtime/replay.js';
import { pinsInPlace } from '../src/runtime/unload.js';
import { encodePlan } from '../src/plan/codec.js';
import { probeBpf } from './helpers/kernel.js';
import { kernelAudit } from '../src/audit/kernel-report.js';
import { loadTinyPrograms, writeHostLog } from '../src/bench/kernel-audit.js';
import { loadPlan, planCopy } from './helpers/plans.js';
import { cleanupTmpDirs, fixturePath, makeTmpDir, requireDist } from './helpers/paths.js';
import { cliJson, foreignSocketFilter, hostDecisions, type Key, kernelTestResources, runCli, show, signOk, variantInsns, writeVariant } from './helpers/audit.js';

const probe = probeBpf();
if (!probe.ok) console.warn(`audit-kernel-truth.test.ts: skipping every test: ${probe.why}`);
const bpftool = spawnSync('bpftool', ['version'], { encoding: 'utf8' }).status === 0;
if (probe.ok && !bpftool) console.warn('audit-kernel-truth.test.ts: bpftool is not installed: skipping the test that loads with bpftool behind bpfseal\'s back');

interface Evidence { check: string; result: string; message: string; map?: string }
interface Prog { id: number; name: string; type: string; tag: string; status: string; code: string; attested: boolean; mapIds: number[]; uid: number; loadTime?: string; matches: { source: string; plan: string }[]; record?: { hostLogIndex: number; loadId: string; plan: string; digest?: string; version?: number; signer?: { keyId?: string }; loader?: string }; evidence: Evidence[]; accepted?: { reason: string; rule: string; status: string } }
interface AuditJson { kernel: { programs: Prog[]; bootId: string; summary: Record<string, number>; hostLog?: { size: number; rootHash: string }; findings: { code: string; message: string }[] }; findings: { code: string; message: string }[]; report?: { hostLogIndex: number; output?: string } }

let work: string;
let k: Key;
let att: string;
let out: string;
let seq = 0;
const fresh = (name: string) => join(work, `${seq++}-${name}`);
const { pins, fds } = kernelTestResources();

beforeAll(async () => {
  if (!probe.ok) return;
  requireDist();
  work = makeTmpDir('bpfseal-kernel-truth-');
  const r = await cliJson<Key>(['keygen', '--out', join(work, 'keys'), '--name', 'k', '--json']);
  if (r.code !== 0 || !r.json) throw new Error(`keygen failed: ${show(r)}`);
  k = r.json;
  att = fresh('att');
  out = fresh('rel');
  mkdirSync(out);
  await signVariant('kt-first'); // the attestation log every audit here reads exists, whichever tests run
});
afterAll(cleanupTmpDirs);

async function signVariant(plan: string, extra: string[] = ['--log', att]): Promise<{ release: string; digest: string; obj: string; ret: number }> {
  const v = writeVariant(work, plan);
  const s = await signOk(v.path, k.key, out, extra);
  return { release: s.release, digest: s.digest, obj: v.path, ret: v.ret };
}

async function load(rel: string, hostLog: string, extra: string[] = []): Promise<{ id: number; ids: Record<string, number>; pin: string }> {
  const pin = pins.next();
  const r = await cliJson<{ programs: { name: string; id: number }[] }>(['load', rel, '--key', k.pub, '--state', fresh('state.json'), '--host-log', hostLog, '--pin', pin, '--json', ...extra]);
  if (r.code !== 0 || !r.json) throw new Error(`load failed: ${show(r)}`);
  return { id: r.json.programs[0].id, ids: Object.fromEntries(r.json.programs.map((p) => [p.name, p.id])), pin };
}

async function audit(hostLog: string, extra: string[] = []): Promise<{ code: number | null; json: AuditJson; prog: (id: number) => Prog; text: string }> {
  const r = await cliJson<AuditJson>(['audit', '--kernel', '--log', att, '--key', k.pub, '--host-log', hostLog, '--state', fresh('audit-state.json'), '--json', ...extra]);
  if (!r.json) throw new Error(`audit --kernel printed no JSON: ${show(r)}`);
  const json = r.json;
  return {
    code: r.code, json, text: show(r),
    prog: (id) => {
      const p = json.kernel.programs.find((x) => x.id === id);
      if (!p) throw new Error(`program ${id} is not in the audit: ${show(r)}`);
      return p;
    },
  };
}

const differs = (p: Prog) => p.evidence.filter((e) => e.result === 'differs');

describe.skipIf(!probe.ok)('audit --kernel: attribution by load', () => {
  it('a bpfseal load is attested: status, record (host-log index, digest, signer, version, load id) and evidence that all checks hold', async () => {
    const rel = await signVariant('kt-attested');
    const hl = fresh('host-log');
    const l = await load(rel.release, hl);
    const a = await audit(hl);
    const p = a.prog(l.id);
    const rec = (await hostDecisions(hl))[0];
    expect(p).toMatchObject({ status: 'attested', code: 'PROGRAM_ATTESTED', attested: true, name: 'xdp_pass', type: 'xdp', uid: process.getuid!() });
    expect(p.record).toMatchObject({ hostLogIndex: 0, loadId: rec.loadId, plan: 'kt-attested', digest: rel.digest, version: 1, signer: { keyId: k.keyId }, loader: 'user' });
    expect(p.evidence.filter((e) => e.result !== 'ok'), a.text).toEqual([]);
    expect(p.evidence.map((e) => e.check)).toEqual(expect.arrayContaining(['load', 'tag', 'type', 'name', 'uid', 'maps']));
    expect(Math.abs(Date.parse(p.loadTime!) - Date.parse(rec.time))).toBeLessThan(60_000);
    expect(a.json.kernel.bootId).toBe(bootId());
    expect(a.json.findings.some((f) => f.message.includes(`kernel program ${l.id} `))).toBe(false);
    // The terminal form says the same.
    const t = await runCli(['audit', '--kernel', '--log', att, '--key', k.pub, '--host-log', hl, '--state', fresh('audit-state.json')]);
    expect(t.stdout).toMatch(new RegExp(`id ${l.id} .*attested: kt-attested/xdp_pass v1`));
    expect(t.stdout).toMatch(/^kernel: \d+ programs loaded, \d+ attested \(known-code \d+, modified \d+, unattested \d+, accepted \d+\)/m);
  });

  it('frozen maps are read back and compared: .rodata (globals.o) and .kconfig values resolved on this host (externs.o) are attested', async () => {
    for (const f of ['globals', 'externs']) {
      const s = await signOk(fixturePath(f), k.key, out, ['--no-log']);
      const hl = fresh('host-log');
      const l = await load(s.release, hl);
      const a = await audit(hl);
      for (const id of Object.values(l.ids)) {
        const p = a.prog(id);
        expect(p.status, `${f} ${p.name}: ${JSON.stringify(differs(p))}`).toBe('attested');
        const frozen = p.evidence.filter((e) => e.check === 'frozen-map');
        expect(frozen.length, `${f} ${p.name}`).toBeGreaterThan(0);
        expect(frozen.every((e) => e.result === 'ok')).toBe(true);
      }
      const maps = (await hostDecisions(hl))[0].maps as { name: string; frozenSha256?: string }[];
      expect(maps.filter((m) => m.frozenSha256).map((m) => m.name)).toEqual(f === 'globals' ? ['.rodata', '.rodata.str1.1'] : ['.kconfig']);
    }
  });

  it('a kernel-loader load is attested by the ids the loader returned', async () => {
    const rel = await signVariant('kt-kloader');
    const hl = fresh('host-log');
    const l = await load(rel.release, hl, ['--loader', 'kernel']);
    const p = (await audit(hl)).prog(l.id);
    expect(p).toMatchObject({ status: 'attested', record: { loader: 'kernel' } });
  });
});

describe.skipIf(!probe.ok)('audit --kernel: loaded outside bpfseal', () => {
  it.skipIf(!bpftool)('the same object loaded with bpftool prog loadall is known-code (exit 1, PROGRAM_KNOWN_CODE), beside the attested bpfseal load', async () => {
    const rel = await signVariant('kt-bpftool');
    const hl = fresh('host-log');
    const l = await load(rel.release, hl);
    const dir = pins.next();
    execFileSync('bpftool', ['prog', 'loadall', rel.obj, dir]);
    const fd = objGet(join(dir, 'xdp_pass'));
    fds.push(fd);
    const theirs = progInfo(fd).id;
    const a = await audit(hl);
    expect(a.code).toBe(1);
    expect(a.prog(l.id).status).toBe('attested');
    const p = a.prog(theirs);
    expect(p).toMatchObject({ status: 'known-code', code: 'PROGRAM_KNOWN_CODE', attested: false, name: 'xdp_pass', type: 'xdp' });
    expect(p.record).toBeUndefined();
    expect(p.matches.map((m) => m.source).sort()).toEqual(['attestation-log', 'host-log']);
    expect(p.evidence).toEqual(expect.arrayContaining([expect.objectContaining({ check: 'load', result: 'differs', message: expect.stringContaining(`no standing bpfseal load of this boot (${bootId()}) created program id ${theirs}`) })]));
    expect(a.json.findings).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'PROGRAM_KNOWN_CODE', message: expect.stringContaining(`kernel program ${theirs} 'xdp_pass'`) })]));
  });

  it('the same instructions loaded as another program type are not attested (unattested; the evidence names the xdp program they resemble)', async () => {
    const rel = await signVariant('kt-othertype');
    const hl = fresh('host-log');
    await load(rel.release, hl);
    const fd = progLoad({ type: 1, insns: variantInsns(rel.ret), license: 'GPL', kernVersion: 0, flags: 0, name: 'xdp_pass', expectedAttachType: 0, fdArray: [] });
    fds.push(fd);
    const p = (await audit(hl)).prog(progInfo(fd).id);
    expect(p).toMatchObject({ status: 'unattested', code: 'PROGRAM_UNATTESTED', type: 'socket_filter', matches: [] });
    expect(p.evidence).toEqual(expect.arrayContaining([expect.objectContaining({ check: 'code', result: 'differs', message: expect.stringMatching(/is that of kt-othertype\/xdp_pass .*but as xdp/) })]));
  });

  it('an unknown program is unattested (PROGRAM_UNATTESTED), exit 1', async () => {
    const foreign = foreignSocketFilter(`kt_u${process.pid % 100000}`);
    fds.push(foreign.fd);
    const a = await audit(fresh('no-host-log'));
    expect(a.code).toBe(1);
    expect(a.prog(foreign.id)).toMatchObject({ status: 'unattested', attested: false, matches: [] });
    expect(a.json.findings).toEqual(expect.arrayContaining([{ code: 'PROGRAM_UNATTESTED', message: `kernel program ${foreign.id} '${foreign.name}' (socket_filter, tag ${foreign.tag}) is not attested` }]));
  });
});

/** BPF_PROG_BIND_MAP (35): 0 prog_fd, 4 map_fd, 8 flags: binds one more map to a loaded program. */
function bindMap(prog: Fd, map: Fd): void {
  const a = Buffer.alloc(12);
  a.writeUInt32LE(prog.value, 0);
  a.writeUInt32LE(map.value, 4);
  bpf(35, a);
}

describe.skipIf(!probe.ok)('audit --kernel: modified loads', () => {
  it('a recorded load whose frozen .rodata was created with other contents than its plan gives is modified (test hook: replay a changed copy, record the real plan)', async () => {
    const real = loadPlan('globals');
    const changed = planCopy('globals');
    const ro = changed.maps.find((m) => m.name === '.rodata')!;
    ro.initData = Buffer.from(ro.initData!);
    ro.initData.writeUInt32LE(0x0badf00d, 0); // ro_limit
    const hostLog = fresh('host-log');
    const collection = replay(changed, real.digest, realKernel());
    let ids: Record<string, number>;
    try {
      ids = Object.fromEntries(collection.record.programs.map((p) => [p.name, p.id]));
      await commitLoad({
        plan: changed, collection, backend: realKernel(), pinDir: pins.next(), hostLog, statePath: fresh('state.json'), allowRollback: false, planBytes: real.bytes,
        facts: { plan: 'globals', digest: `sha256:${real.digest}`, version: 1, loader: 'user', fixups: [] },
      }, pinsInPlace);
    } finally {
      collection.close();
    }
    expect(encodePlan(changed).equals(real.bytes)).toBe(false);
    const a = await audit(hostLog);
    const p = a.prog(ids.xdp_globals);
    expect(p.status, a.text).toBe('modified');
    expect(p.code).toBe('PROGRAM_MODIFIED');
    expect(differs(p)).toEqual([expect.objectContaining({ check: 'frozen-map', map: '.rodata', message: expect.stringMatching(/the plan's initial value is sha256:/) })]);
    // What the load itself recorded is what the kernel holds: only the plan comparison catches it.
    expect(p.evidence).toEqual(expect.arrayContaining([expect.objectContaining({ check: 'frozen-map', map: '.rodata', result: 'ok', message: expect.stringMatching(/holds what the load recorded/) })]));
    expect(a.json.findings).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'PROGRAM_MODIFIED', message: expect.stringContaining(`kernel program ${ids.xdp_globals} 'xdp_globals'`) })]));
  });

  it('a recorded load that got another map bound afterwards (BPF_PROG_BIND_MAP) is modified: the map is not one the load created', async () => {
    const rel = await signVariant('kt-bindmap');
    const hl = fresh('host-log');
    const l = await load(rel.release, hl);
    const prog = objGet(join(l.pin, 'xdp_pass'));
    fds.push(prog);
    const map = mapCreate({ type: 2, keySize: 4, valueSize: 8, maxEntries: 1, flags: 0, numaNode: 0, name: 'kt_extra', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n });
    fds.push(map);
    bindMap(prog, map);
    const p = (await audit(hl)).prog(l.id);
    expect(p.status).toBe('modified');
    expect(differs(p).map((e) => e.check)).toEqual(['maps', 'maps']);
    expect(differs(p)[0].message).toMatch(/bound to the program was not created by load/);
  });

  it('an unloaded load attests nothing any more: a program kept alive past `unload` is known-code, the evidence names the unload record', async () => {
    const rel = await signVariant('kt-unloaded');
    const hl = fresh('host-log');
    const l = await load(rel.release, hl);
    const held = objGet(join(l.pin, 'xdp_pass'));
    fds.push(held);
    const u = await runCli(['unload', l.pin, '--host-log', hl]);
    expect(u.code, show(u)).toBe(0);
    const p = (await audit(hl)).prog(l.id);
    expect(p.status).toBe('known-code');
    expect(p.evidence).toEqual(expect.arrayContaining([expect.objectContaining({ message: expect.stringMatching(/was unloaded \(host log #1\): it attests nothing any more/) })]));
  });
});

describe.skipIf(!probe.ok)('audit --kernel: boots', () => {
  it('a record carrying another boot id never matches; the same record with this boot id does', async () => {
    const rel = await signVariant('kt-boot', ['--no-log']);
    const real = fresh('host-log-real');
    const l = await load(rel.release, real);
    const rec = (await hostDecisions(real)).find((d) => d.decision === 'allowed') as LoadDecision;
    const other = fresh('host-log-other-boot');
    await recordDecision(other, { ...rec, bootId: '00000000-0000-4000-8000-000000000000' });
    const p = (await audit(other)).prog(l.id);
    expect(p.status).toBe('unattested');
    expect(p.record).toBeUndefined();
    expect(p.evidence).toEqual(expect.arrayContaining([expect.objectContaining({ check: 'boot', result: 'differs', actual: '00000000-0000-4000-8000-000000000000' })]));
    const same = fresh('host-log-this-boot');
    await recordDecision(same, { ...rec, bootId: bootId() });
    expect((await audit(same)).prog(l.id).status).toBe('attested');
  });
});

describe.skipIf(!probe.ok)('audit --kernel: accepting programs other tools load', () => {
  it('--accept and the policy field kernelAudit.accept report matching programs as accepted with the reason, not as findings; accepting every name leaves exit 0', async () => {
    const foreign = foreignSocketFilter(`kt_acc${process.pid % 10000}`);
    fds.push(foreign.fd);
    const hl = fresh('no-host-log');
    const byFlag = (await audit(hl, ['--accept', `name:${foreign.name}`])).prog(foreign.id);
    expect(byFlag).toMatchObject({ status: 'accepted', code: 'PROGRAM_ACCEPTED', attested: false, accepted: { status: 'unattested', rule: `name ${foreign.name} (--accept name:${foreign.name})` } });
    const policy = fresh('policy.json');
    writeFileSync(policy, JSON.stringify({ version: 1, signers: [{ name: 'k', key: k.pub, plans: ['*'], programTypes: ['*'] }], logs: [{ key: join(att, 'log.pub'), origin: JSON.parse(readFileSync(join(att, 'log.json'), 'utf8')).origin }], kernelAudit: { accept: [{ name: foreign.name, type: 'socket_filter', reason: 'the test loads it on purpose' }] } }));
    const r = await cliJson<AuditJson>(['audit', '--kernel', '--log', att, '--policy', policy, '--host-log', hl, '--state', fresh('audit-state.json'), '--json']);
    const byPolicy = r.json!.kernel.programs.find((p) => p.id === foreign.id)!;
    expect(byPolicy, show(r)).toMatchObject({ status: 'accepted', accepted: { reason: 'the test loads it on purpose', rule: `name ${foreign.name}, type socket_filter (policy ${policy})` } });
    expect(r.json!.findings.some((f) => f.message.includes(`kernel program ${foreign.id} `))).toBe(false);
    const all = await audit(hl, ['--accept', '*']);
    expect(all.json.kernel.programs.every((p) => p.status === 'accepted' || p.status === 'attested'), all.text).toBe(true);
    expect(all.code, all.text).toBe(0);
    const bad = await runCli(['audit', '--kernel', '--log', att, '--key', k.pub, '--host-log', hl, '--accept', 'prog:x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/USAGE_ACCEPT/);
  });
});

describe.skipIf(!probe.ok)('audit --kernel --attest: the signed host report', () => {
  it('is appended to the host log and written with -o; verify-report checks it offline (signature, predicate, entry of that log after the judged tree); log prove proves it', async () => {
    const rel = await signVariant('kt-report');
    const hl = fresh('host-log');
    const l = await load(rel.release, hl);
    const keys = (await cliJson<Key>(['keygen', '--out', join(work, 'keys'), '--name', `host${seq++}`, '--json'])).json!;
    const file = fresh('report.json');
    const a = await audit(hl, ['--attest', keys.key, '-o', file]);
    expect(a.json.report).toMatchObject({ hostLogIndex: 1, output: file });
    const ds = await hostDecisions(hl);
    expect(ds).toHaveLength(2);
    expect(ds[1]).toMatchObject({ kind: 'dsse' });
    for (const args of [[file], ['1', '--log', hl], [file, '--log', hl]]) {
      const v = await cliJson<{ ok: boolean; clean: boolean; statement: { predicateType: string; subject: { digest: { sha256: string } }[]; predicate: { host: { bootId: string }; hostLog: { size: number; rootHash: string }; programs: { id: number; status: string; record?: { loadId: string } }[] } }; logEntry?: { index: number } }>(['verify-report', ...args, '--key', keys.pub, '--json']);
      expect(v.json?.ok, show(v)).toBe(true);
      const st = v.json!.statement;
      expect(st.predicateType).toBe('https://bpfseal.dev/attestation/kernel-audit/v1');
      expect(st.predicate.host.bootId).toBe(bootId());
      expect(st.predicate.hostLog).toMatchObject({ size: 1, rootHash: a.json.kernel.hostLog!.rootHash });
      expect(st.subject[0].digest.sha256).toBe(a.json.kernel.hostLog!.rootHash);
      expect(st.predicate.programs.find((p) => p.id === l.id)).toMatchObject({ status: 'attested', record: { loadId: ds[0].loadId } });
      if (args.includes('--log')) expect(v.json!.logEntry).toMatchObject({ index: 1 });
      // Other processes' programs on this host are unattested in the report: it is not clean (exit 1).
      expect(v.code).toBe(v.json!.clean ? 0 : 1);
    }
    const prove = await runCli(['log', 'prove', '1', '--log', hl]);
    expect(prove.code, show(prove)).toBe(0);
    // The next audit reads the report entry as a report, not as a malformed load record.
    const again = await audit(hl);
    expect(again.json.kernel.findings.some((f) => f.code === 'HOST_LOG_RECORD_INVALID')).toBe(false);
    expect(again.prog(l.id).status).toBe('attested');
  });

  it('a report signed by another key, or with one payload byte changed, does not verify (exit 1, stable codes)', async () => {
    const hl = fresh('host-log');
    const host = (await cliJson<Key>(['keygen', '--out', join(work, 'keys'), '--name', `host${seq++}`, '--json'])).json!;
    const file = fresh('report.json');
    await audit(hl, ['--attest', host.key, '-o', file]);
    const wrong = await runCli(['verify-report', file, '--key', k.pub]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/UNTRUSTED_SIGNER/);
    const b = JSON.parse(readFileSync(file, 'utf8'));
    const payload = Buffer.from(b.dsseEnvelope.payload, 'base64');
    payload[payload.indexOf('"status":"') + 10] ^= 0x20;
    b.dsseEnvelope.payload = payload.toString('base64');
    const tampered = fresh('tampered.json');
    writeFileSync(tampered, JSON.stringify(b));
    const t = await runCli(['verify-report', tampered, '--key', host.pub]);
    expect(t.code, show(t)).toBe(1);
    expect(t.stderr).toMatch(/BAD_SIGNATURE/);
  });
});

describe.skipIf(!probe.ok)('audit --kernel at scale (no timing: the bench times it)', () => {
  it('200 programs loaded via bpf(2) and a 2,000-record host log: each program is attested by its own record, and records of another boot naming the same ids change nothing', async () => {
    const progs = loadTinyPrograms(200, `kt${process.pid % 1000}`);
    try {
      const hl = fresh('host-log-scale');
      await writeHostLog(hl, progs, 2000);
      const k = kernelAudit({ log: { dir: fresh('no-att'), origin: '', logId: '', size: 0, rootHash: '' }, entries: [], judged: [], from: 0, findings: [], logVerified: true, rewritten: false, logTrust: 'unchecked', notes: [] }, hl);
      const byId = new Map(k.programs.map((p) => [p.id, p]));
      for (const p of progs) {
        const a = byId.get(p.id);
        expect(a, `program ${p.id} listed`).toBeDefined();
        expect(a).toMatchObject({ status: 'attested', name: p.name, tag: p.tag, type: 'socket_filter', mapIds: [] });
        expect(a!.record!.hostLogIndex).toBe(progs.indexOf(p));
      }
      expect(k.hostLog).toMatchObject({ decisions: 2000, size: 2000 });
    } finally {
      for (const p of progs) p.fd.close();
    }
  });
});
