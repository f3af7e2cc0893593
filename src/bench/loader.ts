/**
 * Bench section "loader" (issue "the kernel as verifier"), all in one run:
 *  1. kernel work of loading the fixtures and the example three ways: the kernel loader (the
 *     generated BPF_PROG_TYPE_SYSCALL program run with BPF_PROG_RUN; generated beforehand, as verify
 *     already did), the user-space replay, and `bpftool prog loadall` minus bpftool's start-up. Goal:
 *     kernel loader <= 1.0x bpftool.
 *  2. verification cost of one loader signature (regenerate the loader from the plan, SHA-256 and one
 *     PKCS#7 check over insns || blob) against the per-program signatures it replaces (one check
 *     per program), per plan and summed, including the large generated object.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { at } from '../errors.js';
import { checkKernelSignature, prepareCertificate, signInstructions } from '../attest/pkcs7.js';
import { canUseBpf } from '../kernel/probe.js';
import { generateLoader } from '../loader/generate.js';
import { signedLoaderBytes } from '../loader/claim.js';
import { realKernel } from '../runtime/backend.js';
import { systemHost } from '../runtime/host.js';
import { runKernelLoader } from '../runtime/kernel-loader.js';
import { replay } from '../runtime/replay.js';
import { planFromBytes } from '../plan/file.js';
import { selfSignedCertificate } from '../trust/x509.js';
import { measurePair, median, REPO_ROOT, table } from './measure.js';
import { replaySet } from './replay.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
export const LOADER_TARGET_RATIO = 1.0;

function timeMs(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

function bpftool(args: string[]): number {
  return timeMs(() => {
    const r = spawnSync('bpftool', args, { stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`bpftool ${args.join(' ')} exited ${r.status}`);
  });
}

function kernelWork(): void {
  console.log('-- kernel work: kernel loader vs user-space replay vs bpftool prog loadall, same objects, in-process --');
  if (!canUseBpf()) return void console.log('skipped: bpf(2) is not permitted for this process (run as root)');
  const haveBpftool = spawnSync('bpftool', ['version'], { stdio: 'ignore' }).status === 0;
  const set = replaySet();
  const byName = [...new Set(set.flatMap((o) => o.plan.maps.filter((m) => m.pinning === 1).map((m) => `/sys/fs/bpf/${m.name}`)))];
  if (byName.some((p) => existsSync(p))) return void console.log(`skipped: ${byName.filter((p) => existsSync(p)).join(', ')} exist (libbpf would reuse them)`);
  const host = systemHost();
  const loaders = set.map((o) => generateLoader(o.plan));
  const gen = timeMs(() => { for (const o of set) generateLoader(o.plan); });
  const k: number[] = [], u: number[] = [], b: number[] = [];
  const pinBase = `/sys/fs/bpf/bpfseal-bench-loader-${process.pid}`;
  for (let r = 0; r <= ROUNDS; r++) {
    const tk = timeMs(() => { set.forEach((o, i) => runKernelLoader(o.plan, o.digest, at(loaders, i, 'loader'), { host }).close()); });
    const tu = timeMs(() => { for (const o of set) replay(o.plan, o.digest, realKernel(), { host }).close(); });
    let tb = NaN;
    if (haveBpftool) {
      tb = 0;
      for (const [i, o] of set.entries()) {
        const dir = `${pinBase}-${i}`;
        tb += bpftool(['prog', 'loadall', o.path, dir]);
        rmSync(dir, { recursive: true, force: true });
        for (const p of byName) rmSync(p, { force: true });
      }
      tb -= bpftool(['version']) * set.length;
    }
    if (r === 0) continue; // warm-up
    k.push(tk);
    u.push(tu);
    b.push(tb);
  }
  const mk = median(k), mu = median(u), mb = median(b);
  console.log(table(['loader', `${set.length} objects, ms`, 'vs bpftool', `target <= ${LOADER_TARGET_RATIO}`], [
    ['kernel loader (BPF_PROG_TYPE_SYSCALL)', mk.toFixed(1), haveBpftool ? (mk / mb).toFixed(2) : '-', haveBpftool ? (mk / mb <= LOADER_TARGET_RATIO ? 'PASS' : 'ABOVE') : 'no bpftool'],
    ['user-space replay', mu.toFixed(1), haveBpftool ? (mu / mb).toFixed(2) : '-', ''],
    ['bpftool prog loadall (minus start-up)', haveBpftool ? mb.toFixed(1) : '-', haveBpftool ? '1.00' : '-', ''],
  ]));
  console.log(`generating the ${set.length} loaders: ${gen.toFixed(1)} ms (done once by sign, and again by verify); median of ${ROUNDS} rounds after 1 warm-up`);
}

function verifyCost(): void {
  console.log('-- verify: one loader signature (regenerate + SHA-256 + one PKCS#7 check) vs the per-program signatures --');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const priv = createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const certPem = selfSignedCertificate(priv, createPublicKey(priv), { commonName: 'bench' });
  const cert = prepareCertificate(certPem);
  const large = join(REPO_ROOT, 'test/bench-data/large.o');
  const set = [...replaySet(), ...(existsSync(large) ? [{ name: 'test/bench-data/large.o', ...planFromBytes(readFileSync(large), large) }] : [])];
  const rows: string[][] = [];
  let sumL = 0, sumP = 0;
  for (const o of set) {
    const stable = o.plan.programs.filter((p) => !p.fixups.length);
    const perProgram = stable.map((p) => ({ insns: p.insns, sig: signInstructions(p.insns, priv, certPem) }));
    const loaderSig = signInstructions(signedLoaderBytes(generateLoader(o.plan)), priv, certPem);
    const [l, p] = measurePair(
      { name: 'loader', bytes: 0, fn: () => { if (checkKernelSignature(loaderSig, signedLoaderBytes(generateLoader(o.plan)), cert) !== 'ok') throw new Error('loader signature'); } },
      { name: 'programs', bytes: 0, fn: () => { for (const x of perProgram) if (checkKernelSignature(x.sig, x.insns, cert) !== 'ok') throw new Error('program signature'); } },
      { warmupMs: 50, warmupMin: 3, roundMs: 100, roundMin: 3, rounds: ROUNDS },
    );
    sumL += l.msPerOp;
    sumP += p.msPerOp;
    rows.push([o.name, String(o.plan.programs.length), String(perProgram.length), l.msPerOp.toFixed(3), perProgram.length ? p.msPerOp.toFixed(3) : '-', perProgram.length ? (l.msPerOp / p.msPerOp).toFixed(2) : '(none)']);
  }
  rows.push([`all ${set.length} (sum)`, '', '', sumL.toFixed(3), sumP.toFixed(3), (sumL / sumP).toFixed(2)]);
  console.log(table(['plan', 'programs', 'per-program sigs', 'loader sig ms', 'per-program ms', 'ratio'], rows));
  console.log('   the loader covers every program and every map; per-program signatures cover only programs without host fix-ups.');
}

export async function benchLoader(): Promise<void> {
  console.log('== loader: the kernel loader against the user-space replay and bpftool; verify cost of its one signature ==');
  kernelWork();
  verifyCost();
}
