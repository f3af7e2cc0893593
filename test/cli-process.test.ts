/**
 * Every command once as a real process of the installed entry point (node dist/bundle/bpfseal.mjs,
 * package.json "bin"): the other CLI tests run main() in process for speed, and what only the process
 * shows is checked here — the bundle's lazily loaded chunks for each command, exit statuses as the
 * shell sees them, stdout flushed before exit. cli.test.ts (plan, inspect, usage) and
 * cli-load.test.ts (load, unload, progress on a terminal) run real processes as well.
 */
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { openLog } from '../src/tlog/store.js';
import { runCliProcess, show } from './helpers/cli.js';
import { CLI, fixturePath, makeTmpDir } from './helpers/paths.js';


describe('each command as a process of the bundle', () => {
  let d: string;
  const run = (...args: string[]) => runCliProcess(args, { cwd: d });
  beforeAll(() => {
    d = makeTmpDir('bpfseal-cli-process-');
  });

  it('keygen, sign, verify (trusted and untrusted key)', () => {
    expect(run('keygen', '--out', 'k', '--name', 'rel').code).toBe(0);
    expect(run('keygen', '--out', 'k', '--name', 'other').code).toBe(0);
    const s = run('sign', fixturePath('minimal'), '--key', 'k/rel.key', '--log', 'att', '-o', 'm.bpfseal');
    expect(s.code, show(s)).toBe(0);
    expect(s.stdout).toMatch(/^sha256:[0-9a-f]{64} {2}m\.bpfseal\n$/);
    const v = run('verify', 'm.bpfseal', '--key', 'k/rel.pub', '--log', 'att');
    expect(v.code, show(v)).toBe(0);
    expect(v.stdout).toMatch(/^OK m\.bpfseal: minimal v1 sha256:[0-9a-f]{64} signed by k\/rel\.pub/);
    const u = run('verify', 'm.bpfseal', '--key', 'k/other.pub', '--json');
    expect(u.code, show(u)).toBe(1);
    expect(JSON.parse(u.stdout)[0].error.code).toBe('UNTRUSTED_SIGNER');
  });

  it('log show, verify, prove; audit of the log', () => {
    const sh = run('log', 'show', '--log', 'att', '--json');
    expect(sh.code, show(sh)).toBe(0);
    expect(JSON.parse(sh.stdout)).toEqual([expect.objectContaining({ index: 0, entry: expect.objectContaining({ kind: 'dsse' }) })]);
    const lv = run('log', 'verify', '--log', 'att');
    expect(lv.code, show(lv)).toBe(0);
    expect(lv.stdout).toMatch(/^ok {2}.*att: 1 entries, root [0-9a-f]{64}/);
    const digest = /sha256:[0-9a-f]{64}/.exec(run('verify', 'm.bpfseal', '--key', 'k/rel.pub', '--log', 'att').stdout)?.[0];
    expect(digest).toBeDefined();
    const pr = run('log', 'prove', digest!, '--log', 'att', '--json');
    expect(pr.code, show(pr)).toBe(0);
    const a = run('audit', '--log', 'att', '--key', 'k/rel.pub', '--state', 'audit-state.json');
    expect(a.code, show(a)).toBe(0);
    expect(a.stdout).toMatch(/#0 .* verified +minimal v1/);
  });

  it('verify-report, recover, enforce --status, preflight: their failures and exit statuses', () => {
    const vr = run('verify-report', 'no-such-report.json', '--key', 'k/rel.pub');
    expect(vr.code, show(vr)).toBe(2);
    expect(vr.stderr).toContain('INPUT_UNREADABLE');
    const rc = run('recover', '--host-log', 'host', '--json');
    expect(rc.code, show(rc)).toBe(0);
    const en = run('enforce', '--status', '--pin', join(d, 'no-enforcer'), '--host-log', 'host', '--json');
    expect(en.code, show(en)).toBe(1);
    expect(JSON.parse(en.stdout).error.code).toBe('ENFORCE_INACTIVE');
    const pf = run('preflight', 'm.bpfseal', '--kernel', '');
    expect(pf.code, show(pf)).toBe(2);
    expect(pf.stderr).toContain('VM_BAD_SPEC');
  });

  it('features, version, completion, demo --dry-run', () => {
    const f = run('features', '--json');
    expect(f.code, show(f)).toBe(0);
    expect(JSON.parse(f.stdout)).toMatchObject({ bpfseal: expect.stringMatching(/^\d+\.\d+\.\d+/) });
    expect(run('version').stdout).toMatch(/^bpfseal \d+\.\d+\.\d+/);
    const c = run('completion', 'bash');
    expect(c.code, show(c)).toBe(0);
    expect(c.stdout).toContain('complete -o filenames -F _bpfseal bpfseal');
    const demo = run('demo', '--dry-run', '--dir', join(d, 'demo'));
    expect(demo.code, show(demo)).toBe(0);
    expect(demo.stdout).toContain('[verify] signature, subject digest, log inclusion and policy OK');
  });

  it('a closed pipe ends the output quietly (EPIPE), with exit 0', async () => {
    // Over 64 KiB of output (the pipe's buffer), so that the write after head exits fails.
    const log = openLog(join(d, 'big-log'));
    await log.appendMany(Array.from({ length: 2000 }, (_, i) => Buffer.from(JSON.stringify({ n: i }))));
    log.close();
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${CLI}" log show --log "${join(d, 'big-log')}" | head -n 1; echo "status \${PIPESTATUS[0]}"`], { encoding: 'utf8' });
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\s+0 /);
    expect(lines[1]).toBe('status 0');
    expect(r.stderr).toBe('');
  });
});
