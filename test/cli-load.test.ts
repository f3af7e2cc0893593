/** `load` usage contract and the CLI plumbing README promises: refusal without --pin/--dry-run, bpffs mounting, TTY progress. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { CLI, makeTmpDir } from './helpers/paths.js';
import { Progress } from '../src/cli/io.js';

describe('load', () => {
  it('without --pin or --dry-run: exit 2, USAGE_NO_PIN, before reading anything', () => {
    const r = runCli(['load', '/nonexistent/release.bpfseal', '--key', '/nonexistent/key.pub']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('load needs --pin <bpffs dir> (objects would die with this process) or --dry-run');
  });

  // Needs root and unshare(1): a private mount namespace where /sys/fs/bpf is unmounted first.
  const canUnshare = process.getuid?.() === 0 && spawnSync('unshare', ['-m', 'true']).status === 0;
  it.skipIf(!canUnshare)('mounts /sys/fs/bpf when it is not mounted (in a private mount namespace)', () => {
    const dir = makeTmpDir('bpfseal-bpffs-');
    const script = [
      'umount /sys/fs/bpf 2>/dev/null; findmnt -t bpf /sys/fs/bpf >/dev/null && exit 9',
      `node -e "import('${CLI.replace(/cli\/main\.js$/, 'runtime/bpffs.js')}').then((m) => m.ensureBpffs('/sys/fs/bpf/bpfseal-mount-test'))"`,
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
