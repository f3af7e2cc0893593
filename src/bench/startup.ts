/**
 * `npm run bench -- startup`: whole-process cost of the commands scripts run most, against `node -e 0`
 * measured in the same run (issue 12: verify/load of one small release within 1.5x, --version/--help
 * within 1.2x), and the per-release cost of verifying or dry-run loading 100 releases in one call.
 * Every command runs as the installed CLI does (node dist/bundle/bpfseal.mjs), spawned N times
 * (BENCH_STARTUP_RUNS, default 15) in interleaved rounds (A B C A B C ...) so drift from other jobs on
 * the machine falls on all of them alike; the figure is the median. With /usr/bin/time the child's CPU
 * time (user + sys) is reported too: less sensitive to a busy machine than wall time.
 * The 100 releases (the minimal fixture under 100 plan names, one key) are signed once and kept in
 * $TMPDIR/bpfseal-bench-startup-<hash>/, reused while the fixture, key and tool version are the same.
 * BENCH_STARTUP_COMPARE=<path to another build's bpfseal.mjs> adds its rows (`other:`), interleaved in the
 * same rounds, to compare two builds under the same load.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { canUseBpf } from '../kernel/probe.js';
import { toolVersion } from '../pkg.js';
import { at } from '../errors.js';
import { median, REPO_ROOT, table } from './measure.js';

const CLI = join(REPO_ROOT, 'dist/bundle/bpfseal.mjs');
const RELEASES = 100;
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

interface Sample { wall: number; cpu?: number }

/** One whole process: wall ms, and CPU ms (user + sys) of the child when /usr/bin/time is there. */
function spawnMs(cmd: string, args: string[], okStatus = [0]): Sample {
  const [exe, exeArgs]: [string, string[]] = TIME ? [TIME, ['-f', '%U %S', cmd, ...args]] : [cmd, args];
  const t = performance.now();
  const r = spawnSync(exe, exeArgs, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', maxBuffer: 1 << 26 });
  const wall = performance.now() - t;
  if (r.error) throw r.error;
  if (!okStatus.includes(r.status ?? -1)) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  if (!TIME) return { wall };
  const last = r.stderr.trim().split('\n').pop() ?? '';
  const [u, s] = last.split(' ').map(Number);
  return { wall, cpu: u !== undefined && s !== undefined && Number.isFinite(u + s) ? (u + s) * 1000 : undefined };
}

function bpfseal(args: string[]): void {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`bpfseal ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
}

/** The 100 signed releases and their key, made once per fixture/tool version and kept in $TMPDIR. */
function releases(): { dir: string; pub: string; files: string[] } {
  const fixture = join(REPO_ROOT, 'test/fixtures/minimal.o');
  const id = createHash('sha256').update(readFileSync(fixture)).update(toolVersion()).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `bpfseal-bench-startup-${id}`);
  const out = join(dir, 'releases');
  const files = () => (existsSync(out) ? readdirSync(out).filter((f) => f.endsWith('.bpfseal')).sort().map((f) => join(out, f)) : []);
  if (files().length !== RELEASES) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(join(dir, 'objects'), { recursive: true, mode: 0o700 });
    mkdirSync(out);
    bpfseal(['keygen', '--out', dir, '--name', 'bench']);
    const objs = Array.from({ length: RELEASES }, (_, i) => join(dir, 'objects', `r${String(i).padStart(3, '0')}.o`));
    for (const o of objs) copyFileSync(fixture, o);
    bpfseal(['sign', ...objs, '--key', join(dir, 'bench.key'), '--no-log', '-o', `${out}/`]);
  }
  return { dir, pub: join(dir, 'bench.pub'), files: files() };
}

interface Case { name: string; cmd: string; args: string[]; ok?: number[]; after?: () => void }

export async function benchStartup(): Promise<void> {
  const runs = Math.max(3, Math.round(Number(process.env.BENCH_STARTUP_RUNS ?? 15)));
  console.log(`== startup: whole processes vs node -e 0 (median of ${runs} interleaved runs), and ${RELEASES} releases in one call ==`);
  const r = releases();
  const work = mkdtempSync(join(tmpdir(), 'bpfseal-bench-startup-run-'));
  const state = join(work, 'state.json');
  const trust = ['--key', r.pub, '--state', state];
  const node = process.execPath;
  const real = canUseBpf();
  const pinBase = `/sys/fs/bpf/bpfseal-bench-${process.pid}`;
  const hostLog = join(work, 'host-log');
  const one = at(r.files, 0, 'release'); // releases() makes RELEASES of them
  const forCli = (cli: string, label: string): Case[] => [
    { name: `${label}--version`, cmd: node, args: [cli, '--version'] },
    { name: `${label}--help`, cmd: node, args: [cli, '--help'] },
    { name: `${label}verify (1 release)`, cmd: node, args: [cli, 'verify', one, ...trust] },
    { name: `${label}load --dry-run (1 release)`, cmd: node, args: [cli, 'load', one, '--dry-run', ...trust] },
    ...(real ? [{
      name: `${label}load --pin (1 release, real kernel)`, cmd: node, args: [cli, 'load', one, '--pin', pinBase, ...trust, '--host-log', hostLog],
      // Unloaded between runs (not timed), so each load starts from the same empty pin directory.
      after: () => bpfseal(['unload', pinBase, '--host-log', hostLog]),
    }] : []),
    { name: `${label}verify (${RELEASES} releases, one call)`, cmd: node, args: [cli, 'verify', ...r.files, ...trust] },
    { name: `${label}load --dry-run (${RELEASES} releases, one call)`, cmd: node, args: [cli, 'load', ...r.files, '--dry-run', ...trust] },
  ];
  const other = process.env.BENCH_STARTUP_COMPARE;
  const cases: Case[] = [{ name: 'node -e 0 (baseline)', cmd: node, args: ['-e', '0'] }, ...forCli(CLI, 'bpfseal '), ...(other ? forCli(other, 'other: ') : [])];
  const la0 = at(loadavg(), 0, 'load average');
  const samples = cases.map(() => [] as Sample[]);
  try {
    for (const c of cases) (spawnMs(c.cmd, c.args, c.ok), c.after?.()); // warm the page cache
    for (let i = 0; i < runs; i++) {
      for (const [k, c] of cases.entries()) {
        at(samples, k, 'case').push(spawnMs(c.cmd, c.args, c.ok));
        c.after?.();
      }
    }
  } finally {
    if (real && existsSync(pinBase)) spawnSync(node, [CLI, 'unload', pinBase, '--host-log', hostLog], { stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true });
  }
  const wall = samples.map((s) => median(s.map((x) => x.wall)));
  const cpu = samples.map((s) => (s.every((x) => x.cpu !== undefined) ? median(s.map((x) => x.cpu!)) : undefined));
  const wallOf = (k: number) => at(wall, k, 'case'); // one per case; case 0 is the node baseline
  const goal = (name: string) => (/--version|--help/.test(name) ? 1.2 : /\(1 release/.test(name) ? 1.5 : undefined);
  const rows = cases.map((c, k) => {
    const g = goal(c.name);
    const ratio = wallOf(k) / wallOf(0);
    return [c.name, wallOf(k).toFixed(1), ratio.toFixed(2), cpu[k]?.toFixed(0) ?? '-', cpu[k] !== undefined ? (cpu[k]! / cpu[0]!).toFixed(2) : '-',
      g ? `<= ${g}x: ${ratio <= g ? 'met' : 'NOT met'}` : ''];
  });
  console.log(table(['command', 'wall ms', 'x node', 'cpu ms', 'cpu x node', 'goal (wall)'], rows));
  const k1 = cases.findIndex((c) => c.name.startsWith('bpfseal verify (1'));
  const kN = cases.findIndex((c) => c.name.startsWith(`bpfseal verify (${RELEASES}`));
  const l1 = cases.findIndex((c) => c.name.startsWith('bpfseal load --dry-run (1'));
  const lN = cases.findIndex((c) => c.name.startsWith(`bpfseal load --dry-run (${RELEASES}`));
  const per = (a: number, b: number) => (wallOf(b) - wallOf(a)) / (RELEASES - 1);
  console.log(`per release in one call: verify ${per(k1, kN).toFixed(2)} ms, load --dry-run ${per(l1, lN).toFixed(2)} ms ` +
    `(the ${RELEASES}-release call minus the 1-release call, over ${RELEASES - 1}); ${RELEASES} separate verify processes would take ${(wallOf(k1) * RELEASES / 1000).toFixed(1)} s, one call ${(wallOf(kN) / 1000).toFixed(2)} s`);
  console.log(`load average ${la0.toFixed(2)} before, ${at(loadavg(), 0, 'load average').toFixed(2)} after${real ? '' : '; real load --pin skipped: bpf(2) is not permitted for this process'}${TIME ? '' : '; no /usr/bin/time: no CPU figures'}`);
}
