/**
 * What `inspect <release>` says about a release file before anyone trusts it: the signed statement's
 * claims (plan, digest, version, builder, tool), who the bundle says signed it, when its log entries
 * say it was logged, which kernel signatures it carries and for which kernels. Read from the file's
 * form alone (decodeRelease: canonical JSON, a Sigstore bundle; parseStatement: the in-toto statement):
 * nothing here checks a signature, a proof or a policy, and every description says so
 * (`verified: false`). docs/release-format.md has the fields this reads.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { Bundle, TransparencyLogEntry } from '@sigstore/bundle';
import { BpfsealError, InputError } from '../errors.js';
import { certificateIdentity } from './identity.js';
import { decodeRelease, RELEASE_MEDIA_TYPE, type Release } from './release.js';
import { parseStatement, planSubject, type Statement } from './statement.js';
import { decodePlan } from '../plan/codec.js';
import type { Plan } from '../plan/types.js';
import { keyId } from '../trust/keys.js';
import { parseCheckpoint, parseSignedNote } from '../tlog/note.js';
import { describeLoader, type LoaderSummary } from '../loader/describe.js';

export const NOT_VERIFIED = 'not verified: inspect reads the release without checking its signatures, log proofs or any trust policy; run bpfseal verify';

export type ReleaseSigner =
  | { kind: 'key'; keyId: string }
  | { kind: 'keyless'; identity: string; issuer: string; keyId: string; notBefore: string; notAfter: string };

export interface ReleaseLogEntry {
  /** The checkpoint's origin line (the log's name), "" when the entry carries no checkpoint. */
  origin: string;
  /** Log id: SHA-256 of the log key (hex). */
  logId: string;
  index: number;
  kind: string;
  /** When the log says it integrated the entry (ISO 8601); null when the entry has no time. */
  integratedTime: string | null;
  /** The entry carries a signed entry timestamp (the log's signature over its time; not checked here). */
  signedEntryTimestamp: boolean;
  checkpoint: { size: number; rootHash: string } | null;
}

export interface KernelSignatureInfo {
  /** The certificate kernel keyrings check the signatures against (subject, key id, validity), if any. */
  certificate: { subject: string; keyId: string; notBefore: string; notAfter: string; sha256: string; signerKey: boolean } | null;
  /** The signed kernel loader (kernels 7.3+ verify one signature over `insns || blob`). */
  loader: { signed: boolean; kernels: '7.3+'; sha256: string | null; matchesPlan: boolean | null };
  /** Per-program signatures over the instructions only (kernels 6.18-7.2). */
  programs: { program: string; signed: boolean; kernels: '6.18-7.2'; reason?: string }[];
}

export interface ReleaseInfo {
  mediaType: string;
  verified: false;
  notice: string;
  plan: { name: string; digest: string; subjectMatches: boolean };
  version: number;
  signer: ReleaseSigner;
  builder: Record<string, string>;
  tool: { name: string; version: string };
  /** The earliest time the release's log entries (or keyless certificate) give; null when it carries none. */
  signedAt: { time: string; source: 'log' | 'certificate' } | null;
  log: ReleaseLogEntry[];
  /** RFC 3161 timestamps in the bundle (counted, not checked). */
  timestamps: number;
  kernelSignatures: KernelSignatureInfo;
}

export interface DescribedRelease {
  info: ReleaseInfo;
  release: Release;
  statement: Statement;
  plan: Plan;
  digest: string;
  loader: LoaderSummary;
}

const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString().replace(/\.000Z$/, 'Z');

function signerOf(bundle: Bundle): ReleaseSigner {
  const c = bundle.verificationMaterial.content;
  if (c.$case === 'publicKey') return { kind: 'key', keyId: c.publicKey.hint.toLowerCase() };
  const der = c.$case === 'certificate' ? c.certificate.rawBytes : c.x509CertificateChain.certificates[0]?.rawBytes;
  if (!der) throw new InputError('RELEASE_INVALID', 'release: the bundle names no signing certificate');
  try {
    const cert = new X509Certificate(Buffer.from(der));
    const id = certificateIdentity(Buffer.from(der));
    return { kind: 'keyless', identity: id.san, issuer: id.issuer, keyId: keyId(cert.publicKey), notBefore: new Date(cert.validFrom).toISOString(), notAfter: new Date(cert.validTo).toISOString() };
  } catch (e) {
    throw new InputError('RELEASE_INVALID', `release: the bundle's signing certificate does not parse (${(e as Error).message})`, { cause: e });
  }
}

function logEntryOf(e: TransparencyLogEntry): ReleaseLogEntry {
  const note = e.inclusionProof?.checkpoint?.envelope;
  let origin = '';
  let checkpoint: ReleaseLogEntry['checkpoint'] = null;
  if (note) {
    try {
      const c = parseCheckpoint(parseSignedNote(note).text);
      origin = c.origin;
      checkpoint = { size: c.size, rootHash: Buffer.from(c.rootHash).toString('hex') };
    } catch (err) {
      throw new InputError('RELEASE_INVALID', `release: log entry ${e.logIndex}: the checkpoint does not parse (${(err as Error).message})`, { cause: err });
    }
  }
  const time = Number(e.integratedTime ?? '0');
  return {
    origin, logId: Buffer.from(e.logId?.keyId ?? []).toString('hex'), index: Number(e.logIndex ?? '0'),
    kind: e.kindVersion ? `${e.kindVersion.kind} ${e.kindVersion.version}` : '',
    integratedTime: time > 0 ? iso(time) : null, signedEntryTimestamp: !!e.inclusionPromise?.signedEntryTimestamp?.length, checkpoint,
  };
}

function certificateInfo(pem: string | undefined, signer: ReleaseSigner): KernelSignatureInfo['certificate'] {
  if (!pem) return null;
  const cert = new X509Certificate(pem); // decodeRelease accepted only one canonical PEM certificate
  const id = keyId(cert.publicKey);
  return {
    subject: cert.subject.replace(/\n/g, ', '), keyId: id, notBefore: new Date(cert.validFrom).toISOString(), notAfter: new Date(cert.validTo).toISOString(),
    sha256: createHash('sha256').update(cert.raw).digest('hex'), signerKey: id === signer.keyId,
  };
}

/** Decode a release and describe it; a malformed release is an InputError (exit 2) naming `file`. */
export function describeRelease(bytes: Buffer, file: string): DescribedRelease {
  try {
    const release = decodeRelease(bytes);
    const content = release.bundle.content;
    if (content.$case !== 'dsseEnvelope') throw new InputError('RELEASE_INVALID', `release: the bundle holds a ${content.$case}, not a DSSE envelope`);
    const statement = parseStatement(Buffer.from(content.dsseEnvelope.payload));
    const plan = decodePlan(release.plan);
    const digest = createHash('sha256').update(release.plan).digest('hex');
    const p = statement.predicate;
    const signer = signerOf(release.bundle);
    const log = (release.bundle.verificationMaterial.tlogEntries ?? []).map(logEntryOf);
    const times = log.map((l) => l.integratedTime).filter((t): t is string => t !== null).sort();
    const [firstLogged] = times;
    const signedAt = firstLogged !== undefined ? { time: firstLogged, source: 'log' as const } : signer.kind === 'keyless' ? { time: signer.notBefore, source: 'certificate' as const } : null;
    // The loader this plan gives (`insns || blob`), to compare with the claimed one; inspect prints it too.
    const loader = describeLoader(plan);
    const regenerated = 'error' in loader ? null : loader.signedBytes;
    const info: ReleaseInfo = {
      mediaType: RELEASE_MEDIA_TYPE, verified: false, notice: NOT_VERIFIED,
      plan: { name: p.plan.name, digest: `sha256:${planSubject(statement).digest.sha256}`, subjectMatches: planSubject(statement).digest.sha256 === digest && p.plan.name === plan.name },
      version: p.release.version, signer, builder: { ...(p.builder ?? {}) }, tool: { ...p.tool }, signedAt, log,
      timestamps: release.bundle.verificationMaterial.timestampVerificationData?.rfc3161Timestamps.length ?? 0,
      kernelSignatures: {
        certificate: certificateInfo(release.certificate, signer),
        loader: {
          signed: !!release.loaderSignature, kernels: '7.3+', sha256: p.loader ? `sha256:${p.loader.sha256}` : null,
          matchesPlan: p.loader && regenerated ? `sha256:${p.loader.sha256}` === regenerated : null,
        },
        programs: plan.programs.map((x) => ({
          program: x.name, signed: release.kernelSignatures.has(x.name), kernels: '6.18-7.2' as const,
          ...(release.kernelSignatures.has(x.name) ? {} : { reason: x.fixups.length ? 'host fix-ups change its bytes' : release.certificate || release.kernelSignatures.size ? 'not signed' : 'signed without --cert' }),
        })),
      },
    };
    return { info, release, statement, plan, digest, loader };
  } catch (e) {
    if (e instanceof BpfsealError) {
      // The plan and statement inside a release are parts of it: a bad one is a bad release.
      if (e.code !== 'RELEASE_INVALID' && !e.message.startsWith('release')) e.message = `release: ${e.message}`;
      e.file ??= file;
    }
    throw e;
  }
}

const short = (hex: string) => hex.slice(0, 16);

/** The text `inspect` prints about a release, before the plan's own description. */
export function formatRelease(file: string, i: ReleaseInfo): string {
  const out: string[] = [];
  out.push(`release ${file}  (${i.mediaType})`);
  out.push(`  NOT VERIFIED: inspect checks the file's form only, not its signatures, log proofs or who may sign; run: bpfseal verify ${file} --policy <policy>`);
  out.push(`  plan      ${i.plan.name}  ${i.plan.digest}${i.plan.subjectMatches ? '  (the signed subject; matches the plan bytes)' : '  (the signed subject DOES NOT match the plan bytes: verify will refuse it)'}`);
  out.push(`  version   ${i.version}`);
  out.push(i.signer.kind === 'key'
    ? `  signer    key ${i.signer.keyId}  (the key id the bundle names; not checked against any policy)`
    : `  signer    keyless ${i.signer.identity}  issuer ${i.signer.issuer}  (Fulcio certificate ${i.signer.notBefore} .. ${i.signer.notAfter}, key ${short(i.signer.keyId)}; not checked against any root or policy)`);
  const b = Object.entries(i.builder);
  out.push(`  builder   ${b.length ? b.map(([k, v]) => `${k}=${v}`).join('  ') : '(none recorded)'}`);
  out.push(`  tool      ${i.tool.name} ${i.tool.version}`);
  out.push(`  signed    ${i.signedAt ? `${i.signedAt.time} (${i.signedAt.source === 'log' ? 'the earliest log entry\'s integrated time' : 'the keyless certificate\'s start'}; unverified here)` : 'no time recorded (no log entry; a DSSE signature carries no time)'}`);
  if (i.log.length) {
    out.push(`  log entries (${i.log.length}):`);
    for (const l of i.log) {
      out.push(`    ${l.origin || '(no checkpoint)'}  log id ${short(l.logId)}  index ${l.index}  ${l.kind}${l.integratedTime ? `  at ${l.integratedTime}` : ''}${l.signedEntryTimestamp ? '  (signed entry timestamp)' : ''}`);
      if (l.checkpoint) out.push(`      checkpoint size ${l.checkpoint.size}  root ${l.checkpoint.rootHash}`);
    }
  } else out.push('  log entries: none (signed with --no-log and no Rekor)');
  if (i.timestamps) out.push(`  RFC 3161 timestamps: ${i.timestamps}`);
  const k = i.kernelSignatures;
  if (!k.certificate) {
    out.push('  kernel signatures: none (signed without --cert): no kernel verifies this release; user-space verification only');
  } else {
    out.push(`  kernel signatures, for keyrings holding ${k.certificate.subject} (key ${short(k.certificate.keyId)}${k.certificate.signerKey ? ', the signer\'s key' : ''}, valid until ${k.certificate.notAfter}):`);
    out.push(k.loader.signed
      ? `    loader    signed  ${k.loader.sha256}  for kernels 7.3+ (one signature over insns || blob: every map, value and program of the load)${k.loader.matchesPlan === false ? '  DOES NOT match the plan\'s loader' : ''}`
      : '    loader    not signed (sign --no-loader): 7.3+ kernels verify nothing of this release');
    out.push('    programs  for kernels 6.18-7.2 (one signature per program over its instructions only):');
    for (const p of k.programs) out.push(`      ${p.program}  ${p.signed ? 'signed' : `not signed (${p.reason})`}`);
  }
  return out.join('\n') + '\n';
}
