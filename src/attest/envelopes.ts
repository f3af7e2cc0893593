/**
 * What is kept beside an attestation log so that `audit` can re-verify every entry from the log
 * directory alone, each content-addressed or checked against the tree:
 *   envelopes/<sha256>.json        the signed DSSE envelope (the entry's envelopeHash commits to it)
 *   envelopes/<sha256>.<index>.set the log's signed entry timestamp for that entry (signed by the log
 *                                  key, so the entry's time is authenticated; keyless certificates are
 *                                  checked at that time)
 *   plans/<sha256>.plan            the plan the statement's subject names (its digest is the file name)
 * A stored file is trusted only if it still hashes to its name (or its signature verifies): anyone who
 * can write the directory can delete, but not forge.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileDurable } from '../fsx/durable.js';
import { ensureDirectory } from '../fsx/dirs.js';
import { readInput } from '../fsx/read.js';
import { parseStatement, planSubject } from './statement.js';

export const ENVELOPES = 'envelopes';
export const PLANS = 'plans';

const HEX64 = /^[0-9a-f]{64}$/;

function envelopePath(logDir: string, hashHex: string): string {
  return join(logDir, ENVELOPES, `${hashHex}.json`);
}

function saveAddressed(dir: string, name: string, data: string | Buffer): void {
  const path = join(dir, name);
  if (existsSync(path)) return;
  ensureDirectory(dir, 0o755);
  writeFileDurable(path, data);
}

/** Store an envelope's JSON (as hashed into the log entry) and return its SHA-256 (hex). */
export function saveEnvelope(logDir: string, envelopeJson: string): string {
  const hash = createHash('sha256').update(envelopeJson).digest('hex');
  saveAddressed(join(logDir, ENVELOPES), `${hash}.json`, envelopeJson);
  return hash;
}

/** The envelope JSON whose SHA-256 is `hashHex`, or undefined when it is missing or does not match. */
export function loadEnvelope(logDir: string, hashHex: string): string | undefined {
  if (!HEX64.test(hashHex)) return undefined;
  let text: string;
  try {
    text = readInput(envelopePath(logDir, hashHex), { kind: 'logRecord', noFollow: true }).toString('utf8');
  } catch {
    return undefined;
  }
  return createHash('sha256').update(text).digest('hex') === hashHex ? text : undefined;
}

export interface StoredTimestamp {
  logIndex: number;
  integratedTime: number;
  /** base64 DER ECDSA signature of the Rekor SET payload (rekor.ts). */
  signedEntryTimestamp: string;
}

/** Keep the signed entry timestamp of entry `index` (for envelope `hashHex`). */
export function saveTimestamp(logDir: string, hashHex: string, t: StoredTimestamp): void {
  saveAddressed(join(logDir, ENVELOPES), `${hashHex}.${t.logIndex}.set`, JSON.stringify(t));
}

/** The stored signed entry timestamp of entry `index`, unverified (the bundle verifier checks it). */
export function loadTimestamp(logDir: string, hashHex: string, index: number): StoredTimestamp | undefined {
  if (!HEX64.test(hashHex)) return undefined;
  try {
    // Never through a symlink, never a FIFO, bounded (fsx/read.ts).
    const v = JSON.parse(readInput(join(logDir, ENVELOPES, `${hashHex}.${index}.set`), { kind: 'key', noFollow: true }).toString('utf8')) as StoredTimestamp;
    if (v.logIndex !== index || !Number.isSafeInteger(v.integratedTime) || typeof v.signedEntryTimestamp !== 'string') return undefined;
    return v;
  } catch {
    return undefined;
  }
}

/** Keep the plan bytes an attestation names (file name: their SHA-256). */
export function savePlan(logDir: string, planBytes: Buffer): string {
  const hash = createHash('sha256').update(planBytes).digest('hex');
  saveAddressed(join(logDir, PLANS), `${hash}.plan`, planBytes);
  return hash;
}

/** The stored plan whose SHA-256 is `hashHex`, or undefined when missing or changed. */
export function loadPlan(logDir: string, hashHex: string): Buffer | undefined {
  if (!HEX64.test(hashHex)) return undefined;
  try {
    const b = readInput(join(logDir, PLANS, `${hashHex}.plan`), { kind: 'plan', noFollow: true });
    return createHash('sha256').update(b).digest('hex') === hashHex ? b : undefined;
  } catch {
    return undefined;
  }
}

/** Plan digests ("sha256:<hex>") attested by a Rekor "dsse" entry of this log, via its stored envelope. */
export function attestedSubjects(logDir: string, entry: Buffer): string[] {
  try {
    const body = JSON.parse(entry.toString('utf8')) as { kind?: string; spec?: { envelopeHash?: { value?: string } } };
    if (body.kind !== 'dsse') return [];
    const env = loadEnvelope(logDir, body.spec?.envelopeHash?.value ?? '');
    if (!env) return [];
    const payload = Buffer.from((JSON.parse(env) as { payload: string }).payload, 'base64');
    return [`sha256:${planSubject(parseStatement(payload)).digest.sha256}`];
  } catch {
    return [];
  }
}
