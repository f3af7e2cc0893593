/**
 * Which entries of a log record a subject digest: a bpfseal attestation (through the envelope kept
 * beside a local log, attest/envelopes.ts), or any JSON entry with a top-level `subjectDigest` (a
 * "sha256:<hex>" string or a list of them), which is how other writers of a log name their subject.
 */
import type { LogReader } from '../tlog/log-reader.js';
import { isRemoteLocation } from '../tlog/open-reader.js';
import { attestedSubjects } from './envelopes.js';

/** Indexes of the entries of `log` that record `digest` ("sha256:<hex>", lower case), in log order. */
export async function entriesWithSubject(log: LogReader, digest: string): Promise<number[]> {
  const found: number[] = [];
  const local = !isRemoteLocation(log.location); // remote logs serve no envelopes
  for await (const { index, entry } of log.entries()) {
    if (subjectDigests(entry).includes(digest) || (local && attestedSubjects(log.location, entry).includes(digest))) found.push(index);
  }
  return found;
}

/** Top-level "subjectDigest" of an entry: a "sha256:<hex>" string or a list of them. */
export function subjectDigests(entry: Buffer): string[] {
  if (entry[0] !== 0x7b) return []; // '{'
  try {
    const v = (JSON.parse(entry.toString('utf8')) as { subjectDigest?: unknown }).subjectDigest;
    if (typeof v === 'string') return [v.toLowerCase()];
    if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string').map((x) => x.toLowerCase());
  } catch {
    /* not JSON: no subject */
  }
  return [];
}
