/**
 * The log's identity: an ECDSA P-256 key (so Sigstore verifiers accept its checkpoints) and its origin
 * (the checkpoint's first line and the note key name, c2sp.org/tlog-checkpoint: "The log's key name in
 * its signature line SHOULD match the origin line").
 *
 *   log.key      PKCS#8 PEM private key, mode 0600, created once and never overwritten
 *   log.pub      SPKI PEM public key
 *   log.ed25519  Ed25519 note signer key (signed-note signer format), mode 0600: checkpoints carry an
 *                Ed25519 signature as well, because c2sp.org/tlog-tiles requires one of a log that
 *                works with the witness network, and tlog-tiles clients (Go's sumdb/note) check it
 *   log.vkey     its verifier key
 *   log.json  {"format":"bpfseal-tlog/2","origin":...,"created":ISO-8601}
 *
 * Format bpfseal-tlog/2 is the c2sp.org/tlog-tiles layout; bpfseal-tlog/1 the first layout (entries,
 * entries.idx, hashes), which is only read to migrate it (legacy.ts, migrate.ts).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { join } from 'node:path';
import { InputError, TLOG_CODES } from './errors.js';
import { FILES } from './files.js';
import { createExclusive } from '../fsx/durable.js';
import { readInput } from '../fsx/read.js';
import { spkiSha256 } from './note.js';
import { SIG_ED25519, ed25519Raw, formatSignerKey, formatVerifierKey, parseSignerKey, type SignerKey } from './note-keys.js';

export const LOG_FORMAT = 'bpfseal-tlog/2';
export const LEGACY_FORMAT = 'bpfseal-tlog/1';

export interface LogConfig {
  format: typeof LOG_FORMAT | typeof LEGACY_FORMAT;
  origin: string;
  /** When the key was made: the start of its validity in a TrustedRoot. */
  created: string;
}

export interface LogPublicKey {
  key: KeyObject;
  /** SPKI PEM. */
  pem: string;
  /** DER SubjectPublicKeyInfo. */
  der: Buffer;
  /** SHA-256 of the DER SPKI: Rekor's log ID. */
  logId: Buffer;
  /** First 4 bytes of logId: the signed-note key ID (signature type 0x02). */
  keyId: Buffer;
}

export function publicKeyInfo(key: KeyObject): LogPublicKey {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new InputError(TLOG_CODES.BAD_KEY, 'the log key must be an ECDSA P-256 key');
  }
  const logId = spkiSha256(key);
  return {
    key,
    pem: key.export({ type: 'spki', format: 'pem' }).toString(),
    der: key.export({ type: 'spki', format: 'der' }),
    logId,
    keyId: logId.subarray(0, 4),
  };
}

/**
 * Origins are note key names (no spaces, no '+') and @sigstore/verify matches the key name as a regular
 * expression against the TrustedRoot's baseUrl, so only URL-path characters without regex meaning
 * (besides '.') are allowed.
 */
export function validateOrigin(origin: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._~:/-]{0,254}$/.test(origin)) {
    throw new InputError(TLOG_CODES.BAD_ARGUMENT, `log origin ${JSON.stringify(origin)}: use 1-255 characters from A-Z a-z 0-9 . _ ~ : / -, like example.com/log`);
  }
  return origin;
}

/** Default origin: unique per key, so two local logs never share a name. */
export function defaultOrigin(pub: LogPublicKey): string {
  return `bpfseal.local/log/${pub.logId.subarray(0, 8).toString('hex')}`;
}

/** Log identity files are never read through a symlink (fsx/read.ts). */
function readText(path: string): string {
  return readInput(path, { kind: 'key', noFollow: true }).toString('utf8');
}

export function readPublicKey(dir: string): LogPublicKey {
  const path = join(dir, FILES.publicKey);
  try {
    return publicKeyInfo(createPublicKey(readText(path)));
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(TLOG_CODES.BAD_KEY, `${path}: not a PEM public key`, { file: path, cause: e });
  }
}

/** The private key, refused when group or others may read it (like ssh). */
export function readPrivateKey(dir: string, pub: LogPublicKey): KeyObject {
  const path = join(dir, FILES.privateKey);
  let key: KeyObject;
  try {
    if ((lstatSync(path).mode & 0o077) !== 0) {
      throw new InputError(TLOG_CODES.BAD_KEY, `${path}: private key is readable by others; chmod 600 it`, { file: path });
    }
    key = createPrivateKey(readText(path));
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(TLOG_CODES.BAD_KEY, `${path}: not a PEM private key`, { file: path, cause: e });
  }
  if (!publicKeyInfo(createPublicKey(key)).der.equals(pub.der)) {
    throw new InputError(TLOG_CODES.BAD_KEY, `${path} does not belong to ${FILES.publicKey}`, { file: path });
  }
  return key;
}

export function readConfig(dir: string): LogConfig {
  const path = join(dir, FILES.config);
  let v: unknown;
  try {
    v = JSON.parse(readText(path));
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(TLOG_CODES.BAD_ARGUMENT, `${path}: not JSON`, { file: path, cause: e });
  }
  const c = v as Partial<LogConfig> | null;
  if (!c || (c.format !== LOG_FORMAT && c.format !== LEGACY_FORMAT) || typeof c.origin !== 'string' || typeof c.created !== 'string') {
    throw new InputError(TLOG_CODES.BAD_ARGUMENT, `${path}: not a ${LOG_FORMAT} log configuration`, { file: path });
  }
  validateOrigin(c.origin);
  return { format: c.format, origin: c.origin, created: c.created };
}

/**
 * Make the key pair and the configuration if they are missing (called under the commit lock). Each file
 * is created exclusively, so an existing key is never replaced, and a crash between the steps is
 * finished by the next call.
 */
export function ensureIdentity(dir: string, origin?: string): void {
  const keyPath = join(dir, FILES.privateKey);
  let privatePem: string;
  try {
    privatePem = readText(keyPath);
  } catch {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    createExclusive(keyPath, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), 0o600, TLOG_CODES.IO);
    privatePem = readText(keyPath);
  }
  const pub = publicKeyInfo(createPublicKey(createPrivateKey(privatePem)));
  createExclusive(join(dir, FILES.publicKey), pub.pem, 0o644, TLOG_CODES.IO);
  const config: LogConfig = { format: LOG_FORMAT, origin: validateOrigin(origin ?? defaultOrigin(pub)), created: new Date(Math.floor(Date.now() / 1000) * 1000).toISOString() };
  createExclusive(join(dir, FILES.config), `${JSON.stringify(config, null, 2)}\n`, 0o644, TLOG_CODES.IO);
  ensureNoteKey(dir, readConfig(dir).origin);
}

/** Make the Ed25519 note key and its vkey if missing (under the commit lock; never replaces a key). */
export function ensureNoteKey(dir: string, origin: string): void {
  const keyPath = join(dir, FILES.noteKey);
  let signer: SignerKey;
  try {
    signer = parseSignerKey(readText(keyPath));
  } catch {
    const { privateKey } = generateKeyPairSync('ed25519');
    createExclusive(keyPath, `${formatSignerKey(origin, SIG_ED25519, privateKey)}\n`, 0o600, TLOG_CODES.IO);
    signer = parseSignerKey(readText(keyPath));
  }
  createExclusive(join(dir, FILES.vkey), `${formatVerifierKey(signer.name, SIG_ED25519, ed25519Raw(signer.publicKey))}\n`, 0o644, TLOG_CODES.IO);
}

/** The log's Ed25519 verifier key, or undefined for a log that has none. */
export function readLogVkey(dir: string): string | undefined {
  try {
    return readText(join(dir, FILES.vkey)).trim();
  } catch {
    return undefined;
  }
}

/** The Ed25519 note signer, refused when others may read it or when it is not the vkey's key. */
export function readNoteSigner(dir: string, origin: string, vkey: string): SignerKey {
  const path = join(dir, FILES.noteKey);
  if ((lstatSync(path).mode & 0o077) !== 0) throw new InputError(TLOG_CODES.BAD_KEY, `${path}: private key is readable by others; chmod 600 it`, { file: path });
  const signer = parseSignerKey(readText(path));
  if (signer.name !== origin || formatVerifierKey(signer.name, SIG_ED25519, ed25519Raw(signer.publicKey)) !== vkey) {
    throw new InputError(TLOG_CODES.BAD_KEY, `${path} does not belong to ${FILES.vkey} and the origin ${origin}`, { file: path });
  }
  return signer;
}

/** A log directory's identity (public key and origin), for trusting it from the command line (`--log <dir>`). */
export function logIdentity(dir: string): { key: KeyObject; origin: string } {
  return { key: readPublicKey(dir).key, origin: readConfig(dir).origin };
}
