/**
 * Auditing the attestation log: re-verify every entry from the log directory alone (Rekor "dsse" body
 * -> envelope by its committed hash -> DSSE signature with the logged verifier -> in-toto statement ->
 * policy), and detect a log rewritten since the last audit (a remembered checkpoint must be consistent
 * with the current tree, RFC 6962 §2.1.2). Every problem is a finding; the CLI exits 1 on any.
 */
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { envelopeFromJSON, type SerializedEnvelope } from '@sigstore/bundle';
import { certificateIdentity } from '../attest/keyless.js';
import { parseStatement, type Statement } from '../attest/statement.js';
import { identityMatches } from '../attest/verify.js';
import { writeFileDurable } from '../fsx/durable.js';
import { preAuthEncoding } from '../tlog/rekor-body.js';
import { openSignedCheckpoint } from '../tlog/note.js';
import { verifyConsistency } from '../tlog/merkle.js';
import type { TransparencyLog } from '../tlog/store.js';
import { keyId, verifyData } from '../trust/keys.js';
import { globMatch, type TrustPolicy } from '../trust/policy.js';
import { loadEnvelope } from './witness.js';

export type EntryStatus = 'verified' | 'signature-ok' | 'untrusted' | 'revoked' | 'superseded' | 'bad-signature' | 'no-envelope' | 'not-attestation';

export interface AuditedEntry {
  index: number;
  time: string;
  status: EntryStatus;
  plan?: string;
  digest?: string;
  version?: number;
  signer?: string;
  issuer?: string;
  /** Predicted kernel tags of the attested programs (stable programs only). */
  tags: { program: string; tag: string }[];
  reason?: string;
}

export interface AttestationAudit {
  log: { dir: string; origin: string; size: number; rootHash: string };
  entries: AuditedEntry[];
  findings: string[];
  /** The remembered checkpoint the current log was compared with, if any. */
  previous?: { size: number; rootHash: string };
  /** The stored tree recomputed from the entries matches the signed checkpoint. */
  logVerified: boolean;
  /** The log is not an extension of the tree remembered from the last audit. */
  rewritten: boolean;
}

interface Body {
  kind?: string;
  apiVersion?: string;
  spec?: { envelopeHash?: { value?: string }; payloadHash?: { value?: string }; signatures?: { signature?: string; verifier?: string }[] };
}

function verifierOf(pem: string): { key: KeyObject; signer: string; issuer?: string } {
  if (pem.includes('BEGIN CERTIFICATE')) {
    const id = certificateIdentity(pem);
    return { key: createPublicKey(pem), signer: id.san, issuer: id.issuer };
  }
  const key = createPublicKey(pem);
  return { key, signer: keyId(key) };
}

/** Policy verdict for a statement signed by `signer` (a key id, or a keyless SAN with issuer). */
function judge(policy: TrustPolicy, st: Statement, signer: string, issuer: string | undefined, digest: string, signingKeyId: string): { status: EntryStatus; reason?: string } {
  const plan = st.predicate.plan.name;
  const signers = policy.signers.filter((s) => (issuer === undefined ? s.keyId === signer
    : s.keyless !== undefined && s.keyless.issuer === issuer && identityMatches(s.keyless.subject, signer)));
  // As in verify: a revoked key is revoked whether it signed directly or sits in a keyless certificate.
  if (policy.revokedKeys.has(signingKeyId)) return { status: 'revoked', reason: `key ${signingKeyId} is revoked` };
  if (policy.revokedDigests.has(digest)) return { status: 'revoked', reason: `plan digest ${digest} is revoked` };
  if (!signers.length) return { status: 'untrusted', reason: `signer ${signer} is not trusted by ${policy.source}` };
  const allowed = signers.filter((s) => s.plans.some((p) => globMatch(p, plan)));
  if (!allowed.length) return { status: 'untrusted', reason: `signer may not sign plan '${plan}'` };
  for (const p of st.predicate.programs) {
    if (!allowed.some((s) => s.programTypes.some((g) => globMatch(g, p.type)))) return { status: 'untrusted', reason: `program '${p.name}' type ${p.type} not allowed for this signer` };
  }
  const min = policy.minVersions[plan];
  if (min !== undefined && st.predicate.release.version < min) {
    return { status: 'superseded', reason: `version ${st.predicate.release.version} is below the policy minimum ${min} for '${plan}'` };
  }
  return { status: 'verified' };
}

export function auditEntry(log: TransparencyLog, index: number, policy?: TrustPolicy): AuditedEntry {
  const time = new Date(log.integratedTime(index) * 1000).toISOString();
  const out = (status: EntryStatus, reason?: string, extra: Partial<AuditedEntry> = {}): AuditedEntry => ({ index, time, status, tags: [], ...extra, ...(reason ? { reason } : {}) });
  let body: Body;
  try {
    body = JSON.parse(log.entry(index).toString('utf8')) as Body;
  } catch {
    return out('not-attestation', 'entry is not JSON');
  }
  if (body.kind !== 'dsse' || body.apiVersion !== '0.0.1') return out('not-attestation', `entry kind ${body.kind}/${body.apiVersion} is not an attestation`);
  const sig = body.spec?.signatures?.[0];
  const envJson = loadEnvelope(log.dir, body.spec?.envelopeHash?.value ?? '');
  if (!envJson || !sig?.signature || !sig.verifier) return out('no-envelope', 'the attested envelope is missing from the log directory (or does not match its committed hash)');
  const env = envelopeFromJSON(JSON.parse(envJson) as SerializedEnvelope);
  if (createHash('sha256').update(env.payload).digest('hex') !== body.spec?.payloadHash?.value) return out('bad-signature', 'payload hash differs from the logged one');
  let v: ReturnType<typeof verifierOf>;
  try {
    v = verifierOf(Buffer.from(sig.verifier, 'base64').toString('utf8'));
  } catch {
    return out('bad-signature', 'the logged verifier is not a public key or certificate');
  }
  const who = { signer: v.signer, ...(v.issuer !== undefined ? { issuer: v.issuer } : {}) };
  if (!env.signatures[0] || !verifyData(v.key, preAuthEncoding(env.payloadType, env.payload), env.signatures[0].sig)) {
    return out('bad-signature', 'the DSSE signature no longer verifies with the logged key', who);
  }
  let st: Statement;
  try {
    st = parseStatement(env.payload);
  } catch (e) {
    return out('not-attestation', (e as Error).message, who);
  }
  const digest = `sha256:${st.subject[0].digest.sha256}`;
  const facts = {
    ...who, plan: st.predicate.plan.name, digest, version: st.predicate.release.version,
    tags: st.predicate.programs.filter((p) => typeof p.tag === 'string').map((p) => ({ program: p.name, tag: p.tag as string })),
  };
  if (!policy) return out('signature-ok', undefined, facts);
  const j = judge(policy, st, v.signer, v.issuer, digest, keyId(v.key));
  return out(j.status, j.reason, facts);
}

/** Compare the log with the checkpoint remembered by the last audit; returns findings. */
function checkRemembered(log: TransparencyLog, statePath: string, size: number, root: Buffer): { findings: string[]; previous?: { size: number; rootHash: string }; rewritten?: boolean } {
  if (!existsSync(statePath)) return { findings: [] };
  let prev;
  try {
    prev = openSignedCheckpoint(readFileSync(statePath, 'utf8'), log.verifier, log.origin);
  } catch (e) {
    return { findings: [`the remembered checkpoint ${statePath} does not verify with this log's key and origin: ${(e as Error).message}`] };
  }
  const previous = { size: prev.size, rootHash: prev.rootHash.toString('base64') };
  if (prev.size > size) return { previous, rewritten: true, findings: [`log rewritten: it had ${prev.size} entries at the last audit and has ${size} now`] };
  try {
    const proof = log.proveConsistency(prev.size, size);
    verifyConsistency(prev.size, size, prev.rootHash, root, proof.hashes);
  } catch {
    return { previous, rewritten: true, findings: [`log rewritten: the tree of size ${size} is not an extension of the one (size ${prev.size}) seen at the last audit`] };
  }
  return { findings: [], previous };
}

export interface AuditOptions {
  policy?: TrustPolicy;
  since?: Date;
  /** File remembering the checkpoint of the last audit (rewrite detection); updated when no rewrite is found. */
  statePath?: string;
}

export function auditAttestations(log: TransparencyLog, opts: AuditOptions = {}): AttestationAudit {
  const findings: string[] = [];
  let size = log.size, rootHash: Buffer, logVerified = true;
  try {
    const all = log.verifyAll();
    size = all.size;
    rootHash = all.rootHash;
  } catch (e) {
    findings.push(`log does not verify: ${(e as Error).message}`);
    logVerified = false;
    rootHash = log.rootHash(size);
  }
  const remembered: ReturnType<typeof checkRemembered> = opts.statePath ? checkRemembered(log, opts.statePath, size, rootHash) : { findings: [] };
  findings.push(...remembered.findings);
  const entries: AuditedEntry[] = [];
  for (let i = 0; i < size; i++) {
    if (opts.since && log.integratedTime(i) * 1000 < opts.since.getTime()) continue;
    const e = auditEntry(log, i, opts.policy);
    entries.push(e);
    if (e.status !== 'verified' && e.status !== 'signature-ok') findings.push(`entry ${i}${e.plan ? ` (${e.plan})` : ''}: ${e.status}: ${e.reason ?? ''}`);
  }
  // Remember this tree only when it is sound: a rewrite stays a finding until someone looks at it.
  if (opts.statePath && !remembered.findings.length && logVerified) {
    mkdirSync(dirname(opts.statePath), { recursive: true });
    writeFileDurable(opts.statePath, log.checkpoint().note);
  }
  return {
    log: { dir: log.dir, origin: log.origin, size, rootHash: rootHash.toString('base64') },
    entries, findings, logVerified, rewritten: remembered.rewritten === true, ...(remembered.previous ? { previous: remembered.previous } : {}),
  };
}
