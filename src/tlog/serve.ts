/**
 * A minimal static server for a log directory, serving only what c2sp.org/tlog-tiles publishes —
 * `checkpoint`, `tile/...` — plus the public keys (`log.pub`, `log.vkey`), `checkpoint.cosigned`, and
 * the published files of log-reader.ts PUBLISHED_PATH: the signed DSSE envelopes
 * `envelopes/<sha256>.json` (content-addressed; the log commits to the hash), their signed entry
 * timestamps `envelopes/<sha256>.<index>.set`, and the attested plans `plans/<sha256>.plan`
 * (content-addressed), which a remote `audit` needs to check each attestation's claims.
 * Nothing else in the directory (log.key, log.ed25519, pending, locks, state) is ever served.
 * Headers follow the spec: text/plain for the checkpoint with a short cache lifetime, immutable
 * application/octet-stream for tiles, gzip for entry bundles when the client accepts it.
 * For tests, the bench and small deployments (`bpfseal log serve`); any static server can do the same
 * with an allow-list (docs/tlog.md).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { FILES, readBounded } from './files.js';
import { LIMITS } from '../fsx/read.js';
import { MAX_BUNDLE_BYTES } from './tiles/bundle.js';
import { ENTRIES, parseTilePath } from './tiles/path.js';
import { PUBLISHED_PATH } from './log-reader.js';

export interface LogServer {
  url: string;
  /** Paths requested (tests count tiles per proof with it). */
  requests: string[];
  close(): Promise<void>;
}

const PUBLIC: Record<string, string> = {
  [FILES.checkpoint]: 'text/plain; charset=utf-8',
  [FILES.cosigned]: 'text/plain; charset=utf-8',
  [FILES.publicKey]: 'text/plain; charset=utf-8',
  [FILES.vkey]: 'text/plain; charset=utf-8',
};

function handle(dir: string, req: IncomingMessage, res: ServerResponse, log: string[]): void {
  const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '');
  log.push(path);
  const tile = path.startsWith('tile/') ? parseTilePath(path) : undefined;
  const envelope = PUBLISHED_PATH.test(path);
  const type = tile ? 'application/octet-stream' : envelope ? (path.endsWith('.plan') ? 'application/octet-stream' : 'application/json') : PUBLIC[path];
  if ((req.method !== 'GET' && req.method !== 'HEAD') || !type) {
    res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 404 : 405).end();
    return;
  }
  let body: Buffer | undefined;
  try {
    body = readBounded(join(dir, path), tile ? MAX_BUNDLE_BYTES : envelope ? (path.endsWith('.plan') ? LIMITS.plan : LIMITS.state) : 1 << 20);
  } catch {
    body = undefined;
  }
  if (!body) {
    res.writeHead(404).end();
    return;
  }
  const headers: Record<string, string> = { 'content-type': type, 'cache-control': tile || envelope ? 'public, max-age=31536000, immutable' : 'no-cache, max-age=5' };
  if (tile?.level === ENTRIES && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
    body = gzipSync(body);
    headers['content-encoding'] = 'gzip';
  }
  headers['content-length'] = String(body.length);
  res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : body);
}

/** Serve `dir` read-only on host:port (default 127.0.0.1, a free port). */
export function serveLog(dir: string, opts: { host?: string; port?: number } = {}): Promise<LogServer> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    try {
      handle(dir, req, res, requests);
    } catch {
      if (!res.headersSent) res.writeHead(400);
      res.end(); // e.g. a malformed %-escape in the path
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      const a = server.address() as AddressInfo;
      const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
      resolve({
        url: `http://${host}:${a.port}/`,
        requests,
        close: () => new Promise<void>((done) => {
          server.closeAllConnections();
          server.close(() => done());
        }),
      });
    });
  });
}
