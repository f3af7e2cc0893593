/**
 * Signed-note keys beyond the log's ECDSA key (https://c2sp.org/signed-note):
 *   type 0x01  Ed25519 note signatures, key ID = SHA-256(name || 0x0A || 0x01 || 32-byte key)[:4];
 *   type 0x02  ECDSA (note.ts), key ID = SHA-256(DER SPKI)[:4];
 *   type 0x04  timestamped Ed25519 cosignatures (c2sp.org/tlog-cosignature, cosign.ts).
 * Verifier keys ("vkeys"): <name>+hex(key ID)+base64(type || public key), as golang.org/x/mod/sumdb/note
 * and the witness network write them. Signer keys use the same shape as Go's note package:
 * PRIVATE+KEY+<name>+hex(key ID)+base64(type || 32-byte Ed25519 seed).
 */
import { createHash, createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { signatureVerifies } from '../sig.js';
import { InputError, TLOG_CODES } from './errors.js';
import { ecdsaNoteVerifier, isValidKeyName, type NoteVerifier } from './note.js';

export const SIG_ED25519 = 0x01;
export const SIG_ECDSA = 0x02;
export const SIG_COSIGNATURE_V1 = 0x04;

const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');

function bad(what: string): InputError {
  return new InputError(TLOG_CODES.BAD_KEY, what);
}

/** SHA-256(name || "\n" || type || key)[:4]: the recommended signed-note key ID. */
export function noteKeyId(name: string, type: number, key: Uint8Array): Buffer {
  return createHash('sha256').update(name).update(Buffer.from([0x0a, type])).update(key).digest().subarray(0, 4);
}

export function ed25519Raw(key: KeyObject): Buffer {
  if (key.asymmetricKeyType !== 'ed25519') throw bad('not an Ed25519 key');
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' }).subarray(ED25519_SPKI.length);
}

export function ed25519FromRaw(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw bad(`an Ed25519 public key has 32 bytes, not ${raw.length}`);
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI, raw]), format: 'der', type: 'spki' });
}

function ed25519Check(key: KeyObject): (msg: Buffer, sig: Buffer) => boolean {
  return (msg, sig) => sig.length === 64 && signatureVerifies(null, msg, key, sig);
}

/** A NoteVerifier for Ed25519 note signatures (type 0x01). */
export function ed25519NoteVerifier(name: string, publicKey: KeyObject): NoteVerifier {
  return { name, keyId: noteKeyId(name, SIG_ED25519, ed25519Raw(publicKey)), check: ed25519Check(publicKey) };
}

/** One signature line, "— <name> base64(key ID || signature)\n". */
export function signatureLine(name: string, keyId: Uint8Array, signature: Uint8Array): string {
  return `\u2014 ${name} ${Buffer.concat([keyId, signature]).toString('base64')}\n`;
}

/** An Ed25519 note signature line over `text` (type 0x01); pass the key ID when known (saves a key export). */
export function ed25519SignatureLine(text: string, name: string, privateKey: KeyObject, keyId = noteKeyId(name, SIG_ED25519, ed25519Raw(privateKey))): string {
  return signatureLine(name, keyId, sign(null, Buffer.from(text, 'utf8'), privateKey));
}

export interface VerifierKey {
  name: string;
  keyId: Buffer;
  type: number;
  key: KeyObject;
  /** The public key material as the vkey carries it (32 bytes for Ed25519, DER SPKI for ECDSA). */
  raw: Buffer;
}

/** Parse a vkey: <name>+<8 hex digits>+base64(type || key). */
export function parseVerifierKey(vkey: string): VerifierKey {
  const [, name, idHex, b64] = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+={0,2})$/.exec(vkey.trim()) ?? [];
  if (name === undefined || idHex === undefined || b64 === undefined || !isValidKeyName(name)) {
    throw bad(`not a verifier key (<name>+<key ID>+<base64 key>): ${JSON.stringify(vkey.slice(0, 80))}`);
  }
  const blob = Buffer.from(b64, 'base64');
  if (blob.length < 2) throw bad(`verifier key ${name}: no key material`);
  const type = blob.readUInt8(0);
  const raw = blob.subarray(1);
  let key: KeyObject;
  let keyId: Buffer;
  if (type === SIG_ED25519 || type === SIG_COSIGNATURE_V1) {
    key = ed25519FromRaw(raw);
    keyId = noteKeyId(name, type, raw);
  } else if (type === SIG_ECDSA) {
    key = createPublicKey({ key: raw, format: 'der', type: 'spki' });
    keyId = ecdsaNoteVerifier(name, key).keyId;
  } else {
    throw bad(`verifier key ${name}: signature type 0x${type.toString(16)} is not supported (0x01, 0x02, 0x04 are)`);
  }
  if (keyId.toString('hex') !== idHex) throw bad(`verifier key ${name}: key ID ${idHex} does not match the key (${keyId.toString('hex')})`);
  return { name, keyId, type, key, raw };
}

export function formatVerifierKey(name: string, type: number, raw: Uint8Array): string {
  const keyId = type === SIG_ECDSA ? ecdsaNoteVerifier(name, createPublicKey({ key: Buffer.from(raw), format: 'der', type: 'spki' })).keyId : noteKeyId(name, type, raw);
  return `${name}+${keyId.toString('hex')}+${Buffer.concat([Buffer.from([type]), raw]).toString('base64')}`;
}

/** The NoteVerifier for a log's vkey (types 0x01 and 0x02; cosigner keys are for cosign.ts). */
export function noteVerifierFromVkey(vkey: string): NoteVerifier {
  const k = parseVerifierKey(vkey);
  if (k.type === SIG_ED25519) return ed25519NoteVerifier(k.name, k.key);
  if (k.type === SIG_ECDSA) return ecdsaNoteVerifier(k.name, k.key);
  throw bad(`verifier key ${k.name} is a cosigner key (type 0x04), not a log key`);
}

export interface SignerKey {
  name: string;
  type: number;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** Parse PRIVATE+KEY+<name>+<key ID>+base64(type || 32-byte Ed25519 seed) (types 0x01 and 0x04). */
export function parseSignerKey(text: string): SignerKey {
  const [, name, idHex, b64] = /^PRIVATE\+KEY\+([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+={0,2})$/.exec(text.trim()) ?? [];
  if (name === undefined || idHex === undefined || b64 === undefined || !isValidKeyName(name)) throw bad('not a signer key (PRIVATE+KEY+<name>+<key ID>+<base64 key>)');
  const blob = Buffer.from(b64, 'base64');
  const type = blob[0];
  if ((type !== SIG_ED25519 && type !== SIG_COSIGNATURE_V1) || blob.length !== 33) throw bad(`signer key ${name}: expected type 0x01 or 0x04 and a 32-byte Ed25519 seed`);
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, blob.subarray(1)]), format: 'der', type: 'pkcs8' });
  const publicKey = createPublicKey(privateKey);
  if (noteKeyId(name, type, ed25519Raw(publicKey)).toString('hex') !== idHex) throw bad(`signer key ${name}: key ID ${idHex} does not match the key`);
  return { name, type, privateKey, publicKey };
}

export function formatSignerKey(name: string, type: number, privateKey: KeyObject): string {
  const seed = privateKey.export({ type: 'pkcs8', format: 'der' }).subarray(ED25519_PKCS8.length);
  const keyId = noteKeyId(name, type, ed25519Raw(privateKey));
  return `PRIVATE+KEY+${name}+${keyId.toString('hex')}+${Buffer.concat([Buffer.from([type]), seed]).toString('base64')}`;
}
