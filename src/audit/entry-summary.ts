/**
 * What `log show` says about one log entry, for people: what it records (a release attestation, a
 * preflight or kernel-audit attestation, a host-log load decision, other JSON), and when known the
 * plan, version, signer and digest. Display only: an attestation's envelope is taken from the log's
 * published files when it still hashes to the value the entry commits to, but no signature is checked
 * (that is `log verify` for the tree and `audit` for the attestations).
 */
import { createHash, createPublicKey, X509Certificate } from 'node:crypto';
import { certificateIdentity } from '../attest/identity.js';
import { parseStatement, planSubject, PREDICATE_TYPE } from '../attest/statement.js';
import { keyId } from '../trust/keys.js';

export type EntryKind = 'attestation' | 'preflight' | 'kernel-audit' | 'dsse' | 'load' | 'rekor' | 'json' | 'bytes';

export interface EntrySigner {
  name?: string;
  keyId?: string;
  identity?: string;
  issuer?: string;
}

export interface EntrySummary {
  kind: EntryKind;
  plan?: string;
  version?: number;
  /** "sha256:<hex>" of the plan (attestations, load records) or of what the entry is about. */
  digest?: string;
  signer?: EntrySigner;
  /** Host-log records: allowed / refused / aborted / unloaded. */
  decision?: string;
  /** Attestations: the in-toto predicate type. */
  predicateType?: string;
  /** DSSE entries: whether the envelope the entry commits to was found beside the log. */
  envelope?: 'found' | 'missing';
  /** When the record itself says it was made (host-log records), ISO 8601. */
  recordTime?: string;
}

const PREFLIGHT = 'https://bpfseal.dev/preflight/v1';
const KERNEL_AUDIT = 'https://bpfseal.dev/attestation/kernel-audit/v1';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** The signer a Rekor verifier names: a PEM public key (its key id) or a certificate (identity, issuer, key id). */
function verifierSigner(b64: unknown): EntrySigner | undefined {
  if (typeof b64 !== 'string') return undefined;
  const pem = Buffer.from(b64, 'base64').toString('utf8');
  try {
    if (pem.includes('BEGIN CERTIFICATE')) {
      const id = certificateIdentity(pem);
      return { keyId: keyId(new X509Certificate(pem).publicKey), identity: id.san, issuer: id.issuer };
    }
    return { keyId: keyId(createPublicKey(pem)) };
  } catch {
    return undefined;
  }
}

function fromStatement(payload: Buffer): Partial<EntrySummary> {
  let v: Obj;
  try {
    v = JSON.parse(payload.toString('utf8')) as Obj;
  } catch {
    return {};
  }
  const type = str(v?.predicateType);
  const subject = Array.isArray(v?.subject) && isObj(v.subject[0]) ? v.subject[0] : undefined;
  const sha = isObj(subject?.digest) ? str(subject.digest.sha256) : undefined;
  if (type === PREDICATE_TYPE) {
    try {
      const s = parseStatement(payload);
      return { kind: 'attestation', predicateType: type, plan: s.predicate.plan.name, version: s.predicate.release.version, digest: `sha256:${planSubject(s).digest.sha256}` };
    } catch {
      return { predicateType: type };
    }
  }
  const p = isObj(v?.predicate) ? v.predicate : {};
  if (type === PREFLIGHT) {
    const plan = isObj(p.plan) ? str(p.plan.name) : undefined;
    const version = isObj(p.input) && typeof p.input.releaseVersion === 'number' ? p.input.releaseVersion : undefined;
    return { kind: 'preflight', predicateType: type, ...(plan ? { plan } : {}), ...(version !== undefined ? { version } : {}), ...(sha ? { digest: `sha256:${sha}` } : {}) };
  }
  if (type === KERNEL_AUDIT) return { kind: 'kernel-audit', predicateType: type, ...(sha ? { digest: `sha256:${sha}` } : {}) };
  return type ? { predicateType: type } : {};
}

/**
 * Summarise one entry. `published` reads a published file of the log (envelopes/<sha256>.json), or
 * answers undefined; the envelope counts only when its SHA-256 is the one the entry commits to.
 */
export async function summarizeEntry(entry: Buffer, published?: (path: string) => Promise<Buffer | undefined> | Buffer | undefined): Promise<EntrySummary> {
  let v: unknown;
  try {
    v = JSON.parse(entry.toString('utf8'));
  } catch {
    return { kind: 'bytes' };
  }
  if (!isObj(v)) return { kind: 'json' };
  if (v.type === 'bpfseal.load/v1') {
    const s = isObj(v.signer) ? v.signer : {};
    const signer: EntrySigner = { ...(str(s.name) ? { name: str(s.name) } : {}), ...(str(s.keyId) ? { keyId: str(s.keyId) } : {}), ...(str(s.identity) ? { identity: str(s.identity) } : {}), ...(str(s.issuer) ? { issuer: str(s.issuer) } : {}) };
    return {
      kind: 'load', ...(str(v.decision) ? { decision: str(v.decision) } : {}), ...(str(v.plan) ? { plan: str(v.plan) } : {}),
      ...(typeof v.version === 'number' ? { version: v.version } : {}), ...(str(v.digest) ? { digest: str(v.digest) } : {}),
      ...(Object.keys(signer).length ? { signer } : {}), ...(str(v.time) ? { recordTime: str(v.time) } : {}),
    };
  }
  const spec = isObj(v.spec) ? v.spec : undefined;
  if (v.kind !== 'dsse' || !spec) return { kind: typeof v.kind === 'string' && spec ? 'rekor' : 'json' };
  const sigs = Array.isArray(spec.signatures) ? spec.signatures : [];
  const signer = verifierSigner(isObj(sigs[0]) ? sigs[0].verifier : undefined);
  const out: EntrySummary = { kind: 'dsse', ...(signer ? { signer } : {}), envelope: 'missing' };
  const hash = isObj(spec.envelopeHash) ? str(spec.envelopeHash.value) : undefined;
  if (!hash || !/^[0-9a-f]{64}$/.test(hash) || !published) return out;
  let env: Buffer | undefined;
  try {
    env = await published(`envelopes/${hash}.json`);
  } catch {
    env = undefined;
  }
  if (!env || createHash('sha256').update(env).digest('hex') !== hash) return out;
  let payload: Buffer;
  try {
    payload = Buffer.from(str((JSON.parse(env.toString('utf8')) as Obj).payload) ?? '', 'base64');
  } catch {
    return out;
  }
  const payloadHash = isObj(spec.payloadHash) ? str(spec.payloadHash.value) : undefined;
  if (createHash('sha256').update(payload).digest('hex') !== payloadHash) return out;
  return { ...out, envelope: 'found', ...fromStatement(payload) };
}

/** How the signer reads on a terminal: policy name, keyless identity, or a short key id. */
export function signerText(s: EntrySigner | undefined): string {
  if (!s) return '-';
  if (s.name) return s.keyId ? `${s.name} (key ${s.keyId.slice(0, 12)})` : s.name;
  if (s.identity) return `${s.identity} (${s.issuer || 'no issuer'})`;
  return s.keyId ? `key ${s.keyId.slice(0, 16)}` : '-';
}
