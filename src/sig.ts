/**
 * The one "does this signature verify" primitive: node:crypto's verify, where a signature or key that
 * node cannot even parse (a malformed DER ECDSA signature, a key of another kind) is a signature that
 * does not verify, never a crash. Below every folder (tlog, attest and trust use it).
 */
import { verify, type KeyObject } from 'node:crypto';

/** `algorithm` as node's verify takes it: 'sha256', or null for Ed25519 (RFC 8032 PureEdDSA). */
export function signatureVerifies(algorithm: 'sha256' | null, data: Uint8Array, key: KeyObject, signature: Uint8Array): boolean {
  try {
    return verify(algorithm, data, key, signature);
  } catch {
    return false;
  }
}
