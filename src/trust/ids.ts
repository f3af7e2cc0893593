/**
 * The one canonical form of the identifiers a policy names: key ids (SHA-256 of the DER
 * SubjectPublicKeyInfo) and plan digests, 64 lowercase hex digits; `sha256:` prefix and any case
 * accepted on input. Anything else is an error, never a value that silently matches nothing.
 */
import { InputError } from '../errors.js';

const HEX64 = /^(?:sha256:)?([0-9a-fA-F]{64})$/;

function hex(s: string, what: string): string {
  const [, digits] = HEX64.exec(s) ?? [];
  if (digits === undefined) {
    const bare = s.replace(/^sha256:/, '');
    const short = /^[0-9a-fA-F]{8,63}$/.test(bare);
    throw new InputError('ID_INVALID', `${what} ${JSON.stringify(s)} is not a full SHA-256 (64 hex digits${short ? `; it has ${bare.length}: use the full id, as \`bpfseal verify --json\` prints it` : ''})`);
  }
  return digits.toLowerCase();
}

/** Key id: 64 lowercase hex digits. */
export function canonicalKeyId(s: string): string {
  return hex(s, 'key id');
}

/** Plan digest: "sha256:" + 64 lowercase hex digits. */
export function canonicalDigest(s: string): string {
  return `sha256:${hex(s, 'digest')}`;
}
