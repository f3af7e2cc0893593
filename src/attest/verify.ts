/**
 * Verifying a release against a trust policy, from the bytes given (read once by the caller):
 *  1. decode the release and the plan (malformed -> exit 2);
 *  2. the bundle's signature, key or certificate chain, and any log entries from trusted logs, with
 *     @sigstore/verify offline and explicit thresholds;
 *  3. what @sigstore/verify does not check: the in-toto subject digest against SHA-256 of the plan
 *     bytes, the checkpoint origin/size of log entries (via the `checkLogEntry` hook);
 *  4. policy: signer allowed for this plan and its program types, revocations, minimum version and
 *     anti-rollback state, required log inclusion, kernel signatures.
 * Returns the verified plan (decoded from the verified bytes) and the facts a load record needs.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { prepareCertificate, type PreparedCertificate } from './pkcs7.js';
import { Verifier, toSignedEntity, toTrustMaterial, type Signer as VerifiedSigner } from '@sigstore/verify';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { BUNDLE_V03_MEDIA_TYPE, type Bundle, type TransparencyLogEntry } from '@sigstore/bundle';
import { BpfsealError, VerifyError } from '../errors.js';
import { progTypeName } from '../bpf/constants.js';
import { decodePlan } from '../plan/codec.js';
import type { Plan, PlanProgram } from '../plan/types.js';
import { predictTag } from '../plan/tag.js';
import { globMatch, type TrustPolicy, type TrustedSigner } from '../trust/policy.js';
import { keyId as keyIdOf } from '../trust/keys.js';
import { decodeRelease, type Release } from './release.js';
import { parseStatement, planSubjectName, PAYLOAD_TYPE, type Statement } from './statement.js';

export interface VerifiedRelease {
  plan: Plan;
  planBytes: Buffer;
  digest: string;
  statement: Statement;
  version: number;
  signer: { name: string; keyId?: string; identity?: string; issuer?: string };
  /** Kernel signatures that verified, by program name. */
  kernelSignatures: Map<string, Buffer>;
  certificate?: string;
  /** Log entries that verified against a trusted log, and those skipped because their log is not trusted. */
  log: { verified: number; untrusted: number; entries: TransparencyLogEntry[] };
  release: Release;
}

export interface VerifyOptions {
  /** Highest version already loaded per plan name (anti-rollback state). */
  state?: Record<string, number>;
  /** Checks a log entry against our own view of the log (origin, size); throws VerifyError. */
  checkLogEntry?: (entry: TransparencyLogEntry, policy: TrustPolicy) => void;
  /** Verifies a PKCS#7 signature over instruction bytes with a certificate (parsed once per release). */
  verifyKernelSignature?: (sig: Buffer, insns: Buffer, certificate: PreparedCertificate, insnSha256: Buffer) => 'ok' | 'not-canonical' | 'invalid';
}

function trustedRootJson(policy: TrustPolicy): unknown {
  const base = (policy.trustedRoot ?? {}) as Record<string, unknown[]>;
  const tlogs = [...(base.tlogs ?? []), ...policy.logs.map((l) => ({
    baseUrl: l.baseUrl,
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: l.key.export({ type: 'spki', format: 'der' }).toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: '1970-01-01T00:00:00Z' } },
    logId: { keyId: Buffer.from(l.keyId, 'hex').toString('base64') },
  }))];
  return {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs, certificateAuthorities: base.certificateAuthorities ?? [], ctlogs: base.ctlogs ?? [], timestampAuthorities: base.timestampAuthorities ?? [],
  };
}

/** The TrustedRoot for a policy, built once per policy object and set of logs (verifying many releases reuses it). */
const roots = new WeakMap<TrustPolicy, { logs: readonly unknown[]; logCount: number; root: TrustedRoot }>();
function trustedRootOf(policy: TrustPolicy): TrustedRoot {
  const c = roots.get(policy);
  if (c && c.logs === policy.logs && c.logCount === policy.logs.length) return c.root;
  const root = TrustedRoot.fromJSON(trustedRootJson(policy));
  roots.set(policy, { logs: policy.logs, logCount: policy.logs.length, root });
  return root;
}

function logIdOf(e: TransparencyLogEntry): string {
  return e.logId?.keyId.toString('hex') ?? '';
}

/** Sort the bundle's log entries into those from logs this policy trusts and the rest. */
function splitEntries(bundle: Bundle, policy: TrustPolicy): { trusted: TransparencyLogEntry[]; untrusted: TransparencyLogEntry[] } {
  const ids = new Set(policy.logs.map((l) => l.keyId));
  const rootIds = new Set(((policy.trustedRoot as { tlogs?: { logId?: { keyId?: string } }[] } | undefined)?.tlogs ?? [])
    .map((t) => (t.logId?.keyId ? Buffer.from(t.logId.keyId, 'base64').toString('hex') : '')));
  // A valid bundle (assertBundle in decodeRelease) has logId and kindVersion on every entry.
  const all = (bundle.verificationMaterial.tlogEntries ?? []) as TransparencyLogEntry[];
  const trusted = all.filter((e) => ids.has(logIdOf(e)) || rootIds.has(logIdOf(e)));
  return { trusted, untrusted: all.filter((e) => !trusted.includes(e)) };
}

function signerFor(bundle: Bundle, policy: TrustPolicy): { hint?: string; signers: TrustedSigner[] } {
  const c = bundle.verificationMaterial.content;
  if (c.$case === 'publicKey') {
    const hint = c.publicKey.hint.toLowerCase();
    const signers = policy.signers.filter((s) => s.keyId === hint);
    if (!signers.length) throw new VerifyError('UNTRUSTED_SIGNER', `signed by key ${hint}, which ${policy.source} does not trust`);
    return { hint, signers };
  }
  const signers = policy.signers.filter((s) => s.keyless);
  if (!signers.length) throw new VerifyError('UNTRUSTED_SIGNER', `signed with a certificate (keyless), but ${policy.source} trusts no keyless identity`);
  return { signers };
}

/** A keyless policy subject: the exact SAN, or /regex/ between slashes. */
export function identityMatches(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (pattern.length > 2 && pattern.startsWith('/') && pattern.endsWith('/')) return new RegExp(pattern.slice(1, -1)).test(value);
  return pattern === value;
}

export function verifyRelease(bytes: Buffer, policy: TrustPolicy, opts: VerifyOptions = {}): VerifiedRelease {
  const release = decodeRelease(bytes);
  const plan = decodePlan(release.plan);
  const digest = createHash('sha256').update(release.plan).digest('hex');
  const { bundle } = release;
  if (bundle.content.$case !== 'dsseEnvelope') throw new VerifyError('BAD_BUNDLE', 'bundle does not carry a DSSE envelope');
  const env = bundle.content.dsseEnvelope;
  if (env.payloadType !== PAYLOAD_TYPE) throw new VerifyError('BAD_BUNDLE', `DSSE payload type ${env.payloadType} is not ${PAYLOAD_TYPE}`);
  if (bundle.mediaType !== BUNDLE_V03_MEDIA_TYPE) throw new VerifyError('BAD_BUNDLE', `bundle media type ${bundle.mediaType} is not ${BUNDLE_V03_MEDIA_TYPE}`);
  const { hint, signers } = signerFor(bundle, policy);
  // DSSE's keyid is an unsigned hint; pin it to what the builder writes so no bundle byte floats free.
  const expectedKeyid = hint ?? '';
  if (env.signatures.length !== 1 || env.signatures[0].keyid !== expectedKeyid) {
    throw new VerifyError('BAD_BUNDLE', 'DSSE envelope must carry exactly one signature whose keyid is the signer hint');
  }
  const { trusted, untrusted } = splitEntries(bundle, policy);
  if (policy.requireLogInclusion && trusted.length === 0) {
    throw new VerifyError('LOG_INCLUSION_REQUIRED', `policy requires inclusion in a trusted log; the release has ${untrusted.length ? 'entries only from untrusted logs' : 'no log entry'}`);
  }
  const keyless = bundle.verificationMaterial.content.$case !== 'publicKey';
  const checked: Bundle = { ...bundle, verificationMaterial: { ...bundle.verificationMaterial, tlogEntries: trusted } };
  let verified: VerifiedSigner;
  try {
    const root = trustedRootOf(policy);
    const keyFinder = (h: string) => {
      const s = signers.find((x) => x.keyId === h.toLowerCase());
      if (!s?.key) throw new VerifyError('UNTRUSTED_SIGNER', `key ${h} is not trusted`);
      return { publicKey: s.key, validFor: () => true };
    };
    const ctlogs = (root.ctlogs ?? []).length;
    const verifier = new Verifier(toTrustMaterial(root, keyFinder), {
      tlogThreshold: keyless ? 1 : policy.requireLogInclusion ? 1 : 0,
      ctlogThreshold: keyless && ctlogs ? 1 : 0,
      timestampThreshold: keyless ? 1 : 0,
    });
    verified = verifier.verify(toSignedEntity(checked));
  } catch (e) {
    if (e instanceof BpfsealError) throw e;
    const code = (e as { code?: string }).code ?? 'VERIFY_ERROR';
    const why = code === 'SIGNATURE_ERROR' ? 'bad signature: the DSSE signature does not verify with the signer\'s key'
      : code.startsWith('TLOG') ? `log entry does not verify: ${(e as Error).message}` : `${code}: ${(e as Error).message}`;
    throw new VerifyError(code === 'SIGNATURE_ERROR' ? 'BAD_SIGNATURE' : code.startsWith('TLOG') ? 'BAD_LOG_PROOF' : 'BAD_BUNDLE', why, { cause: e });
  }
  for (const e of trusted) opts.checkLogEntry?.(e, policy);
  // DSSE verification never looks at the artifact: compare the subject with the plan bytes ourselves.
  const statement = parseStatement(env.payload);
  const subject = statement.subject[0];
  if (subject.digest.sha256 !== digest) throw new VerifyError('SUBJECT_MISMATCH', `signed subject sha256:${subject.digest.sha256} is not the plan's digest sha256:${digest}`);
  if (subject.name !== planSubjectName(plan) || statement.predicate.plan.name !== plan.name) {
    throw new VerifyError('SUBJECT_MISMATCH', `signed subject '${subject.name}' does not name plan '${plan.name}'`);
  }
  // The predicate is what auditors read: it must describe exactly the plan that was signed.
  const claims = statement.predicate;
  if (claims.programs.length !== plan.programs.length || !Array.isArray(claims.maps) || claims.maps.length !== plan.maps.length
    || claims.maps.some((m, i) => m.name !== plan.maps[i].name || m.maxEntries !== plan.maps[i].maxEntries || m.valueSize !== plan.maps[i].valueSize)) {
    throw new VerifyError('PREDICATE_MISMATCH', "the attestation's program or map claims do not match the plan");
  }
  // Each program's instructions are hashed once: for its claim, its predicted tag and its kernel signature.
  const insnSha256 = new Map(plan.programs.map((p) => [p, createHash('sha256').update(p.insns).digest()]));
  for (const p of plan.programs) {
    const claim = statement.predicate.programs.find((c) => c.name === p.name);
    const hex = insnSha256.get(p)!.toString('hex');
    if (!claim || claim.insnDigest.sha256 !== hex || (claim.tag ?? null) !== predictTag(p, hex)) {
      throw new VerifyError('PREDICATE_MISMATCH', `the attestation's claim for program '${p.name}' does not match the plan`);
    }
  }
  let signer: TrustedSigner;
  let identity: string | undefined, issuer: string | undefined;
  if (keyless) {
    identity = verified.identity?.subjectAlternativeName;
    issuer = verified.identity?.extensions?.issuer;
    const s = signers.find((x) => x.keyless && x.keyless.issuer === issuer && identityMatches(x.keyless.subject, identity));
    if (!s) throw new VerifyError('UNTRUSTED_SIGNER', `signer identity ${identity ?? '(none)'} from issuer ${issuer ?? '(none)'} is not trusted by ${policy.source}`);
    signer = s;
  } else {
    signer = signers[0];
  }
  const keyId = hint ?? keyIdOf(verified.key);
  if (policy.revokedKeys.has(keyId)) throw new VerifyError('REVOKED_KEY', `signing key ${keyId} is revoked by ${policy.source}`);
  if (policy.revokedDigests.has(`sha256:${digest}`)) throw new VerifyError('REVOKED_DIGEST', `plan digest sha256:${digest} is revoked by ${policy.source}`);
  const allowedFor = signers.filter((s) => (!keyless || s === signer) && s.plans.some((p) => globMatch(p, plan.name)));
  if (!allowedFor.length) throw new VerifyError('UNTRUSTED_SIGNER', `signer '${signer.name}' may not sign plan '${plan.name}' under ${policy.source}`);
  for (const p of plan.programs) {
    const t = progTypeName(p.progType);
    if (!allowedFor.some((s) => s.programTypes.some((g) => globMatch(g, t)))) {
      throw new VerifyError('PROGRAM_TYPE_FORBIDDEN', `program '${p.name}' has type ${t}, which signer '${signer.name}' may not sign under ${policy.source}`);
    }
  }
  const version = statement.predicate.release.version;
  const min = policy.minVersions[plan.name];
  if (min !== undefined && version < min) throw new VerifyError('ROLLBACK', `release version ${version} of '${plan.name}' is below the policy minimum ${min}`);
  const seen = opts.state?.[plan.name];
  if (seen !== undefined && version < seen && !policy.allowRollback) {
    throw new VerifyError('ROLLBACK', `release version ${version} of '${plan.name}' is older than version ${seen} already loaded on this host (anti-rollback)`);
  }
  const kernelSignatures = verifyKernelSignatures(release, plan, policy, verified.key, opts, insnSha256);
  return {
    plan, planBytes: release.plan, digest, statement, version, release, kernelSignatures, certificate: release.certificate,
    signer: { name: allowedFor[0].name, keyId, identity, issuer },
    log: { verified: trusted.length, untrusted: untrusted.length, entries: trusted },
  };
}

function verifyKernelSignatures(release: Release, plan: Plan, policy: TrustPolicy, signerKey: KeyObject, opts: VerifyOptions, insnSha256: Map<PlanProgram, Buffer>): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const names = new Set(plan.programs.map((p) => p.name));
  for (const n of Object.keys(release.kernelSignatures)) {
    if (!names.has(n)) throw new VerifyError('BAD_KERNEL_SIGNATURE', `kernel signature for '${n}', which is not a program of the plan`);
  }
  if (release.certificate && !Object.keys(release.kernelSignatures).length) {
    throw new VerifyError('BAD_KERNEL_SIGNATURE', 'the release carries a certificate but no kernel signatures');
  }
  if (Object.keys(release.kernelSignatures).length) {
    if (!release.certificate) throw new VerifyError('BAD_KERNEL_SIGNATURE', 'kernel signatures without a certificate');
    let cert: PreparedCertificate | undefined;
    try {
      // The certificate must carry the key that signed the attestation: kernel signatures inherit its trust.
      cert = prepareCertificate(release.certificate, signerKey);
    } catch {
      throw new VerifyError('BAD_KERNEL_SIGNATURE', 'the release certificate does not parse');
    }
    if (!cert) throw new VerifyError('BAD_KERNEL_SIGNATURE', 'the release certificate is not the attestation signer\'s');
    for (const p of plan.programs) {
      const sig = release.kernelSignatures[p.name];
      if (!sig) continue;
      if (!opts.verifyKernelSignature) throw new VerifyError('BAD_KERNEL_SIGNATURE', 'no PKCS#7 verifier available');
      const verdict = opts.verifyKernelSignature(sig, p.insns, cert, insnSha256.get(p)!);
      if (verdict === 'not-canonical') {
        throw new VerifyError('BAD_KERNEL_SIGNATURE', `kernel signature of program '${p.name}' is not in bpfseal's canonical form for the release certificate`);
      }
      if (verdict !== 'ok') {
        throw new VerifyError('BAD_KERNEL_SIGNATURE', `kernel signature of program '${p.name}' does not verify over its instructions`);
      }
      out.set(p.name, sig);
    }
  }
  if (policy.requireKernelSignatures) {
    const missing = plan.programs.filter((p) => !out.has(p.name)).map((p) => p.name);
    if (missing.length) throw new VerifyError('KERNEL_SIGNATURE_REQUIRED', `policy requires kernel signatures; missing for ${missing.join(', ')}`);
  }
  return out;
}
