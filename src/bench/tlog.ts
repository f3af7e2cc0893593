/**
 * Bench section "tlog": the transparency log (src/tlog) against baselines measured in the same run.
 *   durable appends/s, 1 and 8 writer processes (each append acknowledged only when durable)
 *                          vs write+fdatasync/s of the same disk (one writer, 200-byte writes)
 *   1,000,000-entry log    (BENCH_TLOG_ENTRIES) built with appendMany batches (one sync round per
 *                          batch) in a temp dir as c2sp.org/tlog-tiles, then:
 *     inclusion proof      proveInclusion (read and authenticate O(log n) tiles + self-check) vs
 *                          verifying it; tile files read per proof
 *     verifyAll            recompute the whole tree from the bundles vs SHA-256 of the same entries
 *                          plus one node hash per entry (the hashing verifyAll cannot avoid)
 *     remote proof         the log served by serveLog on loopback, proofs by the tiled-log client:
 *                          a fresh client per proof (cold), one client (warm), a fresh client with a
 *                          warm disk cache; HTTP requests (tiles) per proof, vs the local proof time
 *     peak memory          VmHWM of the process that built, proved and verified (started at VmRSS)
 * Writers and the 1M run are child processes (this file run as a script), so start-up is not timed
 * and the peak memory is the log's own. Figures are informational; targets are printed beside them.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { leafHash, nodeHash, verifyInclusion } from '../tlog/merkle.js';
import { openLog } from '../tlog/store.js';
import { openLogReader } from '../tlog/open-reader.js';
import { serveLog } from '../tlog/serve.js';
import { table } from './measure.js';

export const TLOG_TARGETS = { appendsPerSec8: 2000, proofMs: 1, verifyAllS: 10, peakMiB: 256 } as const;

const SELF = fileURLToPath(import.meta.url);
const ENTRY_PAD = 'x'.repeat(96);

/** A ~200-byte JSON entry, like an attestation record. */
function entry(writer: string, i: number): Buffer {
  return Buffer.from(JSON.stringify({ subjectDigest: `sha256:${createHash('sha256').update(`${writer}/${i}`).digest('hex')}`, writer, i, pad: ENTRY_PAD }));
}

function status(field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Baseline: sequential 200-byte write + fdatasync for ~1 s, in `dir`. */
function fdatasyncRate(dir: string): number {
  const fd = openSync(join(dir, 'fsync-baseline'), 'w');
  const b = Buffer.alloc(200, 0x61);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 1000) {
    writeSync(fd, b);
    fdatasyncSync(fd);
    n++;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  closeSync(fd);
  return rate;
}

interface Child {
  lines: string[];
  onLine(fn: (l: string) => void): void;
  stdin: NodeJS.WritableStream;
  done: Promise<number | null>;
}

function child(args: string[]): Child {
  const p = spawn(process.execPath, [SELF, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const listeners: ((l: string) => void)[] = [];
  let buf = '';
  p.stdout.on('data', (c: Buffer) => {
    buf += c.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(l);
      listeners.forEach((f) => f(l));
    }
  });
  const done = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
  return { lines, onLine: (f) => listeners.push(f), stdin: p.stdin, done };
}

function waitLine(c: Child, prefix: string): Promise<string> {
  const have = c.lines.find((l) => l.startsWith(prefix));
  if (have) return Promise.resolve(have);
  return new Promise((resolve) => c.onLine((l) => l.startsWith(prefix) && resolve(l)));
}

/** appends/s with `writers` processes appending `count` entries each, one durable append at a time. */
async function appendRate(dir: string, writers: number, count: number): Promise<number> {
  openLog(dir).close();
  const kids = Array.from({ length: writers }, (_, w) => child(['append', dir, `w${w}`, String(count)]));
  await Promise.all(kids.map((k) => waitLine(k, 'ready')));
  const t0 = performance.now();
  kids.forEach((k) => k.stdin.write('go\n'));
  await Promise.all(kids.map((k) => waitLine(k, 'done')));
  const seconds = (performance.now() - t0) / 1000;
  const codes = await Promise.all(kids.map((k) => k.done));
  if (codes.some((c) => c !== 0)) throw new Error(`tlog bench: a writer exited with ${codes.join(',')}`);
  const log = openLog(dir);
  const size = log.size;
  log.close();
  if (size !== writers * count) throw new Error(`tlog bench: log has ${size} entries, expected ${writers * count}`);
  return (writers * count) / seconds;
}

interface RemoteResult {
  /** Fresh client per proof, no disk cache: ms per proof (after opening) and requests per proof. */
  coldMs: number;
  coldReqs: number;
  /** One client, many proofs (authenticated tiles kept in memory). */
  warmMs: number;
  warmReqs: number;
  /** Fresh client per proof with a warm disk cache (only partial tiles are fetched). */
  diskMs: number;
  diskReqs: number;
}

interface BigResult {
  n: number;
  buildS: number;
  proofMs: number;
  proofVerifyMs: number;
  tilesPerProof: number;
  remote: RemoteResult;
  verifyS: number;
  shaS: number;
  startRss: number;
  peak: number;
}

/** Worker: build an n-entry log, time proofs and verifyAll, report VmHWM. */
async function bigWorker(dir: string, n: number): Promise<BigResult> {
  const startRss = status('VmRSS');
  const log = openLog(dir);
  const BATCH = 5_000;
  let t0 = performance.now();
  for (let i = 0; i < n; i += BATCH) {
    await log.appendMany(Array.from({ length: Math.min(BATCH, n - i) }, (_, k) => entry('big', i + k)));
  }
  const buildS = (performance.now() - t0) / 1000;
  // Proofs at random indexes (fixed LCG), against the current tree.
  const idx: number[] = [];
  for (let x = 12345, i = 0; i < 2000; i++) idx.push((x = (x * 1103515245 + 12345) % 2 ** 31) % n);
  const reads0 = log.tileReads;
  t0 = performance.now();
  const proofs = idx.map((i) => log.proveInclusion(i));
  const proofMs = (performance.now() - t0) / idx.length;
  const tilesPerProof = (log.tileReads - reads0) / idx.length;
  t0 = performance.now();
  for (const p of proofs) verifyInclusion(p.leafHash, p.index, p.treeSize, p.hashes, p.rootHash);
  const proofVerifyMs = (performance.now() - t0) / idx.length;
  proofs.length = 0;
  t0 = performance.now();
  const v = log.verifyAll();
  const verifyS = (performance.now() - t0) / 1000;
  if (v.size !== n) throw new Error(`verifyAll saw ${v.size} entries`);
  const remote = await remoteProofs(dir, log.publicKey.pem, idx.slice(0, 300));
  log.close();
  // Baseline: the hashing verifyAll cannot avoid — a leaf hash and about one node hash per entry — on
  // the same entry bytes, made (untimed) in chunks.
  let shaMs = 0;
  let h: Buffer = Buffer.alloc(32);
  for (let i = 0; i < n; i += BATCH) {
    const chunk = Array.from({ length: Math.min(BATCH, n - i) }, (_, k) => entry('big', i + k));
    t0 = performance.now();
    for (const e of chunk) h = nodeHash(h, leafHash(e));
    shaMs += performance.now() - t0;
  }
  const shaS = shaMs / 1000;
  return { n, buildS, proofMs, proofVerifyMs, tilesPerProof, remote, verifyS, shaS, startRss, peak: status('VmHWM') };
}

/** Proofs from the log served on loopback by the tiled-log client; requests counted at the server. */
async function remoteProofs(dir: string, key: string, idx: number[]): Promise<RemoteResult> {
  const server = await serveLog(dir);
  const cache = mkdtempSync(join(tmpdir(), 'bpfseal-bench-tiles-'));
  try {
    const measure = async (fresh: boolean, cacheDir: string | false) => {
      let ms = 0;
      let reqs = 0;
      let c = await openLogReader(server.url, { keys: [key], cacheDir });
      for (const i of idx) {
        if (fresh) c = await openLogReader(server.url, { keys: [key], cacheDir });
        const r0 = server.requests.length;
        const t0 = performance.now();
        await c.proveInclusion(i);
        ms += performance.now() - t0;
        reqs += server.requests.length - r0;
      }
      return { ms: ms / idx.length, reqs: reqs / idx.length };
    };
    const cold = await measure(true, false);
    const warm = await measure(false, cache);
    const disk = await measure(true, cache);
    return { coldMs: cold.ms, coldReqs: cold.reqs, warmMs: warm.ms, warmReqs: warm.reqs, diskMs: disk.ms, diskReqs: disk.reqs };
  } finally {
    await server.close();
    rmSync(cache, { recursive: true, force: true });
  }
}

async function appendWorker(dir: string, writer: string, count: number): Promise<void> {
  const log = openLog(dir);
  const entries = Array.from({ length: count }, (_, i) => entry(writer, i));
  process.stdout.write('ready\n');
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  for (const e of entries) await log.append(e);
  process.stdout.write('done\n');
  log.close();
  process.stdin.destroy();
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

export async function benchTlog(): Promise<void> {
  const n = Number(process.env.BENCH_TLOG_ENTRIES ?? 1_000_000);
  console.log('== tlog: durable appends, proofs, full verification and remote proofs of the tiled transparency log ==');
  const root = mkdtempSync(join(tmpdir(), 'bpfseal-bench-tlog-'));
  try {
    const fsyncs = fdatasyncRate(root);
    const one = await appendRate(join(root, 'one'), 1, 500);
    const eight = await appendRate(join(root, 'eight'), 8, 400);
    const big = child(['big', join(root, 'big'), String(n)]);
    const line = await waitLine(big, '{');
    if ((await big.done) !== 0) throw new Error('tlog bench: the 1M-entry run failed');
    const r = JSON.parse(line) as BigResult;
    const rows = [
      ['appends/s, 1 writer', one.toFixed(0), `${fsyncs.toFixed(0)} fdatasync/s`, (one / fsyncs).toFixed(2), '', ''],
      ['appends/s, 8 writers', eight.toFixed(0), `${fsyncs.toFixed(0)} fdatasync/s`, (eight / fsyncs).toFixed(2), `>= ${TLOG_TARGETS.appendsPerSec8}`, verdict(eight >= TLOG_TARGETS.appendsPerSec8)],
      [`build ${r.n} entries (appendMany x5000)`, `${r.buildS.toFixed(1)} s`, `${(r.n / r.buildS).toFixed(0)} entries/s`, '', '', ''],
      ['inclusion proof', `${r.proofMs.toFixed(3)} ms`, `verify ${r.proofVerifyMs.toFixed(3)} ms`, (r.proofMs / r.proofVerifyMs).toFixed(1), `< ${TLOG_TARGETS.proofMs} ms`, verdict(r.proofMs < TLOG_TARGETS.proofMs)],
      ['  tile files read per proof', r.tilesPerProof.toFixed(2), '', '', '', ''],
      ['remote proof, fresh client', `${r.remote.coldMs.toFixed(2)} ms`, `local ${r.proofMs.toFixed(3)} ms`, (r.remote.coldMs / r.proofMs).toFixed(0), '', ''],
      ['  HTTP requests (tiles) per proof', r.remote.coldReqs.toFixed(2), '', '', '', ''],
      ['remote proof, one client', `${r.remote.warmMs.toFixed(2)} ms`, `local ${r.proofMs.toFixed(3)} ms`, (r.remote.warmMs / r.proofMs).toFixed(0), '', ''],
      ['  HTTP requests (tiles) per proof', r.remote.warmReqs.toFixed(2), '', '', '', ''],
      ['remote proof, fresh client + disk cache', `${r.remote.diskMs.toFixed(2)} ms`, `local ${r.proofMs.toFixed(3)} ms`, (r.remote.diskMs / r.proofMs).toFixed(0), '', ''],
      ['  HTTP requests (tiles) per proof', r.remote.diskReqs.toFixed(2), '', '', '', ''],
      ['verifyAll', `${r.verifyS.toFixed(2)} s`, `sha256 ${r.shaS.toFixed(2)} s`, (r.verifyS / r.shaS).toFixed(2), `< ${TLOG_TARGETS.verifyAllS} s`, verdict(r.verifyS < TLOG_TARGETS.verifyAllS)],
      ['peak memory (VmHWM)', mib(r.peak), `start ${mib(r.startRss)}`, (r.peak / r.startRss).toFixed(1), `< ${TLOG_TARGETS.peakMiB} MiB`, verdict(r.peak < TLOG_TARGETS.peakMiB * 2 ** 20)],
    ];
    console.log();
    console.log(table(['measure', 'figure', 'baseline (same run)', 'ratio', 'target', ''], rows));
    console.log();
    console.log(`   ${r.n} entries of ~${entry('big', 0).length} bytes; local proofs: mean of 2000 random indexes, remote: of 300 (loopback, server in the same process); targets are informational`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

// Worker modes when run as a script: `append <dir> <writer> <count>` and `big <dir> <n>`.
if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const [mode, dir, a, b] = process.argv.slice(2);
  if (mode === 'append' && dir !== undefined && a !== undefined) await appendWorker(dir, a, Number(b));
  else if (mode === 'big' && dir !== undefined) process.stdout.write(`${JSON.stringify(await bigWorker(dir, Number(a)))}\n`);
  else if (mode === 'run') await benchTlog();
  else {
    process.stderr.write('usage: node dist/bench/tlog.js append <dir> <writer> <count> | big <dir> <n> | run\n');
    process.exitCode = 2;
  }
}
