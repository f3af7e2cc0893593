/**
 * The local log as a Sigstore transparency log: Rekor-v1-shaped TransparencyLogEntry values for
 * bundles, a Witness for @sigstore/sign's bundle builders, the TrustedRoot `tlogs` item that makes
 * @sigstore/verify accept them, and the checks @sigstore/verify leaves out (shared/facts/node.md: it
 * verifies the proof against the checkpoint but ignores the proof's own rootHash/treeSize and the
 * checkpoint origin).
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { verifyData } from '../trust/keys.js';
import { envelopeToJSON, type TransparencyLogEntry } from '@sigstore/bundle';
import type { SignatureBundle, VerificationMaterial, Witness } from '@sigstore/sign';
import { InputError, TLOG_CODES, TlogVerifyError } from '../tlog/errors.js';
import { leafHash } from '../tlog/hash.js';
import { publicKeyInfo } from '../tlog/keys.js';
import { verifyInclusion } from '../tlog/merkle.js';
import { ecdsaNoteVerifier, openSignedCheckpoint, type SignedCheckpoint } from '../tlog/note.js';
import { canonicalJson, dsseEntryBody, rekorKind } from './rekor-body.js';
import type { TransparencyLog } from '../tlog/store.js';
import type { TrustPolicy } from '../trust/policy.js';

export { canonicalJson } from './rekor-body.js';

/** The TrustedRoot `tlogs` item for this log, in protobuf-JSON form (TrustedRoot.fromJSON reads it). */
export interface TrustedRootTlog {
  baseUrl: string;
  hashAlgorithm: 'SHA2_256';
  publicKey: { rawBytes: string; keyDetails: 'PKIX_ECDSA_P256_SHA_256'; validFor: { start: string } };
  logId: { keyId: string };
}

/**
 * @sigstore/verify finds the checkpoint's key by key ID and by matching the note key name (our origin)
 * inside baseUrl, so the base URL is the origin with a scheme.
 */
export function trustedRootTlog(log: Pick<TransparencyLog, 'origin' | 'publicKey' | 'created'>): TrustedRootTlog {
  return {
    baseUrl: `https://${log.origin}`,
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: log.publicKey.der.toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: log.created.toISOString() } },
    logId: { keyId: log.publicKey.logId.toString('base64') },
  };
}

/** Rekor v1 SignedEntryTimestamp payload: canonical JSON of body, integratedTime, logID, logIndex. */
function setPayload(body: Buffer, integratedTime: number, logId: Buffer, logIndex: number): Buffer {
  return Buffer.from(canonicalJson({ body: body.toString('base64'), integratedTime, logID: logId.toString('hex'), logIndex }), 'utf8');
}

export interface TlogEntryOptions {
  /** Add a SignedEntryTimestamp signed by the log key (needs the private key). Default true. */
  inclusionPromise?: boolean;
  /** A checkpoint the caller already holds (an append's), instead of re-reading the current one. */
  checkpoint?: SignedCheckpoint;
}

/**
 * The Rekor-v1-shaped entry for log entry `index`, proven against the log's current checkpoint. The
 * entry's bytes must be a Rekor body (JSON with kind, apiVersion and spec).
 */
export function tlogEntry(log: TransparencyLog, index: number, opts: TlogEntryOptions = {}): TransparencyLogEntry {
  const checkpoint = opts.checkpoint ?? log.checkpoint();
  const body = log.entry(index);
  const kv = rekorKind(body);
  if (!kv) throw new InputError(TLOG_CODES.BAD_ARGUMENT, `entry ${index} is not a Rekor entry body (JSON with kind, apiVersion, spec)`);
  const proof = log.proveInclusion(index, checkpoint.size);
  if (!proof.rootHash.equals(checkpoint.rootHash)) throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${log.dir}: stored hashes disagree with the checkpoint`);
  const integratedTime = log.integratedTime(index);
  const pub = log.publicKey;
  const withPromise = opts.inclusionPromise ?? true;
  return {
    logIndex: String(index),
    logId: { keyId: pub.logId },
    kindVersion: { kind: kv.kind, version: kv.version },
    integratedTime: String(integratedTime),
    inclusionPromise: withPromise ? { signedEntryTimestamp: log.signWithLogKey(setPayload(body, integratedTime, pub.logId, index)) } : undefined,
    inclusionProof: {
      logIndex: String(index),
      rootHash: proof.rootHash,
      treeSize: String(proof.treeSize),
      hashes: proof.hashes,
      checkpoint: { envelope: checkpoint.note },
    },
    canonicalizedBody: body,
  };
}

/**
 * A @sigstore/sign Witness backed by the local log: checks the DSSE signature, appends the Rekor "dsse"
 * 0.0.1 body, and returns the entry with its inclusion proof, checkpoint and SET.
 */
export class LocalLogWitness implements Witness {
  constructor(
    private readonly log: TransparencyLog,
    private readonly opts: TlogEntryOptions = {},
  ) {}

  async testify(content: SignatureBundle, publicKey: string): Promise<VerificationMaterial> {
    if (content.$case !== 'dsseEnvelope') {
      throw new InputError(TLOG_CODES.WITNESS_UNSUPPORTED, `witness: only DSSE envelopes are logged, not ${content.$case}`);
    }
    const envelope = content.dsseEnvelope;
    const body = dsseEntryBody(envelope, JSON.stringify(envelopeToJSON(envelope)), publicKey);
    const { index, checkpoint } = await this.log.append(body);
    return { tlogEntries: [tlogEntry(this.log, index, { ...this.opts, checkpoint })] };
  }
}

/** A tlog entry as bundle JSON holds it (base64 strings). Protobuf JSON leaves out default values ("0", empty lists): those fields are optional here. */
export interface SerializedTlogEntry {
  logIndex?: string;
  logId: { keyId: string };
  kindVersion: { kind: string; version: string };
  integratedTime?: string;
  inclusionPromise?: { signedEntryTimestamp: string };
  inclusionProof?: { logIndex?: string; rootHash: string; treeSize: string; hashes?: string[]; checkpoint: { envelope: string } };
  canonicalizedBody: string;
}

/** A field as @sigstore/bundle holds it (Buffer) or as bundle JSON holds it (base64 string). */
function bytes(v: Buffer | string): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'base64') : Buffer.from(v);
}

function int(v: string | undefined, what: string): number {
  v ??= '0';
  const n = Number(v);
  if (!/^(0|[1-9][0-9]*)$/.test(v) || !Number.isSafeInteger(n)) throw new InputError(TLOG_CODES.BAD_ARGUMENT, `tlog entry: ${what} ${JSON.stringify(v)} is not an index`);
  return n;
}

export interface CheckedEntry {
  index: number;
  treeSize: number;
  rootHash: Buffer;
  integratedTime: number;
}

/**
 * Everything about a bundle's tlog entry that can be checked with the log's public key alone: log ID,
 * checkpoint signature and origin, proof index/size/root equal to the entry's and the checkpoint's,
 * the inclusion proof itself (RFC 9162 §2.1.3.2) for SHA-256(0x00 || canonicalizedBody), and the SET
 * when present. Throws TlogVerifyError (exit 1) on any mismatch.
 */
export function checkEntryAgainstLog(entry: TransparencyLogEntry | SerializedTlogEntry, logPublicKey: KeyObject | string, expectedOrigin: string): CheckedEntry {
  const key = typeof logPublicKey === 'string' ? createPublicKey(logPublicKey) : logPublicKey;
  const pub = publicKeyInfo(key);
  const fail = (why: string) => new TlogVerifyError(TLOG_CODES.INCLUSION, `tlog entry: ${why}`);
  if (!entry.logId || !bytes(entry.logId.keyId).equals(pub.logId)) throw fail('log ID is not this log key');
  const proof = entry.inclusionProof;
  if (!proof) throw fail('no inclusion proof');
  const checkpoint = openSignedCheckpoint(proof.checkpoint?.envelope ?? '', ecdsaNoteVerifier(expectedOrigin, key), expectedOrigin);
  const index = int(entry.logIndex, 'logIndex');
  const treeSize = int(proof.treeSize, 'treeSize');
  if (int(proof.logIndex, 'inclusionProof.logIndex') !== index) throw fail('inclusion proof index differs from the entry index');
  if (treeSize !== checkpoint.size) throw fail(`proof tree size ${treeSize} is not the checkpoint's ${checkpoint.size}`);
  const rootHash = bytes(proof.rootHash);
  if (!rootHash.equals(checkpoint.rootHash)) throw fail("proof root hash is not the checkpoint's");
  const body = bytes(entry.canonicalizedBody);
  verifyInclusion(leafHash(body), index, treeSize, (proof.hashes ?? []).map(bytes), checkpoint.rootHash);
  const integratedTime = int(entry.integratedTime, 'integratedTime');
  if (entry.inclusionPromise) {
    const sig = bytes(entry.inclusionPromise.signedEntryTimestamp);
    const payload = setPayload(body, integratedTime, pub.logId, index);
    if (!verifyData(key, payload, sig)) throw new TlogVerifyError(TLOG_CODES.INCLUSION, 'tlog entry: the signed entry timestamp does not verify');
  }
  return { index, treeSize, rootHash, integratedTime };
}


/**
 * What @sigstore/verify leaves out for our own logs: the checkpoint's origin and signature under the
 * trusted log key, and the proof's index, size and root against that checkpoint.
 */
export function checkLocalLogEntry(entry: TransparencyLogEntry, policy: TrustPolicy): void {
  const id = entry.logId?.keyId.toString('hex');
  const log = policy.logs.find((l) => l.keyId === id);
  if (log) checkEntryAgainstLog(entry, log.key, log.origin);
}
