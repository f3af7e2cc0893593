/**
 * The preflight matrix for people: one row per program, one column per kernel, each cell the kernel
 * loader's verdict and user-space replay's ("ok|ok"; "*" marks a load whose signature the kernel
 * checked; "-" not loaded because the load failed elsewhere; "n/a" no kernel loader for this plan),
 * then each refusal with the kernel's own words (the end of its verifier log).
 */
import { at } from '../errors.js';
import { errnoName } from '../kernel/errors.js';
import type { PreparedInput } from './inputs.js';
import type { KernelRun } from './run.js';
import { enforcementName, type ProgramOutcome, type ProgramVerdict, type Refusal } from './types.js';

const secs = (ms: number | undefined): string => (ms === undefined ? '-' : `${(ms / 1000).toFixed(1)} s`);

function cell(v: { verdict: ProgramVerdict; refusal?: Refusal }, signed: boolean): string {
  switch (v.verdict) {
    case 'loaded': return signed ? 'ok*' : 'ok';
    case 'not-loaded': return '-';
    case 'unsupported': return 'n/a';
    default: return v.refusal?.errno ? errnoName(v.refusal.errno) : (v.refusal?.code ?? 'refused');
  }
}

function shortRelease(r: KernelRun): string {
  return (r.guest?.release ?? r.kernel?.release ?? r.spec).replace(/\+deb\d+-cloud-amd64$/, '');
}

function pad(rows: string[][]): string {
  const cols = Math.max(0, ...rows.map((r) => r.length));
  const w = Array.from({ length: cols }, (_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(at(w, i, 'column')))).join('  ').trimEnd()).join('\n');
}

export function renderMatrix(inputs: PreparedInput[], runs: KernelRun[]): string {
  const out: string[] = [];
  const kernels = [['kernel', 'enforcement', 'boot', 'loads', 'total']];
  for (const r of runs) {
    kernels.push([r.guest?.release ?? r.kernel?.release ?? r.spec, r.guest ? enforcementName(r.guest.enforcement) : (r.error?.code ?? '?'), secs(r.timings.bootMs), secs(r.timings.loadMs), secs(r.timings.totalMs)]);
  }
  out.push(pad(kernels), '');
  const ok = runs.filter((r): r is KernelRun & Required<Pick<KernelRun, 'guest'>> => r.guest !== undefined);
  const rows = [['program', 'type', ...ok.map(shortRelease), 'tag']];
  const refusals: string[] = [];
  // The guest answers every input of the job, and every program of each, in order (runtime/preflight-guest.ts, runJob).
  const guestInput = (r: (typeof ok)[number], i: number) => at(r.guest.inputs, i, 'guest input');
  inputs.forEach((input, i) => {
    rows.push([`${input.path}${input.kind === 'release' ? ` (release v${input.release?.version}${input.release?.verified ? ', verified' : ', not verified'})` : ''}`]);
    for (const [j, p] of input.plan.programs.entries()) {
      const cells: string[] = [];
      const types: string[] = [];
      const tags = new Set<string>();
      for (const r of ok) {
        const res = guestInput(r, i);
        const po: ProgramOutcome = at(res.programs, j, 'guest program');
        types.push(po.type);
        cells.push(`${cell(po.kernelLoader, res.kernelLoader.signed)}|${cell(po.replay, res.replay.signed)}`);
        for (const t of [po.replay.tag, po.kernelLoader.tag]) if (t) tags.add(t);
        for (const [what, v] of [['kernel loader', po.kernelLoader], ['replay', po.replay]] as const) {
          if (v.verdict === 'refused' && v.refusal) refusals.push(refusalText(`${shortRelease(r)} ${input.path} ${p.name} (${what})`, v.refusal));
        }
      }
      rows.push([`  ${p.name}`, types[0] ?? '', ...cells, tags.size === 1 ? at([...tags], 0, 'tag') : tags.size ? 'varies' : '']);
    }
    for (const r of ok) {
      const res = guestInput(r, i);
      // A failure outside any program (BTF, a map) leaves every program "-": say where.
      for (const [what, l] of [['kernel loader', res.kernelLoader], ['replay', res.replay]] as const) {
        if (l.verdict === 'refused' && l.refusal && !res.programs.some((x) => x[what === 'replay' ? 'replay' : 'kernelLoader'].verdict === 'refused')) {
          refusals.push(refusalText(`${shortRelease(r)} ${input.path} (${what})`, l.refusal));
        }
      }
    }
  });
  out.push(pad(rows));
  out.push('', 'cells: kernel loader|user-space replay; ok = loaded, * = the kernel checked its signature, - = not loaded (the load failed elsewhere), n/a = no kernel loader for this plan');
  if (refusals.length) out.push('', 'refusals:', ...refusals);
  return out.join('\n') + '\n';
}

function refusalText(where: string, r: Refusal): string {
  const log = r.log ? r.log.split('\n').filter((l) => l.trim()).slice(-3).map((l) => `      | ${l}`).join('\n') : '';
  return `  ${where}: ${r.code}: ${r.message}${log ? `\n${log}` : ''}`;
}
