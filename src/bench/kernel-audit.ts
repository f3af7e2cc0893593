/**
 * Bench section "kernel-audit": `audit --kernel` with PROGRAMS programs loaded and a host log of
 * RECORDS records (issue 11: 1,000 and 10,000, goal under 1 s).
 *   setup     PROGRAMS tiny socket filters (`r0 = <i>; exit`, names bka_<i>) loaded via bpf(2) and kept
 *             alive by their fds; a host log whose first PROGRAMS records are allowed loads of this
 *             boot naming them, then records of another boot (naming the same ids) and refusals;
 *   measured  kernelAudit() in this process (inventory + host-log verify + index + attribution), its
 *             two halves alone, and the whole CLI (`bpfseal audit --kernel --json`, node start-up and
 *             the attestation-log audit included);
 *   baseline  `bpftool prog show` and `bpftool --json prog show` of the same kernel in the same run,
 *             and `bpftool version` (bpftool's own start-up).
 * Needs root/CAP_BPF; bpftool for the baseline. Tunable: BENCH_KA_PROGRAMS, BENCH_KA_RECORDS.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { at } from '../errors.js';
import { progInfo, progLoad } from '../kernel/bpf.js';
import type { Fd } from '../kernel/fd.js';
import { canUseBpf } from '../kernel/probe.js';
import { decision, bootId, type LoadDecision } from '../hostlog/records.js';
import { openLog } from '../tlog/store.js';
import type { AttestationAudit } from '../audit/attestations.js';
import { kernelAudit } from '../audit/kernel-report.js';
import { loadedPrograms } from '../audit/kernel/inventory.js';
import { readHostLog } from '../audit/kernel/report.js';
import { median, REPO_ROOT, table } from './measure.js';

const PROGRAMS = Number(process.env.BENCH_KA_PROGRAMS ?? 1000);
const RECORDS = Number(process.env.BENCH_KA_RECORDS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

export interface TinyProgram { fd: Fd; id: number; tag: string; name: string }

/** Load `n` distinct 2-instruction socket filters (each its own tag); the caller closes the fds. */
export function loadTinyPrograms(n: number, prefix = 'bka'): TinyProgram[] {
  const out: TinyProgram[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const insns = Buffer.from('b7000000000000009500000000000000', 'hex');
      insns.writeInt32LE(i + 1, 4);
      const name = `${prefix}_${i}`;
      const fd = progLoad({ type: 1, insns, license: 'GPL', kernVersion: 0, flags: 0, name, expectedAttachType: 0, fdArray: [] });
      const info = progInfo(fd);
      out.push({ fd, id: info.id, tag: info.tag, name });
    }
  } catch (e) {
    for (const p of out) p.fd.close();
    throw e;
  }
  return out;
}

function allowedFor(p: TinyProgram, boot: string): LoadDecision {
  const d = decision({
    decision: 'allowed', loadId: randomBytes(16).toString('hex'), plan: 'bka', version: 1, digest: `sha256:${'0'.repeat(64)}`, pinDir: `/sys/fs/bpf/bka/${p.name}`,
    loader: 'user', kernelVerified: 'none', programs: [{ name: p.name, id: p.id, tag: p.tag, insns: 2, type: 'socket_filter', mapIds: [] }], maps: [], uid: 0,
  });
  return { ...d, bootId: boot };
}

/** A host log of `total` records: one allowed load of this boot per program, then other boots' loads and refusals. */
export async function writeHostLog(dir: string, programs: readonly TinyProgram[], total: number): Promise<void> {
  const log = openLog(dir, { create: true });
  try {
    const other = '00000000-0000-4000-8000-000000000000';
    const all: Buffer[] = [];
    for (let i = 0; i < total; i++) {
      const p = at(programs, i % programs.length, 'program');
      const d = i < programs.length ? allowedFor(p, bootId()) : i % 2 ? allowedFor(p, other) : decision({ decision: 'refused', release: `/r/${i}.bpfseal`, code: 'UNTRUSTED_SIGNER', reason: 'bench' });
      all.push(Buffer.from(JSON.stringify(d)));
    }
    for (let i = 0; i < all.length; i += 1000) await log.appendMany(all.slice(i, i + 1000));
  } finally {
    log.close();
  }
}

function spawnMs(cmd: string, args: string[]): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, { stdio: 'ignore', maxBuffer: 1 << 28 });
  if (r.status !== 0 && r.status !== 1) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`);
  return performance.now() - t;
}

function timed(fn: () => unknown): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

function emptyAudit(dir: string): AttestationAudit {
  return { log: { dir, origin: '', logId: '', size: 0, rootHash: '' }, entries: [], judged: [], from: 0, findings: [], logVerified: true, rewritten: false, logTrust: 'unchecked', notes: [] };
}

export async function benchKernelAudit(): Promise<void> {
  console.log(`== kernel-audit: audit --kernel with ${PROGRAMS} programs loaded and a host log of ${RECORDS} records ==`);
  if (!canUseBpf()) {
    console.log('skipped: bpf(2) is not permitted for this process (run as root)');
    return;
  }
  const hasBpftool = spawnSync('bpftool', ['version'], { stdio: 'ignore' }).status === 0;
  const work = mkdtempSync(join(tmpdir(), 'bpfseal-bench-ka-'));
  const programs = loadTinyPrograms(PROGRAMS);
  try {
    const hostLog = join(work, 'host-log'), att = join(work, 'att');
    await writeHostLog(hostLog, programs, RECORDS);
    openLog(att, { create: true }).close();
    const ids = new Set(programs.map((p) => p.id));
    const check = kernelAudit(emptyAudit(att), hostLog);
    const ours = check.programs.filter((p) => ids.has(p.id));
    console.log(`${check.programs.length} programs in the kernel (${ours.length} of them this bench's: ${ours.filter((p) => p.status === 'attested').length} attested)`);
    const rows: string[][] = [];
    const add = (what: string, xs: number[], base?: number) => rows.push([what, median(xs).toFixed(1), base ? (median(xs) / base).toFixed(2) : '']);
    const runs = (fn: () => number) => Array.from({ length: ROUNDS + 1 }, fn).slice(1); // first run: warm-up
    const inv = runs(() => timed(() => loadedPrograms()));
    const hl = runs(() => timed(() => readHostLog(hostLog, bootId())));
    const whole = runs(() => timed(() => kernelAudit(emptyAudit(att), hostLog)));
    const cli = runs(() => spawnMs(process.execPath, [join(REPO_ROOT, 'dist/cli/bin.js'), 'audit', '--kernel', '--log', att, '--host-log', hostLog, '--state', join(work, 'audit-state.json'), '--json']));
    const show = hasBpftool ? runs(() => spawnMs('bpftool', ['prog', 'show'])) : [];
    const showJson = hasBpftool ? runs(() => spawnMs('bpftool', ['--json', 'prog', 'show'])) : [];
    const start = hasBpftool ? runs(() => spawnMs('bpftool', ['version'])) : [];
    const base = hasBpftool ? median(show) : undefined;
    add('kernelAudit() in process: inventory + host log + attribution', whole, base);
    add('  inventory alone (one pass over prog ids)', inv, base);
    add(`  host log alone (read and verify ${RECORDS} records, index this boot)`, hl, base);
    add('bpfseal audit --kernel --json (whole command, node start-up included)', cli, base);
    if (hasBpftool) {
      add('baseline: bpftool prog show', show, base);
      add('baseline: bpftool --json prog show', showJson, base);
      add('bpftool version (its start-up)', start, base);
    } else console.log('bpftool is not installed: no baseline (apt-get install bpftool)');
    console.log(table(['measure', 'ms (median)', 'x bpftool prog show'], rows));
    console.log(`median of ${ROUNDS} runs after 1 warm-up; goal: audit --kernel under 1000 ms (${median(cli) < 1000 ? 'met' : 'NOT met'} by the whole command, ${median(whole) < 1000 ? 'met' : 'NOT met'} in process)`);
  } finally {
    for (const p of programs) p.fd.close();
    rmSync(work, { recursive: true, force: true });
  }
}
