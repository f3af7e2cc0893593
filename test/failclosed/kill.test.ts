/**
 * Fail closed, crash safety of load (issue "fail closed" §5): 100 loads killed with SIGKILL at random
 * moments. Before any recovery: no pin exists without an allowed record, and every allowed record that
 * stands has its pins in place or is still pending (which audit --kernel reports). After recovery (the
 * next load, or `bpfseal recover`): no staging directory is left, every standing record's pins are in
 * place and nothing else is, and the anti-rollback floor equals the highest version that stands.
 * Real kernel; seeded, so a failing run can be replayed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listPending, openHostLog, readDecisions, refreshState } from '../../src/hostlog/hostlog.js';
import type { LoadDecision } from '../../src/hostlog/records.js';
import { STAGING_PREFIX } from '../../src/runtime/pindir.js';
import { pinsInPlace, recoverHost, unloadDir } from '../../src/runtime/unload.js';
import { writeKeyFiles } from '../../src/trust/keys.js';
import { prng } from '../helpers/mutate.mjs';
import { cleanupTmpDirs, makeTmpDir } from '../helpers/paths.js';
import { bundledWorker, removeBundledWorkers } from '../helpers/workers.js';
import { probeBpf } from '../helpers/kernel.js';
import { signFixture } from '../helpers/releases.js';

const probe = probeBpf();
if (!probe.ok) console.warn(`failclosed/kill.test.ts: skipped: ${probe.why}`);

const KILLS = 100;

interface Worker { ready: Promise<void>; go(): void; kill(): void; done: Promise<{ out: string; signal: NodeJS.Signals | null; code: number | null; err: string }> }

let WORKER: string;

function startWorker(cfg: object): Worker {
  const child = spawn(process.execPath, [WORKER, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '', err = '';
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => { readyResolve = r; });
  child.stdout.on('data', (d: Buffer) => { out += d; if (out.includes('ready\n')) readyResolve(); });
  child.stderr.on('data', (d: Buffer) => { err += d; });
  const done = new Promise<{ out: string; signal: NodeJS.Signals | null; code: number | null; err: string }>((resolve) => child.on('close', (code, signal) => { readyResolve(); resolve({ out, signal, code, err }); }));
  return { ready, done, go: () => child.stdin.write('go\n'), kill: () => child.kill('SIGKILL') };
}

afterAll(() => {
  cleanupTmpDirs();
  removeBundledWorkers();
});

describe.skipIf(!probe.ok)('load under SIGKILL', () => {
  const parent = `/sys/fs/bpf/bpfseal-kill-${process.pid}`;
  let work: string;
  const releases: { path: string; version: number }[] = [];
  let policyPath: string;
  let hostLog: string;
  let statePath: string;

  beforeAll(async () => {
    WORKER = await bundledWorker('load-worker.mjs');
    work = makeTmpDir('bpfseal-kill-');
    const k = writeKeyFiles(work, 'k', 'ecdsa-p256');
    for (const v of [1, 2, 3, 4, 5]) {
      const s = await signFixture('globals', 'killme', k, v);
      const path = join(work, `v${v}.bpfseal`);
      writeFileSync(path, s.bytes);
      releases.push({ path, version: v });
    }
    policyPath = join(work, 'policy.json');
    writeFileSync(policyPath, JSON.stringify({ version: 1, signers: [{ name: 'k', key: 'k.pub', plans: ['*'], programTypes: ['*'] }] }));
    hostLog = join(work, 'host-log');
    statePath = join(work, 'state.json');
    mkdirSync(parent, { mode: 0o755 });
  });

  afterAll(async () => {
    if (!existsSync(parent)) return;
    for (const d of readdirSync(parent)) {
      const p = join(parent, d);
      try { await unloadDir(p, hostLog); } catch { rmSync(p, { recursive: true, force: true }); }
    }
    rmSync(parent, { recursive: true, force: true });
  });

  function standing(ds: LoadDecision[]): LoadDecision[] {
    const gone = new Set(ds.filter((d) => d.decision === 'aborted' || d.decision === 'unloaded').map((d) => d.loadId));
    return ds.filter((d) => d.decision === 'allowed' && !gone.has(d.loadId));
  }

  function decisions(): LoadDecision[] {
    const log = openHostLog(hostLog, false);
    try {
      log.verifyAll();
      return readDecisions(log).map((d) => {
        expect(d.decision, `host log entry ${d.index} is a well-formed record`).toBeDefined();
        return d.decision!;
      });
    } finally {
      log.close();
    }
  }

  it(`${KILLS} loads killed at random moments leave nothing unrecorded, and recovery leaves exactly what stands`, async () => {
    const random = prng(0x6b11_1ed5);
    // How long an unkilled load takes here: kills land in [0, 1.5 x that] after "go".
    const probeRun = startWorker({ release: releases[0].path, policy: policyPath, pinDir: join(parent, 'warmup'), hostLog, statePath });
    await probeRun.ready;
    probeRun.go();
    const warm = await probeRun.done;
    expect(warm.out, warm.err).toMatch(/done ([\d.]+)/);
    // The kill window follows how long loads take now (the median of the last completed ones, the
    // warm-up first): one slow or fast load, or a busy machine, does not leave every kill too early
    // or too late.
    const durations = [Number(/done ([\d.]+)/.exec(warm.out)![1])];
    const loadMs = () => [...durations.slice(-9)].sort((a, b) => a - b)[Math.floor(Math.min(durations.length, 9) / 2)]!;
    let completed = 0, refused = 0, killed = 0, streak = 0;
    const codes: string[] = [];
    const worker = (i: number) => {
      // Versions mostly rise with i (so most loads are allowed and reach the commit), now and then an older one.
      const current = Math.min(4, Math.floor(i / 20));
      const rel = releases[random() < 0.15 ? Math.floor(random() * (current + 1)) : current];
      return startWorker({ release: rel.path, policy: policyPath, pinDir: join(parent, `p${i}`), hostLog, statePath });
    };
    // One load at a time, as before; the next worker starts (imports, reads its release and the policy,
    // touches neither the host log nor the state) while this one runs, so its start-up is not waited for.
    let spare = worker(0);
    for (let i = 0; i < KILLS; i++) {
      const w = spare;
      await w.ready;
      // Widened while kills come in a row (loads slower than the window: nothing completes to say so).
      const delay = random() * loadMs() * 1.5 * 1.25 ** Math.max(0, streak - 4);
      w.go();
      const slept = new Promise((r) => setTimeout(r, delay));
      if (i + 1 < KILLS) spare = worker(i + 1); // after the timer is set: the spawn does not delay the kill
      await slept;
      w.kill();
      const r = await w.done;
      streak = r.signal === 'SIGKILL' ? streak + 1 : 0;
      if (r.signal === 'SIGKILL') killed++;
      else if (/^done/m.test(r.out)) {
        completed++;
        durations.push(Number(/done ([\d.]+)/.exec(r.out)![1]));
      }
      else if (/^refused/m.test(r.out)) { refused++; codes.push(/refused (\S+)/.exec(r.out)![1]); }
      else throw new Error(`worker ${i} ended oddly: ${r.code} ${r.out} ${r.err}`);

      // Invariants that must hold at every moment, before anyone recovers anything.
      const ds = decisions();
      const allowed = new Map(ds.filter((d) => d.decision === 'allowed').map((d) => [d.loadId!, d]));
      for (const name of readdirSync(parent)) {
        const p = join(parent, name);
        if (name.startsWith(STAGING_PREFIX)) expect(allowed.has(name.slice(STAGING_PREFIX.length)), `staging ${name} has an allowed record`).toBe(true);
        else expect([...allowed.values()].some((d) => d.pinDir === p), `pin dir ${name} has an allowed record`).toBe(true);
      }
      const pending = new Set(listPending(hostLog).map((p) => p.loadId));
      for (const d of standing(ds)) {
        const ok = pinsInPlace(d) || pending.has(d.loadId!);
        expect(ok, `load ${d.loadId} (${d.pinDir}) is in place or pending`).toBe(true);
      }
    }
    console.log(`load SIGKILL test: ${killed} killed, ${completed} completed, ${refused} refused (${[...new Set(codes)].join(", ")}), one load ~${loadMs().toFixed(0)} ms`);
    expect(killed).toBeGreaterThan(KILLS / 4);
    expect(completed, 'some loads ran to the end: the kill window covers whole loads').toBeGreaterThan(0);

    await recoverHost(hostLog);
    const ds = decisions();
    const live = standing(ds);
    expect(listPending(hostLog)).toEqual([]);
    const names = readdirSync(parent);
    expect(names.filter((n) => n.startsWith(STAGING_PREFIX)), 'staging directories after recovery').toEqual([]);
    expect(names.map((n) => join(parent, n)).sort()).toEqual(live.map((d) => d.pinDir!).sort());
    for (const d of live) expect(pinsInPlace(d), `${d.pinDir} holds the recorded programs`).toBe(true);
    const log = openHostLog(hostLog, false);
    try {
      const floor = refreshState(log, statePath).versions.get('killme');
      expect(floor).toBe(Math.max(...live.map((d) => d.version!)));
    } finally {
      log.close();
    }
  }, 300_000);
});
