/**
 * A local, read-only mirror of a remote tiled log, so that `audit --log <url>` runs the same audit as
 * for a local directory (audit/attestations.ts reads a TransparencyLog synchronously).
 *
 * Nothing is taken on trust from the server: the checkpoint is verified with the policy's key for that
 * origin (openLogReader with pinned keys), every entry is authenticated by the client against that
 * checkpoint (tiles), the mirror's tiles are rebuilt from those entries here and must give the signed
 * root, envelopes and plans are content-addressed (kept only when their SHA-256 is the one the entry or
 * statement names), and signed entry timestamps are checked by the audit with the log key like local
 * ones. Commit times are not published by tlog-tiles, so a mirror has none (audit says so).
 *
 * The mirror lives at a stable path per URL under the cache (`<cache>/mirrors/<sha256(url)[:16]>`), so
 * the audit state remembers it across runs (rewrite and replacement detection); each run rebuilds it
 * into a fresh directory and swaps it in, and full tiles come from the tile cache after the first run.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ENVELOPES, PLANS } from '../attest/envelopes.js';
import { ensureDirectory } from '../fsx/dirs.js';
import { LIMITS } from '../fsx/read.js';
import { InputError, TLOG_CODES, TlogVerifyError } from '../tlog/errors.js';
import { FILES } from '../tlog/files.js';
import { LOG_FORMAT } from '../tlog/keys.js';
import type { LogReader } from '../tlog/log-reader.js';
import { writeTilesOf } from '../tlog/migrate.js';
import { openSignedCheckpoint } from '../tlog/note.js';
import { defaultCacheRoot } from '../tlog/remote/cache.js';

export interface MirrorResult {
  /** The mirror directory (a bpfseal log directory without private keys). */
  dir: string;
  url: string;
  origin: string;
  size: number;
  envelopes: number;
  plans: number;
  /** Entries whose envelope or plan the server does not publish (the audit reports each). */
  missing: number;
}

export function mirrorDir(url: string, cacheRoot = defaultCacheRoot()): string {
  return join(dirname(cacheRoot), 'mirrors', createHash('sha256').update(url).digest('hex').slice(0, 16));
}

const HEX64 = /^[0-9a-f]{64}$/;

/** A mirror is a cache rebuilt on every run: plain writes (a torn mirror is rebuilt, never trusted unverified). */
function put(path: string, data: string | Buffer): void {
  writeFileSync(path, data, { mode: 0o644 });
}
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** The plan digest a logged envelope's statement names, if it parses as one. */
function subjectDigest(envelopeJson: string): string | undefined {
  try {
    const payload = Buffer.from((JSON.parse(envelopeJson) as { payload: string }).payload, 'base64');
    const d = (JSON.parse(payload.toString('utf8')) as { subject?: { digest?: { sha256?: unknown } }[] }).subject?.[0]?.digest?.sha256;
    return typeof d === 'string' && HEX64.test(d) ? d : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Mirror `reader` (a remote log opened with the policy's key for its origin) into `dir`: entries,
 * tiles rebuilt from them, the verified checkpoint (and the cosigned one, for the witness check),
 * the log's public key, and the envelopes, timestamps and plans its entries name.
 */
export async function mirrorLog(reader: LogReader, logKey: KeyObject, dir: string): Promise<MirrorResult> {
  const cp = await reader.checkpoint();
  ensureDirectory(dirname(dir), 0o700, TLOG_CODES.IO);
  const tmp = mkdtempSync(join(dirname(dir), '.mirror-'));
  try {
    put(join(tmp, FILES.config), `${JSON.stringify({ format: LOG_FORMAT, origin: reader.origin, created: new Date(0).toISOString() }, null, 2)}\n`);
    put(join(tmp, FILES.publicKey), logKey.export({ type: 'spki', format: 'pem' }).toString());
    for (const d of [FILES.tiles, ENVELOPES, PLANS]) ensureDirectory(join(tmp, d), 0o755, TLOG_CODES.IO);
    let envelopes = 0, plans = 0, missing = 0;
    const get = async (path: string, max: number) => (reader.readPublished ? await reader.readPublished(path, max) : undefined);
    /** The published files entry `index` names, fetched as the entry streams by (no entry is kept). */
    const published = async (index: number, body: Buffer): Promise<void> => {
      let hash: unknown;
      try {
        const b = JSON.parse(body.toString('utf8')) as { kind?: string; spec?: { envelopeHash?: { value?: unknown } } };
        hash = b.kind === 'dsse' ? b.spec?.envelopeHash?.value : undefined;
      } catch {
        return; // the audit reports an entry that is not a Rekor body
      }
      if (typeof hash !== 'string' || !HEX64.test(hash)) return;
      const env = await get(`${ENVELOPES}/${hash}.json`, LIMITS.logRecord);
      if (!env || sha256(env) !== hash) {
        missing++;
        return;
      }
      put(join(tmp, ENVELOPES, `${hash}.json`), env);
      envelopes++;
      const set = await get(`${ENVELOPES}/${hash}.${index}.set`, LIMITS.key);
      if (set) put(join(tmp, ENVELOPES, `${hash}.${index}.set`), set);
      const digest = subjectDigest(env.toString('utf8'));
      if (!digest || existsSync(join(tmp, PLANS, `${digest}.plan`))) return;
      const plan = await get(`${PLANS}/${digest}.plan`, LIMITS.plan);
      if (plan && sha256(plan) === digest) {
        put(join(tmp, PLANS, `${digest}.plan`), plan);
        plans++;
      } else missing++;
    };
    const { root } = await writeTilesOf(tmp, (async function* () {
      for await (const e of reader.entries(0, cp.size)) {
        await published(e.index, e.entry);
        yield { index: e.index, entry: e.entry };
      }
    })(), cp.size);
    if (cp.size > 0 && !root.equals(cp.rootHash)) {
      throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${reader.location}: the entries served give root ${root.toString('base64')}, not the signed ${cp.rootHash.toString('base64')}`);
    }
    put(join(tmp, FILES.checkpoint), cp.note);
    const cosigned = await reader.cosignedCheckpoint?.();
    if (cosigned) {
      try {
        openSignedCheckpoint(cosigned, reader.verifiers, reader.origin); // signed by the log itself, or not kept
        put(join(tmp, FILES.cosigned), cosigned);
      } catch {
        /* a cosigned checkpoint the log did not sign is no evidence; the witness check says none */
      }
    }
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    return { dir, url: reader.location, origin: reader.origin, size: cp.size, envelopes, plans, missing };
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    if (e instanceof InputError || e instanceof TlogVerifyError) throw e;
    throw new InputError(TLOG_CODES.IO, `${reader.location}: cannot mirror the log into ${dir}: ${(e as Error).message}`, { file: dir, cause: e });
  }
}
