/**
 * Trust policy (format: keys/README.md): who may sign which plans and program types, revocations,
 * minimum release versions, anti-rollback, and whether log inclusion and kernel signatures are
 * required. Paths inside a policy file are relative to that file. Parsed once, at the edge.
 */
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { keyId as keyIdOf, loadPublicKey } from './keys.js';
import { readConfig, readPublicKey } from '../tlog/keys.js';

export interface KeylessIdentity {
  issuer: string;
  /** Exact certificate SAN (e.g. a workflow URI or an e-mail), or /regex/ between slashes. */
  subject: string;
}

export interface TrustedSigner {
  name: string;
  /** Key-based signer: the public key and its id (hex SHA-256 of the DER SPKI). */
  key?: KeyObject;
  keyId?: string;
  /** PEM of the signer's certificate, when the policy names one (kernel keyrings, kernel signatures). */
  certificate?: string;
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
  /** Keyring serial for kernel signature checks (-3 session keyring, 0/1/2 system keyrings). */
  keyring?: number;
  revokedKeys: Set<string>;
  revokedDigests: Set<string>;
  minVersions: Record<string, number>;
  allowRollback: boolean;
  /** Host anti-rollback state file. */
  statePath?: string;
}

function bad(src: string, msg: string): InputError {
  return new InputError('POLICY_INVALID', `${src}: ${msg}`, { file: src });
}

function strings(v: unknown, src: string, what: string, dflt: string[]): string[] {
  if (v === undefined) return dflt;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw bad(src, `${what} must be an array of strings`);
  return v as string[];
}

function readKeyFile(path: string, src: string): { key: KeyObject; certificate?: string } {
  try {
    const key = loadPublicKey(path);
    const text = readFileSync(path, 'latin1');
    return { key, certificate: text.includes('BEGIN CERTIFICATE') ? text : undefined };
  } catch (e) {
    throw bad(src, (e as Error).message);
  }
}

export function parsePolicy(text: string, src: string): TrustPolicy {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw bad(src, `not JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(src, 'must be a JSON object');
  if (raw.version !== 1) throw bad(src, `version must be 1, got ${JSON.stringify(raw.version)}`);
  const known = new Set(['version', 'signers', 'logs', 'trustedRoot', 'requireLogInclusion', 'requireKernelSignatures', 'keyring', 'revoked', 'minVersions', 'allowRollback', 'state', 'comment']);
  for (const k of Object.keys(raw)) if (!known.has(k)) throw bad(src, `unknown field '${k}'`);
  const base = dirname(resolve(src));
  const at = (p: string) => resolve(base, p);
  if (!Array.isArray(raw.signers) || raw.signers.length === 0) throw bad(src, 'signers must be a non-empty array');
  const signers = (raw.signers as Record<string, unknown>[]).map((s, i): TrustedSigner => {
    const name = typeof s.name === 'string' ? s.name : `signer ${i}`;
    const out: TrustedSigner = { name, plans: strings(s.plans, src, `${name}.plans`, ['*']), programTypes: strings(s.programTypes, src, `${name}.programTypes`, ['*']) };
    if (typeof s.key === 'string') {
      const k = readKeyFile(at(s.key), src);
      out.key = k.key;
      out.keyId = keyIdOf(k.key);
      if (k.certificate) out.certificate = k.certificate;
    } else if (s.keyless && typeof s.keyless === 'object') {
      const kl = s.keyless as Record<string, unknown>;
      if (typeof kl.issuer !== 'string' || typeof kl.subject !== 'string') throw bad(src, `${name}.keyless needs issuer and subject strings`);
      out.keyless = { issuer: kl.issuer, subject: kl.subject };
    } else {
      throw bad(src, `${name} needs "key" (path to a public key or certificate) or "keyless" {issuer, subject}`);
    }
    if (typeof s.certificate === 'string') out.certificate = readKeyFile(at(s.certificate), src).certificate;
    return out;
  });
  const logs = ((raw.logs as Record<string, unknown>[] | undefined) ?? []).map((l, i): TrustedLog => {
    if (typeof l.key !== 'string' || typeof l.origin !== 'string') throw bad(src, `logs[${i}] needs key and origin`);
    const k = readKeyFile(at(l.key), src);
    return { key: k.key, keyId: keyIdOf(k.key), origin: l.origin, baseUrl: typeof l.baseUrl === 'string' ? l.baseUrl : `https://${l.origin}` };
  });
  let trustedRoot: unknown;
  if (typeof raw.trustedRoot === 'string') {
    try {
      trustedRoot = JSON.parse(readFileSync(at(raw.trustedRoot), 'utf8'));
    } catch (e) {
      throw bad(src, `trustedRoot ${raw.trustedRoot}: ${(e as Error).message}`);
    }
  }
  const revoked = (raw.revoked ?? {}) as Record<string, unknown>;
  const minVersions = (raw.minVersions ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(minVersions)) if (!Number.isSafeInteger(v)) throw bad(src, `minVersions.${k} must be an integer`);
  if (raw.keyring !== undefined && !Number.isSafeInteger(raw.keyring)) throw bad(src, 'keyring must be an integer keyring serial');
  return {
    source: src, signers, logs, trustedRoot,
    requireLogInclusion: raw.requireLogInclusion === true,
    requireKernelSignatures: raw.requireKernelSignatures === true,
    keyring: raw.keyring as number | undefined,
    revokedKeys: new Set(strings(revoked.keys, src, 'revoked.keys', []).map((k) => k.toLowerCase())),
    revokedDigests: new Set(strings(revoked.digests, src, 'revoked.digests', []).map((d) => (d.startsWith('sha256:') ? d : `sha256:${d}`).toLowerCase())),
    minVersions: minVersions as Record<string, number>,
    allowRollback: raw.allowRollback === true,
    statePath: typeof raw.state === 'string' ? at(raw.state) : undefined,
  };
}

export function loadPolicy(path: string): TrustPolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new InputError('POLICY_UNREADABLE', `${path}: cannot read policy (${(e as NodeJS.ErrnoException).code ?? e})`, { file: path });
  }
  return parsePolicy(text, path);
}

/** A one-key policy for `--key <pub>`: that key may sign any plan with any program type. */
export function singleKeyPolicy(path: string): TrustPolicy {
  const k = readKeyFile(path, path);
  return {
    source: `--key ${path}`,
    signers: [{ name: path, key: k.key, keyId: keyIdOf(k.key), certificate: k.certificate, plans: ['*'], programTypes: ['*'] }],
    logs: [], requireLogInclusion: false, requireKernelSignatures: false, revokedKeys: new Set(), revokedDigests: new Set(),
    minVersions: {}, allowRollback: false,
  };
}

/** A local log directory as a trusted log: its public key and checkpoint origin. */
export function localLogTrust(dir: string): TrustedLog {
  const pub = readPublicKey(dir);
  const { origin } = readConfig(dir);
  return { key: pub.key, keyId: pub.logId.toString('hex'), origin, baseUrl: `https://${origin}` };
}

export { globMatch } from '../glob.js';
