/**
 * Rekor v1 "dsse" 0.0.1 entry bodies, as Rekor canonicalizes them (sigstore/rekor
 * pkg/types/dsse/v0.0.1/entry.go, then JSON Canonicalization Scheme, RFC 8785):
 *
 *   {"apiVersion":"0.0.1","kind":"dsse","spec":{
 *      "envelopeHash":{"algorithm":"sha256","value":hex(SHA-256(envelope JSON as submitted))},
 *      "payloadHash":{"algorithm":"sha256","value":hex(SHA-256(payload))},
 *      "signatures":[{"signature":base64 sig,"verifier":base64(PEM public key or certificate)}]}}
 *
 * The envelope JSON is what @sigstore/sign would submit to Rekor: JSON.stringify(envelopeToJSON(env)).
 * Like Rekor, the witness accepts an envelope only when every signature verifies with the given key
 * (DSSE v1 signs PAE(payloadType, payload), https://github.com/secure-systems-lab/dsse/blob/master/protocol.md).
 */
import { X509Certificate, createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { dsse } from '@sigstore/core';
import { verifyData } from '../trust/keys.js';
import { InputError, TLOG_CODES, TlogVerifyError } from '../tlog/errors.js';

export type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

/** RFC 8785 for the values used here: keys sorted by UTF-16 code units, no whitespace. */
export function canonicalJson(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)); // UTF-16 code units, as sort() compares
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  if (typeof v === 'number' && !Number.isSafeInteger(v)) throw new RangeError('canonicalJson: only safe integers are supported');
  return JSON.stringify(v);
}

export interface DsseEnvelopeLike {
  payloadType: string;
  payload: Buffer;
  signatures: { sig: Buffer; keyid: string }[];
}

/** DSSE v1 pre-authentication encoding: "DSSEv1" SP len(type) SP type SP len(body) SP body (@sigstore/core's, which the verifier uses too). */
export function preAuthEncoding(payloadType: string, payload: Buffer): Buffer {
  return dsse.preAuthEncoding(payloadType, payload);
}

/** The signer's key from a PEM public key or a PEM certificate (keyless signing). */
export function verifierKey(pem: string): KeyObject {
  try {
    return pem.includes('BEGIN CERTIFICATE') ? new X509Certificate(pem).publicKey : createPublicKey(pem);
  } catch (e) {
    throw new InputError(TLOG_CODES.BAD_KEY, 'witness: the signer key is neither a PEM public key nor a PEM certificate', { cause: e });
  }
}

/** Rekor's canonical form of the verifier: SPKI PEM for keys, the PEM itself for certificates. */
function canonicalVerifier(pem: string, key: KeyObject): string {
  return pem.includes('BEGIN CERTIFICATE') ? pem : key.export({ type: 'spki', format: 'pem' }).toString();
}

function sha256hex(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** The canonicalized "dsse" 0.0.1 body for an envelope signed by `publicKeyPem`; checks the signature. */
export function dsseEntryBody(envelope: DsseEnvelopeLike, envelopeJson: string, publicKeyPem: string): Buffer {
  const [signature, ...more] = envelope.signatures;
  if (signature === undefined || more.length > 0) {
    throw new InputError(TLOG_CODES.WITNESS_UNSUPPORTED, `witness: DSSE envelopes with ${envelope.signatures.length} signatures are not supported (need exactly 1)`);
  }
  const key = verifierKey(publicKeyPem);
  const sig = signature.sig;
  if (!verifyData(key, preAuthEncoding(envelope.payloadType, envelope.payload), sig)) {
    throw new TlogVerifyError(TLOG_CODES.DSSE_SIGNATURE, 'witness: the DSSE signature does not verify with the given key; not logged');
  }
  const body: Json = {
    apiVersion: '0.0.1',
    kind: 'dsse',
    spec: {
      envelopeHash: { algorithm: 'sha256', value: sha256hex(envelopeJson) },
      payloadHash: { algorithm: 'sha256', value: sha256hex(envelope.payload) },
      signatures: [{ signature: sig.toString('base64'), verifier: Buffer.from(canonicalVerifier(publicKeyPem, key)).toString('base64') }],
    },
  };
  return Buffer.from(canonicalJson(body), 'utf8');
}

/** kind and apiVersion of a Rekor-shaped entry body, or undefined when the entry is not one. */
export function rekorKind(body: Buffer): { kind: string; version: string } | undefined {
  try {
    const v = JSON.parse(body.toString('utf8')) as { kind?: unknown; apiVersion?: unknown; spec?: unknown };
    if (typeof v.kind === 'string' && typeof v.apiVersion === 'string' && v.spec && typeof v.spec === 'object') {
      return { kind: v.kind, version: v.apiVersion };
    }
  } catch {
    /* not JSON */
  }
  return undefined;
}
