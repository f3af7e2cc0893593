/**
 * Signed DSSE envelopes kept beside an attestation log, content-addressed (envelopes/<sha256>.json).
 * The log entry commits to the hash, so a stored envelope is trusted only if it still hashes to it.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurable } from '../fsx/durable.js';
import { parseStatement } from '../attest/statement.js';

export const ENVELOPES = 'envelopes';

function envelopePath(logDir: string, hashHex: string): string {
  return join(logDir, ENVELOPES, `${hashHex}.json`);
}

/** Store an envelope's JSON (as hashed into the log entry) and return its SHA-256 (hex). */
export function saveEnvelope(logDir: string, envelopeJson: string): string {
  const hash = createHash('sha256').update(envelopeJson).digest('hex');
  const path = envelopePath(logDir, hash);
  if (!existsSync(path)) {
    mkdirSync(join(logDir, ENVELOPES), { recursive: true });
    writeFileDurable(path, envelopeJson);
  }
  return hash;
}

/** The envelope JSON whose SHA-256 is `hashHex`, or undefined when it is missing or does not match. */
export function loadEnvelope(logDir: string, hashHex: string): string | undefined {
  if (!/^[0-9a-f]{64}$/.test(hashHex)) return undefined;
  let text: string;
  try {
    text = readFileSync(envelopePath(logDir, hashHex), 'utf8');
  } catch {
    return undefined;
  }
  return createHash('sha256').update(text).digest('hex') === hashHex ? text : undefined;
}

/** Plan digests ("sha256:<hex>") attested by a Rekor "dsse" entry of this log, via its stored envelope. */
export function attestedSubjects(logDir: string, entry: Buffer): string[] {
  try {
    const body = JSON.parse(entry.toString('utf8')) as { kind?: string; spec?: { envelopeHash?: { value?: string } } };
    if (body.kind !== 'dsse') return [];
    const env = loadEnvelope(logDir, body.spec?.envelopeHash?.value ?? '');
    if (!env) return [];
    const payload = Buffer.from((JSON.parse(env) as { payload: string }).payload, 'base64');
    return [`sha256:${parseStatement(payload).subject[0].digest.sha256}`];
  } catch {
    return [];
  }
}
