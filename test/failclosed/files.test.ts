/**
 * Fail closed, files (issue "fail closed" §4, §6): durable writes never go through planted links and
 * leave no temp files, reads are bounded, directories are created without loops and refused when
 * another user could swap their contents, lock waits end with a clear error.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { chmodSync, chownSync, existsSync, lchownSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createExclusive, openExclusive, writeFileDurable } from '../../src/fsx/durable.js';
import { readInput, LIMITS } from '../../src/fsx/read.js';
import { checkPrivateDir, ensureDirectory } from '../../src/fsx/dirs.js';
import { FileLock } from '../../src/fsx/lock.js';
import { cleanupTmpDirs, fixturePath, makeTmpDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';

afterAll(cleanupTmpDirs);

describe('durable writes', () => {
  it('replace atomically, leave no temp file, and never write through a symlink', () => {
    const d = makeTmpDir();
    const victim = join(d, 'victim');
    writeFileSync(victim, 'keep me');
    const target = join(d, 'out');
    writeFileDurable(target, 'one');
    writeFileDurable(target, 'two');
    expect(readFileSync(target, 'utf8')).toBe('two');
    expect(readdirSync(d).sort()).toEqual(['out', 'victim']);
    // A symlink at a name the writer might pick is never followed: O_EXCL | O_NOFOLLOW.
    const planted = join(d, 'planted');
    symlinkSync(victim, planted);
    expect(() => openExclusive(planted, 0o600)).toThrow(/EEXIST/);
    expect(readFileSync(victim, 'utf8')).toBe('keep me');
  });

  it('createExclusive never replaces a file, a directory or a dangling symlink', () => {
    const d = makeTmpDir();
    writeFileSync(join(d, 'f'), 'old');
    mkdirSync(join(d, 'dir'));
    symlinkSync(join(d, 'nowhere'), join(d, 'link'));
    for (const n of ['f', 'dir', 'link']) expect(createExclusive(join(d, n), 'new', 0o600)).toBe(false);
    expect(readFileSync(join(d, 'f'), 'utf8')).toBe('old');
    expect(existsSync(join(d, 'nowhere'))).toBe(false);
    expect(createExclusive(join(d, 'fresh'), 'new', 0o640)).toBe(true);
    expect(readdirSync(d).sort()).toEqual(['dir', 'f', 'fresh', 'link']);
  });

  it('writing into a missing directory is an input error naming the path, not a crash', () => {
    const d = makeTmpDir();
    expect(() => writeFileDurable(join(d, 'no', 'such', 'file'), 'x')).toThrow(expect.objectContaining({ code: 'OUTPUT_UNWRITABLE', message: expect.stringContaining('ENOENT') }));
  });
});

describe('bounded reads', () => {
  it('refuses a file larger than its kind allows, a directory, a FIFO, and (noFollow) a symlink', () => {
    const d = makeTmpDir();
    const big = join(d, 'policy.json');
    writeFileSync(big, Buffer.alloc(LIMITS.policy + 1, 0x20));
    expect(() => readInput(big, { kind: 'policy' })).toThrow(expect.objectContaining({ code: 'INPUT_TOO_LARGE', message: expect.stringMatching(/policy\.json: .* larger than the 1 MiB/) }));
    expect(readInput(big, { kind: 'object' }).length).toBe(LIMITS.policy + 1);
    expect(() => readInput(d)).toThrow(expect.objectContaining({ code: 'INPUT_NOT_FILE' }));
    symlinkSync(big, join(d, 'link'));
    expect(() => readInput(join(d, 'link'), { kind: 'object', noFollow: true })).toThrow(expect.objectContaining({ code: 'INPUT_SYMLINK' }));
    expect(readInput(join(d, 'link')).length).toBe(LIMITS.policy + 1);
  });

  it('reads a /proc file (which stats as size 0) whole, and still bounds it', () => {
    const maps = readInput('/proc/self/maps', { kind: 'object' }).toString('utf8');
    expect(maps.split('\n').length).toBeGreaterThan(10);
    expect(readInput('/proc/sys/kernel/random/boot_id', { kind: 'key' }).toString('utf8')).toMatch(/^[0-9a-f-]{36}\n$/);
    expect(() => readInput('/proc/self/maps', { kind: 'checkpoint' })).toSatisfy((f: () => unknown) => {
      try { f(); return maps.length <= LIMITS.checkpoint; } catch (e) { return (e as { code?: string }).code === 'INPUT_TOO_LARGE'; }
    });
  });
});

describe('directories', () => {
  it('ensureDirectory ends quickly with an error under /proc and when a file is in the way', () => {
    const d = makeTmpDir();
    writeFileSync(join(d, 'file'), '');
    const t0 = Date.now();
    expect(() => ensureDirectory('/proc/bpfseal-nope/x')).toThrow(expect.objectContaining({ code: 'DIR_UNUSABLE' }));
    expect(Date.now() - t0).toBeLessThan(5000); // bounded: it used to spin in a mkdir loop
    expect(() => ensureDirectory(join(d, 'file', 'sub'))).toThrow(/file: not a directory \(a parent of/);
    expect(() => ensureDirectory(join(d, 'file'))).toThrow(/file: not a directory$/);
    expect(ensureDirectory(join(d, 'a', 'b', 'c'))).toBe(true);
    expect(ensureDirectory(join(d, 'a', 'b', 'c'))).toBe(false);
  });

  it('checkPrivateDir refuses a symlink and a group- or world-writable directory', () => {
    const d = makeTmpDir();
    const real = join(d, 'real');
    mkdirSync(real, { mode: 0o755 });
    chmodSync(real, 0o755);
    checkPrivateDir(real, 'the log directory');
    symlinkSync(real, join(d, 'link'));
    expect(() => checkPrivateDir(join(d, 'link'), 'the log directory')).toThrow(/is a symbolic link/);
    chmodSync(real, 0o777);
    expect(() => checkPrivateDir(real, 'the log directory')).toThrow(/writable by group or others \(mode 777\)/);
    chmodSync(real, 0o775);
    expect(() => checkPrivateDir(real, 'the log directory')).toThrow(/writable by group or others/);
  });
});

describe('locks', () => {
  it('a lock held by another process times out with a message naming it', async () => {
    const d = makeTmpDir();
    const path = join(d, 'x.lock');
    // Another process takes the lock and keeps it until we kill it.
    const holder = spawn(process.execPath, ['-e', `
      const koffi = require(${JSON.stringify(require.resolve('koffi'))});
      const flock = koffi.load('libc.so.6').func('int flock(int fd, int op)');
      const fd = require('fs').openSync(${JSON.stringify(path)}, 'a');
      flock(fd, 2); process.stdout.write('held\\n'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
    try {
      const lock = new FileLock(path, 'the test lock');
      const t0 = Date.now();
      expect(() => lock.acquire(300)).toThrow(expect.objectContaining({ code: 'LOCK_TIMEOUT', message: expect.stringContaining('waiting for the test lock') }));
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      lock.close();
    } finally {
      holder.kill('SIGKILL');
    }
    await new Promise((r) => holder.once('exit', r));
    const lock = new FileLock(path);
    lock.acquire(2000); // the kernel dropped the dead holder's lock
    lock.unlock();
    lock.close();
  });
});

describe('sign --log', () => {
  const key = async () => {
    const d = makeTmpDir();
    expect((await runCli(['keygen', '--out', d, '--name', 'k'])).code).toBe(0);
    return join(d, 'k.key');
  };
  it('a log under /proc, an existing file, or a world-writable directory is exit 2 with a code, quickly, and writes no release', async () => {
    const k = await key();
    const out = makeTmpDir();
    const file = join(out, 'afile');
    writeFileSync(file, 'not a log');
    const open = join(out, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    for (const [log, code] of [['/proc/bpfseal-x', 'TLOG_IO'], [file, 'TLOG_IO'], [open, 'TLOG_UNSAFE_PATH']] as const) {
      const t0 = Date.now();
      const r = await runCli(['sign', fixturePath('minimal'), '--key', k, '--log', log, '-o', join(out, 'm.bpfseal'), '--json']);
      expect(Date.now() - t0).toBeLessThan(20_000);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(log);
      expect(r.stderr).not.toMatch(/internal error/);
      expect(`${r.stdout}${r.stderr}`).toContain(code);
      expect(existsSync(join(out, 'm.bpfseal'))).toBe(false);
    }
  });
});

describe('trust material another local user could change is refused', () => {
  // One signed release and a policy trusting its key; then the policy, its key, and the directories
  // on the way to them are made unsafe one way at a time. Each is TRUST_FILE_UNSAFE, exit 2, naming
  // what to fix; a sticky world-writable directory (/tmp) is fine.
  const setup = async () => {
    const d = makeTmpDir();
    chmodSync(d, 0o755);
    expect((await runCli(['keygen', '--out', d, '--name', 'k'])).code).toBe(0);
    const rel = join(d, 'm.bpfseal');
    expect((await runCli(['sign', fixturePath('minimal'), '--key', join(d, 'k.key'), '--no-log', '-o', rel])).code).toBe(0);
    const trust = join(d, 'trust');
    mkdirSync(trust, { mode: 0o755 });
    writeFileSync(join(trust, 'k.pub'), readFileSync(join(d, 'k.pub')));
    const policy = join(trust, 'policy.json');
    writeFileSync(policy, JSON.stringify({ version: 1, signers: [{ name: 'k', key: 'k.pub', plans: ['*'], programTypes: ['*'] }] }));
    const state = join(d, 'state.json');
    const verify = async () => await runCli(['verify', rel, '--policy', policy, '--state', state, '--json']);
    return { d, trust, policy, verify };
  };

  it('control: a policy and key owned by us, in safe directories, verify', async () => {
    const { verify } = await setup();
    const r = await verify();
    expect(r.code, r.stderr).toBe(0);
  });

  it.each([
    ['a group-writable policy', (s: Awaited<ReturnType<typeof setup>>) => chmodSync(s.policy, 0o664), /a trust policy: writable by group or others \(mode 664\)/],
    ['a world-writable key', (s: Awaited<ReturnType<typeof setup>>) => chmodSync(join(s.trust, 'k.pub'), 0o666), /k\.pub: a public key bpfseal trusts: writable by group or others/],
    ['a policy directory others can write to', (s: Awaited<ReturnType<typeof setup>>) => chmodSync(s.trust, 0o777), /directory .*trust is writable by group or others/],
    ['a policy owned by another user', (s: Awaited<ReturnType<typeof setup>>) => chownSync(s.policy, 4242, 4242), /owned by uid 4242/],
    ['a key reached through another user\'s symlink', (s: Awaited<ReturnType<typeof setup>>) => {
      renameSync(join(s.trust, 'k.pub'), join(s.d, 'real.pub'));
      symlinkSync(join(s.d, 'real.pub'), join(s.trust, 'k.pub'));
      lchownSync(join(s.trust, 'k.pub'), 4242, 4242);
    }, /symbolic link owned by uid 4242/],
  ])('%s', async (_what, spoil, msg) => {
    if (process.geteuid?.() !== 0 && /uid 4242/.test(String(msg))) return; // chown needs root
    const s = await setup();
    spoil(s);
    const r = await verify(s);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('TRUST_FILE_UNSAFE');
    expect(r.stderr).toMatch(msg);
  });

  it('a sticky world-writable directory on the way is fine (only owners rename in it)', async () => {
    const s = await setup();
    chmodSync(s.trust, 0o1777);
    expect((await s.verify()).code).toBe(0);
  });
});

function verify(s: { verify: () => ReturnType<typeof runCli> }): ReturnType<typeof runCli> {
  return s.verify();
}
