/**
 * Benchmark entry point: `npm run bench` (all sections) or `npm run bench -- plan [...]`.
 * Each section is a module under src/bench exporting an async function; register it in SECTIONS.
 * Sections are imported lazily, so one section's module is only loaded when it runs. Results are
 * informational: the exit status is 0 unless the arguments are wrong or a section throws.
 * Tuning via env: BENCH_ROUNDS, BENCH_ROUND_MS, BENCH_WARMUP_MS (see measure.ts).
 */
import { arch, cpus, loadavg, platform } from 'node:os';
import { at } from '../errors.js';

const SECTIONS: Record<string, { about: string; run: () => Promise<void> }> = {
  plan: { about: 'object -> plan -> digest throughput vs sha256', run: async () => (await import('./plan.js')).benchPlan() },
  replay: { about: 'kernel work of loading objects vs bpftool prog loadall', run: async () => (await import('./replay.js')).benchReplay() },
  tlog: { about: 'durable appends (1/8 writers), proof and verifyAll at 1M entries', run: async () => (await import('./tlog.js')).benchTlog() },
  loader: { about: 'kernel loader vs user replay vs bpftool; verify cost of the loader signature vs per-program', run: async () => (await import('./loader.js')).benchLoader() },
  preflight: { about: 'preflight cost per kernel (boot, loads) vs a bare boot; opt-in: BPFSEAL_BENCH_VM=1', run: async () => (await import('./preflight.js')).benchPreflight() },
  verify: { about: 'verification time per release vs kernel load time of the same plan', run: async () => (await import('./verify.js')).benchVerify() },
  startup: { about: 'whole-process start-up (--version, --help, verify, load) vs node -e 0; 100 releases in one call', run: async () => (await import('./startup.js')).benchStartup() },
  'kernel-audit': { about: 'audit --kernel with 1,000 programs and a 10,000-record host log vs bpftool prog show', run: async () => (await import('./kernel-audit.js')).benchKernelAudit() },
};

function usage(): string {
  const names = Object.entries(SECTIONS).map(([n, s]) => `  ${n.padEnd(10)} ${s.about}`).join('\n');
  return `usage: node dist/bench/run.js [section ...]   (default: all)\nsections:\n${names}`;
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    console.log(usage());
    return 0;
  }
  const unknown = argv.filter((a) => !Object.hasOwn(SECTIONS, a)); // not `in`: 'toString' is no section
  if (unknown.length) {
    console.error(`unknown section(s): ${unknown.join(', ')}\n${usage()}`);
    return 2;
  }
  const selected = argv.length ? [...new Set(argv)] : Object.keys(SECTIONS);
  const cpu = cpus()[0]?.model?.trim() ?? 'unknown CPU';
  console.log(`bpfseal bench: node ${process.version} (${platform()} ${arch()}, ${cpu}, ${cpus().length} CPUs, load average ${at(loadavg(), 0, 'load average').toFixed(2)})`);
  for (const name of selected) {
    const section = SECTIONS[name];
    if (section === undefined) throw new Error(`bench: no section ${name}`); // every name was checked above
    console.log();
    await section.run();
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
