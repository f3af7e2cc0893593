/**
 * Bench section "replay": the kernel work of loading a set of objects.
 *   bpfseal = replay of every pre-decoded plan into the real kernel, then close, in this process
 *   bpftool = `bpftool prog loadall <obj> <pin dir>` per object, minus bpftool's own start-up
 *             (measured as `bpftool version` in the same run), i.e. the libbpf + kernel part
 * Node's own start-up (`node -e 0`, `bpfseal --version`) is reported separately: it is paid once per
 * `bpfseal load`, not per object. Needs root/CAP_BPF and bpftool; otherwise the section says why and skips.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { canUseBpf } from '../kernel/probe.js';
import { planFromBytes } from '../plan/file.js';
import { realKernel } from '../runtime/backend.js';
import { replay } from '../runtime/replay.js';
import { systemHost } from '../runtime/host.js';
import { median, REPO_ROOT, table } from './measure.js';
import type { Plan } from '../plan/types.js';

export const REPLAY_TARGET_RATIO = 1.2;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

/** Fixtures that both bpfseal and bpftool load on this kernel (see test/fixtures/README.md), plus the example. */
export function replaySet(): { name: string; path: string; plan: Plan; digest: string }[] {
  const dir = join(REPO_ROOT, 'test/fixtures');
  const skip = new Set(['minimal_be.o', 'sections.o', 'ksym_typed.o', 'legacy_maps.o', 'legacy_maps_nobtf.o']);
  const files = readdirSync(dir).filter((f) => f.endsWith('.o') && !skip.has(f)).map((f) => join(dir, f));
  files.push(join(REPO_ROOT, 'examples/xdp_counter.o'));
  return files.map((path) => {
    const { plan, digest } = planFromBytes(readFileSync(path), path);
    return { name: path.slice(REPO_ROOT.length), path, plan, digest };
  });
}

function timeMs(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

function run(cmd: string, args: string[]): number {
  return timeMs(() => {
    const r = spawnSync(cmd, args, { stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`);
  });
}

export async function benchReplay(): Promise<void> {
  console.log('== replay: kernel work of loading objects, bpfseal (in-process replay) vs bpftool prog loadall ==');
  if (!canUseBpf()) {
    console.log('skipped: bpf(2) is not permitted for this process (run as root)');
    return;
  }
  if (spawnSync('bpftool', ['version'], { stdio: 'ignore' }).status !== 0) {
    console.log('skipped: bpftool is not installed (apt-get install bpftool)');
    return;
  }
  const set = replaySet();
  // libbpf pins LIBBPF_PIN_BY_NAME maps at /sys/fs/bpf/<name> and reuses an existing pin there: such
  // pins are removed after every bpftool run, and an existing one (someone else's) stops the section.
  const byName = [...new Set(set.flatMap((o) => o.plan.maps.filter((m) => m.pinning === 1).map((m) => `/sys/fs/bpf/${m.name}`)))];
  const taken = byName.filter((p) => existsSync(p));
  if (taken.length) {
    console.log(`skipped: ${taken.join(', ')} already exist (libbpf would reuse them); remove them to run this section`);
    return;
  }
  const host = systemHost();
  const pinBase = `/sys/fs/bpf/bpfseal-bench-${process.pid}`;
  const ours: number[] = [], theirs: number[] = [], bpftoolStart: number[] = [];
  for (let r = 0; r < ROUNDS + 1; r++) {
    const a = timeMs(() => {
      for (const o of set) replay(o.plan, o.digest, realKernel(), { host }).close();
    });
    let b = 0;
    for (const [i, o] of set.entries()) {
      const dir = `${pinBase}-${i}`;
      b += run('bpftool', ['prog', 'loadall', o.path, dir]);
      rmSync(dir, { recursive: true, force: true });
      for (const p of byName) rmSync(p, { force: true });
    }
    const s = run('bpftool', ['version']) * set.length;
    if (r === 0) continue; // warm-up round (page cache, kernel BTF parse)
    ours.push(a);
    theirs.push(b - s);
    bpftoolStart.push(s);
  }
  const node0 = median([0, 1, 2].map(() => run(process.execPath, ['-e', '0'])));
  const cli = median([0, 1, 2].map(() => run(process.execPath, [join(REPO_ROOT, 'dist/bundle/bpfseal.mjs'), '--version'])));
  const mo = median(ours), mt = median(theirs);
  console.log(table(['workload', 'objects', 'bpfseal ms', 'bpftool ms (kernel+libbpf)', 'ratio', `target <= ${REPLAY_TARGET_RATIO}`], [[
    'fixtures + example', String(set.length), mo.toFixed(1), mt.toFixed(1), (mo / mt).toFixed(2), mo / mt <= REPLAY_TARGET_RATIO ? 'PASS' : 'ABOVE',
  ]]));
  console.log(`bpftool process start-up subtracted: ${median(bpftoolStart).toFixed(1)} ms for ${set.length} runs; median of ${ROUNDS} rounds after 1 warm-up`);
  console.log(`node start-up (paid once per bpfseal command): node -e 0 ${node0.toFixed(1)} ms, bpfseal --version ${cli.toFixed(1)} ms`);
}
