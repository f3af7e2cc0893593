/** Releases signed in-process (no log unless asked), for tests that need many quickly. */
import { createPublicKey } from 'node:crypto';
import type { Witness } from '@sigstore/sign';
import { signInstructions } from '../../src/attest/pkcs7.js';
import { encodeRelease } from '../../src/attest/release.js';
import { localKeySigner, signPlan } from '../../src/attest/sign.js';
import { encodePlan } from '../../src/plan/codec.js';
import { planFromBytes } from '../../src/plan/file.js';
import type { Plan } from '../../src/plan/types.js';
import { loadPrivateKey, type KeyFiles } from '../../src/trust/keys.js';
import { readFileSync } from 'node:fs';
import { readFixture } from './paths.js';

export interface SignedFixture {
  bytes: Buffer;
  plan: Plan;
  digest: string;
}

/** Sign `fixture` as plan `name` (the object's file name decides it) with `key`, version `version`. */
export async function signFixture(fixture: string, name: string, key: KeyFiles, version = 1, opts: { witnesses?: Witness[]; kernel?: boolean; edit?: (p: Plan) => void } = {}): Promise<SignedFixture> {
  let { plan, bytes, digest } = planFromBytes(readFixture(fixture), `${name}.o`);
  if (opts.edit) {
    opts.edit(plan);
    bytes = encodePlan(plan);
    digest = (await import('node:crypto')).createHash('sha256').update(bytes).digest('hex');
  }
  const { key: priv } = loadPrivateKey(key.key);
  const cert = readFileSync(key.crt, 'utf8');
  const s = await signPlan(plan, bytes, {
    digest, signer: localKeySigner(priv, createPublicKey(priv)), version, toolVersion: 'test', witnesses: opts.witnesses ?? [],
    kernelSigner: opts.kernel ? { sign: (insns) => signInstructions(insns, priv, cert), certificate: cert } : undefined,
  });
  return { bytes: Buffer.from(encodeRelease(s.release)), plan, digest };
}
