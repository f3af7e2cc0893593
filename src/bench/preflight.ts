/**
 * Bench section "preflight" (opt-in: BPFSEAL_BENCH_VM=1, because it boots VMs for minutes): the cost
 * of preflight per kernel, against a baseline measured in the same run on the same kernel, a boot that
 * runs `true` and powers off. For each kernel ($BENCH_PREFLIGHT_KERNELS, default 7.3.4, from the cache
 * only): baseline boot and whole run; preflight of every fixture that plans plus the corpus objects:
 * boot, guest load time, whole run; the ratio of the whole run to the baseline, and the kernel loader's
 * and replay's summed load times.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { prepareInputs, type PreparedInput } from '../preflight/inputs.js';
import { runKernel } from '../preflight/run.js';
import { resolveKernel } from '../vm/kernels.js';
import { runInVm } from '../vm/run.js';
import { REPO_ROOT, table } from './measure.js';

function benchInputs(): PreparedInput[] {
  const fx = join(REPO_ROOT, 'test/fixtures');
  const paths = [
    ...readdirSync(fx).filter((f) => f.endsWith('.o') && f !== 'minimal_be.o').sort().map((f) => join(fx, f)),
    ...readdirSync(join(fx, 'corpus')).filter((f) => f.endsWith('.o')).sort().map((f) => join(fx, 'corpus', f)),
  ];
  return prepareInputs(paths, {});
}

export async function benchPreflight(): Promise<void> {
  console.log('== preflight: boot and load cost per kernel vs a bare boot of the same kernel ==');
  if (process.env.BPFSEAL_BENCH_VM !== '1') {
    console.log('skipped: boots VMs (about a minute per kernel); run with BPFSEAL_BENCH_VM=1 (kernels from the cache: $BENCH_PREFLIGHT_KERNELS, default 7.3.4)');
    return;
  }
  const specs = (process.env.BENCH_PREFLIGHT_KERNELS ?? '7.3.4').split(',').map((s) => s.trim()).filter(Boolean);
  const inputs = benchInputs();
  const rows: string[][] = [];
  for (const spec of specs) {
    const k = await resolveKernel(spec, { offline: true });
    const base = await runInVm(k, { command: 'true', sessionKeyring: false });
    const r = await runKernel(spec, inputs, { offline: true });
    if (r.error || !r.guest) {
      rows.push([k.release, String(base.bootMs), String(base.totalMs), r.error?.code ?? '?', '', '', '', '', '']);
      continue;
    }
    const g = r.guest;
    const sum = (f: (i: (typeof g.inputs)[number]) => number): number => g.inputs.reduce((a, i) => a + f(i), 0);
    rows.push([
      k.release, String(base.bootMs), String(base.totalMs), String(r.timings.bootMs), String(r.timings.loadMs), String(r.timings.totalMs),
      (r.timings.totalMs / base.totalMs).toFixed(2), String(sum((i) => i.kernelLoader.ms)), String(sum((i) => i.replay.ms)),
    ]);
  }
  console.log(`${inputs.length} inputs (${inputs.reduce((a, i) => a + i.plan.programs.length, 0)} programs) per kernel; milliseconds, host clock except the two load sums (guest clock)`);
  console.log(table(['kernel', 'bare boot', 'bare run', 'preflight boot', 'guest loads', 'preflight run', 'run / bare run', 'kernel loader', 'replay'], rows));
}
