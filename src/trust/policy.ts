/**
 * Trust policy (format: keys/README.md, schema: docs/policy.schema.json): who may sign which plans and
 * program types, revocations, minimum release versions, anti-rollback, and what a host requires.
 *
 * Parsed once, at the edge, and strictly: duplicate keys (json/strict.ts), then the published JSON
 * Schema at every depth (unknown field, wrong type, null, missing field, key and keyless together),
 * then what a schema cannot say (regular expressions compile, key ids are full ids), then the files the
 * policy names. Any mistake is exit 2 naming the field path; none is ever ignored, because an ignored
 * field is a protection silently switched off. Paths inside a policy are relative to the policy file.
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { BpfsealError, InputError } from '../errors.js';
import { TRUST_FILE_UNSAFE } from '../fsx/trusted.js';
import { parseWitnessVkey, type WitnessKey } from '../tlog/witness/cosign.js';
import { readInput } from '../fsx/read.js';
import { JsonSyntaxError, parseStrictJson, type JsonValue } from '../json/strict.js';
import { keyId as keyIdOf, loadPublicKey } from './keys.js';
import { describeSchemaErrors, type SchemaError } from './schema-errors.js';
import { validate as validatePolicyShape } from './policy.validate.gen.js';
import { canonicalDigest, canonicalKeyId } from './ids.js';

import { globMatch } from '../glob.js';

export { globMatch };

export interface KeylessIdentity {
  issuer: string;
  /** Exact certificate SAN, or /regex/ between slashes (matched against the whole SAN). */
  subject: string;
  /** The compiled, anchored form of a /regex/ subject. */
  subjectRegex?: RegExp;
}

export interface TrustedSigner {
  name: string;
  /** Key-based signer: the public key and its id (hex SHA-256 of the DER SPKI). */
  key?: KeyObject;
  keyId?: string;
  /** PEM of the signer's certificate, when the policy names one (kernel keyrings, kernel signatures). */
  certificate?: string;
  /** Validity period of that certificate: outside it the signer is not trusted unless allowExpired. */
  certificateValidity?: { notBefore: Date; notAfter: Date };
  allowExpired: boolean;
  keyless?: KeylessIdentity;
  plans: string[];
  programTypes: string[];
}

export interface TrustedLog {
  key: KeyObject;
  keyId: string;
  origin: string;
  /** Base URL the note key name must occur in (Sigstore's TrustedRoot tlog baseUrl). */
  baseUrl: string;
}

export interface TrustPolicy {
  source: string;
  signers: TrustedSigner[];
  logs: TrustedLog[];
  /** Sigstore trusted_root.json (keyless: Fulcio CAs, Rekor and CT log keys). */
  trustedRoot?: unknown;
  requireLogInclusion: boolean;
  requireKernelSignatures: boolean;
  /** Load only plans a trusted signer preflighted, passing, on this host's kernel (preflight/require.ts). */
  requirePreflight: boolean;
  /** Keyring serial for kernel signature checks (-3 session keyring, 0/1/2 system keyrings). */
  keyring?: number;
  /** bpfseal enforce: more keyrings to admit besides `keyring` (specs as `enforce --keyring` takes them). */
  enforceKeyrings?: string[];
  /** Canonical key ids (64 lowercase hex). */
  revokedKeys: Set<string>;
  /** Canonical plan digests ("sha256:" + 64 lowercase hex). */
  revokedDigests: Set<string>;
  minVersions: Map<string, number>;
  allowRollback: boolean;
  /** Host anti-rollback state file. */
  statePath?: string;
  /** Witnesses whose cosignatures a trusted log's checkpoint must carry (empty: none required). */
  witnesses: WitnessKey[];
  /** How many of `witnesses` must have cosigned (1..witnesses.length). */
  witnessThreshold: number;
  /** kernelAudit.accept: programs other tools load on purpose, accepted by `audit --kernel` (audit/kernel/accept.ts). */
  kernelAccept?: { name?: string; type?: string; reason: string }[];
}

function invalid(src: string, msg: string, cause?: unknown): InputError {
  // Unsafe trust material keeps its own code: the fix is a chmod/chown, not an edit of the policy.
  const code = cause instanceof BpfsealError && cause.code === TRUST_FILE_UNSAFE ? TRUST_FILE_UNSAFE : 'POLICY_INVALID';
  return new InputError(code, `${src}: ${msg}`, { file: src, cause });
}

/** What the schema validated, as TypeScript sees it (docs/policy.schema.json). */
interface RawSigner {
  name: string;
  key?: string;
  certificate?: string;
  keyless?: { issuer: string; subject: string };
  plans: string[];
  programTypes: string[];
  allowExpired?: boolean;
}
interface RawPolicy {
  version: 1;
  signers: RawSigner[];
  logs?: { key: string; origin: string; baseUrl?: string }[];
  trustedRoot?: string;
  requireLogInclusion?: boolean;
  requireKernelSignatures?: boolean;
  requirePreflight?: boolean;
  keyring?: number;
  enforceKeyrings?: string[];
  revoked?: { keys?: string[]; digests?: string[] };
  minVersions?: Record<string, number>;
  allowRollback?: boolean;
  state?: string;
  witnesses?: ({ vkey: string } | { name: string; key: string })[];
  witnessThreshold?: number;
  kernelAudit?: { accept?: { name?: string; type?: string; reason: string }[] };
}

/** A keyless subject pattern: exact SAN, or /regex/ compiled once and anchored to the whole SAN. */
export function compileSubject(subject: string, where: string, src: string): RegExp | undefined {
  if (!(subject.length > 2 && subject.startsWith('/') && subject.endsWith('/'))) return undefined;
  const body = subject.slice(1, -1);
  try {
    // The body must be a whole expression on its own: "a)|(b" would compile inside the anchoring
    // group as "^(?:a)|(b)$", which matches any SAN containing "b" at its end, unanchored at the start.
    new RegExp(body);
    return new RegExp(`^(?:${body})$`);
  } catch (e) {
    throw invalid(src, `${where}: not a valid regular expression (${(e as Error).message})`);
  }
}

/** Does a keyless identity match a certificate SAN? */
export function identityMatches(k: KeylessIdentity, san: string | undefined): boolean {
  if (san === undefined) return false;
  return k.subjectRegex ? k.subjectRegex.test(san) : k.subject === san;
}

interface KeyFile {
  key: KeyObject;
  certificate?: string;
  validity?: { notBefore: Date; notAfter: Date };
}

function readKeyFile(path: string, where: string, src: string): KeyFile {
  try {
    const key = loadPublicKey(path);
    const text = readInput(path, { kind: 'key', trusted: 'a key the policy trusts' }).toString('latin1');
    if (!text.includes('-----BEGIN') || text.includes('BEGIN CERTIFICATE')) {
      try {
        const cert = new X509Certificate(readInput(path, { kind: 'key', trusted: 'a key the policy trusts' }));
        return { key, certificate: cert.toString(), validity: { notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) } };
      } catch {
        /* a bare key in DER */
      }
    }
    return { key };
  } catch (e) {
    throw invalid(src, `${where}: ${(e as Error).message}`, e);
  }
}

export function checkTrustedRoot(text: string, where: string, src: string): unknown {
  let v: JsonValue;
  try {
    v = parseStrictJson(text);
  } catch (e) {
    throw invalid(src, `${where}: not JSON (${(e as Error).message})`);
  }
  const o = v as Record<string, unknown>;
  if (!o || typeof o !== 'object' || Array.isArray(o) || typeof o.mediaType !== 'string' || !o.mediaType.startsWith('application/vnd.dev.sigstore.trustedroot')) {
    throw invalid(src, `${where}: not a Sigstore trusted root (mediaType application/vnd.dev.sigstore.trustedroot+json)`);
  }
  for (const k of ['tlogs', 'certificateAuthorities', 'ctlogs', 'timestampAuthorities']) {
    if (o[k] !== undefined && !Array.isArray(o[k])) throw invalid(src, `${where}: ${k} must be an array`);
  }
  return JSON.parse(text) as unknown; // plain objects for @sigstore's parser
}

function signerOf(s: RawSigner, i: number, at: (p: string) => string, src: string): TrustedSigner {
  const where = `signers[${i}]`;
  const out: TrustedSigner = { name: s.name, plans: s.plans, programTypes: s.programTypes, allowExpired: s.allowExpired === true };
  if (s.key !== undefined) {
    const k = readKeyFile(at(s.key), `${where}.key`, src);
    out.key = k.key;
    out.keyId = keyIdOf(k.key);
    if (k.certificate) { out.certificate = k.certificate; out.certificateValidity = k.validity; }
  } else {
    const kl = s.keyless!;
    out.keyless = { issuer: kl.issuer, subject: kl.subject, subjectRegex: compileSubject(kl.subject, `${where}.keyless.subject`, src) };
  }
  if (s.certificate !== undefined) {
    if (!out.key) throw invalid(src, `${where}.certificate: only a key-based signer has a certificate (a keyless signer's certificate comes from Fulcio)`);
    const c = readKeyFile(at(s.certificate), `${where}.certificate`, src);
    if (!c.certificate) throw invalid(src, `${where}.certificate: not an X.509 certificate`);
    if (keyIdOf(c.key) !== out.keyId) throw invalid(src, `${where}.certificate: certifies another key than ${where}.key`);
    out.certificate = c.certificate;
    out.certificateValidity = c.validity;
  }
  if (s.allowExpired && !out.certificateValidity) throw invalid(src, `${where}.allowExpired: the signer has no X.509 certificate whose validity could be ignored`);
  return out;
}

export function parsePolicy(text: string, src: string): TrustPolicy {
  let raw: JsonValue;
  try {
    raw = parseStrictJson(text);
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw invalid(src, `not valid JSON: ${e.message}`);
    throw e;
  }
  if (!validatePolicyShape(raw)) {
    throw invalid(src, describeSchemaErrors((validatePolicyShape as unknown as { errors: SchemaError[] }).errors, raw));
  }
  const p = raw as unknown as RawPolicy;
  const base = dirname(resolve(src));
  const at = (f: string) => resolve(base, f);
  const signers = p.signers.map((s, i) => signerOf(s, i, at, src));
  const logs = (p.logs ?? []).map((l, i) => {
    const k = readKeyFile(at(l.key), `logs[${i}].key`, src);
    if (k.key.asymmetricKeyType !== 'ec' || k.key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw invalid(src, `logs[${i}].key: a log key is an ECDSA P-256 public key`);
    return trustedLog(k.key, l.origin, l.baseUrl);
  });
  const trustedRoot = p.trustedRoot !== undefined
    ? checkTrustedRoot(readInput(at(p.trustedRoot), { kind: 'trustedRoot', trusted: 'the policy\'s trustedRoot' }).toString('utf8'), `trustedRoot ${p.trustedRoot}`, src)
    : undefined;
  if (!trustedRoot && signers.some((s) => s.keyless)) throw invalid(src, 'a keyless signer needs "trustedRoot" (the Sigstore trusted_root.json whose Fulcio CAs issue its certificates)');
  const minVersions = new Map<string, number>();
  for (const [k, v] of Object.entries(p.minVersions ?? {})) {
    // A minimum for a plan no signer may sign protects nothing: most likely a misspelt plan name.
    if (!signers.some((s) => s.plans.some((g) => globMatch(g, k)))) throw invalid(src, `minVersions[${JSON.stringify(k)}]: no signer may sign a plan of this name, so this minimum would protect nothing (a misspelt plan name?)`);
    minVersions.set(k, v);
  }
  const witnesses = (p.witnesses ?? []).map((w, i) => witnessOf(w, `witnesses[${i}]`, at, src));
  const names = new Set<string>();
  for (const [i, w] of witnesses.entries()) {
    // One witness counts once: two entries of one name would let one cosignature count twice.
    if (names.has(w.name)) throw invalid(src, `witnesses[${i}]: witness ${w.name} is listed twice`);
    names.add(w.name);
  }
  if (p.witnessThreshold !== undefined && !witnesses.length) throw invalid(src, 'witnessThreshold: no witnesses are listed, so this threshold would require nothing');
  if ((p.witnessThreshold ?? 0) > witnesses.length) throw invalid(src, `witnessThreshold: ${p.witnessThreshold} is more than the ${witnesses.length} witness(es) listed, so no checkpoint could meet it`);
  return {
    witnesses, witnessThreshold: p.witnessThreshold ?? witnesses.length,
    source: src, signers, logs, trustedRoot,
    requireLogInclusion: p.requireLogInclusion === true,
    requireKernelSignatures: p.requireKernelSignatures === true,
    requirePreflight: p.requirePreflight === true,
    keyring: p.keyring,
    ...(p.enforceKeyrings ? { enforceKeyrings: [...p.enforceKeyrings] } : {}),
    revokedKeys: new Set((p.revoked?.keys ?? []).map(canonicalKeyId)),
    revokedDigests: new Set((p.revoked?.digests ?? []).map(canonicalDigest)),
    minVersions,
    allowRollback: p.allowRollback === true,
    statePath: p.state !== undefined ? at(p.state) : undefined,
    kernelAccept: (p.kernelAudit?.accept ?? []).map((r) => ({ ...(r.name !== undefined ? { name: r.name } : {}), ...(r.type !== undefined ? { type: r.type } : {}), reason: r.reason })),
  };
}

export function loadPolicy(path: string): TrustPolicy {
  let text: string;
  try {
    text = readInput(path, { kind: 'policy', trusted: 'a trust policy' }).toString('utf8');
  } catch (e) {
    if (e instanceof BpfsealError && e.code === TRUST_FILE_UNSAFE) throw e;
    if (e instanceof BpfsealError) throw new InputError('POLICY_UNREADABLE', `${e.message} (trust policy)`, { file: path, cause: e });
    throw e;
  }
  return parsePolicy(text, path);
}

/** A one-key policy for `--key <pub>`: that key may sign any plan with any program type. */
export function singleKeyPolicy(path: string): TrustPolicy {
  const k = readKeyFile(path, '--key', path);
  return {
    source: `--key ${path}`,
    signers: [{ name: path, key: k.key, keyId: keyIdOf(k.key), certificate: k.certificate, certificateValidity: k.validity, allowExpired: false, plans: ['*'], programTypes: ['*'] }],
    logs: [], requireLogInclusion: false, requireKernelSignatures: false, requirePreflight: false, revokedKeys: new Set(), revokedDigests: new Set(),
    minVersions: new Map(), allowRollback: false, witnesses: [], witnessThreshold: 0, kernelAccept: [],
  };
}

/** A witness of the policy: a vkey inline, or a name and a file with its PEM key or vkey. */
function witnessOf(w: { vkey: string } | { name: string; key: string }, where: string, at: (f: string) => string, src: string): WitnessKey {
  try {
    if ('vkey' in w) return parseWitnessVkey(w.vkey);
    const text = readInput(at(w.key), { kind: 'key', trusted: 'a witness key the policy trusts' }).toString('utf8').trim();
    const v = text.includes('-----BEGIN') ? { name: w.name, key: createPublicKey(text) } : parseWitnessVkey(text);
    if (v.name !== w.name) throw new InputError('POLICY_INVALID', `the vkey in ${w.key} names witness ${v.name}`);
    if (v.key.asymmetricKeyType !== 'ed25519') throw new InputError('POLICY_INVALID', 'a witness key is an Ed25519 public key');
    return v;
  } catch (e) {
    throw invalid(src, `${where}: ${(e as Error).message}`, e);
  }
}

/** A log identity (its public key and checkpoint origin) as a trusted log. */
export function trustedLog(key: KeyObject, origin: string, baseUrl?: string): TrustedLog {
  return { key, keyId: keyIdOf(key), origin, baseUrl: baseUrl ?? `https://${origin}` };
}
