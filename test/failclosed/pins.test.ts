/**
 * Fail closed, files and pins (issue "fail closed" §4): names from a plan cannot escape the pin
 * directory, a pin directory another user prepared cannot receive our pins, and unload removes exactly
 * what a recorded load pinned, after checking the whole tree. Real kernel for the pin cases.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chownSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { BpfsealError } from '../../src/errors.js';
import { encodePlan, decodePlan } from '../../src/plan/codec.js';
import { planFromObject } from '../../src/plan/build.js';
import { mapCreate, objPin } from '../../src/kernel/bpf.js';
import { listPending, openHostLog, readDecisions, writePending } from '../../src/hostlog/hostlog.js';
import { runCli } from '../helpers/cli.js';
import { loadRelease } from '../../src/runtime/load.js';
import { unloadDir } from '../../src/runtime/unload.js';
import { parsePolicy, type TrustPolicy } from '../../src/trust/policy.js';
import { writeKeyFiles, type KeyFiles } from '../../src/trust/keys.js';
import { planCopy } from '../helpers/plans.js';
import { cleanupTmpDirs, makeTmpDir, readFixture } from '../helpers/paths.js';
import { newPinDir, probeBpf, removePinDirs } from '../helpers/kernel.js';
import { signFixture } from '../helpers/releases.js';

const probe = probeBpf();
if (!probe.ok) console.warn(`failclosed/pins.test.ts: real-kernel tests skipped: ${probe.why}`);

afterAll(cleanupTmpDirs);
afterEach(() => removePinDirs());

describe('names from a plan', () => {
  it.each([
    ['a program name with a slash', (p: ReturnType<typeof planCopy>) => { p.programs[0].name = '../escape'; }, /program name "\.\.\/escape" contains '\/'/],
    ['a program name ..', (p: ReturnType<typeof planCopy>) => { p.programs[0].name = '..'; }, /program name "\.\." is '\.\.'/],
    ['a map name with NUL', (p: ReturnType<typeof planCopy>) => { p.maps[0].name = 'a\u0000b'; }, /map name .* contains a control character/],
    ['a plan name with a newline', (p: ReturnType<typeof planCopy>) => { p.name = 'x\ny'; }, /plan name .* contains a control character/],
    ['an empty program name', (p: ReturnType<typeof planCopy>) => { p.programs[0].name = ''; }, /program name "" is empty/],
    ['a 300-byte map name', (p: ReturnType<typeof planCopy>) => { p.maps[0].name = 'm'.repeat(300); }, /longer than 255 bytes/],
    ['two programs pinned as one file', (p: ReturnType<typeof planCopy>) => { p.programs[0].name = 'a.b'; p.programs[1].name = 'a_b'; }, /would both be pinned as 'a_b'/],
    ['a section with an escape sequence', (p: ReturnType<typeof planCopy>) => { p.programs[0].section = 'xdp\u001b[2J'; }, /section .* contains a control character/],
    ['a program name with a C1 control (CSI)', (p: ReturnType<typeof planCopy>) => { p.programs[0].name = 'a\u009b2Jb'; }, /program name .* contains a control character/],
    ['a map name with a bidi override', (p: ReturnType<typeof planCopy>) => { p.maps[0].name = 'ok\u202egnp.exe'; }, /map name .* contains a control character/],
    ['a section with a bidi isolate', (p: ReturnType<typeof planCopy>) => { p.programs[0].section = 'xdp\u2066x'; }, /section .* contains a control character/],
    ['a program pinned as the maps directory', (p: ReturnType<typeof planCopy>) => { p.programs[0].name = 'maps'; }, /would both be pinned as 'maps'/],
    ['two programs with one name', (p: ReturnType<typeof planCopy>) => { p.programs[1].name = p.programs[0].name; }, /two programs are named/],
    ['two maps with one name', (p: ReturnType<typeof planCopy>) => { p.maps[1].name = p.maps[0].name; }, /two maps are named/],
    ['a kernel name the kernel refuses', (p: ReturnType<typeof planCopy>) => { p.maps[0].kernelName = 'a/b'; }, /kernel name "a\/b" is not 0-15 characters/],
    ['a kernel name over 15 characters', (p: ReturnType<typeof planCopy>) => { p.maps[0].kernelName = 'k'.repeat(16); }, /is not 0-15 characters/],
  ])('%s: a plan that says so does not decode (PLAN_INVALID)', (_w, edit, msg) => {
    const p = planCopy('testrun.o');
    edit(p);
    let err: BpfsealError | undefined;
    try {
      decodePlan(encodePlan(p));
    } catch (e) {
      err = e as BpfsealError;
    }
    expect(err?.code).toBe('PLAN_INVALID');
    expect(err?.message).toMatch(msg);
  });

  it('an object whose file name makes a bad plan name is refused at plan time', () => {
    expect(() => planFromObject(readFixture('minimal'), 'bad\u0007name.o')).toThrow(expect.objectContaining({ code: 'PLAN_NAME_INVALID' }));
  });
});

describe.skipIf(!probe.ok)('pin directories', () => {
  let k: KeyFiles;
  let policy: TrustPolicy;
  let rel: Buffer;
  const host = () => {
    const d = makeTmpDir('bpfseal-host-');
    return { hostLog: join(d, 'host-log'), statePath: join(d, 'state.json') };
  };
  beforeAll(async () => {
    const d = makeTmpDir('bpfseal-pins-');
    k = writeKeyFiles(d, 'k', 'ecdsa-p256');
    policy = parsePolicy(JSON.stringify({ version: 1, signers: [{ name: 'k', key: 'k.pub', plans: ['*'], programTypes: ['*'] }] }), join(d, 'p.json'));
    rel = (await signFixture('globals', 'pins', k, 1)).bytes;
  });
  const load = (pinDir: string, files = host()) => loadRelease(rel, { policy, ...files, pinDir });
  const noStaging = () => expect(readdirSync('/sys/fs/bpf').filter((n) => n.startsWith('bpfseal_staging_'))).toEqual([]);

  it('a directory another user created at the pin path does not receive our pins (its owner keeps it)', async () => {
    const dir = newPinDir();
    mkdirSync(dir);
    chownSync(dir, 65534, 65534);
    await expect(load(dir)).rejects.toMatchObject({ code: 'PIN_DIR_UNSAFE', message: expect.stringContaining('was created by uid 65534') });
    expect(lstatSync(dir).uid).toBe(65534);
    expect(readdirSync(dir)).toEqual([]);
    noStaging();
  });

  it('a symlink planted at the pin path is refused, never followed', async () => {
    const dir = newPinDir();
    const target = newPinDir();
    mkdirSync(target);
    symlinkSync(target, dir);
    await expect(load(dir)).rejects.toMatchObject({ code: 'PIN_DIR_UNSAFE', message: expect.stringContaining('is a symbolic link') });
    expect(lstatSync(dir).isSymbolicLink()).toBe(true);
    expect(readdirSync(target)).toEqual([]);
    noStaging();
  });

  it("an empty directory of our own at the pin path is replaced by the load's", async () => {
    const dir = newPinDir();
    mkdirSync(dir, { mode: 0o755 });
    const files = host();
    await load(dir, files);
    expect(lstatSync(dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(dir)).toContain('xdp_globals');
    await unloadDir(dir, files.hostLog);
  });

  it('a parent that others may write to and that is not sticky, or that another user owns, is refused', async () => {
    const parent = newPinDir();
    mkdirSync(parent, { mode: 0o777 });
    (await import('node:fs')).chmodSync(parent, 0o777);
    await expect(load(join(parent, 'app'))).rejects.toMatchObject({ code: 'PIN_DIR_UNSAFE', message: expect.stringContaining('not sticky') });
    (await import('node:fs')).chmodSync(parent, 0o755);
    chownSync(parent, 65534, 65534);
    await expect(load(join(parent, 'app'))).rejects.toMatchObject({ code: 'PIN_DIR_UNSAFE', message: expect.stringContaining('owned by uid 65534') });
    expect(existsSync(join(parent, 'app'))).toBe(false);
  });

  it('unload checks the whole tree first and removes only what the recorded load pinned', async () => {
    const files = host();
    // Not recorded at all: refused, nothing removed.
    const stray = newPinDir();
    mkdirSync(stray);
    objPin(mapCreate({ type: 2, keySize: 4, valueSize: 4, maxEntries: 1, flags: 0, numaNode: 0, name: 'stray', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n }), join(stray, 'stray'));
    await expect(unloadDir(stray, files.hostLog)).rejects.toMatchObject({ code: 'PIN_DIR_FOREIGN', message: expect.stringContaining('records no bpfseal load pinned here') });
    expect(readdirSync(stray)).toEqual(['stray']);
    rmSync(stray, { recursive: true });

    const dir = newPinDir();
    await load(dir, files);
    const before = readdirSync(dir).sort();
    // An extra pin in it: refused, nothing removed.
    const extra = mapCreate({ type: 2, keySize: 4, valueSize: 4, maxEntries: 1, flags: 0, numaNode: 0, name: 'extra', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n });
    objPin(extra, join(dir, 'maps', 'extra'));
    extra.close();
    await expect(unloadDir(dir, files.hostLog)).rejects.toMatchObject({ code: 'PIN_DIR_FOREIGN', message: expect.stringContaining("'maps/extra'") });
    expect(readdirSync(dir).sort()).toEqual(before);
    rmSync(join(dir, 'maps', 'extra'));
    // A program pin swapped for another object of the same name: refused.
    rmSync(join(dir, 'xdp_globals'));
    const other = mapCreate({ type: 2, keySize: 4, valueSize: 4, maxEntries: 1, flags: 0, numaNode: 0, name: 'imposter', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n });
    objPin(other, join(dir, 'xdp_globals'));
    other.close();
    await expect(unloadDir(dir, files.hostLog)).rejects.toMatchObject({ code: 'PIN_DIR_FOREIGN', message: expect.stringMatching(/'xdp_globals' no longer holds the object load/) });
    expect(readdirSync(dir).sort()).toEqual(before);
    // A symlink inside: refused.
    symlinkSync('/etc/passwd', join(dir, 'link'));
    await expect(unloadDir(dir, files.hostLog)).rejects.toMatchObject({ code: 'PIN_DIR_FOREIGN', message: expect.stringContaining('is a symbolic link') });
    rmSync(join(dir, 'link'));
    // Unload through a symlink to the directory: refused.
    const via = newPinDir();
    symlinkSync(dir, via);
    await expect(unloadDir(via, files.hostLog)).rejects.toMatchObject({ code: 'PIN_DIR_FOREIGN' });
    rmSync(via);
    // The imposter out and the program gone: the pin set no longer matches the record's program.
    rmSync(join(dir, 'xdp_globals'));
    rmSync(dir, { recursive: true });
  });

  it('a normal unload removes the recorded pins, records the unload, and a second unload is refused', async () => {
    const files = host();
    const dir = newPinDir();
    const r = await load(dir, files);
    const u = await unloadDir(dir, files.hostLog);
    expect(u.removed.sort()).toEqual([...r.committed!.pins].sort());
    expect(existsSync(dir)).toBe(false);
    mkdirSync(dir); // an empty directory of the same name later: not a recorded load that stands
    await expect(unloadDir(dir, files.hostLog)).rejects.toMatchObject({ code: 'PIN_DIR_FOREIGN' });
    const log = openHostLog(files.hostLog, false);
    try {
      expect(readDecisions(log).map((d) => d.decision?.decision)).toEqual(['allowed', 'unloaded']);
    } finally {
      log.close();
    }
  });
});

it('plans decode their own re-encoding (control for the cases above)', () => {
  const p = planCopy('testrun.o');
  expect(decodePlan(encodePlan(p)).programs.map((x) => x.name)).toEqual(p.programs.map((x) => x.name));
});

describe.skipIf(!probe.ok)('recovery touches only what bpfseal staged', () => {
  const marker = (hostLog: string, loadId: string, pinDir: string, staging: string) =>
    writePending(hostLog, { loadId, plan: 'p', version: 1, pinDir, staging, time: new Date().toISOString() });

  it('a marker naming a staging path that is not bpfseal_staging_<id> beside the pin directory is left alone (exit 1)', async () => {
    const hostLog = join(makeTmpDir(), 'host');
    const victim = newPinDir();
    mkdirSync(victim);
    const m = mapCreate({ type: 2, keySize: 4, valueSize: 4, maxEntries: 1, flags: 0, numaNode: 0, name: 'victim', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n });
    objPin(m, join(victim, 'keep'));
    m.close();
    const loadId = 'ab'.repeat(16);
    marker(hostLog, loadId, join(victim, 'x'), victim);
    const r = await runCli(['recover', '--host-log', hostLog, '--json']);
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as { code: string; recovered: { outcome: string; problems: string[] }[] };
    expect(out.code).toBe('RECOVERY_STUCK');
    expect(out.recovered[0].outcome).toBe('stuck');
    expect(out.recovered[0].problems[0]).toMatch(/not .*bpfseal_staging_/);
    expect(readdirSync(victim)).toEqual(['keep']);
    expect(listPending(hostLog).map((p) => p.loadId)).toEqual([loadId]);
  });

  it('a staging directory whose pins cannot all be removed keeps its marker and says what is in the way', async () => {
    const hostLog = join(makeTmpDir(), 'host');
    const parent = newPinDir();
    mkdirSync(parent);
    const loadId = 'cd'.repeat(16);
    const staging = join(parent, `bpfseal_staging_${loadId}`);
    mkdirSync(join(staging, 'odd'), { recursive: true }); // a directory recovery never removes
    marker(hostLog, loadId, join(parent, 'final'), staging);
    const r = await runCli(['recover', '--host-log', hostLog]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/stuck load c+d.*ENOTEMPTY/);
    expect(r.stderr).toContain('RECOVERY_STUCK');
    expect(listPending(hostLog)).toHaveLength(1);
    // Once the operator removes it, recovery finishes: aborted, marker gone.
    rmSync(join(staging, 'odd'), { recursive: true });
    const again = await runCli(['recover', '--host-log', hostLog, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as { recovered: { outcome: string }[] }).recovered[0].outcome).toBe('aborted');
    expect(listPending(hostLog)).toEqual([]);
    expect(existsSync(staging)).toBe(false);
  });
});
