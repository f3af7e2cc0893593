/**
 * Signing keys: generation, the on-disk files `bpfseal keygen` writes, loading, and the key id that
 * names a key everywhere in bpfseal (hex SHA-256 of its DER SubjectPublicKeyInfo, RFC 5280 §4.1.2.7).
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  X509Certificate,
} from 'node:crypto';
import { lstatSync, statSync, unlinkSync } from 'node:fs';
import { createExclusive } from '../fsx/durable.js';
import { checkPrivateDir } from '../fsx/dirs.js';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { signatureVerifies } from '../sig.js';
import { readInput } from '../fsx/read.js';
import { selfSignedCertificate } from './x509.js';

import { KEY_ALGORITHMS, isGeneratedAlgorithm, type GeneratedAlgorithm } from './algorithms.js';

export { KEY_ALGORITHMS, isGeneratedAlgorithm, type GeneratedAlgorithm };
/** What a loaded key can be: the three above, or RSA of another modulus size. */
export type KeyAlgorithm = GeneratedAlgorithm | `rsa-${number}`;

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface KeyFiles {
  key: string;
  pub: string;
  crt: string;
  keyId: string;
  algorithm: GeneratedAlgorithm;
}

export interface LoadedPrivateKey {
  key: KeyObject;
  /** Permission bits of the file. */
  mode: number;
  /** Group or others have any access (mode & 0o077): callers should warn, as ssh does. */
  tooOpen: boolean;
}

export function generateKeyPair(algorithm: GeneratedAlgorithm): KeyPair {
  switch (algorithm) {
    case 'ecdsa-p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ed25519':
      return generateKeyPairSync('ed25519');
    case 'rsa-3072':
      return generateKeyPairSync('rsa', { modulusLength: 3072, publicExponent: 0x10001 });
  }
}

/** The algorithm of a key; keys bpfseal cannot sign or verify with are an input error (KEY_UNSUPPORTED). */
export function keyAlgorithm(key: KeyObject): KeyAlgorithm {
  const d = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ed25519':
      return 'ed25519';
    case 'ec':
      if (d.namedCurve === 'prime256v1' || d.namedCurve === 'P-256') return 'ecdsa-p256';
      throw new InputError('KEY_UNSUPPORTED', `unsupported EC curve ${d.namedCurve ?? '?'} (bpfseal uses P-256)`);
    case 'rsa':
      return `rsa-${d.modulusLength ?? 0}`;
    default:
      throw new InputError('KEY_UNSUPPORTED', `unsupported key type ${key.asymmetricKeyType ?? key.type}`);
  }
}

/** SPKI DER per key object: policies and signers reuse their keys, and an export costs like a signature check. */
const spkiCache = new WeakMap<KeyObject, Buffer>();

/** DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) of a public key, or of a private key's public half. */
export function spkiDer(key: KeyObject): Buffer {
  let der = spkiCache.get(key);
  if (!der) {
    const pub = key.type === 'private' ? createPublicKey(key) : key;
    der = pub.export({ type: 'spki', format: 'der' });
    spkiCache.set(key, der);
  }
  return der;
}

/** Key id: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo. */
export function keyId(key: KeyObject): string {
  return createHash('sha256').update(spkiDer(key)).digest('hex');
}

/** The digest node's sign/verify take for this key: SHA-256, or none for Ed25519 (RFC 8032 PureEdDSA). */
function digestFor(key: KeyObject): 'sha256' | null {
  return keyAlgorithm(key) === 'ed25519' ? null : 'sha256';
}

/** Sign: RSA PKCS#1 v1.5 + SHA-256, ECDSA + SHA-256 (DER Ecdsa-Sig-Value, RFC 5758 §3.2), or Ed25519. */
export function signData(privateKey: KeyObject, data: Buffer): Buffer {
  if (privateKey.type !== 'private') throw new InputError('KEY_NOT_PRIVATE', 'signing needs a private key');
  return sign(digestFor(privateKey), data, privateKey);
}

/** Verify a signature made by signData; false for any mismatch, including a key of the wrong kind. */
export function verifyData(publicKey: KeyObject, data: Buffer, signature: Buffer): boolean {
  return signatureVerifies(digestFor(publicKey), data, publicKey, signature);
}

// ---------------------------------------------------------------------------------------------------
// Files

function exists(p: string): boolean {
  try {
    lstatSync(p); // a dangling symlink counts: 'wx' would refuse it too
    return true;
  } catch {
    return false;
  }
}

/** Create `path` exclusively (fsx/durable.ts: never overwrites, never leaves a partial file). */
function writeNew(path: string, data: string, mode: number): void {
  if (!createExclusive(path, data, mode)) throw new InputError('KEY_EXISTS', `refusing to overwrite ${path}`, { file: path });
}

/**
 * Write `<name>.key` (PKCS#8 PEM, 0600), `<name>.pub` (SPKI PEM) and `<name>.crt` (self-signed X.509)
 * into an existing directory. If any of the three exists, nothing is written (KEY_EXISTS, exit 2).
 */
export function writeKeyFiles(
  outDir: string,
  name: string,
  algorithm: GeneratedAlgorithm,
  cert: { commonName?: string; days?: number; notBefore?: Date } = {},
): KeyFiles {
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name === '.' || name === '..') {
    throw new InputError('KEY_NAME_INVALID', `key name ${JSON.stringify(name)}: use letters, digits, '.', '_' or '-'`);
  }
  // Another user who can write the directory could swap the .pub or .crt a host will trust.
  checkPrivateDir(outDir, 'the key directory', 'KEY_DIR_UNSAFE');
  const files = { key: join(outDir, `${name}.key`), pub: join(outDir, `${name}.pub`), crt: join(outDir, `${name}.crt`) };
  for (const p of Object.values(files)) {
    if (exists(p)) throw new InputError('KEY_EXISTS', `refusing to overwrite ${p}`, { file: p });
  }
  const { privateKey, publicKey } = generateKeyPair(algorithm);
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const pubPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const crtPem = selfSignedCertificate(privateKey, publicKey, { commonName: cert.commonName ?? name, days: cert.days, notBefore: cert.notBefore });
  const written: string[] = [];
  try {
    for (const [p, data, mode] of [[files.key, keyPem, 0o600], [files.pub, pubPem, 0o644], [files.crt, crtPem, 0o644]] as const) {
      writeNew(p, data, mode);
      written.push(p);
    }
  } catch (e) {
    // Lost a race with another writer: take back what this call created, so no half-set stays behind.
    for (const p of written) try { unlinkSync(p); } catch { /* already gone */ }
    throw e;
  }
  return { ...files, keyId: keyId(publicKey), algorithm };
}

const PRIVATE_PEM = /-----BEGIN (?:[A-Z ]+ )?PRIVATE KEY-----/;

/** A private key from PEM (PKCS#8, SEC1 "EC PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY") or DER PKCS#8. */
export function loadPrivateKey(path: string): LoadedPrivateKey {
  const buf = readInput(path, { kind: 'key' });
  const text = buf.toString('latin1');
  if (text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /Proc-Type: 4,ENCRYPTED/.test(text)) {
    throw new InputError('KEY_ENCRYPTED', `${path}: encrypted private keys are not supported`, { file: path });
  }
  if (!PRIVATE_PEM.test(text) && /-----BEGIN (PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE)-----/.test(text)) {
    throw new InputError('KEY_NOT_PRIVATE', `${path}: is a public key or certificate, not a private key`, { file: path });
  }
  let key: KeyObject;
  try {
    key = PRIVATE_PEM.test(text)
      ? createPrivateKey({ key: buf, format: 'pem' })
      : createPrivateKey({ key: buf, format: 'der', type: 'pkcs8' });
  } catch (e) {
    throw new InputError('KEY_INVALID', `${path}: not a readable private key (PEM PKCS#8, SEC1 or PKCS#1)`, { file: path, cause: e });
  }
  keyAlgorithm(key); // reject unsupported kinds here, naming the file
  const mode = statSync(path).mode & 0o777;
  return { key, mode, tooOpen: (mode & 0o077) !== 0 };
}

/** A public key from SPKI PEM/DER, PKCS#1 RSA PUBLIC KEY PEM, or an X.509 certificate (PEM or DER). */
export function loadPublicKey(path: string): KeyObject {
  const buf = readInput(path, { kind: 'key', trusted: 'a public key bpfseal trusts' });
  const text = buf.toString('latin1');
  if (PRIVATE_PEM.test(text)) {
    throw new InputError('KEY_IS_PRIVATE', `${path}: contains a private key; pass the .pub or .crt file instead`, { file: path });
  }
  let key: KeyObject | undefined;
  if (text.includes('-----BEGIN CERTIFICATE-----') || !text.includes('-----BEGIN')) {
    try {
      key = new X509Certificate(buf).publicKey;
    } catch {
      /* not a certificate; try a bare key below */
    }
  }
  if (!key) {
    try {
      key = text.includes('-----BEGIN')
        ? createPublicKey({ key: buf, format: 'pem' })
        : createPublicKey({ key: buf, format: 'der', type: 'spki' });
    } catch (e) {
      throw new InputError('KEY_INVALID', `${path}: not a public key (SPKI PEM/DER) or X.509 certificate`, { file: path, cause: e });
    }
  }
  keyAlgorithm(key);
  return key;
}
