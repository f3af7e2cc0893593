/**
 * A read-only client for a tiled log (c2sp.org/tlog-tiles): it fetches the signed checkpoint and only
 * the tiles an operation needs, authenticates every tile against the signed root before using it
 * (tiles/reader.ts), checks every entry against its authenticated leaf hash, and keeps full tiles and
 * bundles in an on-disk cache (cache.ts). A newer checkpoint is accepted only with a verified
 * consistency proof from the one held (computed from the new tree's tiles), so a log that shows this
 * client two histories is caught.
 *
 * Proof computations are synchronous (merkle.ts); they run twice: once over a RecordingReader to learn
 * which tiles they read, then — after fetching those in parallel — over the authenticating reader.
 */
import { HASH_SIZE, type Hash } from '../hash.js';
import { at } from '../../errors.js';
import { InputError, TLOG_CODES, TlogVerifyError } from '../errors.js';
import { LIMITS } from '../../fsx/read.js';
import { proveConsistency, proveInclusion, readHash, storedHashIndex, treeHash, verifyConsistency, verifyInclusion } from '../merkle.js';
import { openSignedCheckpoint, type NoteVerifier, type SignedCheckpoint } from '../note.js';
import type { ConsistencyProof, InclusionProof } from '../store.js';
import type { VerifyAllResult } from '../storage.js';
import { PUBLISHED_PATH, type LogEntry, type LogReader } from '../log-reader.js';
import { leafHash } from '../hash.js';
import { decodeBundle, encodeBundle, MAX_BUNDLE_BYTES } from '../tiles/bundle.js';
import { TreeCheck } from '../tiles/check.js';
import { ENTRIES, TILE_WIDTH, tileIn, tilePath, type TileRef } from '../tiles/path.js';
import { planTiles, RecordingReader, TileHashReader, tileKey, type TreeHashes } from '../tiles/reader.js';
import type { TileDiskCache } from './cache.js';
import type { LogFetcher } from './fetch.js';

/** Counters for the bench and tests: requests made, tiles fetched, cache hits. */
export interface ClientStats {
  requests: number;
  tiles: number;
  bundles: number;
  cacheHits: number;
}

/** Tiles prefetched for one synchronous pass. */
class MemorySource {
  mem = new Map<string, Buffer>();
  readTile(t: TileRef): Buffer {
    const d = this.mem.get(tileKey(t));
    if (!d) throw new RangeError(`tile ${tilePath(t)} was not prefetched`);
    return d;
  }
}

interface Fetched {
  data: Buffer;
  /** Path of the full tile it came from when that was read from the disk cache (to drop it if bad). */
  cachedPath?: string;
  /** A full tile fetched from the network, to cache once it is authenticated. */
  fresh?: { path: string; data: Buffer };
}

export class TiledLogClient implements LogReader {
  readonly stats: ClientStats = { requests: 0, tiles: 0, bundles: 0, cacheHits: 0 };
  private latest: SignedCheckpoint;
  private reader: TileHashReader;
  private readonly source = new MemorySource();

  constructor(
    private readonly fetcher: LogFetcher,
    readonly origin: string,
    readonly verifiers: readonly NoteVerifier[],
    first: SignedCheckpoint,
    private readonly cache: TileDiskCache | undefined,
    /** Whether the key came from the caller (true) or from the log itself (false: checks consistency only). */
    readonly keyPinned: boolean,
  ) {
    this.latest = first;
    this.reader = new TileHashReader(first.size, first.rootHash, this.source, fetcher.prefix);
  }

  get location(): string {
    return this.fetcher.prefix;
  }

  get verifier(): NoteVerifier {
    return at(this.verifiers, 0, 'log verifier'); // the first checkpoint verified with one of them, so there is one
  }

  get size(): number {
    return this.latest.size;
  }

  /** The raw bytes of a file of the log (full tiles from the cache when there). */
  private async file(path: string, max: number, useCache: boolean): Promise<Fetched | undefined> {
    const cached = useCache ? this.cache?.get(path, max) : undefined;
    if (cached) {
      this.stats.cacheHits++;
      return { data: cached, cachedPath: path };
    }
    this.stats.requests++;
    const data = await this.fetcher.get(path, max);
    return data && { data, fresh: { path, data } };
  }

  /** Tile t at its width: its own file, or the full tile's prefix when the partial is gone (tlog-tiles). */
  private async fetchTile(t: TileRef, useCache: boolean): Promise<Fetched> {
    const max = t.level === ENTRIES ? MAX_BUNDLE_BYTES : TILE_WIDTH * HASH_SIZE;
    if (t.level === ENTRIES) this.stats.bundles++;
    else this.stats.tiles++;
    const own = await this.file(tilePath(t), max, useCache);
    if (own) return own;
    const full = t.width < TILE_WIDTH ? await this.file(tilePath({ ...t, width: TILE_WIDTH }), max, useCache) : undefined;
    if (!full) throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${this.location}: ${tilePath(t)} is missing, though the checkpoint (size ${this.size}) needs it`);
    if (t.level !== ENTRIES) full.data = full.data.subarray(0, t.width * HASH_SIZE);
    else full.data = encodeBundle(decodeBundle(full.data, TILE_WIDTH, tilePath({ ...t, width: TILE_WIDTH })).slice(0, t.width));
    return full;
  }

  private save(fetched: readonly Fetched[]): void {
    for (const f of fetched) if (f.fresh) this.cache?.put(f.fresh.path, f.fresh.data);
  }

  /** Drop what came from the disk cache and say whether there was any (then the caller retries once). */
  private dropCached(fetched: readonly Fetched[]): boolean {
    const paths = fetched.filter((f) => f.cachedPath).map((f) => f.cachedPath!);
    for (const p of paths) this.cache?.drop(p);
    return paths.length > 0;
  }

  /** Run `fn` over authenticated hashes of `reader`'s tree, fetching the tiles it reads first. */
  private async withHashes<T>(reader: TileHashReader, fn: (r: TreeHashes) => T): Promise<T> {
    const rec = new RecordingReader();
    fn(rec);
    const plan = planTiles(reader.size, rec.indexes);
    for (let attempt = 0; ; attempt++) {
      const fetched: Fetched[] = [];
      const mem = new Map<string, Buffer>();
      await Promise.all(plan.map(async (t) => {
        const known = reader.peek(t);
        if (known) return void mem.set(tileKey(t), known);
        const f = await this.fetchTile(t, attempt === 0);
        fetched.push(f);
        mem.set(tileKey(t), f.data);
      }));
      this.source.mem = mem;
      try {
        const r = fn(reader);
        this.save(fetched);
        return r;
      } catch (e) {
        if (!(e instanceof TlogVerifyError) || attempt > 0 || !this.dropCached(fetched)) throw e;
      } finally {
        this.source.mem = new Map();
      }
    }
  }

  /** Fetch the checkpoint again; a larger one must be consistent with the one held (proof from tiles). */
  async checkpoint(): Promise<SignedCheckpoint> {
    const note = await this.fetcher.get('checkpoint', LIMITS.checkpoint);
    if (!note) throw new InputError(TLOG_CODES.NOT_FOUND, `${this.location}: no checkpoint`);
    const c = openSignedCheckpoint(note.toString('utf8'), this.verifiers, this.origin);
    const old = this.latest;
    if (c.size < old.size) throw new TlogVerifyError(TLOG_CODES.SHRUNK, `${this.location}: checkpoint went back from size ${old.size} to ${c.size}`);
    if (c.size === old.size && !c.rootHash.equals(old.rootHash)) throw new TlogVerifyError(TLOG_CODES.CONSISTENCY, `${this.location}: two checkpoints of size ${c.size} with different roots`);
    if (c.size > old.size) {
      const reader = new TileHashReader(c.size, c.rootHash, this.source, this.location);
      const proof = await this.withHashes(reader, (r) => proveConsistency(old.size, c.size, r));
      verifyConsistency(old.size, c.size, old.rootHash, c.rootHash, proof);
      this.reader = reader;
    }
    this.latest = c;
    return c;
  }

  /** The log's `checkpoint.cosigned`, if it serves one (unverified: witness/publish.ts checks it). */
  async cosignedCheckpoint(): Promise<string | undefined> {
    return (await this.fetcher.get('checkpoint.cosigned', LIMITS.checkpoint))?.toString('utf8');
  }

  /** A published file (log-reader.ts readPublished): envelopes/<sha256>.json. Unverified. */
  async readPublished(path: string, maxBytes: number = LIMITS.state): Promise<Buffer | undefined> {
    if (!PUBLISHED_PATH.test(path)) throw new InputError(TLOG_CODES.BAD_ARGUMENT, `${path}: not a published log file`);
    return this.fetcher.get(path, maxBytes);
  }

  private checkIndex(index: number, size = this.size): void {
    if (!Number.isSafeInteger(index) || index < 0 || index >= size) throw new InputError(TLOG_CODES.INDEX_RANGE, `index ${index} is outside the log (size ${size})`);
  }

  private checkSize(treeSize: number): void {
    if (!Number.isSafeInteger(treeSize) || treeSize < 0 || treeSize > this.size) throw new InputError(TLOG_CODES.INDEX_RANGE, `tree size ${treeSize} is outside the log (size ${this.size})`);
  }

  async leafHash(index: number): Promise<Hash> {
    this.checkIndex(index);
    return this.withHashes(this.reader, (r) => readHash(r, storedHashIndex(0, index)));
  }

  async rootHash(treeSize: number = this.size): Promise<Hash> {
    this.checkSize(treeSize);
    return this.withHashes(this.reader, (r) => treeHash(treeSize, r));
  }

  async proveInclusion(index: number, treeSize: number = this.size): Promise<InclusionProof> {
    this.checkSize(treeSize);
    this.checkIndex(index, treeSize);
    const p = await this.withHashes(this.reader, (r) => ({ leafHash: readHash(r, storedHashIndex(0, index)), hashes: proveInclusion(index, treeSize, r), rootHash: treeHash(treeSize, r) }));
    verifyInclusion(p.leafHash, index, treeSize, p.hashes, p.rootHash);
    return { index, treeSize, ...p };
  }

  async proveConsistency(oldSize: number, newSize: number = this.size): Promise<ConsistencyProof> {
    this.checkSize(newSize);
    if (!Number.isSafeInteger(oldSize) || oldSize < 0 || oldSize > newSize) throw new InputError(TLOG_CODES.INDEX_RANGE, `old size ${oldSize} is not between 0 and ${newSize}`);
    const p = await this.withHashes(this.reader, (r) => ({ hashes: proveConsistency(oldSize, newSize, r), oldRoot: treeHash(oldSize, r), newRoot: treeHash(newSize, r) }));
    verifyConsistency(oldSize, newSize, p.oldRoot, p.newRoot, p.hashes);
    return { oldSize, newSize, ...p };
  }

  /** Bundle n of the held tree, every entry checked against its authenticated leaf hash. */
  private async bundle(n: number): Promise<Buffer[]> {
    const hashes = await this.withHashes(this.reader, (r) => r.readTile(0, n));
    for (let attempt = 0; ; attempt++) {
      const f = await this.fetchTile(tileIn(this.size, ENTRIES, n), attempt === 0);
      const entries = decodeBundle(f.data, hashes.length / HASH_SIZE, `${this.location}/${tilePath(tileIn(this.size, ENTRIES, n))}`);
      const bad = entries.findIndex((e, k) => !leafHash(e).equals(hashes.subarray(k * HASH_SIZE, (k + 1) * HASH_SIZE)));
      if (bad < 0) {
        this.save([f]);
        return entries;
      }
      if (attempt > 0 || !this.dropCached([f])) throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${this.location}: entry ${n * TILE_WIDTH + bad} does not hash to its leaf hash in the tiles`);
    }
  }

  async entry(index: number): Promise<Buffer> {
    this.checkIndex(index);
    const n = Math.floor(index / TILE_WIDTH);
    // index < size (checked), and bundle n holds every entry of the held tree from n * 256 on.
    return Buffer.from(at(await this.bundle(n), index - n * TILE_WIDTH, 'bundle entry'));
  }

  async *entries(from = 0, to: number = this.size): AsyncGenerator<LogEntry> {
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || to > this.size || from < 0 || from > to) {
      throw new InputError(TLOG_CODES.INDEX_RANGE, `entries ${from}..${to} are outside the log (size ${this.size})`);
    }
    for (let n = Math.floor(from / TILE_WIDTH); n * TILE_WIDTH < to; n++) {
      const bundle = await this.bundle(n);
      for (let k = Math.max(0, from - n * TILE_WIDTH); k < bundle.length && n * TILE_WIDTH + k < to; k++) {
        const entry = at(bundle, k, 'bundle entry');
        yield { index: n * TILE_WIDTH + k, entry: Buffer.from(entry), leafHash: leafHash(entry) };
      }
    }
  }

  /** Recompute the whole tree from every bundle (tiles/check.ts), a few bundles in flight at a time. */
  async verifyAll(): Promise<VerifyAllResult> {
    const c = await this.checkpoint();
    for (let attempt = 0; ; attempt++) {
      const check = new TreeCheck(c.size, c.rootHash, this.location);
      const fromCache: Fetched[] = []; // only their paths are kept, to drop them if the check fails
      const step = async (n: number) => {
        const refs = [...check.tilesFor(n), tileIn(c.size, ENTRIES, n)];
        const got = await Promise.all(refs.map((t) => this.fetchTile(t, attempt === 0)));
        for (const f of got) if (f.cachedPath) fromCache.push({ data: Buffer.alloc(0), cachedPath: f.cachedPath });
        return { refs, got };
      };
      const WINDOW = 8;
      const inflight = new Map<number, ReturnType<typeof step>>();
      try {
        for (let n = 0; n < check.steps; n++) {
          for (let k = n; k < Math.min(check.steps, n + WINDOW); k++) if (!inflight.has(k)) inflight.set(k, step(k));
          const { refs, got } = await inflight.get(n)!;
          inflight.delete(n);
          // got[i] is refs[i]'s (Promise.all); the last is the bundle.
          const tiles = new Map(refs.slice(0, -1).map((t, i) => [tileKey(t), at(got, i, 'fetched tile').data]));
          const bundleRef = at(refs, refs.length - 1, 'bundle');
          check.step(n, decodeBundle(at(got, refs.length - 1, 'fetched bundle').data, bundleRef.width, tilePath(bundleRef)), tiles);
          this.save(got); // checked against the entries; the cache is re-authenticated on every use anyway
        }
        const rootHash = check.finish();
        return { size: c.size, rootHash, entriesBytes: check.entryBytes, pendingBytes: 0 };
      } catch (e) {
        await Promise.allSettled(inflight.values());
        if (!(e instanceof TlogVerifyError) || attempt > 0 || !this.dropCached(fromCache)) throw e;
      }
    }
  }

  close(): void {
    this.source.mem = new Map();
  }
}
