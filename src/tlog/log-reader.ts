/**
 * Read-only access to a transparency log wherever it is: the local TransparencyLog (store.ts), or a
 * tiled log served over HTTPS or found in a directory (remote/client.ts). Methods may answer
 * synchronously (local) or with a promise (remote): callers `await` every call and iterate entries
 * with `for await`, which works for both.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import type { Hash } from './hash.js';
import { InputError, TLOG_CODES } from './errors.js';
import { ecdsaNoteVerifier, type NoteVerifier, type SignedCheckpoint } from './note.js';
import { ed25519NoteVerifier, noteVerifierFromVkey } from './note-keys.js';
import type { ConsistencyProof, InclusionProof } from './store.js';
import type { VerifyAllResult } from './storage.js';

export type Awaitable<T> = T | Promise<T>;

export interface LogEntry {
  index: number;
  entry: Buffer;
  leafHash: Hash;
}

export interface LogReader {
  /** The log directory or URL prefix. */
  readonly location: string;
  readonly origin: string;
  /** Tree size of the newest checkpoint this reader has verified (checkpoint() refreshes it). */
  readonly size: number;
  /** A verifier of the log's checkpoint signature (the first of `verifiers`). */
  readonly verifier: NoteVerifier;
  readonly verifiers: readonly NoteVerifier[];
  /** Fetch or re-read the checkpoint: signature and origin checked, never smaller, consistent with the last. */
  checkpoint(): Awaitable<SignedCheckpoint>;
  entry(index: number): Awaitable<Buffer>;
  entries(from?: number, to?: number): Iterable<LogEntry> | AsyncIterable<LogEntry>;
  leafHash(index: number): Awaitable<Hash>;
  rootHash(treeSize?: number): Awaitable<Hash>;
  proveInclusion(index: number, treeSize?: number): Awaitable<InclusionProof>;
  proveConsistency(oldSize: number, newSize?: number): Awaitable<ConsistencyProof>;
  verifyAll(): Awaitable<VerifyAllResult>;
  /** The log's `checkpoint.cosigned` note (witness/publish.ts), unverified; undefined when it has none. */
  cosignedCheckpoint?(): Awaitable<string | undefined>;
  /**
   * Another published file of the log, unverified (the caller checks it): `envelopes/<sha256>.json`,
   * the DSSE envelopes that audit checks against the hash in each entry. Undefined when absent.
   */
  readPublished?(path: string, maxBytes?: number): Awaitable<Buffer | undefined>;
  /** Unix seconds an entry was committed: local logs only, display only (not authenticated). */
  integratedTime?(index: number): number;
  close(): void;
}

/** A log key as users give it: a PEM public key (ECDSA P-256 or Ed25519), a vkey, or a KeyObject. */
export type LogKey = string | KeyObject;

/**
 * Note verifiers for log keys. PEM keys and KeyObjects sign as `origin` (the note key name of a
 * bpfseal log); a vkey carries its own name.
 */
export function logVerifiers(keys: readonly LogKey[], origin: string): NoteVerifier[] {
  return keys.map((k) => {
    if (typeof k === 'string' && !k.includes('-----BEGIN')) return noteVerifierFromVkey(k);
    let key: KeyObject;
    try {
      key = typeof k === 'string' ? createPublicKey(k) : k.type === 'private' ? createPublicKey(k) : k;
    } catch (e) {
      throw new InputError(TLOG_CODES.BAD_KEY, 'log key: not a PEM public key or a verifier key', { cause: e });
    }
    if (key.asymmetricKeyType === 'ed25519') return ed25519NoteVerifier(origin, key);
    if (key.asymmetricKeyType === 'ec') return ecdsaNoteVerifier(origin, key);
    throw new InputError(TLOG_CODES.BAD_KEY, `log key: ${key.asymmetricKeyType} keys do not sign checkpoints (ECDSA or Ed25519 do)`);
  });
}

/**
 * Published files besides tiles and checkpoints (log-reader.ts readPublished), all content-addressed
 * or signed, so a reader checks each itself: the DSSE envelopes an entry commits to
 * (`envelopes/<sha256>.json`), their signed entry timestamps (`envelopes/<sha256>.<index>.set`, signed
 * by the log key), and the attested plans (`plans/<sha256>.plan`) whose claims audit checks.
 */
export const PUBLISHED_PATH = /^(envelopes\/[0-9a-f]{64}\.(json|(0|[1-9][0-9]{0,15})\.set)|plans\/[0-9a-f]{64}\.plan)$/;
