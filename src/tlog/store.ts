/**
 * The on-disk transparency log: open (creating it on first use), append, prove, verify. The layout
 * (c2sp.org/tlog-tiles), the locking protocol and the crash rules are in README.md; the Merkle math is
 * in merkle.ts and tiles/.
 */
import { existsSync, realpathSync, type PathLike } from 'node:fs';
import { join, resolve } from 'node:path';
import { sign, type KeyObject } from 'node:crypto';
import { InputError, TLOG_CODES, TlogVerifyError } from './errors.js';
import { FILES, readBounded } from './files.js';
import { LIMITS } from '../fsx/read.js';
import { checkPrivateDir } from '../fsx/dirs.js';
import { EMPTY_ROOT, type Hash } from './hash.js';
import { LEGACY_FORMAT, readConfig, readLogVkey, readPrivateKey, readPublicKey, type LogPublicKey } from './keys.js';
import { noteVerifierFromVkey } from './note-keys.js';
import { checkpointSigner, initialise } from './create.js';
import { FileLock, mutexFor } from '../fsx/lock.js';
import { CommitSignal } from './signal.js';
import { at } from '../errors.js';
import { proveConsistency, proveInclusion, readHash, storedHashIndex, treeHash, verifyConsistency, verifyInclusion } from './merkle.js';
import { ecdsaNoteVerifier, openSignedCheckpoint, type NoteVerifier, type SignedCheckpoint } from './note.js';
import { LogStorage, type VerifyAllResult } from './storage.js';
import { PUBLISHED_PATH, type LogReader } from './log-reader.js';
import { appendBatch, flushPending, type AppendManyResult, type Committer } from './commit.js';

export type { AppendManyResult } from './commit.js';
export type { VerifyAllResult } from './storage.js';

export interface OpenOptions {
  /** Origin (checkpoint first line and note key name) for a new log; must match an existing log's. */
  origin?: string;
  /** Create the log when the directory holds none (default true). */
  create?: boolean;
}

export interface AppendResult {
  index: number;
  leafHash: Hash;
  checkpoint: SignedCheckpoint;
}

export interface InclusionProof {
  index: number;
  treeSize: number;
  leafHash: Hash;
  rootHash: Hash;
  /** RFC 6962 §2.1.1 audit path, bottom-up. */
  hashes: Hash[];
}

export interface ConsistencyProof {
  oldSize: number;
  newSize: number;
  oldRoot: Hash;
  newRoot: Hash;
  /** RFC 6962 §2.1.2 consistency proof. */
  hashes: Hash[];
}

/** Default log directory: $BPFSEAL_LOG, else `attestations` under the current directory. */
export function defaultLogDir(): string {
  return resolve(process.env.BPFSEAL_LOG || 'attestations');
}

export class TransparencyLog implements LogReader {
  readonly dir: string;
  readonly origin: string;
  readonly publicKey: LogPublicKey;
  /** When the log key was made (start of its validity in a TrustedRoot). */
  readonly created: Date;
  /** The ECDSA checkpoint verifier (the key Sigstore TrustedRoots name). */
  readonly verifier: NoteVerifier;
  /** The log's Ed25519 verifier key (c2sp.org/signed-note vkey), when it has one. */
  readonly vkey: string | undefined;
  /** Every key the log signs checkpoints with (ECDSA, then Ed25519 when present). */
  readonly verifiers: NoteVerifier[];
  private readonly storage: LogStorage;
  private readonly committer: Committer;
  private latest: SignedCheckpoint;
  private privateKey: KeyObject | undefined;

  /** Use openLog(). */
  constructor(dir: string) {
    this.dir = dir;
    const config = readConfig(dir);
    if (config.format === LEGACY_FORMAT) {
      throw new InputError(TLOG_CODES.OLD_LAYOUT, `${dir}: the log is in the first bpfseal layout; convert it with \`bpfseal log migrate --log ${dir}\``, { file: dir });
    }
    this.origin = config.origin;
    this.created = new Date(config.created);
    this.publicKey = readPublicKey(dir);
    this.verifier = ecdsaNoteVerifier(this.origin, this.publicKey.key);
    this.vkey = readLogVkey(dir);
    this.verifiers = this.vkey ? [this.verifier, noteVerifierFromVkey(this.vkey)] : [this.verifier];
    this.storage = new LogStorage(dir);
    this.committer = {
      storage: this.storage,
      commitLock: new FileLock(join(dir, FILES.commitLock)),
      appendLock: new FileLock(join(dir, FILES.appendLock)),
      mutex: mutexFor(realpathSync(dir)),
      signal: new CommitSignal(dir),
      origin: this.origin,
      sign: checkpointSigner(dir, this.origin, this.publicKey, () => this.logKey()),
    };
    try {
      this.latest = this.checkpoint();
      this.checkCovered(this.latest);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** LogReader: where the log is. */
  get location(): string {
    return this.dir;
  }

  /** Size of the newest checkpoint this handle has seen (refreshed by append and checkpoint()). */
  get size(): number {
    return this.latest.size;
  }

  /** Tile and bundle files this handle has read (the bench reports tiles per proof). */
  get tileReads(): number {
    return this.storage.tiles.reads;
  }

  /** Re-read the checkpoint and verify its signature and origin. */
  checkpoint(): SignedCheckpoint {
    const c = openSignedCheckpoint(this.storage.checkpointText(), this.verifiers, this.origin);
    if (!this.latest || c.size >= this.latest.size) this.latest = c;
    else throw new TlogVerifyError(TLOG_CODES.SHRUNK, `${this.dir}: checkpoint went back from size ${this.latest.size} to ${c.size}`);
    return c;
  }

  /** The log's private key, read once per handle. */
  private logKey(): KeyObject {
    this.privateKey ??= readPrivateKey(this.dir, this.publicKey);
    return this.privateKey;
  }

  /** ECDSA-P256/SHA-256 signature with the log key (signed entry timestamps). */
  signWithLogKey(data: Buffer): Buffer {
    return sign('sha256', data, this.logKey());
  }

  /** The right-edge tiles exist and give the checkpoint's root: O(log n) tile reads. */
  private checkCovered(c: SignedCheckpoint): void {
    if (c.size === 0 ? !c.rootHash.equals(EMPTY_ROOT) : !treeHash(c.size, this.storage.reader(c)).equals(c.rootHash)) {
      throw this.storage.corrupt(`the tiles do not give the checkpoint's root at size ${c.size}`);
    }
  }

  /** Append one entry; resolves once a durable checkpoint covers it. */
  async append(entry: Uint8Array): Promise<AppendResult> {
    const r = await this.appendMany([entry]);
    return { index: r.first, leafHash: at(r.leafHashes, 0, 'leaf hash'), checkpoint: r.checkpoint }; // one per entry appended
  }

  /**
   * Append a batch: contiguous indexes, committed atomically with one sync round. Concurrent calls
   * (in this process or others) are committed together when they overlap.
   */
  async appendMany(entries: readonly Uint8Array[]): Promise<AppendManyResult> {
    const r = await appendBatch(this.committer, entries);
    if (r.checkpoint.size > this.latest.size) this.latest = r.checkpoint;
    return r;
  }

  /** The newest checkpoint that carries witness cosignatures (witness/publish.ts), unverified. */
  cosignedCheckpoint(): string | undefined {
    return readBounded(join(this.dir, FILES.cosigned), LIMITS.checkpoint)?.toString('utf8');
  }

  /** A published file of the log directory (log-reader.ts readPublished), e.g. envelopes/<sha256>.json. */
  readPublished(path: string, maxBytes: number = LIMITS.state): Buffer | undefined {
    if (!PUBLISHED_PATH.test(path)) throw new InputError(TLOG_CODES.BAD_ARGUMENT, `${path}: not a published log file`);
    return readBounded(join(this.dir, path), maxBytes);
  }

  /** Commit every complete pending record (appends of writers that died before committing). */
  async flush(): Promise<SignedCheckpoint> {
    const c = await flushPending(this.committer);
    if (c.size > this.latest.size) this.latest = c;
    return c;
  }

  private checkIndex(index: number, size = this.size): void {
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
      throw new InputError(TLOG_CODES.INDEX_RANGE, `index ${index} is outside the log (size ${size})`);
    }
  }

  private checkSize(treeSize: number): void {
    if (!Number.isSafeInteger(treeSize) || treeSize < 0 || treeSize > this.size) {
      throw new InputError(TLOG_CODES.INDEX_RANGE, `tree size ${treeSize} is outside the log (size ${this.size})`);
    }
  }

  /** Entry bytes at `index`; they must hash to the authenticated leaf hash. */
  entry(index: number): Buffer {
    this.checkIndex(index);
    return this.storage.entries(this.latest, index, index + 1).next().value!.entry;
  }

  /** Entries [from, to) in order, streamed bundle by bundle (default: the whole log). */
  entries(from = 0, to: number = this.size): Generator<{ index: number; entry: Buffer; leafHash: Hash }> {
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || to > this.size || from < 0 || from > to) {
      throw new InputError(TLOG_CODES.INDEX_RANGE, `entries ${from}..${to} are outside the log (size ${this.size})`);
    }
    return this.storage.entries(this.latest, from, to);
  }

  leafHash(index: number): Hash {
    this.checkIndex(index);
    return readHash(this.storage.reader(this.latest), storedHashIndex(0, index));
  }

  /** Unix seconds at which entry `index` was committed. Display only: no signature covers it (times.ts). */
  integratedTime(index: number): number {
    this.checkIndex(index);
    return this.storage.time(index);
  }

  /** MTH of the first `treeSize` entries (any size up to the current one). */
  rootHash(treeSize: number = this.size): Hash {
    this.checkSize(treeSize);
    return treeHash(treeSize, this.storage.reader(this.latest));
  }

  /** Audit path for `index` in the tree of `treeSize` (default: the current checkpoint). Self-checked. */
  proveInclusion(index: number, treeSize: number = this.size): InclusionProof {
    this.checkSize(treeSize);
    this.checkIndex(index, treeSize);
    const r = this.storage.reader(this.latest);
    const leafHash = readHash(r, storedHashIndex(0, index));
    const hashes = proveInclusion(index, treeSize, r);
    const rootHash = treeHash(treeSize, r);
    verifyInclusion(leafHash, index, treeSize, hashes, rootHash);
    return { index, treeSize, leafHash, rootHash, hashes };
  }

  /** Consistency proof between two sizes (newSize defaults to the current checkpoint). Self-checked. */
  proveConsistency(oldSize: number, newSize: number = this.size): ConsistencyProof {
    this.checkSize(newSize);
    if (!Number.isSafeInteger(oldSize) || oldSize < 0 || oldSize > newSize) {
      throw new InputError(TLOG_CODES.INDEX_RANGE, `old size ${oldSize} is not between 0 and ${newSize}`);
    }
    const r = this.storage.reader(this.latest);
    const hashes = proveConsistency(oldSize, newSize, r);
    const oldRoot = treeHash(oldSize, r);
    const newRoot = treeHash(newSize, r);
    verifyConsistency(oldSize, newSize, oldRoot, newRoot, hashes);
    return { oldSize, newSize, oldRoot, newRoot, hashes };
  }

  /**
   * Recompute the whole tree from the entry bundles (streaming, bounded memory) and compare it with
   * every tile and the signed checkpoint.
   */
  verifyAll(): VerifyAllResult {
    return this.storage.verify(this.checkpoint());
  }

  close(): void {
    this.storage.close();
    this.committer?.commitLock.close();
    this.committer?.appendLock.close();
    this.committer?.signal.close();
  }
}

/** Is there a log in `dir` (checkpoint and config present)? */
export function logExists(dir: PathLike): boolean {
  const path = resolve(dir.toString());
  return existsSync(join(path, FILES.checkpoint)) && existsSync(join(path, FILES.config));
}

/** Open the log in `dir`, creating it (key, configuration, empty checkpoint) unless create is false. */
export function openLog(dir: PathLike, opts: OpenOptions = {}): TransparencyLog {
  const path = resolve(dir.toString());
  if (!logExists(path)) {
    if (opts.create === false) throw new InputError(TLOG_CODES.NOT_FOUND, `${path}: no transparency log here, so no attestation log to read (bpfseal sign creates one; give --log <dir>)`, { file: path });
    initialise(path, opts.origin);
  }
  checkPrivateDir(path, 'the log directory', TLOG_CODES.UNSAFE, { owner: opts.create !== false });
  const log = new TransparencyLog(path);
  if (opts.origin !== undefined && opts.origin !== log.origin) {
    log.close();
    throw new InputError(TLOG_CODES.ORIGIN_MISMATCH, `${path}: the log's origin is ${log.origin}, not ${opts.origin}`, { file: path });
  }
  return log;
}
