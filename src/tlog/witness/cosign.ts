/**
 * C2SP tlog-cosignature, Ed25519 "cosignature/v1" (https://c2sp.org/tlog-cosignature):
 *
 *   signature line  — <witness name> base64(key ID || timestamped_signature)
 *   key ID          SHA-256(<name> || "\n" || 0x04 || 32-byte Ed25519 public key)[:4]
 *   timestamped_signature = u64 BE timestamp (POSIX seconds) || Ed25519 signature (64 bytes)
 *   signed message  "cosignature/v1\n" || "time <timestamp>\n" || the checkpoint note text
 *
 * A v1 cosignature says: as of that time, the largest consistent tree this witness has seen for the
 * log named by the origin line has this root. Witness keys are given as vkeys
 * (<name>+<key ID>+base64(0x04 || key)) or as {name, key}; signer keys in Go's note format with type
 * 0x04 (PRIVATE+KEY+<name>+<key ID>+base64(0x04 || seed)).
 */
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { signatureVerifies } from '../../sig.js';
import { InputError, TLOG_CODES, TlogVerifyError } from '../errors.js';
import { isValidKeyName, parseCheckpoint, parseSignedNote, type SignedNote } from '../note.js';
import { SIG_COSIGNATURE_V1, ed25519FromRaw, ed25519Raw, formatSignerKey, formatVerifierKey, noteKeyId, parseSignerKey, parseVerifierKey, signatureLine, type SignerKey } from '../note-keys.js';

/** A witness as a policy names it: its name (the note key name) and its Ed25519 public key. */
export interface WitnessKey {
  name: string;
  /** KeyObject, PEM, base64 of the 32 raw bytes, or a whole vkey (then its name must be `name`). */
  key: KeyObject | string;
}

/** Cosignatures in the future by more than this are not accepted (clock skew allowance). */
export const MAX_FUTURE_SECONDS = 600;

export function cosignedMessage(noteText: string, timestamp: number): Buffer {
  return Buffer.from(`cosignature/v1\ntime ${timestamp}\n${noteText}`, 'utf8');
}

/** A new witness key: the signer key text (keep it private) and the vkey to put in policies. */
export function generateWitnessKey(name: string): { signer: string; vkey: string } {
  if (!isValidKeyName(name)) throw new InputError(TLOG_CODES.BAD_ARGUMENT, `witness name ${JSON.stringify(name)}: no spaces or '+'`);
  const { privateKey } = generateKeyPairSync('ed25519');
  return { signer: formatSignerKey(name, SIG_COSIGNATURE_V1, privateKey), vkey: formatVerifierKey(name, SIG_COSIGNATURE_V1, ed25519Raw(privateKey)) };
}

/** A witness signer key from its text; must be a cosignature (type 0x04) key. */
export function parseWitnessSigner(text: string): SignerKey {
  const k = parseSignerKey(text);
  if (k.type !== SIG_COSIGNATURE_V1) throw new InputError(TLOG_CODES.BAD_KEY, `${k.name}: a note signing key (type 0x01), not a witness cosigning key (type 0x04)`);
  return k;
}

/** The witness's name and public key from a vkey (type 0x04). */
export function parseWitnessVkey(vkey: string): WitnessKey & { key: KeyObject } {
  const k = parseVerifierKey(vkey);
  if (k.type !== SIG_COSIGNATURE_V1) throw new InputError(TLOG_CODES.BAD_KEY, `verifier key ${k.name} is not a cosignature/v1 key (type 0x04)`);
  return { name: k.name, key: k.key };
}

function witnessPublicKey(w: WitnessKey): KeyObject {
  if (typeof w.key !== 'string') return w.key.type === 'private' ? createPublicKey(w.key) : w.key;
  if (w.key.includes('-----BEGIN')) return createPublicKey(w.key);
  if (w.key.includes('+')) {
    const v = parseWitnessVkey(w.key);
    if (v.name !== w.name) throw new InputError(TLOG_CODES.BAD_KEY, `witness ${w.name}: its vkey names ${v.name}`);
    return v.key;
  }
  return ed25519FromRaw(Buffer.from(w.key, 'base64'));
}

export interface Cosignature {
  /** The signature line, ending in a newline. */
  line: string;
  /** The checkpoint note with the line added. */
  note: string;
  timestamp: number;
}

/**
 * Cosign a checkpoint note (its text is what is signed; existing signatures are kept). `origin` is the
 * log the caller verified the checkpoint for: the checkpoint must be that log's. The caller must have
 * checked the log's signature and consistency first (witness.ts does).
 */
export function cosign(checkpointNote: string, witnessKey: SignerKey, origin: string, timestamp = Math.floor(Date.now() / 1000)): Cosignature {
  const note = parseSignedNote(checkpointNote);
  const c = parseCheckpoint(note.text);
  if (c.origin !== origin) throw new TlogVerifyError(TLOG_CODES.CHECKPOINT_ORIGIN, `checkpoint origin ${JSON.stringify(c.origin)} is not ${JSON.stringify(origin)}`);
  if (witnessKey.type !== SIG_COSIGNATURE_V1) throw new InputError(TLOG_CODES.BAD_KEY, `${witnessKey.name}: not a cosignature/v1 key`);
  if (!Number.isSafeInteger(timestamp) || timestamp <= 0) throw new RangeError('cosignature timestamp must be a positive integer');
  const ts = Buffer.alloc(8);
  ts.writeBigUInt64BE(BigInt(timestamp));
  const sig = sign(null, cosignedMessage(note.text, timestamp), witnessKey.privateKey);
  const line = signatureLine(witnessKey.name, noteKeyId(witnessKey.name, SIG_COSIGNATURE_V1, ed25519Raw(witnessKey.publicKey)), Buffer.concat([ts, sig]));
  return { line, note: checkpointNote + line, timestamp };
}

export interface CosignatureCheck {
  /** Witnesses with a valid cosignature (each counted once). */
  valid: string[];
  /** Witnesses without one. */
  missing: string[];
  /** Witnesses whose cosignature line (name and key ID theirs) does not verify, or is dated in the future. */
  invalid: string[];
  /** Cosignature time per valid witness (POSIX seconds). */
  timestamps: Record<string, number>;
  threshold: number;
  /** valid.length >= threshold and nothing invalid. */
  ok: boolean;
}

function checkLine(note: SignedNote, w: WitnessKey, key: KeyObject, keyId: Buffer, now: number): 'invalid' | 'missing' | number {
  let result: 'invalid' | 'missing' | number = 'missing';
  for (const s of note.signatures) {
    if (s.name !== w.name || !s.keyId.equals(keyId)) continue; // signed-note: unknown keys are ignored
    if (s.signature.length !== 8 + 64) return 'invalid';
    const timestamp = Number(s.signature.readBigUInt64BE(0));
    const ok = signatureVerifies(null, cosignedMessage(note.text, timestamp), key, s.signature.subarray(8));
    if (!ok || timestamp > now + MAX_FUTURE_SECONDS) return 'invalid';
    result = typeof result === 'number' ? Math.max(result, timestamp) : timestamp;
  }
  return result;
}

/**
 * Which of `witnesses` cosigned this checkpoint note (cosignature/v1), and whether `threshold` of them
 * did. Lines from unknown keys are ignored; a line under a known witness's name and key ID must verify.
 */
export function verifyCosignatures(checkpointNote: string, witnesses: readonly WitnessKey[], threshold: number, opts: { now?: number } = {}): CosignatureCheck {
  const note = parseSignedNote(checkpointNote);
  parseCheckpoint(note.text);
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const out: CosignatureCheck = { valid: [], missing: [], invalid: [], timestamps: {}, threshold, ok: false };
  const seen = new Set<string>();
  for (const w of witnesses) {
    if (seen.has(w.name)) continue;
    seen.add(w.name);
    const key = witnessPublicKey(w);
    const r = checkLine(note, w, key, noteKeyId(w.name, SIG_COSIGNATURE_V1, ed25519Raw(key)), now);
    if (typeof r === 'number') {
      out.valid.push(w.name);
      out.timestamps[w.name] = r;
    } else out[r].push(w.name);
  }
  out.ok = out.invalid.length === 0 && out.valid.length >= threshold;
  return out;
}
