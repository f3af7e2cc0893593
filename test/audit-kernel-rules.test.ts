/**
 * The rules of audit --kernel's attribution (src/audit/kernel/), without a kernel: the kernel's view,
 * the host-log decisions and the map contents are given, so every status and every evidence line can
 * be produced on purpose. The same rules on the real kernel: test/audit-kernel-truth.test.ts.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { applyAccept, parseAcceptFlag } from '../src/audit/kernel/accept.js';
import { attribute, type AttributionContext } from '../src/audit/kernel/attribution.js';
import { planFrozenSha256 } from '../src/audit/kernel/frozen.js';
import type { LoadedProgram, MapReader } from '../src/audit/kernel/inventory.js';
import { indexHostLog, type CodeRef } from '../src/audit/kernel/records.js';
import type { ReadDecision } from '../src/hostlog/hostlog.js';
import type { LoadDecision } from '../src/hostlog/records.js';
import { BpfsealError } from '../src/errors.js';
import type { Plan } from '../src/plan/types.js';
import { loadPlan } from './helpers/plans.js';
import { cleanupTmpDirs, makeTmpDir } from './helpers/paths.js';
import { parsePolicy } from '../src/trust/policy.js';
import { writeKeyFiles } from '../src/trust/keys.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { openLog } from '../src/tlog/store.js';
import { auditKernel, summarize } from '../src/audit/kernel/report.js';
import { buildReportStatement, parseReportStatement } from '../src/audit/kernel/statement.js';
import type { AttestationAudit } from '../src/audit/attestations.js';
import { rawEntries } from './helpers/tlog-files.js';

const BOOT = '11111111-2222-3333-4444-555555555555';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** globals.o: xdp_globals reads .rodata (frozen); socket_printk too. */
const globals = loadPlan('globals');
const rodata = globals.plan.maps.find((m) => m.name === '.rodata')!;
const RODATA_SHA = planFrozenSha256(globals.plan, rodata, () => Buffer.alloc(0));

function allowed(o: Partial<LoadDecision> & { loadId: string }): LoadDecision {
  return {
    type: 'bpfseal.load/v1', decision: 'allowed', time: '2026-01-01T00:00:00Z', host: 'h', bootId: BOOT, plan: 'globals', version: 3,
    digest: `sha256:${globals.digest}`, signer: { name: 's', keyId: 'ab'.repeat(32) }, pinDir: '/sys/fs/bpf/x', loader: 'user', uid: 0,
    programs: [{ name: 'xdp_globals', id: 100, tag: 'aaaaaaaaaaaaaaaa', insns: 46, type: 'xdp', mapIds: [10, 11] }],
    maps: [{ name: '.data', id: 10 }, { name: '.rodata', id: 11, frozenSha256: RODATA_SHA }],
    ...o,
  };
}

const ended = (how: 'aborted' | 'unloaded', loadId: string): LoadDecision => ({ type: 'bpfseal.load/v1', decision: how, time: 't', host: 'h', bootId: BOOT, loadId, plan: 'globals', version: 3 });

const kernelProg = (o: Partial<LoadedProgram> = {}): LoadedProgram => ({ id: 100, name: 'xdp_globals', type: 'xdp', tag: 'aaaaaaaaaaaaaaaa', mapIds: [10, 11], uid: 0, ...o });

function ctx(decisions: LoadDecision[], o: { maps?: Record<number, string>; code?: CodeRef[]; plan?: Plan | null } = {}): AttributionContext {
  const read: ReadDecision[] = decisions.map((decision, index) => ({ index, decision }));
  const host = indexHostLog(read, BOOT);
  const code = new Map<string, CodeRef[]>();
  for (const c of [...(o.code ?? []), ...host.standing]) code.set(c.tag, [...(code.get(c.tag) ?? []), c]);
  const contents = o.maps ?? { 11: RODATA_SHA };
  const readMap: MapReader = (id) => (contents[id] ? { sha256: contents[id], valueSize: rodata.valueSize, name: 'm' } : { missing: `map ${id} no longer exists` });
  const plan = o.plan === undefined ? globals.plan : o.plan;
  return { host, code, readMap, plan: () => (plan ? { plan } : { why: 'no plan stored' }), kconfig: () => Buffer.alloc(0) };
}

const attestedRef: CodeRef = { tag: 'aaaaaaaaaaaaaaaa', type: 'xdp', program: 'xdp_globals', plan: 'globals', digest: `sha256:${globals.digest}`, source: 'attestation-log', index: 0 };

describe('attribution by load', () => {
  it('a program whose id a standing load of this boot created, all as recorded, is attested with its record', () => {
    const p = attribute(kernelProg(), ctx([allowed({ loadId: 'L1' })]));
    expect(p).toMatchObject({ status: 'attested', code: 'PROGRAM_ATTESTED', attested: true, record: { hostLogIndex: 0, loadId: 'L1', plan: 'globals', version: 3, digest: `sha256:${globals.digest}` } });
    expect(p.evidence.filter((e) => e.result !== 'ok')).toEqual([]);
    expect(p.evidence.map((e) => e.check)).toEqual(['load', 'tag', 'type', 'name', 'uid', 'maps', 'maps', 'frozen-map', 'frozen-map']);
  });

  it.each<[string, Partial<LoadedProgram>, string, RegExp]>([
    ['another type', { type: 'socket_filter' }, 'type', /type is socket_filter, the load recorded xdp/],
    ['another tag under the recorded id', { tag: 'bbbbbbbbbbbbbbbb' }, 'tag', /tag is bbbbbbbbbbbbbbbb/],
    ['another name', { name: 'other' }, 'name', /name is other/],
    ['another loader uid', { uid: 1000 }, 'uid', /loader uid is 1000/],
    ['a map the load did not create', { mapIds: [10, 11, 99] }, 'maps', /map 99 bound to the program was not created by load L1/],
    ['fewer maps than recorded', { mapIds: [11] }, 'maps', /bound map ids \[11\], the load recorded \[10, 11\]/],
  ])('the recorded id with %s is modified, saying what differs', (_what, change, check, message) => {
    const p = attribute(kernelProg(change), ctx([allowed({ loadId: 'L1' })]));
    expect(p.status).toBe('modified');
    expect(p.code).toBe('PROGRAM_MODIFIED');
    const differs = p.evidence.filter((e) => e.result === 'differs');
    expect(differs.map((e) => e.check)).toEqual(differs.map(() => check));
    expect(differs).toEqual(expect.arrayContaining([expect.objectContaining({ message: expect.stringMatching(message) })]));
  });

  it('a frozen map holding other contents than recorded and than the plan gives is modified (both said)', () => {
    const p = attribute(kernelProg(), ctx([allowed({ loadId: 'L1' })], { maps: { 11: 'cd'.repeat(32) } }));
    expect(p.status).toBe('modified');
    const d = p.evidence.filter((e) => e.result === 'differs');
    expect(d.map((e) => e.message)).toEqual([
      expect.stringMatching(/'\.rodata' \(id 11\) holds sha256:cdcd.*, the load recorded sha256:/),
      expect.stringMatching(/'\.rodata' \(id 11\) holds sha256:cdcd.*, the plan's initial value is sha256:/),
    ]);
  });

  it('a load that recorded other frozen contents than its plan gives is modified, though the kernel holds what was recorded', () => {
    const other = 'ef'.repeat(32);
    const rec = allowed({ loadId: 'L1', maps: [{ name: '.data', id: 10 }, { name: '.rodata', id: 11, frozenSha256: other }] });
    const p = attribute(kernelProg(), ctx([rec], { maps: { 11: other } }));
    expect(p.status).toBe('modified');
    expect(p.evidence.filter((e) => e.result === 'differs').map((e) => e.message)).toEqual([expect.stringMatching(/the plan's initial value is sha256:/)]);
  });

  it('without the plan, the recorded contents still decide; a record with neither hashes nor plan leaves frozen maps unchecked, said', () => {
    expect(attribute(kernelProg(), ctx([allowed({ loadId: 'L1' })], { plan: null })).status).toBe('attested');
    const old = allowed({ loadId: 'L1', programs: [{ name: 'xdp_globals', id: 100, tag: 'aaaaaaaaaaaaaaaa', insns: 46, type: 'xdp' }], maps: [{ name: '.data', id: 10 }, { name: '.rodata', id: 11 }] });
    const p = attribute(kernelProg(), ctx([old], { plan: null }));
    expect(p.status).toBe('attested');
    expect(p.evidence.filter((e) => e.result === 'unchecked')).toEqual([expect.objectContaining({ check: 'frozen-map', message: expect.stringMatching(/were not checked/) })]);
  });
});

describe('records that do not attest', () => {
  it('a record of another boot, or of no recorded boot, never matches: the program is known-code or unattested, and the evidence names the record', () => {
    for (const bootId of ['99999999-0000-0000-0000-000000000000', undefined]) {
      const rec = allowed({ loadId: 'L1', bootId });
      const p = attribute(kernelProg(), ctx([rec]));
      expect(p.status).toBe('unattested');
      expect(p.record).toBeUndefined();
      expect(p.evidence).toEqual(expect.arrayContaining([expect.objectContaining({ check: 'boot', result: 'differs', message: expect.stringMatching(/host log #0 \(load L1\) names id 100 in boot/) })]));
      expect(attribute(kernelProg(), ctx([rec], { code: [attestedRef] })).status).toBe('known-code');
    }
  });

  it.each(['aborted', 'unloaded'] as const)('an %s load attests nothing any more', (how) => {
    const p = attribute(kernelProg(), ctx([allowed({ loadId: 'L1' }), ended(how, 'L1')]));
    expect(p.status).toBe('unattested');
    expect(p.evidence).toEqual(expect.arrayContaining([expect.objectContaining({ message: expect.stringMatching(new RegExp(`was ${how} \\(host log #1\\)`)) })]));
  });

  it('when two loads of this boot name one id, the later record is the one judged', () => {
    const first = allowed({ loadId: 'L1' });
    const second = allowed({ loadId: 'L2', programs: [{ name: 'xdp_globals', id: 100, tag: 'aaaaaaaaaaaaaaaa', insns: 46, type: 'socket_filter', mapIds: [10, 11] }] });
    const p = attribute(kernelProg(), ctx([first, second]));
    expect(p).toMatchObject({ status: 'modified', record: { loadId: 'L2', hostLogIndex: 1 } });
  });
});

describe('attribution by code', () => {
  it('bpfseal code under an id no load of this boot created is known-code, with the code matches', () => {
    const p = attribute(kernelProg({ id: 555 }), ctx([allowed({ loadId: 'L1' })], { code: [attestedRef] }));
    expect(p.status).toBe('known-code');
    expect(p.code).toBe('PROGRAM_KNOWN_CODE');
    expect(p.matches).toEqual([{ plan: 'globals', digest: `sha256:${globals.digest}`, program: 'xdp_globals', source: 'attestation-log' }, { plan: 'globals', digest: `sha256:${globals.digest}`, program: 'xdp_globals', source: 'host-log' }]);
  });

  it('the same instructions as another program type (or name) are not known code: unattested, with the near miss as evidence', () => {
    const p = attribute(kernelProg({ id: 555, type: 'socket_filter' }), ctx([], { code: [attestedRef] }));
    expect(p.status).toBe('unattested');
    expect(p.matches).toEqual([]);
    expect(p.evidence).toEqual(expect.arrayContaining([expect.objectContaining({ check: 'code', result: 'differs', message: expect.stringMatching(/tag aaaaaaaaaaaaaaaa is that of globals\/xdp_globals \(attestation-log\), but as xdp/) })]));
    expect(attribute(kernelProg({ id: 555, name: 'renamed' }), ctx([], { code: [attestedRef] })).status).toBe('unattested');
  });

  it('the kernel keeps 15 bytes of a name: a longer plan program name matches its prefix', () => {
    const ref = { ...attestedRef, program: 'a_program_name_longer_than_15' };
    expect(attribute(kernelProg({ id: 555, name: 'a_program_name_' }), ctx([], { code: [ref] })).status).toBe('known-code');
  });
});

describe('accept rules', () => {
  it('accept known-code and unattested programs by name or type pattern, keeping the status they had; never a modified one', () => {
    const c = ctx([allowed({ loadId: 'L1' })], { code: [attestedRef] });
    const ps = [attribute(kernelProg({ id: 1, name: 'sd_devices', type: 'cgroup_device', tag: '01'.repeat(8) }), c), attribute(kernelProg({ id: 555 }), c), attribute(kernelProg({ type: 'kprobe' }), c)];
    applyAccept(ps, [{ type: 'cgroup_*', reason: 'systemd device filters', source: 'policy p.json' }, parseAcceptFlag('name:xdp_*')]);
    expect(ps.map((p) => p.status)).toEqual(['accepted', 'accepted', 'modified']);
    expect(ps[0]).toMatchObject({ code: 'PROGRAM_ACCEPTED', accepted: { status: 'unattested', reason: 'systemd device filters', rule: 'type cgroup_* (policy p.json)' } });
    expect(ps[1].accepted).toMatchObject({ status: 'known-code', rule: 'name xdp_* (--accept name:xdp_*)' });
  });

  it('--accept values: a bare name, name:, type:, both joined; anything else is a usage error', () => {
    expect(parseAcceptFlag('sd_*')).toMatchObject({ name: 'sd_*' });
    expect(parseAcceptFlag('type:cgroup_skb,name:sd_fw_*')).toMatchObject({ name: 'sd_fw_*', type: 'cgroup_skb' });
    for (const bad of ['prog:x', 'type:', 'type:a,type:b', 'name:a/b']) {
      expect(() => parseAcceptFlag(bad)).toThrow(BpfsealError);
      try { parseAcceptFlag(bad); } catch (e) { expect((e as BpfsealError).code).toBe('USAGE_ACCEPT'); }
    }
  });
});

describe('the host-log index', () => {
  it('signed report entries are counted, not reported as malformed; a malformed entry is a finding', () => {
    const h = indexHostLog([{ index: 0, decision: allowed({ loadId: 'L1' }) }, { index: 1, report: true }, { index: 2 }], BOOT);
    expect(h.reports).toBe(1);
    expect(h.findings).toEqual([expect.objectContaining({ code: 'HOST_LOG_RECORD_INVALID', index: 2 })]);
    expect([...h.byProgId.keys()]).toEqual([100]);
  });

  it('an unreadable boot id ("") ties no record to this boot', () => {
    const h = indexHostLog([{ index: 0, decision: allowed({ loadId: 'L1', bootId: '' }) }], '');
    expect(h.byProgId.size).toBe(0);
  });

  it('the frozen value of a plan map is its initData zero-padded to the value size', () => {
    const v = Buffer.alloc(rodata.valueSize);
    rodata.initData!.copy(v);
    expect(RODATA_SHA).toBe(sha(v));
  });
});

describe('the policy field kernelAudit.accept', () => {
  afterAll(cleanupTmpDirs);
  const policyWith = (kernelAudit: unknown) => {
    const dir = makeTmpDir('bpfseal-ka-policy-');
    writeKeyFiles(dir, 'a', 'ecdsa-p256');
    return parsePolicy(JSON.stringify({ version: 1, signers: [{ name: 'a', key: 'a.pub', plans: ['*'], programTypes: ['*'] }], kernelAudit }), join(dir, 'p.json'));
  };

  it('is parsed into rules (name, type, reason); a policy without it accepts nothing', () => {
    expect(policyWith({ accept: [{ type: 'cgroup_device', reason: 'systemd' }, { name: 'sd_*', type: 'cgroup_skb', reason: 'r' }] }).kernelAccept)
      .toEqual([{ type: 'cgroup_device', reason: 'systemd' }, { name: 'sd_*', type: 'cgroup_skb', reason: 'r' }]);
    expect(policyWith(undefined).kernelAccept).toEqual([]);
  });

  it.each([
    ['a rule without name or type', { accept: [{ reason: 'r' }] }],
    ['a rule without a reason', { accept: [{ name: 'x' }] }],
    ['an unknown field in a rule', { accept: [{ name: 'x', reason: 'r', prog: 'y' }] }],
    ['an unknown field beside accept', { accept: [], deny: [] }],
    ['a pattern with a slash', { accept: [{ name: 'a/b', reason: 'r' }] }],
  ])('refuses %s (POLICY_INVALID)', (_what, kernelAudit) => {
    let code = '';
    try {
      policyWith(kernelAudit);
    } catch (e) {
      code = (e as BpfsealError).code;
    }
    expect(code).toBe('POLICY_INVALID');
  });
});

describe('the host log as audit --kernel reads it', () => {
  afterAll(cleanupTmpDirs);
  const emptyAudit = (dir: string): AttestationAudit => ({ log: { dir, origin: '', logId: '', size: 0, rootHash: '' }, entries: [], judged: [], from: 0, findings: [], logVerified: true, rewritten: false, logTrust: 'unchecked', notes: [] });

  it('an entry rewritten together with its level-0 leaf hash attests nothing (HOST_LOG_INVALID)', async () => {
    const dir = join(makeTmpDir('bpfseal-ka-hostlog-'), 'host-log');
    const log = openLog(dir, { create: true });
    const recs = Array.from({ length: 300 }, (_, i) => Buffer.from(JSON.stringify(allowed({ loadId: `L${String(i).padStart(3, '0')}`, programs: [{ name: 'xdp_globals', id: 1000 + i, tag: 'aaaaaaaaaaaaaaaa', insns: 46, type: 'xdp', mapIds: [] }], maps: [] }))));
    await log.appendMany(recs);
    log.close();
    const run = () => auditKernel(emptyAudit(dir), dir, { programs: () => [kernelProg({ id: 1005, mapIds: [] })], readMap: () => ({ missing: 'none' }), bootId: BOOT });
    expect(run().programs[0].status).toBe('attested');
    // Rewrite entry 5 in the first full bundle, and its leaf hash in the level-0 tile to match: the
    // level-1 tile (and so the right edge the log checks on open) still holds the old hashes.
    const bundle = join(dir, 'tile/entries/000');
    const b = readFileSync(bundle);
    const at = b.indexOf('"L005"') + 2;
    b.write('X', at);
    writeFileSync(bundle, b);
    const entry = rawEntries(dir)[5];
    const tile = join(dir, 'tile/0/000');
    const t = readFileSync(tile);
    createHash('sha256').update(Buffer.concat([Buffer.from([0]), entry])).digest().copy(t, 5 * 32);
    writeFileSync(tile, t);
    const k = run();
    // Caught by the tile reader (tile 0 no longer hashes to its entry in tile 1) or, failing that, by
    // the leaves' root against the signed checkpoint: either way the host log attests nothing.
    expect(k.findings).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'HOST_LOG_INVALID', message: expect.stringMatching(/does not hash to its entry|do not give the root of the signed checkpoint/) })]));
    expect(k.programs[0].status).toBe('unattested');
  });
});

describe('the host report statement', () => {
  const report = () => {
    const c = ctx([allowed({ loadId: 'L1' }), ended('unloaded', 'L1')], { code: [attestedRef] });
    const programs = [attribute(kernelProg(), ctx([allowed({ loadId: 'L1' })])), attribute(kernelProg({ id: 555 }), c)];
    return { programs, bootId: BOOT, findings: [], summary: summarize(programs), hostLog: { dir: '/h', decisions: 2, origin: 'bpfseal.local/log/x', logId: 'ab'.repeat(32), size: 2, rootHash: 'cd'.repeat(32) } };
  };
  const st = () => buildReportStatement(report(), { attestationLog: { origin: 'a', logId: 'ef'.repeat(32), size: 0, rootHash: '' }, policy: null, findings: [], toolVersion: '0.1.0' });

  it('names the judged host-log tree as its subject and carries every program with its status, record and what differs; it parses back', () => {
    const s = st();
    expect(s.subject).toEqual([{ name: 'host-log:bpfseal.local/log/x', digest: { sha256: 'cd'.repeat(32) } }]);
    expect(s.predicate).toMatchObject({ host: { bootId: BOOT }, hostLog: { size: 2, rootHash: 'cd'.repeat(32) }, summary: { attested: 1, 'known-code': 1 } });
    expect(s.predicate.programs[0]).toMatchObject({ id: 100, status: 'attested', record: { hostLogIndex: 0, loadId: 'L1', version: 3, signerKeyId: 'ab'.repeat(32) } });
    expect(s.predicate.programs[0].findings).toBeUndefined();
    expect(s.predicate.programs[1]).toMatchObject({ id: 555, status: 'known-code' });
    expect(parseReportStatement(Buffer.from(JSON.stringify(s)))).toEqual(s);
  });

  it.each([
    ['another predicate type', (s: any) => { s.predicateType = 'https://bpfseal.dev/attestation/bpf-loader-plan/v1'; }],
    ['a subject that is not the judged tree', (s: any) => { s.subject[0].digest.sha256 = 'ee'.repeat(32); }],
    ['two subjects', (s: any) => { s.subject.push(s.subject[0]); }],
    ['a program with an unknown status', (s: any) => { s.predicate.programs[0].status = 'fine'; }],
    ['no boot id', (s: any) => { delete s.predicate.host.bootId; }],
  ])('refuses %s (REPORT_INVALID)', (_what, edit) => {
    const s = JSON.parse(JSON.stringify(st()));
    edit(s);
    let code = '';
    try {
      parseReportStatement(Buffer.from(JSON.stringify(s)));
    } catch (e) {
      code = (e as BpfsealError).code;
    }
    expect(code).toBe('REPORT_INVALID');
  });

  it('a duplicate key in the payload is refused (strict JSON)', () => {
    const text = JSON.stringify(st()).replace('"time":', '"time":"x","time":');
    expect(() => parseReportStatement(Buffer.from(text))).toThrow(/strict JSON/);
  });
});
