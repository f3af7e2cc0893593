/**
 * Verifying an attestation against a trust policy, from the bytes given (read once by the caller):
 *  1. the bundle's shape (DSSE, payload type, media type, one signature whose keyid is the signer hint);
 *  2. the signature, key or certificate chain, and any log entries from trusted logs, with
 *     @sigstore/verify offline and explicit thresholds;
 *  3. what @sigstore/verify does not check: the checkpoint origin and size of our own log entries
 *     (`checkLogEntry`), the in-toto subject against SHA-256 of the plan bytes, and every claim of the
 *     predicate against the plan itself (a signed claim that does not describe the plan is a rejection);
 *  4. the policy verdict, by the one judge (trust/judge.ts).
 * verify and load call verifyRelease; audit calls verifyAttestation with a bundle rebuilt from a log
 * entry, so every verdict takes the same path.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { Verifier, toSignedEntity, toTrustMaterial, type Signer as VerifiedSigner } from '@sigstore/verify';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { BUNDLE_V03_MEDIA_TYPE, type Bundle, type TransparencyLogEntry } from '@sigstore/bundle';
import { at, BpfsealError, InputError, VerifyError } from '../errors.js';
import { progTypeName } from '../bpf/constants.js';
import { firstDifference } from '../json/compare.js';
import { decodePlan } from '../plan/codec.js';
import type { Plan, PlanProgram } from '../plan/types.js';
import type { TrustPolicy, TrustedSigner } from '../trust/policy.js';
import { verifyCosignatures, type CosignatureCheck } from '../tlog/witness/cosign.js';
import { judge } from '../trust/judge.js';
import { keyId as keyIdOf } from '../trust/keys.js';
import { prepareCertificate, type PreparedCertificate } from './pkcs7.js';
import { decodeRelease, type Release } from './release.js';
import { buildStatement, parseStatement, planSubjectName, PAYLOAD_TYPE, type Statement } from './statement.js';
import { loaderClaim, loaderOf, signedLoaderBytes } from '../loader/claim.js';
import { LOADER_FORMAT, type LoaderProgram } from '../loader/generate.js';

export interface VerifiedSignerInfo {
  name: string;
  keyId: string;
  identity?: string;
  issuer?: string;
}

export interface VerifiedAttestation {
  statement: Statement;
  version: number;
  signer: VerifiedSignerInfo;
  /** The key that made the DSSE signature (a policy key, or the keyless certificate's key). */
  key: KeyObject;
  /** Log entries that verified against a trusted log, and those skipped because their log is not trusted. */
  log: { verified: number; untrusted: number; entries: TransparencyLogEntry[] };
  /** Things the operator should know (an expired certificate accepted by policy, ...). */
  notes: string[];
}

export interface VerifiedRelease extends VerifiedAttestation {
  plan: Plan;
  planBytes: Buffer;
  digest: string;
  /** Kernel signatures that verified, by program name. */
  kernelSignatures: Map<string, Buffer>;
  /** The plan's kernel loader and its verified signature over `insns || blob`, when the release signs one. */
  loader?: { program: LoaderProgram; signature: Buffer };
  certificate?: string;
  release: Release;
  /** requirePreflight: the passing preflight attestation that allowed this host (preflight/require.ts). */
  preflight?: { where: string; kernelRelease: string; signer: string; configMatched: boolean };
}

export interface VerifyOptions {
  /** Highest version already loaded per plan name (anti-rollback state). */
  state?: ReadonlyMap<string, number>;
  /** Audit judges witnesses once for the whole log (its witnessed checkpoint), not per rebuilt entry. */
  skipWitnesses?: boolean;
  /** Checks a log entry against our own view of the log (origin, size); throws VerifyError. */
  checkLogEntry?: (entry: TransparencyLogEntry, policy: TrustPolicy) => void;
  /** Verifies a PKCS#7 signature over instruction bytes with a certificate (parsed once per release). */
  verifyKernelSignature?: (sig: Buffer, insns: Buffer, certificate: PreparedCertificate, insnSha256: Buffer) => 'ok' | 'not-canonical' | 'invalid';
  /** The time certificate validity is judged at (default now). */
  now?: Date;
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
  let root: TrustedRoot;
  try {
    root = TrustedRoot.fromJSON(trustedRootJson(policy));
  } catch (e) {
    throw new BpfsealError('input', 'POLICY_INVALID', `${policy.source}: the trusted root does not parse (${(e as Error).message})`);
  }
  roots.set(policy, { logs: policy.logs, logCount: policy.logs.length, root });
  return root;
}

function logIdOf(e: TransparencyLogEntry): string {
  return e.logId?.keyId.toString('hex') ?? '';
}

/** Sort the bundle's log entries into those from logs this policy trusts and the rest. */
function splitEntries(bundle: Bundle, policy: TrustPolicy): { trusted: TransparencyLogEntry[]; untrusted: TransparencyLogEntry[] } {
  const ids = new Set(policy.logs.map((l) => l.keyId));
  const rootTlogs = (policy.trustedRoot as { tlogs?: { logId?: { keyId?: unknown } }[] } | undefined)?.tlogs ?? [];
  for (const t of rootTlogs) if (typeof t?.logId?.keyId === 'string') ids.add(Buffer.from(t.logId.keyId, 'base64').toString('hex'));
  const all = (bundle.verificationMaterial.tlogEntries ?? []) as TransparencyLogEntry[];
  const trusted = all.filter((e) => ids.has(logIdOf(e)));
  return { trusted, untrusted: all.filter((e) => !trusted.includes(e)) };
}

/** Policy signers whose key could have made this bundle (by the unsigned hint), for the key finder. */
function keySigners(bundle: Bundle, policy: TrustPolicy): { hint?: string; signers: TrustedSigner[] } {
  const c = bundle.verificationMaterial.content;
  if (c.$case === 'publicKey') {
    const hint = c.publicKey.hint.toLowerCase();
    const signers = policy.signers.filter((s) => s.keyId === hint);
    if (!signers.length) throw new VerifyError('UNTRUSTED_SIGNER', `signed by key ${hint}, which ${policy.source} does not trust`);
    return { hint, signers };
  }
  if (!policy.signers.some((s) => s.keyless)) throw new VerifyError('UNTRUSTED_SIGNER', `signed with a certificate (keyless), but ${policy.source} trusts no keyless identity`);
  return { signers: [] };
}

function sigstoreVerify(bundle: Bundle, trusted: TransparencyLogEntry[], policy: TrustPolicy, signers: TrustedSigner[]): VerifiedSigner {
  const keyless = bundle.verificationMaterial.content.$case !== 'publicKey';
  const checked: Bundle = { ...bundle, verificationMaterial: { ...bundle.verificationMaterial, tlogEntries: trusted } };
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
    return verifier.verify(toSignedEntity(checked));
  } catch (e) {
    if (e instanceof BpfsealError) throw e;
    const code = (e as { code?: string }).code ?? 'VERIFY_ERROR';
    const msg = (e as Error).message;
    if (code === 'SIGNATURE_ERROR') throw new VerifyError('BAD_SIGNATURE', "bad signature: the DSSE signature does not verify with the signer's key", { cause: e });
    if (code.startsWith('TLOG')) throw new VerifyError('BAD_LOG_PROOF', `log entry does not verify: ${msg}`, { cause: e });
    if (code.startsWith('TIMESTAMP')) throw new VerifyError('NO_TIMESTAMP', `no verified time for the signature (a keyless certificate must be checked at a time a log or TSA signed): ${msg}`, { cause: e });
    if (code.startsWith('CERTIFICATE') || code.startsWith('PUBLIC_KEY')) throw new VerifyError('UNTRUSTED_SIGNER', `the signing certificate does not chain to the policy's trusted root: ${msg}`, { cause: e });
    throw new VerifyError('BAD_BUNDLE', `${code}: ${msg}`, { cause: e });
  }
}

/**
 * Split-view protection: with witnesses in the policy, a log entry counts only when the checkpoint its
 * proof is against (already checked against the log's key and origin) carries cosignatures of at
 * least `witnessThreshold` of them; a witness line that does not verify refuses the release.
 */
function checkWitnessed(trusted: TransparencyLogEntry[], policy: TrustPolicy): void {
  let best: CosignatureCheck | undefined;
  for (const e of trusted) {
    const note = e.inclusionProof?.checkpoint?.envelope;
    if (!note) continue;
    const c = verifyCosignatures(note, policy.witnesses, policy.witnessThreshold);
    if (c.invalid.length) throw new VerifyError('WITNESS_INVALID', `the checkpoint of log entry ${e.logIndex} carries cosignature lines of ${c.invalid.join(', ')} that do not verify`);
    if (c.ok) return;
    if (!best || c.valid.length > best.valid.length) best = c;
  }
  throw new VerifyError('WITNESS_THRESHOLD', `policy requires checkpoints cosigned by ${policy.witnessThreshold} of its ${policy.witnesses.length} witness(es); the release's best has ${best?.valid.length ?? 0}${best?.valid.length ? ` (${best.valid.join(', ')})` : ''}. Once the witnesses have cosigned the log, prove the entry against that checkpoint: bpfseal log refresh <release> --log <log>`);
}

/** SHA-256 of each program's instructions, computed once per verification. */
export function insnDigests(plan: Plan): Map<PlanProgram, Buffer> {
  return new Map(plan.programs.map((p) => [p, createHash('sha256').update(p.insns).digest()]));
}

/**
 * Verify a DSSE bundle attesting `plan` (whose canonical bytes hash to `digest`, hex) under `policy`.
 * Throws VerifyError (exit 1) or InputError (exit 2) with a stable code.
 */
export interface VerifiedDsseBundle {
  verified: VerifiedSigner;
  /** The key hint of a key-based signature (undefined for keyless). */
  hint?: string;
  payload: Buffer;
  trusted: TransparencyLogEntry[];
  untrusted: TransparencyLogEntry[];
}

/**
 * The part of verification that does not depend on what is attested: the bundle's shape, the DSSE
 * signature by a policy signer, and the entries of trusted logs (with `checkLogEntry`). verifyAttestation
 * builds on it for plans; host reports (audit/kernel/verify-report.ts) for their own predicate.
 */
export function verifyDsseBundle(bundle: Bundle, policy: TrustPolicy, opts: Pick<VerifyOptions, 'checkLogEntry' | 'skipWitnesses'> = {}): VerifiedDsseBundle {
  if (bundle.content.$case !== 'dsseEnvelope') throw new VerifyError('BAD_BUNDLE', 'bundle does not carry a DSSE envelope');
  const env = bundle.content.dsseEnvelope;
  if (env.payloadType !== PAYLOAD_TYPE) throw new VerifyError('BAD_BUNDLE', `DSSE payload type ${env.payloadType} is not ${PAYLOAD_TYPE}`);
  if (bundle.mediaType !== BUNDLE_V03_MEDIA_TYPE) throw new VerifyError('BAD_BUNDLE', `bundle media type ${bundle.mediaType} is not ${BUNDLE_V03_MEDIA_TYPE}`);
  const { hint, signers } = keySigners(bundle, policy);
  // DSSE's keyid is an unsigned hint; pin it to what the builder writes so no bundle byte floats free.
  if (env.signatures.length !== 1 || at(env.signatures, 0, 'DSSE signature').keyid !== (hint ?? '')) {
    throw new VerifyError('BAD_BUNDLE', 'DSSE envelope must carry exactly one signature whose keyid is the signer hint');
  }
  const { trusted, untrusted } = splitEntries(bundle, policy);
  if ((policy.requireLogInclusion || policy.witnesses.length) && trusted.length === 0) {
    throw new VerifyError('LOG_INCLUSION_REQUIRED', `policy requires inclusion in a trusted log${policy.witnesses.length ? ' (it names witnesses)' : ''}; the release has ${untrusted.length ? 'entries only from untrusted logs' : 'no log entry'}`);
  }
  const verified = sigstoreVerify(bundle, trusted, policy, signers);
  for (const e of trusted) opts.checkLogEntry?.(e, policy);
  if (policy.witnesses.length && !opts.skipWitnesses) checkWitnessed(trusted, policy);
  return { verified, hint, payload: env.payload, trusted, untrusted };
}

export function verifyAttestation(bundle: Bundle, plan: Plan, digest: string, policy: TrustPolicy, opts: VerifyOptions = {}, insnSha256 = insnDigests(plan)): VerifiedAttestation {
  const { verified, hint, payload, trusted, untrusted } = verifyDsseBundle(bundle, policy, opts);
  // DSSE verification never looks at the artifact: compare the subject with the plan bytes ourselves.
  const statement = parseStatement(payload);
  const [subject] = statement.subject;
  // parseStatement refuses a statement without a subject; should one get here, it is refused too, not a crash.
  if (subject === undefined) throw new InputError('STATEMENT_INVALID', 'the signed statement has no subject');
  if (subject.digest.sha256 !== digest) throw new VerifyError('SUBJECT_MISMATCH', `signed subject sha256:${subject.digest.sha256} is not the plan's digest sha256:${digest}`);
  if (subject.name !== planSubjectName(plan) || statement.predicate.plan.name !== plan.name) {
    throw new VerifyError('SUBJECT_MISMATCH', `signed subject '${subject.name}' does not name plan '${plan.name}'`);
  }
  // The predicate is what auditors read: every claim must be exactly what the plan gives.
  const claims = statement.predicate;
  if (claims.loader && claims.loader.format !== LOADER_FORMAT) {
    throw new VerifyError('LOADER_FORMAT_UNSUPPORTED', `the release signs a kernel loader of format ${claims.loader.format}; this bpfseal makes format ${LOADER_FORMAT}`);
  }
  const expected = buildStatement(plan, digest, {
    version: claims.release.version, toolVersion: claims.tool.version, builder: claims.builder, insnSha256,
    kernelSigned: claims.kernelSignatures && plan.programs.filter((p) => claims.kernelSignatures!.includes(p.name)).map((p) => p.name),
    // The loader claim must be exactly the loader this plan gives (regenerated here, deterministically).
    loader: claims.loader && loaderClaim(loaderOf(plan)),
  });
  const d = firstDifference(statement, expected);
  if (d) {
    throw new VerifyError('PREDICATE_MISMATCH', `the attestation's claim ${d.path.replace(/^predicate\./, '')} is ${JSON.stringify(d.signed) ?? 'absent'}, but the plan gives ${JSON.stringify(d.expected) ?? 'nothing'}`);
  }
  const keyless = bundle.verificationMaterial.content.$case !== 'publicKey';
  const identity = keyless ? verified.identity?.subjectAlternativeName : undefined;
  const issuer = keyless ? verified.identity?.extensions?.issuer : undefined;
  const keyId = hint ?? keyIdOf(verified.key);
  const verdict = judge(policy, {
    plan: plan.name, digest: `sha256:${digest}`, version: claims.release.version,
    programTypes: plan.programs.map((p) => ({ program: p.name, type: progTypeName(p.progType) })),
    signer: { keyId, ...(keyless ? { keyless: { identity, issuer } } : {}) },
    trustedLogEntries: trusted.length, untrustedLogEntries: untrusted.length,
    hostFloor: opts.state?.get(plan.name), now: opts.now,
  });
  return {
    statement, version: claims.release.version, key: verified.key, notes: verdict.notes,
    signer: { name: verdict.signer.name, keyId, ...(identity !== undefined ? { identity } : {}), ...(issuer !== undefined ? { issuer } : {}) },
    log: { verified: trusted.length, untrusted: untrusted.length, entries: trusted },
  };
}

export function verifyRelease(bytes: Buffer, policy: TrustPolicy, opts: VerifyOptions = {}): VerifiedRelease {
  const release = decodeRelease(bytes);
  const plan = decodePlan(release.plan);
  const digest = createHash('sha256').update(release.plan).digest('hex');
  const insnSha256 = insnDigests(plan);
  const a = verifyAttestation(release.bundle, plan, digest, policy, opts, insnSha256);
  const cert = releaseCertificate(release, a.key);
  const kernelSignatures = verifyKernelSignatures(release, plan, policy, a, cert, opts, insnSha256);
  const loader = verifyLoaderSignature(release, plan, a, cert, opts);
  if (policy.requireKernelSignatures && !loader) requireProgramSignatures(plan, kernelSignatures);
  return { ...a, plan, planBytes: release.plan, digest, release, kernelSignatures, certificate: release.certificate, ...(loader ? { loader } : {}) };
}

/** The release certificate, which must carry the key that signed the attestation (kernel signatures inherit its trust). */
function releaseCertificate(release: Release, signerKey: KeyObject): PreparedCertificate | undefined {
  const signed = release.kernelSignatures.size > 0 || release.loaderSignature !== undefined;
  if (release.certificate && !signed) throw new VerifyError('BAD_KERNEL_SIGNATURE', 'the release carries a certificate but no kernel signatures');
  if (!signed) return undefined;
  if (!release.certificate) throw new VerifyError('BAD_KERNEL_SIGNATURE', 'kernel signatures without a certificate');
  let cert: PreparedCertificate | undefined;
  try {
    cert = prepareCertificate(release.certificate, signerKey);
  } catch {
    throw new VerifyError('BAD_KERNEL_SIGNATURE', 'the release certificate does not parse');
  }
  if (!cert) throw new VerifyError('BAD_KERNEL_SIGNATURE', "the release certificate is not the attestation signer's");
  return cert;
}

function verifyLoaderSignature(release: Release, plan: Plan, a: VerifiedAttestation, cert: PreparedCertificate | undefined, opts: VerifyOptions): VerifiedRelease['loader'] {
  const claim = a.statement.predicate.loader;
  if (!claim && !release.loaderSignature) return undefined;
  if (!claim || !release.loaderSignature) {
    throw new VerifyError('BAD_KERNEL_SIGNATURE', release.loaderSignature ? 'the release carries a loader signature that the attestation does not claim' : 'the attestation claims a kernel loader signature that the release does not carry (stripped?)');
  }
  const program = loaderOf(plan);
  const bytes = signedLoaderBytes(program);
  if (!opts.verifyKernelSignature) throw new VerifyError('BAD_KERNEL_SIGNATURE', 'no PKCS#7 verifier available');
  const verdict = opts.verifyKernelSignature(release.loaderSignature, bytes, cert!, createHash('sha256').update(bytes).digest());
  if (verdict === 'not-canonical') throw new VerifyError('BAD_KERNEL_SIGNATURE', "the loader signature is not in bpfseal's canonical form for the release certificate");
  if (verdict !== 'ok') throw new VerifyError('BAD_KERNEL_SIGNATURE', 'the loader signature does not verify over the loader this plan gives');
  return { program, signature: release.loaderSignature };
}

/** Without a loader signature, requireKernelSignatures needs one per program (what 6.18–7.2 kernels verify). */
function requireProgramSignatures(plan: Plan, verified: Map<string, Buffer>): void {
  if (!plan.programs.length) throw new VerifyError('KERNEL_SIGNATURE_REQUIRED', `policy requires kernel signatures, and plan '${plan.name}' has no program the kernel could verify (maps only)`);
  const missing = plan.programs.filter((p) => !verified.has(p.name)).map((p) => p.name);
  if (missing.length) throw new VerifyError('KERNEL_SIGNATURE_REQUIRED', `policy requires kernel signatures; missing for ${missing.join(', ')} (and the release signs no kernel loader)`);
}

function verifyKernelSignatures(release: Release, plan: Plan, _policy: TrustPolicy, a: VerifiedAttestation, cert: PreparedCertificate | undefined, opts: VerifyOptions, insnSha256: Map<PlanProgram, Buffer>): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const names = new Set(plan.programs.map((p) => p.name));
  const claimed = a.statement.predicate.kernelSignatures;
  if (claimed) {
    const carried = [...release.kernelSignatures.keys()].sort();
    if (carried.join('\0') !== claimed.join('\0')) {
      throw new VerifyError('BAD_KERNEL_SIGNATURE', `the release carries kernel signatures for [${carried.join(', ')}], but the attestation says [${claimed.join(', ')}] (stripped or added after signing)`);
    }
  }
  for (const n of release.kernelSignatures.keys()) {
    if (!names.has(n)) throw new VerifyError('BAD_KERNEL_SIGNATURE', `kernel signature for '${n}', which is not a program of the plan`);
  }
  for (const p of plan.programs) {
    const sig = release.kernelSignatures.get(p.name);
    if (!sig) continue;
    // A program with host fix-ups loads other bytes than it was signed over: its signature could
    // only ever be refused by the kernel, or (worse) claim a kernel verdict for bytes it never saw.
    if (p.fixups.length) throw new VerifyError('BAD_KERNEL_SIGNATURE', `program '${p.name}' needs host fix-ups (${p.fixups.map((f) => f.name).join(', ')}), so its instructions are not final and cannot carry a kernel signature`);
    if (!opts.verifyKernelSignature) throw new VerifyError('BAD_KERNEL_SIGNATURE', 'no PKCS#7 verifier available');
    const verdict = opts.verifyKernelSignature(sig, p.insns, cert!, insnSha256.get(p)!);
    if (verdict === 'not-canonical') throw new VerifyError('BAD_KERNEL_SIGNATURE', `kernel signature of program '${p.name}' is not in bpfseal's canonical form for the release certificate`);
    if (verdict !== 'ok') throw new VerifyError('BAD_KERNEL_SIGNATURE', `kernel signature of program '${p.name}' does not verify over its instructions`);
    out.set(p.name, sig);
  }
  return out;
}
