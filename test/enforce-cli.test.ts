/**
 * `bpfseal enforce` on this host, whose kernel cannot enforce (no signature verdicts; the BPF LSM may
 * not even be visible): enabling is refused with exit 3 before anything is read or loaded; --status,
 * --drain and --off without an enforcer; usage errors; and an enforcer recorded as on whose pins were
 * removed by hand: status says so, audit --kernel reports it (ENFORCEMENT_REMOVED), --off records it
 * off, and enforcement records are never taken for malformed load records.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { enforcementSupport } from '../src/kernel/probe.js';
import { appendDecision, openHostLog, openHostLogForWriting, readDecisions } from '../src/hostlog/hostlog.js';
import { decision, enforcementRecord } from '../src/hostlog/records.js';
import { decisionRecord, decodeDecision } from '../src/enforce/decisions.js';
import { runCli } from './helpers/cli.js';
import { cleanupTmpDirs, makeTmpDir, ROOT } from './helpers/paths.js';
import { newPinDir, probeBpf } from './helpers/kernel.js';
import { decisionBytes } from './helpers/enforce.js';

const probe = probeBpf();
afterAll(cleanupTmpDirs);

const json = (s: string): Record<string, unknown> => JSON.parse(s) as Record<string, unknown>;
const hostLogOf = () => join(makeTmpDir('bpfseal-enforce-'), 'host-log');

describe('enforce on a kernel that cannot enforce', () => {
  const support = probe.ok ? enforcementSupport() : undefined;
  it.skipIf(!support || support.ok)('is refused with exit 3 (ENFORCE_UNSUPPORTED) naming why, before the release or policy is even read', async () => {
    const hostLog = hostLogOf();
    const pin = newPinDir();
    const args = ['enforce', '--release', '/nonexistent/enforcer.bpfseal', '--policy', '/nonexistent/policy.json', '--pin', pin, '--host-log', hostLog];
    const r = await runCli(args);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^bpfseal: ENFORCE_UNSUPPORTED: this kernel cannot enforce signed BPF loads: .*; nothing was loaded$/m);
    for (const why of support!.reasons) expect(r.stderr).toContain(why);
    expect(r.stdout).toBe('');
    const j = await runCli([...args, '--json']);
    expect(j.code).toBe(3);
    expect(json(j.stdout)).toEqual({ error: { code: 'ENFORCE_UNSUPPORTED', message: expect.stringContaining('nothing was loaded'), exit: 3 } });
    expect(existsSync(pin)).toBe(false);
    expect(existsSync(hostLog)).toBe(false); // not even a refusal record: nothing was attempted
  });
});

describe.skipIf(!probe.ok)('status, drain and off without an enforcer', () => {
  it('--status exits 1 (ENFORCE_INACTIVE); --drain and --off exit 0 with nothing to do', async () => {
    const hostLog = hostLogOf();
    const pin = newPinDir();
    const s = await runCli(['enforce', '--status', '--pin', pin, '--host-log', hostLog]);
    expect(s.code).toBe(1);
    expect(s.stdout).toMatch(/^enforcement not active: no enforcer is recorded at /);
    expect(s.stderr).toMatch(/^bpfseal: ENFORCE_INACTIVE: /m);
    const sj = await runCli(['enforce', '--status', '--pin', pin, '--host-log', hostLog, '--json']);
    expect(sj.code).toBe(1);
    expect(json(sj.stdout)).toMatchObject({ ok: false, code: 'ENFORCE_INACTIVE', active: false, problems: [] });
    const d = await runCli(['enforce', '--drain', '--pin', pin, '--host-log', hostLog]);
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/^no enforcer at /);
    const o = await runCli(['enforce', '--off', '--pin', pin, '--host-log', hostLog, '--json']);
    expect(o.code).toBe(0);
    expect(json(o.stdout)).toMatchObject({ ok: true, wasActive: false, removed: [] });
  });
});

describe('usage', () => {
  it('one mode at a time, --release to enable, no trust options with the other modes', async () => {
    const cases: [string[], string][] = [
      [['enforce'], 'USAGE_NO_RELEASE'],
      [['enforce', '--status', '--off'], 'USAGE_ENFORCE_MODE'],
      [['enforce', '--drain', '--object'], 'USAGE_ENFORCE_MODE'],
      [['enforce', '--status', '--keyring', 'session'], 'USAGE_ENFORCE_MODE'],
      [['enforce', '--off', '--release', 'x.bpfseal'], 'USAGE_ENFORCE_MODE'],
    ];
    for (const [args, code] of cases) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`^bpfseal: ${code}: `, 'm'));
      const j = await runCli([...args, '--json']);
      expect(json(j.stdout)).toMatchObject({ error: { code, exit: 2 } });
    }
  });

  it('--object names the bundled enforcer object', async () => {
    const r = await runCli(['enforce', '--object']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(join(ROOT, 'src/enforce/bpf/bpfseal_enforcer.o'));
    expect(readFileSync(r.stdout.trim()).subarray(0, 4).toString('latin1')).toBe('\x7fELF');
  });
});

describe.skipIf(!probe.ok)('an enforcer recorded as on whose pins were removed by hand', () => {
  let work: string;
  let hostLog: string;
  let pin: string;
  const loadId = randomBytes(16).toString('hex');
  beforeAll(async () => {
    work = makeTmpDir('bpfseal-enforce-gone-');
    hostLog = join(work, 'host-log');
    pin = newPinDir();
    const log = await openHostLogForWriting(hostLog);
    const dir = join('/sys/fs/bpf', pin.split('/').pop()!);
    await appendDecision(log, decision({
      decision: 'allowed', loadId, plan: 'bpfseal_enforcer', version: 1, pinDir: dir, pins: [join(dir, 'bpfseal_admit')],
      pinned: [{ path: join(dir, 'bpfseal_admit'), kind: 'prog', id: 999_999 }, { path: join(dir, 'links', 'bpfseal_admit'), kind: 'link', id: 999_998 }],
      programs: [{ name: 'bpfseal_admit', id: 999_999, tag: '00', insns: 126 }],
    }));
    await log.append(Buffer.from(JSON.stringify(enforcementRecord({ event: 'on', loadId, pinDir: dir, allow: [{ spec: 'builtin', keyringType: 'builtin' }], linkId: 999_998, progId: 999_999 }))));
    const now = { bootNs: 0n, wallMs: Date.now() };
    await log.append(Buffer.from(JSON.stringify(decisionRecord(decodeDecision(decisionBytes({ seq: 1, comm: 'bpftool', progName: 'probe' })), loadId, 0, now))));
    log.close();
  });

  it('--status: recorded, but not active, with the missing pins as problems', async () => {
    const r = await runCli(['enforce', '--status', '--pin', pin, '--host-log', hostLog, '--json']);
    expect(r.code).toBe(1);
    const s = json(r.stdout);
    expect(s).toMatchObject({ ok: false, code: 'ENFORCE_INACTIVE', active: false, loadId, plan: 'bpfseal_enforcer' });
    expect((s.problems as string[]).join('\n')).toMatch(/bpfseal_admit is missing[\s\S]*loaded but not attached/);
  });

  it('audit --kernel reports it and lists the recorded denial; the enforcement records are not malformed load records', async () => {
    const att = join(work, 'att');
    const kd = join(work, 'keys');
    expect((await runCli(['keygen', '--out', kd, '--name', 'k'])).code).toBe(0);
    expect((await runCli(['sign', join(ROOT, 'test/fixtures/minimal.o'), '--key', join(kd, 'k.key'), '--log', att, '-o', join(work, 'm.bpfseal')])).code).toBe(0);
    const r = await runCli(['audit', '--kernel', '--log', att, '--key', join(kd, 'k.pub'), '--host-log', hostLog, '--state', join(work, 'as.json'), '--json']);
    expect(r.code).toBe(1);
    const a = json(r.stdout) as { findings: { code: string; message: string }[]; kernel: { enforcement: { decisions: number; denials: { comm: string; progName: string; verdict: string }[] } } };
    expect(a.findings.filter((f) => f.code === 'ENFORCEMENT_REMOVED').map((f) => f.message)).toEqual([expect.stringContaining(`recorded as on at /sys/fs/bpf/${pin.split('/').pop()}`)]);
    expect(a.findings.filter((f) => f.code === 'HOST_LOG_RECORD_INVALID')).toEqual([]);
    expect(a.kernel.enforcement.decisions).toBe(1);
    expect(a.kernel.enforcement.denials).toMatchObject([{ comm: 'bpftool', progName: 'probe', verdict: 'unsigned' }]);
    const t = await runCli(['audit', '--kernel', '--log', att, '--key', join(kd, 'k.pub'), '--host-log', hostLog, '--state', join(work, 'as.json')]);
    expect(t.stdout).toMatch(/^enforcement: 1 decisions in the host log, 1 denied\n {2}DENIED #2 .* pid 100 uid 0 'bpftool' {2}socket_filter 'probe' {2}unsigned$/m);
  });

  it('--off records it off (its pins were gone already); then status and audit no longer count it', async () => {
    const r = await runCli(['enforce', '--off', '--pin', pin, '--host-log', hostLog, '--json']);
    expect(r.code).toBe(0);
    expect(json(r.stdout)).toMatchObject({ ok: true, wasActive: true, loadId, removed: [], notes: expect.arrayContaining([expect.stringContaining('was already gone')]) });
    const log = openHostLog(hostLog, false);
    const last = readDecisions(log).at(-1)!.enforcement;
    log.close();
    expect(last).toMatchObject({ event: 'off', loadId, reason: 'bpfseal enforce --off: its pins were already gone' });
    expect((await runCli(['enforce', '--status', '--pin', pin, '--host-log', hostLog])).code).toBe(1);
  });
});
