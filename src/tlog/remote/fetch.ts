/**
 * Getting the static files of a tiled log (c2sp.org/tlog-tiles): over HTTPS (http:// only to a
 * loopback address, for tests and local mirrors) with Node's built-in fetch, or from a directory
 * (file:// URLs). Every response is size-limited while it is read (a server's Content-Length is not
 * trusted, and gzip is limited after decoding); nothing fetched is trusted (client.ts authenticates).
 */
import { isIP } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError, TLOG_CODES, TlogVerifyError } from '../errors.js';
import { readBounded } from '../files.js';

/** Where a log's files come from. `get` returns undefined for a file the log does not have (404). */
export interface LogFetcher {
  /** The log prefix, for messages. */
  readonly prefix: string;
  get(path: string, maxBytes: number): Promise<Buffer | undefined>;
  /** Requests made (for tiles-per-proof figures). */
  requests: number;
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === 'localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h === '::1';
}

export interface FetchOptions {
  /** Per-request timeout (default 30 s). */
  timeoutMs?: number;
  /** Allow http:// to non-loopback hosts (default false: data is authenticated, but privacy is not). */
  allowHttp?: boolean;
  /** Replace the global fetch (tests). */
  fetch?: typeof fetch;
}

async function readLimited(res: Response, max: number, url: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  const tooBig = () => new TlogVerifyError(TLOG_CODES.CORRUPT, `${url}: response is larger than the ${max} bytes this file can have`);
  if (res.headers.get('content-encoding') === null && declared > max) throw tooBig();
  if (!res.body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    total += chunk.length;
    if (total > max) {
      await res.body.cancel().catch(() => undefined);
      throw tooBig();
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks, total);
}

export class HttpFetcher implements LogFetcher {
  requests = 0;
  readonly prefix: string;
  private readonly base: URL;

  constructor(prefix: string, private readonly opts: FetchOptions = {}) {
    this.base = new URL(prefix.endsWith('/') ? prefix : `${prefix}/`);
    this.prefix = this.base.href;
    if (this.base.protocol === 'http:' && !opts.allowHttp && !isLoopback(this.base.hostname)) {
      throw new InputError(TLOG_CODES.BAD_ARGUMENT, `${prefix}: plain http is only used for loopback addresses; use https://`);
    }
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') throw new InputError(TLOG_CODES.BAD_ARGUMENT, `${prefix}: not an http(s) URL`);
  }

  async get(path: string, maxBytes: number): Promise<Buffer | undefined> {
    const url = new URL(path, this.base).href;
    this.requests++;
    let res: Response;
    try {
      res = await (this.opts.fetch ?? fetch)(url, { signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000), headers: { 'user-agent': 'bpfseal-tlog' } });
    } catch (e) {
      throw new InputError(TLOG_CODES.REMOTE, `${url}: cannot fetch (${(e as Error).message})`, { cause: e });
    }
    if (res.status === 404 || res.status === 410) {
      await res.body?.cancel().catch(() => undefined);
      return undefined;
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new InputError(TLOG_CODES.REMOTE, `${url}: HTTP ${res.status}`);
    }
    return readLimited(res, maxBytes, url);
  }
}

/** A tiled log in a local directory (file:// URLs, or a directory without a bpfseal log.json). */
export class FileFetcher implements LogFetcher {
  requests = 0;
  readonly prefix: string;

  constructor(private readonly dir: string) {
    this.prefix = dir;
  }

  static fromUrl(url: string): FileFetcher {
    return new FileFetcher(fileURLToPath(url));
  }

  async get(path: string, maxBytes: number): Promise<Buffer | undefined> {
    this.requests++;
    if (path.split('/').some((p) => p === '..' || p === '')) throw new RangeError(`bad log path ${path}`);
    return readBounded(join(this.dir, path), maxBytes);
  }
}
