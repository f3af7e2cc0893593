/**
 * openLogReader(location): a LogReader (log-reader.ts) for a log given as
 *   https://... or http://<loopback>/...   a tiled log served by any static server (remote/client.ts)
 *   file:///dir                            a tiled log in a directory, read as a remote one
 *   a path                                 a bpfseal log directory (store.ts), or else a tiled log in it
 * Remote logs are checked against the keys given; without keys, the log's own log.vkey / log.pub are
 * fetched (`keyPinned: false`: that proves the log consistent with itself, not whose log it is).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { at } from '../errors.js';
import { InputError, TLOG_CODES } from './errors.js';
import { LIMITS } from '../fsx/read.js';
import { FILES } from './files.js';
import { logVerifiers, type LogKey, type LogReader } from './log-reader.js';
import { openSignedCheckpoint, parseSignedNote, type NoteVerifier } from './note.js';
import { defaultCacheRoot, TileDiskCache } from './remote/cache.js';
import { TiledLogClient } from './remote/client.js';
import { FileFetcher, HttpFetcher, type FetchOptions, type LogFetcher } from './remote/fetch.js';
import { logExists, openLog } from './store.js';

export interface OpenReaderOptions extends FetchOptions {
  /** The log's keys (PEM or vkey). Required to trust a remote log's identity. */
  keys?: readonly LogKey[];
  /** Expected origin (default: the checkpoint's own origin line, checked against the key name). */
  origin?: string;
  /** Tile cache root (default defaultCacheRoot()); false for none. Never used for local directories. */
  cacheDir?: string | false;
}

export function isRemoteLocation(location: string): boolean {
  return /^(https?|file):\/\//i.test(location);
}

/** The log's own keys, fetched from it (trust on first use: reported as keyPinned false). */
async function ownKeys(fetcher: LogFetcher, origin: string): Promise<NoteVerifier[]> {
  const keys: LogKey[] = [];
  const pub = await fetcher.get(FILES.publicKey, LIMITS.key);
  if (pub) keys.push(pub.toString('utf8'));
  const vkey = await fetcher.get(FILES.vkey, LIMITS.key);
  if (vkey) keys.push(vkey.toString('utf8').trim());
  if (!keys.length) throw new InputError(TLOG_CODES.BAD_KEY, `${fetcher.prefix}: the log publishes no ${FILES.publicKey} or ${FILES.vkey}; give its key (--log-key)`);
  return logVerifiers(keys, origin);
}

async function openClient(fetcher: LogFetcher, opts: OpenReaderOptions, cache: boolean): Promise<TiledLogClient> {
  const note = (await fetcher.get(FILES.checkpoint, LIMITS.checkpoint))?.toString('utf8');
  if (note === undefined) throw new InputError(TLOG_CODES.NOT_FOUND, `${fetcher.prefix}: no checkpoint there, so no tiled log`);
  const origin = opts.origin ?? at(parseSignedNote(note).text.split('\n'), 0, 'note line'); // checked against the checkpoint below
  const verifiers = opts.keys?.length ? logVerifiers(opts.keys, origin) : await ownKeys(fetcher, origin);
  const first = openSignedCheckpoint(note, verifiers, origin);
  const diskCache = cache && opts.cacheDir !== false ? new TileDiskCache(opts.cacheDir ?? defaultCacheRoot(), fetcher.prefix) : undefined;
  return new TiledLogClient(fetcher, origin, verifiers, first, diskCache, Boolean(opts.keys?.length));
}

export async function openLogReader(location: string, opts: OpenReaderOptions = {}): Promise<LogReader> {
  if (/^https?:\/\//i.test(location)) return openClient(new HttpFetcher(location, opts), opts, true);
  if (/^file:\/\//i.test(location)) return openClient(FileFetcher.fromUrl(location), opts, false);
  const dir = resolve(location);
  // A bpfseal log directory has log.json; any other directory with a checkpoint is read as tiles.
  if (!logExists(dir) && existsSync(join(dir, FILES.checkpoint))) return openClient(new FileFetcher(dir), opts, false);
  const log = openLog(dir, { create: false }); // (no log at all: its TLOG_NOT_FOUND error)
  try {
    if (opts.origin !== undefined && opts.origin !== log.origin) throw new InputError(TLOG_CODES.ORIGIN_MISMATCH, `${dir}: the log's origin is ${log.origin}, not ${opts.origin}`);
    if (opts.keys?.length) openSignedCheckpoint(log.checkpoint().note, logVerifiers(opts.keys, log.origin), log.origin);
  } catch (e) {
    log.close();
    throw e;
  }
  return log;
}
