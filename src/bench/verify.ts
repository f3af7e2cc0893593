/**
 * Bench section "verify": what verification adds to a load. For each plan, in the same run:
 *   verify = verifyWithPolicy(release bytes) (decode, DSSE/bundle check, subject digest, policy,
 *            PKCS#7 kernel signatures)
 *   load   = replay of the same plan into the real kernel, then close
 * and the ratio verify/load (target < 10%). Without bpf(2) the load column is the model kernel, and
 * the section says so.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { at } from '../errors.js';
import { signInstructions } from '../attest/pkcs7.js';
import { encodeRelease } from '../attest/release.js';
import { localKeySigner, signPlan } from '../attest/sign.js';
import { canUseBpf } from '../kernel/probe.js';
import { realKernel } from '../runtime/backend.js';
import { systemHost } from '../runtime/host.js';
import { verifyWithPolicy } from '../runtime/load.js';
import { modelKernel } from '../runtime/model.js';
import { replay } from '../runtime/replay.js';
import { singleKeyPolicy } from '../trust/policy.js';
import { selfSignedCertificate } from '../trust/x509.js';
import { encodePlan } from '../plan/codec.js';
import { measurePair, REPO_ROOT, table } from './measure.js';
import { planFromBytes } from '../plan/file.js';
import { replaySet } from './replay.js';

export const VERIFY_TARGET = 0.1;

export async function benchVerify(): Promise<void> {
  const real = canUseBpf();
  console.log(`== verify: verification time per release vs ${real ? 'kernel' : 'MODEL kernel (no bpf(2) here)'} load time of the same plan ==`);
  const dir = mkdtempSync(join(tmpdir(), 'bpfseal-bench-verify-'));
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const priv = createPrivateKey(privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const pub = createPublicKey(priv);
  const cert = selfSignedCertificate(priv, pub, { commonName: 'bench' });
  writeFileSync(join(dir, 'bench.pub'), pub.export({ type: 'spki', format: 'pem' }));
  const policy = singleKeyPolicy(join(dir, 'bench.pub'));
  const state = join(dir, 'state.json');
  const host = systemHost();
  const rows: string[][] = [];
  const large = join(REPO_ROOT, 'test/bench-data/large.o');
  const set = [...replaySet(), ...(existsSync(large) ? [{ name: 'test/bench-data/large.o', ...planFromBytes(readFileSync(large), large) }] : []), ...corpus()];
  let sumV = 0, sumL = 0;
  for (const o of set) {
    const planBytes = encodePlan(o.plan);
    const signed = await signPlan(o.plan, planBytes, {
      signer: localKeySigner(priv, pub), version: 1, toolVersion: 'bench',
      kernelSigner: { sign: (insns) => signInstructions(insns, priv, cert), certificate: cert },
    });
    const bytes = Buffer.from(encodeRelease(signed.release));
    const load = () => replay(o.plan, o.digest, real ? realKernel() : modelKernel(), { host }).close();
    try {
      load();
    } catch (e) {
      rows.push([o.name, '-', '-', '-', `skipped: ${at((e as Error).message.split('\n'), 0, 'message line').slice(0, 60)}`]);
      continue;
    }
    const [v, l] = measurePair(
      { name: 'verify', bytes: bytes.length, fn: () => verifyWithPolicy(bytes, policy, state) },
      { name: 'load', bytes: planBytes.length, fn: load },
      { warmupMs: 100, warmupMin: 3, roundMs: 150, roundMin: 3, rounds: Number(process.env.BENCH_ROUNDS ?? 5) },
    );
    const ratio = v.msPerOp / l.msPerOp;
    sumV += v.msPerOp;
    sumL += l.msPerOp;
    rows.push([o.name, v.msPerOp.toFixed(3), l.msPerOp.toFixed(3), `${(ratio * 100).toFixed(1)}%`, ratio < VERIFY_TARGET ? 'PASS' : 'ABOVE']);
  }
  rows.push([`all ${rows.filter((r) => r[1] !== '-').length} plans (sum)`, sumV.toFixed(3), sumL.toFixed(3), `${((sumV / sumL) * 100).toFixed(1)}%`, sumV / sumL < VERIFY_TARGET ? 'PASS' : 'ABOVE']);
  console.log(table(['plan', 'verify ms', `${real ? 'kernel' : 'model'} load ms`, 'verify/load', `target < ${VERIFY_TARGET * 100}%`], rows));
  console.log('   verify includes one ECDSA P-256 check per kernel (PKCS#7) signature; a `bpfseal load` also pays node start-up (see replay).');
}

/** $BENCH_CORPUS: a directory of real objects (scripts/corpus/fetch.sh) to add; those that do not plan are left out. */
function corpus(): { name: string; plan: ReturnType<typeof planFromBytes>['plan']; digest: string }[] {
  const dir = process.env.BENCH_CORPUS;
  if (!dir) return [];
  const out = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.o')).sort()) {
    try {
      out.push({ name: f, ...planFromBytes(readFileSync(join(dir, f)), f) });
    } catch {
      /* not plannable: not part of this measurement */
    }
  }
  return out;
}
