/**
 * Auditing the attestation log: re-verify every entry from the log directory alone, by the same path
 * `verify` takes (attest/verify.ts and the one judge, trust/judge.ts): the entry's Rekor "dsse" body ->
 * the envelope it commits to -> a Sigstore bundle rebuilt from the envelope, the logged verifier (key,
 * or keyless certificate checked against the policy's trusted root at the logged, signed time) and a
 * fresh inclusion proof from this log -> the plan the statement names, every claim checked against it
 * -> the policy. The log itself must be a log the policy trusts, and must extend what the last audit
 * saw for this key and this directory (state.ts). Every problem is a finding; the CLI exits 1 on any.
 * `since` limits only which entries are listed (entry times are shown as logged; those not covered by
 * a signed entry timestamp are always listed): every entry is judged, every finding is reported.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { BUNDLE_V03_MEDIA_TYPE, envelopeFromJSON, type Bundle, type Envelope, type SerializedEnvelope, type TransparencyLogEntry } from '@sigstore/bundle';
import { certificateIdentity } from '../attest/identity.js';
import { parseStatement, planSubject, type Statement } from '../attest/statement.js';
import { verifyAttestation } from '../attest/verify.js';
import { at, BpfsealError } from '../errors.js';
import { decodePlan } from '../plan/codec.js';
import { certificateDer } from '../trust/x509.js';
import { preAuthEncoding } from '../attest/rekor-body.js';
import { checkEntryAgainstLog, tlogEntry } from '../attest/rekor.js';
import { openSignedCheckpoint } from '../tlog/note.js';
import { verifyConsistency } from '../tlog/merkle.js';
import { verifyInclusion } from '../tlog/verify-proof.js';
import { leafHash } from '../tlog/hash.js';
import type { TransparencyLog } from '../tlog/store.js';
import { keyId, verifyData } from '../trust/keys.js';
import { trustedLog, type TrustPolicy } from '../trust/policy.js';
import { verifyCosignatures } from '../tlog/witness/cosign.js';
import { loadEnvelope, loadPlan, loadTimestamp } from '../attest/envelopes.js';
import { readAuditState, updateAuditState } from './state.js';
import { isPreflightPayload } from '../preflight/statement.js';
import { auditPreflightEntry } from './preflight-entry.js';

export type EntryStatus = 'verified' | 'signature-ok' | 'preflight' | 'untrusted' | 'revoked' | 'superseded' | 'bad-signature' | 'mismatch' | 'no-plan' | 'no-envelope' | 'not-attestation';

export interface AuditedEntry {
  index: number;
  time: string;
  /** The time is covered by the log's signed entry timestamp (else it is the log's word only). */
  timeSigned: boolean;
  status: EntryStatus;
  /** The stable error code behind a status other than verified/signature-ok. */
  code?: string;
  plan?: string;
  digest?: string;
  version?: number;
  /** Policy signer name (when judged), the key id, and for keyless signatures the identity and issuer. */
  signer?: string;
  keyId?: string;
  identity?: string;
  issuer?: string;
  /** Predicted kernel tags of the attested programs (stable programs only). */
  tags: { program: string; tag: string; type: string }[];
  reason?: string;
}

export interface Finding {
  code: string;
  message: string;
  index?: number;
}

export interface AttestationAudit {
  log: { dir: string; origin: string; logId: string; size: number; rootHash: string };
  /** The entries listed (--since narrows this list only). */
  entries: AuditedEntry[];
  /** Every entry judged by this audit (what audit --kernel matches against): with --follow, the new ones. */
  judged: AuditedEntry[];
  /** The first entry this audit judged: 0, or with --follow the size of the remembered checkpoint. */
  from: number;
  findings: Finding[];
  /** The remembered checkpoint the current log was compared with, if any. */
  previous?: { size: number; rootHash: string };
  /** The stored tree recomputed from the entries matches the signed checkpoint. */
  logVerified: boolean;
  /** The log is not an extension of the tree remembered from the last audit (or not the log this directory held). */
  rewritten: boolean;
  /** How the log's identity was established: listed in the policy, given on the command line, or not at all. */
  logTrust: 'policy' | 'command-line' | 'unchecked' | 'untrusted';
  /** What this audit could not do that a full one does (e.g. the audit state was not writable). */
  notes: string[];
  /** With witnesses in the policy: the size of the newest checkpoint they cosigned. */
  witnessed?: { size: number };
}

interface Body {
  kind?: string;
  apiVersion?: string;
  spec?: { envelopeHash?: { value?: string }; payloadHash?: { value?: string }; signatures?: { signature?: string; verifier?: string }[] };
}

const STATUS: Record<string, EntryStatus> = {
  UNTRUSTED_SIGNER: 'untrusted', PROGRAM_TYPE_FORBIDDEN: 'untrusted', CERTIFICATE_EXPIRED: 'untrusted', NO_TIMESTAMP: 'untrusted',
  REVOKED_KEY: 'revoked', REVOKED_DIGEST: 'revoked', ROLLBACK: 'superseded',
  PREDICATE_MISMATCH: 'mismatch', SUBJECT_MISMATCH: 'mismatch', PLAN_INVALID: 'mismatch', STATEMENT_INVALID: 'not-attestation',
};

export interface Parsed {
  env: Envelope;
  verifierPem: string;
  statement?: Statement;
}

/** The entry as bytes of this log -> the envelope and logged verifier, or a status saying why not. */
export function parseEntry(log: TransparencyLog, index: number): Parsed | { status: EntryStatus; code: string; reason: string } {
  let body: Body;
  try {
    body = JSON.parse(log.entry(index).toString('utf8')) as Body;
  } catch {
    return { status: 'not-attestation', code: 'ENTRY_NOT_JSON', reason: 'entry is not JSON' };
  }
  if (body?.kind !== 'dsse' || body.apiVersion !== '0.0.1') return { status: 'not-attestation', code: 'ENTRY_NOT_ATTESTATION', reason: `entry kind ${body?.kind}/${body?.apiVersion} is not an attestation` };
  const sig = body.spec?.signatures?.[0];
  const envJson = loadEnvelope(log.dir, String(body.spec?.envelopeHash?.value ?? ''));
  if (!envJson || typeof sig?.signature !== 'string' || typeof sig.verifier !== 'string') {
    return { status: 'no-envelope', code: 'ENVELOPE_MISSING', reason: 'the attested envelope is missing from the log directory (or does not match its committed hash)' };
  }
  let env: Envelope;
  try {
    env = envelopeFromJSON(JSON.parse(envJson) as SerializedEnvelope);
  } catch {
    return { status: 'no-envelope', code: 'ENVELOPE_INVALID', reason: 'the stored envelope is not a DSSE envelope' };
  }
  if (createHash('sha256').update(env.payload).digest('hex') !== body.spec?.payloadHash?.value) return { status: 'bad-signature', code: 'PAYLOAD_HASH_MISMATCH', reason: 'payload hash differs from the logged one' };
  let statement: Statement | undefined;
  try {
    statement = parseStatement(env.payload);
  } catch {
    statement = undefined;
  }
  return { env, verifierPem: Buffer.from(sig.verifier, 'base64').toString('utf8'), statement };
}

/** The Sigstore bundle a signer would have got for this entry (with a fresh proof from this log). */
export function rebuildBundle(log: TransparencyLog, index: number, p: Parsed, envHash: string): { bundle: Bundle; key: KeyObject; timeSigned: boolean } {
  const cert = p.verifierPem.includes('BEGIN CERTIFICATE');
  const key = createPublicKey(p.verifierPem);
  const entry: TransparencyLogEntry = tlogEntry(log, index, { inclusionPromise: false });
  const set = loadTimestamp(log.dir, envHash, index);
  if (set) {
    entry.integratedTime = String(set.integratedTime);
    entry.inclusionPromise = { signedEntryTimestamp: Buffer.from(set.signedEntryTimestamp, 'base64') };
  }
  const content = cert
    ? { $case: 'certificate' as const, certificate: { rawBytes: certificateDer(p.verifierPem) } }
    : { $case: 'publicKey' as const, publicKey: { hint: keyId(key) } };
  const bundle = {
    mediaType: BUNDLE_V03_MEDIA_TYPE,
    verificationMaterial: { content, tlogEntries: [entry], timestampVerificationData: { rfc3161Timestamps: [] } },
    content: { $case: 'dsseEnvelope' as const, dsseEnvelope: p.env },
  } as unknown as Bundle;
  return { bundle, key, timeSigned: !!set };
}

export function auditEntry(log: TransparencyLog, index: number, policy?: TrustPolicy): AuditedEntry {
  const loggedTime = log.integratedTime(index);
  const base = { index, time: new Date(loggedTime * 1000).toISOString(), timeSigned: false, tags: [] as AuditedEntry['tags'] };
  const p = parseEntry(log, index);
  if ('status' in p) return { ...base, status: p.status, code: p.code, reason: p.reason };
  const body = JSON.parse(log.entry(index).toString('utf8')) as Body;
  const envHash = String(body.spec?.envelopeHash?.value);
  const st = p.statement;
  const facts: Partial<AuditedEntry> = st ? {
    plan: st.predicate.plan.name, digest: `sha256:${planSubject(st).digest.sha256}`, version: st.predicate.release.version,
    tags: st.predicate.programs.filter((x) => typeof x?.tag === 'string').map((x) => ({ program: x.name, tag: x.tag as string, type: x.type })),
  } : {};
  let who: Partial<AuditedEntry>;
  try {
    const cert = p.verifierPem.includes('BEGIN CERTIFICATE');
    const key = createPublicKey(p.verifierPem);
    const id = cert ? certificateIdentity(p.verifierPem) : undefined;
    who = { keyId: keyId(key), ...(id ? { identity: id.san, issuer: id.issuer } : {}) };
  } catch {
    return { ...base, status: 'bad-signature', code: 'VERIFIER_INVALID', reason: 'the logged verifier is not a public key or certificate' };
  }
  // A preflight attestation (its own predicate type) is judged as one, never as an invalid release attestation.
  if (!st && isPreflightPayload(p.env.payload)) return { ...base, ...who, status: 'not-attestation', ...auditPreflightEntry(p.env, p.verifierPem, policy) };
  if (!st) return { ...base, ...who, status: 'not-attestation', code: 'STATEMENT_INVALID', reason: 'the signed payload is not a bpfseal attestation' };
  if (!policy) {
    // No policy: the signature is checked against the logged key; trust is not judged.
    const ok = verifyData(createPublicKey(p.verifierPem), preAuthEncoding(p.env.payloadType, p.env.payload), p.env.signatures[0]?.sig ?? Buffer.alloc(0));
    return ok ? { ...base, ...who, ...facts, status: 'signature-ok' } : { ...base, ...who, ...facts, status: 'bad-signature', code: 'BAD_SIGNATURE', reason: 'the DSSE signature no longer verifies with the logged key' };
  }
  // The entry's time counts as signed only once its SET verifies with the log key (and the proof with the tree).
  const { bundle, timeSigned: hasSet } = rebuildBundle(log, index, p, envHash);
  const entry = at(bundle.verificationMaterial.tlogEntries, 0, 'rebuilt log entry'); // rebuildBundle puts exactly one
  let timeSigned = false;
  try {
    checkEntryAgainstLog(entry, log.publicKey.key, log.origin);
    timeSigned = hasSet;
  } catch {
    timeSigned = false;
  }
  const time = timeSigned ? new Date(Number(entry.integratedTime) * 1000).toISOString() : base.time;
  const planBytes = loadPlan(log.dir, planSubject(st).digest.sha256);
  if (!planBytes) return { ...base, ...who, ...facts, time, timeSigned, status: 'no-plan', code: 'PLAN_MISSING', reason: 'the attested plan is not stored beside the log (plans/<digest>.plan), so its claims cannot be checked' };
  try {
    const plan = decodePlan(planBytes);
    const here = trustedLog(log.publicKey.key, log.origin);
    const judged = policy.logs.some((l) => l.keyId === here.keyId) ? policy : { ...policy, logs: [...policy.logs, here] };
    const v = verifyAttestation(bundle, plan, planSubject(st).digest.sha256, judged, {
      skipWitnesses: true, // judged once for the log: witnessFindings()
      checkLogEntry: (e) => { checkEntryAgainstLog(e, log.publicKey.key, log.origin); },
    });
    return { ...base, ...who, ...facts, time, timeSigned, status: 'verified', signer: v.signer.name };
  } catch (e) {
    if (!(e instanceof BpfsealError)) throw e;
    return { ...base, ...who, ...facts, time, timeSigned, status: STATUS[e.code] ?? 'bad-signature', code: e.code, reason: e.message };
  }
}

/**
 * One entry, never throwing: whatever an entry holds (a certificate that does not parse, a body that
 * breaks the bundle rebuild) is that entry's finding, and the audit goes on to the next.
 */
function auditEntrySafe(log: TransparencyLog, index: number, policy?: TrustPolicy): AuditedEntry {
  try {
    return auditEntry(log, index, policy);
  } catch (e) {
    let time = new Date(0).toISOString();
    try {
      time = new Date(log.integratedTime(index) * 1000).toISOString();
    } catch {
      /* unknown */
    }
    const code = e instanceof BpfsealError ? e.code : 'ENTRY_UNREADABLE';
    return { index, time, timeSigned: false, tags: [], status: 'bad-signature', code, reason: `the entry cannot be judged: ${(e as Error).message}` };
  }
}

/** The names a log directory is remembered under: as given (absolute) and its real path. */
function dirKeys(dir: string): string[] {
  const abs = resolve(dir);
  let real = abs;
  try {
    real = realpathSync(abs);
  } catch {
    /* judged by the name given */
  }
  return real === abs ? [abs] : [abs, real];
}

/**
 * With witnesses in the policy: the newest checkpoint of this log that enough of them cosigned (the
 * log's `checkpoint` or `checkpoint.cosigned`, each signed by the log and of its own tree). None is a
 * finding (nothing this audit saw is protected against a split view); entries past it get a note.
 */
function witnessFindings(log: TransparencyLog, policy: TrustPolicy, size: number, findings: Finding[]): { size: number } | undefined {
  let best: { size: number } | undefined;
  let invalid: string[] = [];
  for (const note of [log.checkpoint().note, log.cosignedCheckpoint() ?? '']) {
    if (!note) continue;
    let c;
    try {
      c = openSignedCheckpoint(note, log.verifiers, log.origin);
    } catch {
      continue;
    }
    if (c.size > size || !log.rootHash(c.size).equals(c.rootHash)) continue;
    const check = verifyCosignatures(note, policy.witnesses, policy.witnessThreshold);
    invalid = [...invalid, ...check.invalid];
    if (check.ok && (!best || c.size > best.size)) best = { size: c.size };
  }
  if (invalid.length) findings.push({ code: 'WITNESS_INVALID', message: `cosignature lines of ${[...new Set(invalid)].join(', ')} on the log's checkpoints do not verify` });
  if (!best) findings.push({ code: 'WITNESS_THRESHOLD', message: `no checkpoint of the log is cosigned by ${policy.witnessThreshold} of the policy's ${policy.witnesses.length} witness(es): this audit's view of the log is not witnessed` });
  return best;
}

/** Compare the log with what the last audit saw for its key and for this directory; returns findings. */
function checkRemembered(log: TransparencyLog, statePath: string, size: number, root: Buffer): { findings: Finding[]; previous?: { size: number; rootHash: string }; rewritten?: boolean } {
  const state = readAuditState(statePath);
  const id = log.publicKey.logId.toString('hex');
  const findings: Finding[] = [];
  // Keyed by the path as given and by its real path: a symlink repointed at another log is caught
  // whichever of the two names the next audit uses.
  for (const dir of dirKeys(log.dir)) {
    const heldBefore = state.dirs.get(dir);
    if (heldBefore && heldBefore !== id) {
      findings.push({ code: 'LOG_REPLACED', message: `log replaced: ${dir} held the log with key ${heldBefore} at the last audit and holds one with key ${id} now` });
      break;
    }
  }
  const note = state.logs.get(id)?.checkpoint ?? state.legacyCheckpoint;
  if (!note) return { findings, rewritten: findings.length > 0 };
  let prev;
  try {
    prev = openSignedCheckpoint(note, log.verifier, log.origin);
  } catch (e) {
    findings.push({ code: 'LOG_REPLACED', message: `the remembered checkpoint does not verify with this log's key and origin: ${(e as Error).message}` });
    return { findings, rewritten: true };
  }
  const previous = { size: prev.size, rootHash: prev.rootHash.toString('hex') };
  if (prev.size > size) return { previous, rewritten: true, findings: [...findings, { code: 'LOG_REWRITTEN', message: `log rewritten: it had ${prev.size} entries at the last audit and has ${size} now` }] };
  try {
    verifyConsistency(prev.size, size, prev.rootHash, root, log.proveConsistency(prev.size, size).hashes);
  } catch {
    return { previous, rewritten: true, findings: [...findings, { code: 'LOG_REWRITTEN', message: `log rewritten: the tree of size ${size} is not an extension of the one (size ${prev.size}) seen at the last audit` }] };
  }
  return { findings, previous, rewritten: findings.length > 0 };
}

export interface AuditOptions {
  policy?: TrustPolicy;
  /** The log was named on the command line together with a one-key policy (`--key`): trusted as given. */
  logFromCommandLine?: boolean;
  since?: Date;
  /** Audit state file (state.ts); updated when the log is sound. */
  statePath?: string;
  /** Judge only the entries appended since the remembered checkpoint (a full audit when there is none). */
  follow?: boolean;
}

function logTrust(log: TransparencyLog, opts: AuditOptions, findings: Finding[]): AttestationAudit['logTrust'] {
  if (!opts.policy) return 'unchecked';
  const id = log.publicKey.logId.toString('hex');
  if (opts.policy.logs.some((l) => l.keyId === id && l.origin === log.origin)) return 'policy';
  if (opts.logFromCommandLine && !opts.policy.logs.length) return 'command-line';
  findings.push({ code: 'LOG_UNTRUSTED', message: `the log's key ${id} with origin ${log.origin} is not among the trusted logs of ${opts.policy.source} (add {"key": "<dir>/log.pub", "origin": "${log.origin}"} to its "logs")` });
  return 'untrusted';
}

/** The whole tree recomputed from every entry (a full audit). */
function verifyWhole(log: TransparencyLog, findings: Finding[]): { size: number; rootHash: Buffer; logVerified: boolean } {
  try {
    const all = log.verifyAll();
    return { size: all.size, rootHash: all.rootHash, logVerified: true };
  } catch (e) {
    findings.push({ code: (e as BpfsealError).code ?? 'LOG_INVALID', message: `log does not verify: ${(e as Error).message}` });
    return { size: log.size, rootHash: log.rootHash(log.size), logVerified: false };
  }
}

/**
 * --follow: the signed checkpoint, the stored tree's root at its size, and each entry from `from` on
 * proved into that root. With the consistency proof from the remembered checkpoint (checkRemembered),
 * this checks everything appended since the last audit in O(new entries x log n).
 */
function verifyAppended(log: TransparencyLog, from: number, size: number, rootHash: Buffer, findings: Finding[]): boolean {
  if (!log.rootHash(size).equals(rootHash)) {
    findings.push({ code: 'LOG_INVALID', message: `log does not verify: the stored tree of size ${size} does not have the signed checkpoint's root` });
    return false;
  }
  let ok = true;
  for (let i = from; i < size; i++) {
    try {
      verifyInclusion(leafHash(log.entry(i)), i, size, log.proveInclusion(i, size).hashes, rootHash);
    } catch (e) {
      findings.push({ code: 'LOG_INVALID', index: i, message: `entry ${i} is not the one the tree holds: ${(e as Error).message}` });
      ok = false;
    }
  }
  return ok;
}

export function auditAttestations(log: TransparencyLog, opts: AuditOptions = {}): AttestationAudit {
  const findings: Finding[] = [];
  // --follow with a remembered checkpoint of this log: only what was appended since is read.
  const cp = opts.follow && opts.statePath ? log.checkpoint() : undefined;
  let size = 0, rootHash: Buffer = Buffer.alloc(0), logVerified = false;
  let from = 0;
  let early: ReturnType<typeof checkRemembered> | undefined;
  if (cp) {
    size = cp.size;
    rootHash = cp.rootHash;
    try {
      early = checkRemembered(log, opts.statePath!, size, rootHash);
    } catch (e) {
      if (!(e instanceof BpfsealError) || e.code !== 'AUDIT_STATE_UNREADABLE') throw e;
      throw new BpfsealError('input', 'AUDIT_STATE_UNREADABLE', `--follow needs the remembered checkpoint: ${e.message}`, { file: opts.statePath });
    }
  }
  if (cp && early?.previous && !early.findings.length) {
    from = early.previous.size;
    logVerified = verifyAppended(log, from, size, rootHash, findings);
  } else {
    ({ size, rootHash, logVerified } = verifyWhole(log, findings));
    early = undefined;
  }
  const trust = logTrust(log, opts, findings);
  const witnessed = opts.policy?.witnesses.length ? witnessFindings(log, opts.policy, size, findings) : undefined;
  const notes: string[] = [];
  if (witnessed && witnessed.size < size) notes.push(`entries ${witnessed.size}..${size - 1} are past the newest witnessed checkpoint (size ${witnessed.size}): not yet cosigned, so not yet protected against a split view`);
  let remembered: ReturnType<typeof checkRemembered> = early ?? { findings: [] };
  let stateUsable = opts.statePath !== undefined;
  if (opts.statePath && !early) {
    try {
      remembered = checkRemembered(log, opts.statePath, size, rootHash);
    } catch (e) {
      // An unreadable state (an unprivileged auditor) leaves this audit without the last one to
      // compare with: said, not fatal. A state another user could write is refused (TRUST_FILE_UNSAFE).
      if (!(e instanceof BpfsealError) || e.code !== 'AUDIT_STATE_UNREADABLE') throw e;
      notes.push(`not compared with the last audit: ${e.message}`);
      stateUsable = false;
    }
  }
  findings.push(...remembered.findings);
  const entries: AuditedEntry[] = [];
  const judged: AuditedEntry[] = [];
  for (let i = from; i < size; i++) {
    const e = auditEntrySafe(log, i, opts.policy);
    if (e.status !== 'verified' && e.status !== 'signature-ok' && e.status !== 'preflight') findings.push({ code: e.code ?? 'ENTRY_INVALID', index: i, message: `entry ${i}${e.plan ? ` (${e.plan})` : ''}: ${e.status}: ${e.reason ?? ''}` });
    judged.push(e);
    // Listing only. An entry is hidden by --since only when the last audit already checked it and its
    // time is signed by the log: a log's owner holds its key, so a signed time on a new entry can lie.
    const seen = remembered.previous !== undefined && i < remembered.previous.size;
    if (opts.since && seen && e.timeSigned && Date.parse(e.time) < opts.since.getTime()) continue;
    entries.push(e);
  }
  // Remember this tree only when it is sound: a rewrite stays a finding until someone looks at it.
  // --follow also keeps the checkpoint while a new entry is a finding, so the next run reports it
  // again; a full audit (which re-judges every entry anyway) remembers the tree once it is consistent.
  const entriesClean = !opts.follow || findings.length === 0;
  if (opts.statePath && stateUsable && !remembered.findings.length && logVerified && trust !== 'untrusted' && entriesClean) {
    const id = log.publicKey.logId.toString('hex');
    // Only the checkpoint that was verified: the log may have grown (or been swapped) since, and a
    // checkpoint re-read now was checked by nobody.
    const note = log.checkpoint().note;
    let cp;
    try {
      cp = openSignedCheckpoint(note, log.verifier, log.origin);
    } catch {
      cp = undefined;
    }
    if (cp && cp.size === size && cp.rootHash.equals(rootHash)) {
      try {
        updateAuditState(opts.statePath, (s) => {
          s.logs.set(id, { origin: log.origin, checkpoint: note });
          for (const d of dirKeys(log.dir)) s.dirs.set(d, id);
        });
      } catch (e) {
        if (!(e instanceof BpfsealError) || (e.code !== 'AUDIT_STATE_UNWRITABLE' && e.code !== 'LOCK_FAILED')) throw e;
        notes.push(`this audit is not remembered (the next one cannot compare with it): ${e.message}`);
      }
    } else notes.push('the log changed while it was audited: this audit is not remembered; run it again');
  }
  return {
    log: { dir: log.dir, origin: log.origin, logId: log.publicKey.logId.toString('hex'), size, rootHash: rootHash.toString('hex') },
    entries, judged, from, findings, logVerified, rewritten: remembered.rewritten === true, logTrust: trust, notes, ...(witnessed ? { witnessed } : {}), ...(remembered.previous ? { previous: remembered.previous } : {}),
  };
}
