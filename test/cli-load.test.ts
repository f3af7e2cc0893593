/** `load` usage contract and the CLI plumbing README promises: refusal without --pin/--dry-run, bpffs mounting, TTY progress. */
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { copyFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCliProcess } from './helpers/cli.js';
import { DIST, fixturePath, makeTmpDir } from './helpers/paths.js';
import { newPinDir, probeBpf, removePinDirs } from './helpers/kernel.js';
import { Progress } from '../src/cli/io.js';

describe('load', () => {
  it('without --pin or --dry-run: exit 2, USAGE_NO_PIN, before reading anything', () => {
    const r = runCliProcess(['load', '/nonexistent/release.bpfseal', '--key', '/nonexistent/key.pub']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('load needs --pin <bpffs dir> (objects would die with this process) or --dry-run');
  });

  // Needs root and unshare(1): a private mount namespace where /sys/fs/bpf is unmounted first.
  const canUnshare = process.getuid?.() === 0 && spawnSync('unshare', ['-m', 'true']).status === 0;
  it.skipIf(!canUnshare)('mounts /sys/fs/bpf when it is not mounted (in a private mount namespace)', () => {
    const dir = makeTmpDir('bpfseal-bpffs-');
    const script = [
      'umount /sys/fs/bpf 2>/dev/null; findmnt -t bpf /sys/fs/bpf >/dev/null && exit 9',
      `node -e "import('${join(DIST, 'runtime/bpffs.js')}').then((m) => m.ensureBpffs('/sys/fs/bpf/bpfseal-mount-test'))"`,
      'findmnt -t bpf /sys/fs/bpf >/dev/null && echo mounted',
    ].join('; ');
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { cwd: dir, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('mounted');
  });
});

describe('Progress', () => {
  const capture = (tty: boolean, total: number): string => {
    const err = process.stderr as NodeJS.WriteStream & { isTTY?: boolean };
    const was = err.isTTY;
    const write = err.write;
    let out = '';
    err.isTTY = tty;
    err.write = ((s: string) => { out += s; return true; }) as typeof err.write;
    try {
      const p = new Progress(total, 'planning');
      for (let i = 0; i < total; i++) p.tick(i, `obj${i}.o`);
      p.done();
    } finally {
      err.write = write;
      err.isTTY = was;
    }
    return out;
  };
  it('shows "planning i/n item" on a terminal for many inputs, and clears the line', () => {
    const out = capture(true, 3);
    expect(out).toContain('planning 1/3 obj0.o');
    expect(out).toContain('planning 3/3 obj2.o');
    expect(out.endsWith('\r\x1b[K')).toBe(true);
  });
  it('stays silent when stderr is not a terminal, or for a single input', () => {
    expect(capture(false, 3)).toBe('');
    expect(capture(true, 1)).toBe('');
  });
});

describe.skipIf(!probeBpf().ok)('load and unload of several releases in one call', () => {
  const setup = () => {
    const d = makeTmpDir();
    expect(runCliProcess(['keygen', '--out', d, '--name', 'k']).code).toBe(0);
    const rel = (fx: string) => {
      const out = join(d, `${fx}.bpfseal`);
      expect(runCliProcess(['sign', fixturePath(fx), '--key', join(d, 'k.key'), '--no-log', '-o', out]).code).toBe(0);
      return out;
    };
    const base = newPinDir();
    const common = ['--key', join(d, 'k.pub'), '--host-log', join(d, 'host'), '--state', join(d, 'state.json')];
    return { d, rel, base, common };
  };
  afterEach(() => removePinDirs());

  it('each release is pinned at <pin>/<plan>; --json is an array; unload takes several directories', () => {
    const { rel, base, common } = setup();
    const r = runCliProcess(['load', rel('minimal'), rel('globals'), '--pin', base, ...common, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { release: string; ok: boolean; plan: string; pinDir: string }[];
    expect(out.map((x) => [x.ok, x.plan, x.pinDir])).toEqual([[true, 'minimal', join(base, 'minimal')], [true, 'globals', join(base, 'globals')]]);
    expect(readdirSync(base).sort()).toEqual(['globals', 'minimal']);
    const u = runCliProcess(['unload', join(base, 'minimal'), join(base, 'globals'), '--host-log', common[3], '--json']);
    expect(u.code, u.stderr).toBe(0);
    expect((JSON.parse(u.stdout) as { ok: boolean }[]).map((x) => x.ok)).toEqual([true, true]);
    expect(readdirSync(base)).toEqual([]);
  });

  it("a plan named like foo.bpf (objects are usually foo.bpf.o) is pinned at <pin>/foo_bpf: bpffs refuses dots", () => {
    const { d, rel, base, common } = setup();
    const obj = join(d, 'minimal.bpf.o');
    copyFileSync(fixturePath('minimal'), obj);
    const dotted = join(d, 'minimal.bpf.bpfseal');
    expect(runCliProcess(['sign', obj, '--key', join(d, 'k.key'), '--no-log', '-o', dotted]).code).toBe(0);
    const r = runCliProcess(['load', dotted, rel('globals'), '--pin', base, ...common, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { plan: string; pinDir: string }[];
    expect(out.map((x) => [x.plan, x.pinDir])).toEqual([['minimal.bpf', join(base, 'minimal_bpf')], ['globals', join(base, 'globals')]]);
    expect(runCliProcess(['unload', join(base, 'minimal_bpf'), join(base, 'globals'), '--host-log', common[3]]).code).toBe(0);
  });

  it('without --atomic a failure stops only its own release (exit = the worst); with --atomic the set is undone', () => {
    const { d, rel, base, common } = setup();
    const bad = join(d, 'bad.bpfseal');
    writeFileSync(bad, 'not a release');
    const loose = runCliProcess(['load', rel('minimal'), bad, rel('globals'), '--pin', base, ...common, '--json']);
    expect(loose.code).toBe(2);
    expect((JSON.parse(loose.stdout) as { ok: boolean }[]).map((x) => x.ok)).toEqual([true, false, true]);
    expect(loose.stderr).toMatch(/bad\.bpfseal: [A-Z_]+: /);
    expect(runCliProcess(['unload', join(base, 'minimal'), join(base, 'globals'), '--host-log', common[3]]).code).toBe(0);
    const atomic = runCliProcess(['load', rel('minimal'), rel('globals'), bad, rel('testrun'), '--pin', base, ...common, '--atomic', '--json']);
    expect(atomic.code).toBe(2);
    const res = JSON.parse(atomic.stdout) as { ok: boolean; undone?: boolean }[];
    expect(res.map((x) => [x.ok, x.undone ?? false])).toEqual([[true, true], [true, true], [false, false]]);
    expect(atomic.stderr).toContain('ATOMIC_UNDONE');
    expect(readdirSync(base)).toEqual([]);
    // The host log says so: allowed then unloaded for each.
    const log = runCliProcess(['log', 'verify', '--log', common[3], '--json']);
    expect(log.code, log.stderr).toBe(0);
  });
});
