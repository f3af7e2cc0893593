// Test-only path (run in the guest by loader.sh): load a release's signed loader with one byte of the
// blob or of the instructions changed, skipping the user-space verification that would refuse it
// first, so the kernel's own verdict is seen. Prints {control, blob, insns} as {ok} or {errno, code}.
import { readFileSync } from 'node:fs';
import { decodeRelease } from '/opt/bpfseal/dist/attest/release.js';
import { decodePlan, planDigest } from '/opt/bpfseal/dist/plan/codec.js';
import { loaderOf } from '/opt/bpfseal/dist/loader/claim.js';
import { runKernelLoader } from '/opt/bpfseal/dist/runtime/kernel-loader.js';

const rel = decodeRelease(readFileSync(process.argv[2]));
const plan = decodePlan(rel.plan);
const digest = planDigest(rel.plan);
const genuine = loaderOf(plan);
const flip = (b, at) => { const c = Buffer.from(b); c[at] ^= 0x01; return c; };
// The last instruction is `exit`; flip the low bit of an immediate in the middle instead of an opcode.
const insnAt = Math.floor(genuine.insns.length / 16) * 8 + 4;
const cases = {
  control: genuine,
  blob: { ...genuine, blob: flip(genuine.blob, genuine.blob.length - 1) },
  insns: { ...genuine, insns: flip(genuine.insns, insnAt) },
};
const out = {};
for (const [name, loader] of Object.entries(cases)) {
  try {
    runKernelLoader(plan, digest, loader, { signature: rel.loaderSignature, keyringId: -3, exclusive: true }).close();
    out[name] = { ok: true };
  } catch (e) {
    out[name] = { ok: false, errno: e.errno, code: e.code, message: String(e.message).split('\n')[0] };
  }
}
console.log(JSON.stringify(out));
