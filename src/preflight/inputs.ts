/**
 * Preflight inputs, read once on the host before any kernel boots: objects are planned (as `plan`
 * does), plans decoded, releases decoded and, with a policy, verified as `verify` does (a release
 * that does not verify is a rejection before anything boots). Each becomes what the guest loads.
 */
import { createHash } from 'node:crypto';
import type { LoadOptions } from '../bpf/collection.js';
import { checkKernelSignature } from '../attest/pkcs7.js';
import { decodeRelease, RELEASE_MEDIA_TYPE } from '../attest/release.js';
import { verifyRelease } from '../attest/verify.js';
import { BpfsealError } from '../errors.js';
import { readInput } from '../fsx/read.js';
import { decodePlan, planDigest } from '../plan/codec.js';
import { planFromBytes } from '../plan/file.js';
import type { Plan } from '../plan/types.js';
import { checkLocalLogEntry } from '../attest/rekor.js';
import type { TrustPolicy } from '../trust/policy.js';
import type { GuestInput } from './types.js';

export interface PreparedInput {
  path: string;
  kind: 'object' | 'plan' | 'release';
  /** SHA-256 of the input file as given, hex. */
  fileSha256: string;
  plan: Plan;
  /** Plan digest, hex. */
  digest: string;
  /** Releases: the signed version, and the signer when a policy verified it. */
  release?: { version: number; verified: boolean; signer?: { name: string; keyId: string } };
  guest: GuestInput;
}

function isRelease(bytes: Buffer): boolean {
  // A release is one JSON document with the release media type; objects and plans start with magic.
  return bytes[0] === 0x7b && bytes.includes(Buffer.from(RELEASE_MEDIA_TYPE));
}

function fromRelease(path: string, bytes: Buffer, policy: TrustPolicy | undefined, fileSha256: string): PreparedInput {
  if (policy) {
    const v = verifyRelease(bytes, policy, { checkLogEntry: checkLocalLogEntry, verifyKernelSignature: checkKernelSignature });
    return {
      path, kind: 'release', fileSha256, plan: v.plan, digest: v.digest,
      release: { version: v.version, verified: true, signer: { name: v.signer.name, keyId: v.signer.keyId } },
      guest: guestInput(path, v.planBytes, v.release),
    };
  }
  const r = decodeRelease(bytes);
  const plan = decodePlan(r.plan);
  const version = releaseVersion(r.bundle.content.$case === 'dsseEnvelope' ? r.bundle.content.dsseEnvelope.payload : undefined);
  return { path, kind: 'release', fileSha256, plan, digest: planDigest(r.plan), release: { version, verified: false }, guest: guestInput(path, r.plan, r) };
}

/** The release version from the (unverified) statement, for display only. */
function releaseVersion(payload: Buffer | undefined): number {
  try {
    const v = (JSON.parse(payload?.toString('utf8') ?? '') as { predicate?: { release?: { version?: unknown } } }).predicate?.release?.version;
    return typeof v === 'number' ? v : -1;
  } catch {
    return -1;
  }
}

function guestInput(name: string, planBytes: Buffer, r: ReturnType<typeof decodeRelease>): GuestInput {
  const sigs = Object.fromEntries([...r.kernelSignatures].map(([k, v]) => [k, v.toString('base64')]));
  return {
    name, plan: planBytes.toString('base64'),
    ...(r.loaderSignature ? { loaderSignature: r.loaderSignature.toString('base64') } : {}),
    ...(r.kernelSignatures.size ? { kernelSignatures: sigs } : {}),
    ...(r.certificate ? { certificate: r.certificate } : {}),
  };
}

/** Read and prepare every input; the first bad one is an error naming its file (nothing boots). */
export function prepareInputs(paths: string[], opts: { policy?: TrustPolicy; sectionTypes?: LoadOptions['sectionTypes'] }): PreparedInput[] {
  return paths.map((path) => {
    const bytes = readInput(path, { kind: 'release' });
    const fileSha256 = createHash('sha256').update(bytes).digest('hex');
    try {
      if (isRelease(bytes)) return fromRelease(path, bytes, opts.policy, fileSha256);
      const p = planFromBytes(bytes, path, { sectionTypes: opts.sectionTypes });
      return { path, kind: p.source, fileSha256, plan: p.plan, digest: p.digest, guest: { name: path, plan: p.bytes.toString('base64') } };
    } catch (e) {
      if (e instanceof BpfsealError) e.file ??= path;
      throw e;
    }
  });
}
