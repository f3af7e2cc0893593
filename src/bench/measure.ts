/**
 * Shared timing and formatting for benchmark sections. A task is a function run repeatedly; every task
 * is warmed up, then measured in `rounds` rounds, each repeating the task until at least `roundMs`
 * elapsed. Rounds of the tasks passed together are interleaved (A B A B ...) so that machine drift
 * affects them alike and their ratio stays meaningful. The figure reported is the median round.
 */
import { fileURLToPath } from 'node:url';
import { at } from '../errors.js';

/** The repository root (this file is dist/bench/measure.js). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface MeasureOptions {
  /** Warm-up time per task, ms (at least `warmupMin` iterations). */
  warmupMs: number;
  warmupMin: number;
  /** Minimum time per round, ms, and minimum calls per round (for slow tasks). */
  roundMs: number;
  roundMin: number;
  rounds: number;
}

function envNum(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${v}: expected a positive number`);
  return n;
}

/** Defaults: 5 rounds of >= 400 ms and >= 5 calls (>= 2 s per measurement) after >= 300 ms of warm-up. Overridable by env. */
export function defaultOptions(): MeasureOptions {
  return {
    warmupMs: envNum('BENCH_WARMUP_MS', 300),
    warmupMin: 3,
    roundMs: envNum('BENCH_ROUND_MS', 400),
    roundMin: 5,
    rounds: Math.round(envNum('BENCH_ROUNDS', 5)),
  };
}

export interface Task {
  name: string;
  /** Bytes processed by one call of fn (for throughput). */
  bytes: number;
  fn: () => unknown;
}

export interface Result {
  name: string;
  bytes: number;
  /** Median time per call, ms. */
  msPerOp: number;
  /** bytes / msPerOp, in MB/s (MB = 10^6 bytes). */
  mbps: number;
  /** Per-round time per call, ms. */
  roundsMs: number[];
  iterations: number;
}

/** Results are kept here so the optimiser cannot drop the work. */
export let blackhole: unknown;

function runFor(fn: () => unknown, minMs: number, minIters: number): { ms: number; iters: number } {
  let iters = 0;
  const t0 = performance.now();
  let t = t0;
  do {
    blackhole = fn();
    iters++;
    t = performance.now();
  } while (t - t0 < minMs || iters < minIters);
  return { ms: t - t0, iters };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? at(s, m, 'sample') : (at(s, m - 1, 'sample') + at(s, m, 'sample')) / 2;
}

export function measure(tasks: Task[], opts: MeasureOptions = defaultOptions()): Result[] {
  for (const t of tasks) runFor(t.fn, opts.warmupMs, opts.warmupMin);
  const runs = tasks.map((t) => ({ t, roundsMs: [] as number[], iterations: 0 }));
  for (let r = 0; r < opts.rounds; r++) {
    for (const run of runs) {
      const { ms, iters: n } = runFor(run.t.fn, opts.roundMs, opts.roundMin);
      run.roundsMs.push(ms / n);
      run.iterations += n;
    }
  }
  return runs.map(({ t, roundsMs, iterations }) => {
    const msPerOp = median(roundsMs);
    return { name: t.name, bytes: t.bytes, msPerOp, mbps: t.bytes / 1e6 / (msPerOp / 1e3), roundsMs, iterations };
  });
}

/** measure() of two tasks (interleaved, as measure runs them), as a pair. */
export function measurePair(a: Task, b: Task, opts: MeasureOptions = defaultOptions()): [Result, Result] {
  const r = measure([a, b], opts);
  return [at(r, 0, 'result'), at(r, 1, 'result')];
}

export function fmtSize(bytes: number): string {
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(2)} MB`;
  if (bytes >= 1e3) return `${(bytes / 1e3).toFixed(1)} kB`;
  return `${bytes} B`;
}

export function fmtRate(mbps: number): string {
  return `${mbps >= 100 ? mbps.toFixed(0) : mbps >= 10 ? mbps.toFixed(1) : mbps.toFixed(2)} MB/s`;
}

/** A plain-text table; columns after the first are right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const width = (i: number) => w[i] ?? 0; // a cell beyond the header's columns is not padded
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(width(i)) : c.padStart(width(i)))).join('  ').trimEnd();
  return [line(header), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}
