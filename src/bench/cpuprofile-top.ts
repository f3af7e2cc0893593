/**
 * Summarise a V8 .cpuprofile (from `node --cpu-prof dist/bench/run.js plan`): the functions with the
 * most self time and the most total (inclusive) time, with positions mapped back to src/*.ts through
 * the dist/*.js.map source maps when they exist, and the hottest source lines (V8 positionTicks).
 *   node dist/bench/cpuprofile-top.js CPU.*.cpuprofile [--top N] [--under FUNCTION]
 * --under keeps only samples whose stack contains FUNCTION (e.g. --under planOnce to leave out the
 * sha256 baseline that runs in the same process).
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from './measure.js';

interface CallFrame { functionName: string; url: string; lineNumber: number; columnNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; children?: number[]; positionTicks?: { line: number; ticks: number }[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

const maps = new Map<string, SourceMap | null>();
function sourceMapFor(file: string): SourceMap | null {
  let m = maps.get(file);
  if (m === undefined) {
    m = null;
    if (existsSync(`${file}.map`)) {
      try { m = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8'))); } catch { m = null; }
    }
    maps.set(file, m);
  }
  return m;
}

function originalPath(jsFile: string, src: string): string {
  if (src.startsWith('file://')) return fileURLToPath(src);
  return isAbsolute(src) ? src : resolve(dirname(jsFile), src);
}

const jsLines = new Map<string, string[]>();
/** Map a 1-based line of a compiled file (positionTicks) to "src/x.ts:N". */
function whereLine(url: string, line: number): string {
  if (!url.startsWith('file://')) return `${url || '(native)'}:${line}`;
  const file = fileURLToPath(url);
  let lines = jsLines.get(file);
  if (!lines) { lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : []; jsLines.set(file, lines); }
  const text = lines[line - 1] ?? '';
  const col = Math.max(0, text.search(/\S/));
  const e = sourceMapFor(file)?.findEntry(line - 1, col) as { originalSource?: string; originalLine?: number } | undefined;
  if (e?.originalSource !== undefined && e.originalLine !== undefined) return `${relative(REPO_ROOT, originalPath(file, e.originalSource))}:${e.originalLine + 1}`;
  return `${relative(REPO_ROOT, file)}:${line}`;
}

/** "src/plan/link.ts:212" for compiled project code, else the URL (or "(native)") with its line. */
function where(cf: CallFrame): string {
  if (!cf.url) return '(native)';
  if (cf.url.startsWith('file://')) {
    const file = fileURLToPath(cf.url);
    const sm = sourceMapFor(file);
    const e = sm?.findEntry(cf.lineNumber, cf.columnNumber) as { originalSource?: string; originalLine?: number } | undefined;
    if (e?.originalSource !== undefined && e.originalLine !== undefined) {
      return `${relative(REPO_ROOT, originalPath(file, e.originalSource))}:${e.originalLine + 1}`;
    }
    return `${relative(REPO_ROOT, file)}:${cf.lineNumber + 1}`;
  }
  return `${cf.url}:${cf.lineNumber + 1}`;
}

function main(argv: string[]): number {
  const opt = (name: string) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const file = argv.find((a, i) => !a.startsWith('--') && !argv[i - 1]?.startsWith('--'));
  const top = Number(opt('--top') ?? 25);
  const under = opt('--under');
  if (!file) {
    console.error('usage: node dist/bench/cpuprofile-top.js FILE.cpuprofile [--top N] [--under FUNCTION]');
    return 2;
  }
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = new Map(p.nodes.map((n) => [n.id, `${n.callFrame.functionName || '(anonymous)'}  ${where(n.callFrame)}`]));
  const stackHas = (id: number, fn: string) => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      if (p.nodes.find((n) => n.id === cur)?.callFrame.functionName === fn) return true;
    }
    return false;
  };
  const keep = new Map<number, boolean>();
  const kept = (id: number) => {
    let k = keep.get(id);
    if (k === undefined) { k = under === undefined || stackHas(id, under); keep.set(id, k); }
    return k;
  };

  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let all = 0, sampledAll = 0;
  p.samples.forEach((id, i) => {
    const dt = p.timeDeltas[i] ?? 0;
    sampledAll += dt;
    if (!kept(id)) return;
    all += dt;
    const k = keyOf.get(id)!;
    self.set(k, (self.get(k) ?? 0) + dt);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const kk = keyOf.get(cur)!;
      if (seen.has(kk)) continue;
      seen.add(kk);
      total.set(kk, (total.get(kk) ?? 0) + dt);
    }
  });
  // Hot lines: V8 positionTicks (self ticks per line of the compiled file), mapped to src.
  const lineTicks = new Map<string, number>();
  let ticksAll = 0;
  for (const n of p.nodes) {
    if (!n.positionTicks || !kept(n.id)) continue;
    for (const t of n.positionTicks) {
      const k = `${whereLine(n.callFrame.url, t.line)}  (in ${n.callFrame.functionName || '(anonymous)'})`;
      lineTicks.set(k, (lineTicks.get(k) ?? 0) + t.ticks);
      ticksAll += t.ticks;
    }
  }
  const scope = under === undefined ? '' : `, samples under ${under}()`;
  console.log(`${file}: ${(sampledAll / 1e3).toFixed(0)} ms sampled${scope ? `; ${(all / 1e3).toFixed(0)} ms under ${under}()` : ''}`);
  const show = (title: string, m: Map<string, number>, unit: (v: number) => string, of: number) => {
    console.log(`\n${title}`);
    const rows = [...m].filter(([k]) => !k.startsWith('(root)')).sort((a, b) => b[1] - a[1]).slice(0, top);
    for (const [k, v] of rows) console.log(`${unit(v).padStart(10)} ${((v / of) * 100).toFixed(1).padStart(5)}%  ${k}`);
  };
  const ms = (us: number) => `${(us / 1e3).toFixed(0)} ms`;
  show(`self time${scope}`, self, ms, all);
  show(`total time${scope}`, total, ms, all);
  show(`hot lines (self ticks${scope})`, lineTicks, (t) => `${t} ticks`, ticksAll);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
