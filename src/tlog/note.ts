/**
 * C2SP signed notes (https://c2sp.org/signed-note) with ECDSA signatures, and checkpoints
 * (https://c2sp.org/tlog-checkpoint) as their body.
 *
 *   <text, ending in "\n">
 *   "\n"
 *   "— " <key name> " " base64(key ID (4 bytes, big-endian) || signature) "\n"     (one or more)
 *
 * Signature type 0x02 of the signed-note spec ("ECDSA signatures as implemented by
 * github.com/transparency-dev/witness"): an ASN.1 DER ECDSA signature over SHA-256 of the note text,
 * key ID = the first 4 bytes of SHA-256 of the DER SubjectPublicKeyInfo. This is also what Rekor
 * signs its checkpoints with and what @sigstore/verify checks (key ID = the first 4 bytes of the log
 * ID, which is SHA-256 of the DER public key).
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import { signatureVerifies } from '../sig.js';
import { HASH_SIZE, type Hash } from './hash.js';
import { InputError, TLOG_CODES, TlogVerifyError } from './errors.js';

const EM_DASH = '\u2014';
const MAX_SIGNATURES = 100;

export interface NoteSignature {
  name: string;
  /** The 4-byte key ID. */
  keyId: Buffer;
  /** The signature bytes after the key ID. */
  signature: Buffer;
}

export interface SignedNote {
  /** The note text, including its final newline (this is what is signed). */
  text: string;
  signatures: NoteSignature[];
}

/** A key that can check note signatures: name and key ID select it, `check` verifies. */
export interface NoteVerifier {
  name: string;
  keyId: Buffer;
  check(text: Buffer, signature: Buffer): boolean;
}

function badNote(why: string): InputError {
  return new InputError(TLOG_CODES.BAD_NOTE, `signed note: ${why}`);
}

/** Key names are non-empty and contain neither Unicode spaces nor '+' (signed-note, Format). */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]/u.test(name);
}

/** SHA-256 of the DER SubjectPublicKeyInfo: the Rekor / Sigstore log ID of an ECDSA key. */
export function spkiSha256(publicKey: KeyObject): Buffer {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest();
}

/** Signed-note key ID for signature type 0x02 (ECDSA): SHA-256(DER SPKI)[:4]. */
export function ecdsaKeyId(publicKey: KeyObject): Buffer {
  return spkiSha256(publicKey).subarray(0, 4);
}

/** Parse a signed note. Checks the structure only; verifyNote checks signatures. */
export function parseSignedNote(s: string): SignedNote {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: C2SP signed-note forbids them
  if (/[\u0000-\u0009\u000b-\u001f]/.test(s)) throw badNote('contains control characters other than newline');
  if (!s.endsWith('\n')) throw badNote('does not end with a newline');
  const split = s.lastIndexOf('\n\n');
  if (split < 0) throw badNote('no blank line between the text and the signatures');
  const text = s.slice(0, split + 1);
  const lines = s.slice(split + 2, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) throw badNote(`more than ${MAX_SIGNATURES} signatures`);
  const signatures = lines.map((line, i) => {
    const [, name, b64] = /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$/u.exec(line) ?? [];
    if (name === undefined || b64 === undefined || !isValidKeyName(name)) throw badNote(`signature line ${i + 1} is malformed`);
    const raw = Buffer.from(b64, 'base64');
    if (raw.length < 5 || raw.toString('base64') !== b64) throw badNote(`signature line ${i + 1} has bad base64`);
    return { name, keyId: raw.subarray(0, 4), signature: raw.subarray(4) };
  });
  return { text, signatures };
}

/**
 * signed-note, Signatures: signatures from unknown keys (name and ID not both matching) are ignored; a
 * known key's signature must verify; at least one known key must have signed. Returns the verifier
 * that accepted the note.
 */
export function verifyNote(note: SignedNote, verifiers: readonly NoteVerifier[]): NoteVerifier {
  const text = Buffer.from(note.text, 'utf8');
  let accepted: NoteVerifier | undefined;
  for (const sig of note.signatures) {
    const v = verifiers.find((k) => k.name === sig.name && k.keyId.equals(sig.keyId));
    if (!v) continue;
    if (!v.check(text, sig.signature)) {
      throw new TlogVerifyError(TLOG_CODES.NOTE_SIGNATURE, `signed note: the signature by ${sig.name} does not verify`);
    }
    accepted ??= v;
  }
  if (!accepted) {
    const names = verifiers.map((v) => `${v.name} (${v.keyId.toString('hex')})`).join(', ');
    throw new TlogVerifyError(TLOG_CODES.NOTE_SIGNATURE, `signed note: no signature by a known key (${names})`);
  }
  return accepted;
}

/** A NoteVerifier for an ECDSA public key (signature type 0x02). */
export function ecdsaNoteVerifier(name: string, publicKey: KeyObject): NoteVerifier {
  return {
    name,
    keyId: ecdsaKeyId(publicKey),
    check: (text, signature) => signatureVerifies('sha256', text, publicKey, signature),
  };
}

/** Sign note text with an ECDSA private key; returns the whole signed note. */
export function signNoteEcdsa(text: string, name: string, privateKey: KeyObject, keyId: Buffer): string {
  if (!text.endsWith('\n')) throw new RangeError('note text must end with a newline');
  if (!isValidKeyName(name)) throw new RangeError(`invalid note key name ${JSON.stringify(name)}`);
  const sig = sign('sha256', Buffer.from(text, 'utf8'), privateKey);
  return `${text}\n${EM_DASH} ${name} ${Buffer.concat([keyId, sig]).toString('base64')}\n`;
}

/** The three mandatory lines of a checkpoint (tlog-checkpoint, Note text), plus extension lines. */
export interface Checkpoint {
  origin: string;
  size: number;
  rootHash: Hash;
  extensions: string[];
}

/** A checkpoint together with the signed note it came from. */
export interface SignedCheckpoint extends Checkpoint {
  /** The complete signed note, as stored and as put into bundles. */
  note: string;
}

export function formatCheckpoint(c: { origin: string; size: number; rootHash: Uint8Array; extensions?: readonly string[] }): string {
  const ext = (c.extensions ?? []).map((l) => `${l}\n`).join('');
  return `${c.origin}\n${c.size}\n${Buffer.from(c.rootHash).toString('base64')}\n${ext}`;
}

/** Parse checkpoint note text (tlog-checkpoint, Note text). */
export function parseCheckpoint(text: string): Checkpoint {
  const bad = (why: string) => new InputError(TLOG_CODES.BAD_CHECKPOINT, `checkpoint: ${why}`);
  if (!text.endsWith('\n')) throw bad('note text does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  const [origin, sizeLine, rootLine, ...extensions] = lines;
  if (origin === undefined || sizeLine === undefined || rootLine === undefined) throw bad('fewer than three lines');
  if (lines.some((l) => l === '')) throw bad('empty line in the note text');
  if (!/^(0|[1-9][0-9]*)$/.test(sizeLine)) throw bad(`tree size ${JSON.stringify(sizeLine)} is not a decimal number`);
  const size = Number(sizeLine);
  if (!Number.isSafeInteger(size)) throw bad(`tree size ${sizeLine} is too large`);
  const rootHash = Buffer.from(rootLine, 'base64');
  if (rootHash.length !== HASH_SIZE || rootHash.toString('base64') !== rootLine) throw bad('root hash is not base64 of 32 bytes');
  return { origin, size, rootHash, extensions };
}

/**
 * Parse a signed checkpoint, verify its signature with `verifier` (or any of several: each signature by
 * one of them must verify), and check the origin line.
 */
export function openSignedCheckpoint(note: string, verifier: NoteVerifier | readonly NoteVerifier[], expectedOrigin?: string): SignedCheckpoint {
  const signed = parseSignedNote(note);
  const c = parseCheckpoint(signed.text);
  verifyNote(signed, Array.isArray(verifier) ? verifier : [verifier as NoteVerifier]);
  if (expectedOrigin !== undefined && c.origin !== expectedOrigin) {
    throw new TlogVerifyError(TLOG_CODES.CHECKPOINT_ORIGIN, `checkpoint origin ${JSON.stringify(c.origin)} is not ${JSON.stringify(expectedOrigin)}`);
  }
  return { ...c, note };
}
