/**
 * Fail closed, anti-rollback and state (issue "fail closed" §3): the floor is checked again under the
 * host lock at commit (a v3 verified before a v5 committed does not load after it), concurrent loads
 * lose no update, names like __proto__ work like any other, and an unprivileged verify keeps working
 * after root loaded something. Real kernel; skipped with a message where bpf(2) is not permitted.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BpfsealError } from '../../src/errors.js';
import { openHostLog, readDecisions, refreshState } from '../../src/hostlog/hostlog.js';
import { loadRelease } from '../../src/runtime/load.js';
import { unloadDir } from '../../src/runtime/unload.js';
import { parsePolicy, type TrustPolicy } from '../../src/trust/policy.js';
import { readState } from '../../src/trust/state.js';
import { writeKeyFiles, type KeyFiles } from '../../src/trust/keys.js';
import { CLI, cleanupTmpDirs, makeTmpDir, ROOT } from '../helpers/paths.js';
import { newPinDir, probeBpf, removePinDirs } from '../helpers/kernel.js';
import { runCliAll, runCli } from '../helpers/cli.js';
import { signFixture } from '../helpers/releases.js';

const probe = probeBpf();
if (!probe.ok) console.warn(`failclosed/state.test.ts: real-kernel tests skipped: ${probe.why}`);

afterAll(cleanupTmpDirs);
afterEach(() => removePinDirs());

let dir: string;
let k: KeyFiles;
let policy: TrustPolicy;
let policyPath: string;
beforeAll(() => {
  dir = makeTmpDir('bpfseal-state-');
  k = writeKeyFiles(dir, 'k', 'ecdsa-p256');
  policyPath = join(dir, 'policy.json');
  const doc = { version: 1, signers: [{ name: 'k', key: 'k.pub', plans: ['*'], programTypes: ['*'] }] };
  writeFileSync(policyPath, JSON.stringify(doc));
  policy = parsePolicy(JSON.stringify(doc), policyPath);
});

function host(): { hostLog: string; statePath: string } {
  const d = makeTmpDir('bpfseal-host-');
  return { hostLog: join(d, 'host-log'), statePath: join(d, 'state.json') };
}

describe.skipIf(!probe.ok)('the anti-rollback floor at commit', () => {
  it('a v3 verified before a concurrent v5 committed is refused at commit (ROLLBACK), and leaves nothing', async () => {
    const v3 = await signFixture('minimal', 'race', k, 3);
    const v5 = await signFixture('minimal', 'race', k, 5);
    const files = host();
    const r5 = join(dir, 'race-v5.bpfseal');
    writeFileSync(r5, v5.bytes);
    const pin3 = newPinDir();
    const pin5 = newPinDir();
    let raced = false;
    let err: unknown;
    try {
      await loadRelease(v3.bytes, {
        policy, ...files, pinDir: pin3,
        // v3 is verified (floor: none yet); while it replays, another process loads and commits v5.
        onStep: () => {
          if (raced) return;
          raced = true;
          const r = spawnSync(process.execPath, [CLI, 'load', r5, '--policy', policyPath, '--pin', pin5, '--host-log', files.hostLog, '--state', files.statePath], { encoding: 'utf8' });
          expect(r.status, r.stderr).toBe(0);
        },
      });
    } catch (e) {
      err = e;
    }
    expect(raced).toBe(true);
    expect((err as BpfsealError)?.code).toBe('ROLLBACK');
    expect((err as Error).message).toMatch(/older than version 5, which this host loaded meanwhile/);
    expect(existsSync(pin3)).toBe(false);
    const log = openHostLog(files.hostLog, false);
    try {
      expect(readDecisions(log).map((d) => [d.decision?.decision, d.decision?.version ?? d.decision?.code])).toEqual([['allowed', 5], ['refused', 'ROLLBACK']]);
      expect(refreshState(log, files.statePath).versions.get('race')).toBe(5);
    } finally {
      log.close();
    }
    await unloadDir(pin5, files.hostLog);
  });

  it('eight concurrent loads of eight plans: every floor is recorded, none lost', async () => {
    const files = host();
    const rels = await Promise.all(Array.from({ length: 8 }, async (_, i) => {
      const s = await signFixture('minimal', `conc-${i}`, k, 10 + i);
      const p = join(dir, `conc-${i}.bpfseal`);
      writeFileSync(p, s.bytes);
      return p;
    }));
    const pins = rels.map(() => newPinDir());
    const results = await runCliAll(rels.map((r, i) => ['load', r, '--policy', policyPath, '--pin', pins[i], '--host-log', files.hostLog, '--state', files.statePath]));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const cached = readState(files.statePath).versions;
    const log = openHostLog(files.hostLog, false);
    try {
      const derived = refreshState(log, files.statePath).versions;
      for (let i = 0; i < 8; i++) {
        expect(derived.get(`conc-${i}`)).toBe(10 + i);
        expect(cached.get(`conc-${i}`), 'the state cache written by the last commit').toBe(10 + i);
      }
    } finally {
      log.close();
    }
    for (const p of pins) await unloadDir(p, files.hostLog);
  });
});

describe.skipIf(!probe.ok)('names that are Object.prototype members work like any other', () => {
  it('a plan named __proto__ with a map named constructor and a program named toString: signs, verifies, loads, floors, unloads', async () => {
    const s = await signFixture('testrun', '__proto__', k, 2, {
      kernel: true,
      edit: (p) => {
        p.maps[0].name = 'constructor';
        p.programs[0].name = 'toString';
      },
    });
    const files = host();
    const pin = newPinDir();
    // As a policy file would say it (a JS object literal cannot: `{ __proto__: 3 }` sets the prototype).
    const minPolicy = parsePolicy('{"version":1,"signers":[{"name":"k","key":"k.pub","plans":["*"],"programTypes":["*"]}],"minVersions":{"__proto__":3}}', policyPath);
    expect(minPolicy.minVersions.get('__proto__')).toBe(3);
    await expect(loadRelease(s.bytes, { policy: minPolicy, ...files, pinDir: pin })).rejects.toMatchObject({ code: 'ROLLBACK', message: expect.stringContaining('below the policy minimum 3') });
    const r = await loadRelease(s.bytes, { policy, ...files, pinDir: pin });
    expect(r.verified.kernelSignatures.has('toString')).toBe(true);
    expect(r.loaded.record.maps.map((m) => m.name)).toContain('constructor');
    expect(existsSync(join(pin, 'toString'))).toBe(true);
    expect(existsSync(join(pin, 'maps', 'constructor'))).toBe(true);
    const st = readState(files.statePath);
    expect(st.versions.get('__proto__')).toBe(2);
    expect(JSON.parse(readFileSync(files.statePath, 'utf8')).versions).toEqual(expect.objectContaining({ ['__proto__']: 2 }));
    expect(Object.getPrototypeOf({})).toBe(Object.prototype); // nothing was polluted
    // The floor of __proto__ holds like any other.
    const v1 = await signFixture('testrun', '__proto__', k, 1, { edit: (p) => { p.maps[0].name = 'constructor'; p.programs[0].name = 'toString'; } });
    await expect(loadRelease(v1.bytes, { policy, ...files, pinDir: newPinDir() })).rejects.toMatchObject({ code: 'ROLLBACK' });
    await unloadDir(pin, files.hostLog);
  });
});

describe.skipIf(!probe.ok)('an unprivileged verify after root has loaded', () => {
  it('reads the world-readable state (rollback checked); with an unreadable state it says rollback was not checked', async () => {
    const s = await signFixture('minimal', 'unpriv', k, 4);
    const rel = join(dir, 'unpriv.bpfseal');
    writeFileSync(rel, s.bytes);
    const files = host();
    chmodSync(join(files.statePath, '..'), 0o755);
    const pin = newPinDir();
    await loadRelease(s.bytes, { policy, ...files, pinDir: pin });
    expect(statSync(files.statePath).mode & 0o777).toBe(0o644);
    const older = await signFixture('minimal', 'unpriv', k, 3);
    const relOld = join(dir, 'unpriv-old.bpfseal');
    writeFileSync(relOld, older.bytes);
    chmodSync(dir, 0o755);
    for (const f of [rel, relOld, policyPath, k.pub]) chmodSync(f, 0o644);
    const asNobody = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', uid: 65534, gid: 65534, env: { ...process.env, BPFSEAL_DEBUG: '' } });
    const ok = asNobody(['verify', rel, '--policy', policyPath, '--state', files.statePath]);
    expect(ok.status, ok.stderr).toBe(0);
    const rolled = asNobody(['verify', relOld, '--policy', policyPath, '--state', files.statePath]);
    expect(rolled.status).toBe(1);
    expect(rolled.stderr).toContain('ROLLBACK');
    chmodSync(files.statePath, 0o600);
    const blind = asNobody(['verify', relOld, '--policy', policyPath, '--state', files.statePath]);
    expect(blind.status, blind.stderr).toBe(0);
    expect(blind.stderr).toMatch(/note: .*anti-rollback not checked: .*cannot read anti-rollback state/);
    // load never skips it: as root with the same state it is refused.
    chmodSync(files.statePath, 0o644);
    expect((await runCli(['load', relOld, '--policy', policyPath, '--pin', newPinDir(), '--host-log', files.hostLog, '--state', files.statePath])).code).toBe(1);
    await unloadDir(pin, files.hostLog);
  });
});

describe('an unprivileged audit', () => {
  it('audits a root-owned log; a state it cannot write or read is a note, not a failure', async () => {
    if (process.geteuid?.() !== 0) return; // needs root to set up another user's view
    const d = makeTmpDir();
    chmodSync(d, 0o755);
    const kd = join(d, 'keys');
    expect((await runCli(['keygen', '--out', kd, '--name', 'k'])).code).toBe(0);
    chmodSync(kd, 0o755);
    chmodSync(join(kd, 'k.pub'), 0o644);
    const logDir = join(d, 'att');
    expect((await runCli(['sign', join(ROOT, 'test/fixtures/minimal.o'), '--key', join(kd, 'k.key'), '--log', logDir, '-o', join(d, 'm.bpfseal')])).code).toBe(0);
    spawnSync('chmod', ['-R', 'a+rX', logDir]);
    const stateDir = join(d, 'state');
    mkdirSync(stateDir, { mode: 0o755 });
    const asNobody = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', uid: 65534, gid: 65534, cwd: d, env: { ...process.env, BPFSEAL_DEBUG: '' } });
    const r = asNobody(['audit', '--log', logDir, '--key', join(kd, 'k.pub'), '--state', join(stateDir, 'audit-state.json')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/note: this audit is not remembered .*AUDIT_STATE_UNWRITABLE|note: this audit is not remembered/);
    expect(r.stdout).toMatch(/#0 .* verified/);
    // Root's state, unreadable to others: not compared, said so.
    expect((await runCli(['audit', '--log', logDir, '--key', join(kd, 'k.pub'), '--state', join(stateDir, 'audit-state.json')])).code).toBe(0);
    chmodSync(join(stateDir, 'audit-state.json'), 0o600);
    const blind = asNobody(['audit', '--log', logDir, '--key', join(kd, 'k.pub'), '--state', join(stateDir, 'audit-state.json'), '--json']);
    expect(blind.status, blind.stderr).toBe(0);
    expect((JSON.parse(blind.stdout) as { notes: string[] }).notes.join('\n')).toMatch(/not compared with the last audit: .*cannot read the audit state/);
  });
});
