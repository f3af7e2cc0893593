/**
 * `npm pack` makes a package that works installed elsewhere: pack the built tree (scripts ignored: the
 * test suite already refuses a stale build), check what is in the tarball (no bench code, no source
 * maps or sourceMappingURL comments, every document the README links, the bin, engines), install it
 * into an empty directory outside the checkout with npm (--prefer-offline: the registry is used only
 * for what the cache lacks), and run the README's demo from there. Skips where npm cannot be run.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTmpDirs, makeTmpDir, requireDist, ROOT } from './helpers/paths.js';

const npm = spawnSync('npm', ['--version'], { encoding: 'utf8' }).status === 0;
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; engines: { node: string }; bin: Record<string, string> };

function run(cmd: string, args: string[], cwd: string, timeout = 240_000) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, maxBuffer: 64 << 20, env: { ...process.env, npm_config_update_notifier: 'false', BPFSEAL_DEBUG: '' } });
  if (r.error) throw r.error;
  return r;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(join(dir, e.name)) : [join(dir, e.name)]));
}

describe.skipIf(!npm)('npm pack, installed into an empty directory', () => {
  let work: string;
  let tarball: string;
  let files: string[];
  let installed: string;
  beforeAll(() => {
    requireDist();
    work = makeTmpDir('bpfseal-pack-');
    const p = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT);
    expect(p.status, p.stderr).toBe(0);
    const info = JSON.parse(p.stdout)[0] as { filename: string; files: { path: string }[] };
    tarball = join(work, info.filename);
    files = info.files.map((f) => f.path);
    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'pack-test', private: true }));
    const i = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], app);
    expect(i.status, `${i.stdout}\n${i.stderr}`).toBe(0);
    installed = join(app, 'node_modules', 'bpfseal');
  }, 300_000);
  afterAll(() => cleanupTmpDirs());

  it('ships no bench code and no source maps, nothing pointing at a missing map', () => {
    expect(files.filter((f) => f.startsWith('dist/bench/') || f.endsWith('.map'))).toEqual([]);
    expect(files).toContain(pkg.bin.bpfseal);
    const pointing = filesUnder(installed).filter((f) => /\.m?js$/.test(f) && readFileSync(f, 'utf8').includes('sourceMappingURL'));
    expect(pointing.map((f) => relative(installed, f))).toEqual([]);
    // Nothing private: key files a checkout may hold in keys/ are not packed.
    expect(files.filter((f) => f.endsWith('.key') || f === 'keys/policy.json')).toEqual([]);
  });

  it('every relative link in the README is a file in the package', () => {
    const readme = readFileSync(join(installed, 'README.md'), 'utf8');
    const links = [...readme.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)].map((m) => m[1]).filter((l) => !/^[a-z]+:/i.test(l));
    expect(links.length).toBeGreaterThan(3);
    for (const l of links) expect(statSync(join(installed, l)).isFile(), l).toBe(true);
    expect(readme).not.toMatch(/shared\/facts/);
  });

  it('engines admit no Node older than what the code and its dependencies use (crypto.hash: 20.12; @sigstore: 20.17)', () => {
    expect(pkg.engines.node).toBe('^20.17.0 || >=22.9.0');
    for (const dep of ['@sigstore/verify', '@sigstore/sign', '@sigstore/bundle', '@sigstore/core']) {
      const e = (JSON.parse(readFileSync(join(installed, '..', dep, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
      expect(e, dep).toBe(pkg.engines.node);
    }
  });

  it('the installed bin runs outside the checkout: --version, completion, and the README demo', () => {
    const app = join(work, 'app');
    const bin = join(app, 'node_modules', '.bin', 'bpfseal');
    const v = run(bin, ['--version'], app);
    expect([v.status, v.stdout]).toEqual([0, `${pkg.version}\n`]);
    const c = run(bin, ['completion', 'bash'], app);
    expect(c.status, c.stderr).toBe(0);
    expect(c.stdout).toContain('complete -o filenames -F _bpfseal bpfseal');
    const demoDir = join(work, 'demo');
    const d = run('npx', ['--no-install', 'bpfseal', 'demo', '--dir', demoDir], app);
    expect(d.status, `${d.stdout}\n${d.stderr}`).toBe(0);
    expect(d.stdout).toContain(`[setup] work directory ${demoDir}`);
    expect(d.stdout).toMatch(/\[verify\] signature, subject digest, log inclusion and policy OK/);
    expect(d.stdout).toMatch(/\[done\] files kept in /);
    // It ran the installed copy, not the checkout's.
    expect(d.stderr).not.toContain(ROOT);
  });
});
