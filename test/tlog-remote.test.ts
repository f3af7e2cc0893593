/**
 * Reading a tiled log from a loopback HTTP server (src/tlog/serve.ts) with the remote client
 * (src/tlog/remote/client.ts via openLogReader): proofs equal the local log's and read O(log n) tiles
 * (counted at the server), the disk cache keeps full tiles only, entries and verifyAll work, and
 * tampered tiles, forks, shrinking logs, wrong keys and oversized responses are rejected.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyInclusion } from '../src/tlog/merkle.js';
import { openLogReader } from '../src/tlog/open-reader.js';
import type { TiledLogClient } from '../src/tlog/remote/client.js';
import { serveLog, type LogServer } from '../src/tlog/serve.js';
import { openLog, type TransparencyLog } from '../src/tlog/store.js';
import { cleanupTmpDirs, makeTmpDir } from './helpers/paths.js';

const N = 66_000; // three tile levels: 257 full level-0 tiles, a level-2 tile
const entry = (i: number) => Buffer.from(`{"n":${i}}`);

let log: TransparencyLog;
let server: LogServer;
let pub: string;

beforeAll(async () => {
  log = openLog(makeTmpDir('bpfseal-tlog-remote-'), { origin: 'bpfseal.test/remote' });
  for (let i = 0; i < N; i += 6000) await log.appendMany(Array.from({ length: Math.min(6000, N - i) }, (_, k) => entry(i + k)));
  server = await serveLog(log.dir);
  pub = log.publicKey.pem;
}, 120_000);
afterAll(async () => {
  await server.close();
  log.close();
  cleanupTmpDirs();
});

async function client(url = server.url, opts: Parameters<typeof openLogReader>[1] = {}): Promise<TiledLogClient> {
  return (await openLogReader(url, { keys: [pub], cacheDir: makeTmpDir('bpfseal-tile-cache-'), ...opts })) as TiledLogClient;
}

/** Requests the server saw while `fn` ran. */
async function requestsDuring(fn: () => Promise<unknown>): Promise<string[]> {
  const before = server.requests.length;
  await fn();
  return server.requests.slice(before);
}

describe('remote reads over HTTP', () => {
  it('proves like the local log, reading O(log n) tiles per proof', async () => {
    const c = await client();
    expect([c.size, c.origin, c.keyPinned]).toEqual([N, 'bpfseal.test/remote', true]);
    const first = await requestsDuring(() => c.proveInclusion(12_345));
    // 3 edge tiles (levels 0-2) + the entry's level-0 tile + its level-1 parent.
    expect(first.sort()).toEqual(['tile/0/048', 'tile/0/257.p/208', 'tile/1/000', 'tile/1/001.p/1', 'tile/2/000.p/1']);
    const p = await c.proveInclusion(40_000);
    expect(p.hashes).toEqual(log.proveInclusion(40_000).hashes);
    verifyInclusion(entryLeaf(40_000), 40_000, N, p.hashes, log.checkpoint().rootHash);
    // Authenticated tiles stay in memory: another proof in the same level-1 tile reads one tile.
    expect(await requestsDuring(() => c.proveInclusion(300))).toEqual(['tile/0/001']);
    expect((await c.proveConsistency(1000)).hashes).toEqual(log.proveConsistency(1000).hashes);
  });

  it('caches full tiles on disk, never partial ones or the checkpoint', async () => {
    const cacheDir = makeTmpDir('bpfseal-tile-cache-');
    const a = await client(server.url, { cacheDir });
    await a.proveInclusion(12_345);
    const b = await client(server.url, { cacheDir });
    const again = await requestsDuring(() => b.proveInclusion(12_345));
    expect(again.sort()).toEqual(['tile/0/257.p/208', 'tile/1/001.p/1', 'tile/2/000.p/1']);
    expect(b.stats.cacheHits).toBe(2);
  });

  it('reads entries and verifies the whole log', async () => {
    const c = await client();
    expect((await c.entry(65_999)).toString()).toBe(entry(65_999).toString());
    const got: string[] = [];
    for await (const e of c.entries(250, 262)) got.push(e.entry.toString());
    expect(got).toEqual(Array.from({ length: 12 }, (_, k) => entry(250 + k).toString()));
    const v = await c.verifyAll();
    expect(v).toMatchObject({ size: N, entriesBytes: log.verifyAll().entriesBytes });
    expect(v.rootHash.equals(log.checkpoint().rootHash)).toBe(true);
  });

  it('follows a growing log with a consistency proof, and reads a gone partial tile from the full one', async () => {
    const dir = makeTmpDir('bpfseal-tlog-grow-');
    const g = openLog(dir);
    await g.appendMany(Array.from({ length: 300 }, (_, i) => entry(i)));
    const s = await serveLog(dir);
    try {
      const c = await client(s.url, { keys: [g.publicKey.pem] });
      await g.appendMany(Array.from({ length: 300 }, (_, i) => entry(300 + i))); // tile 1 completes: 001.p/* removed
      for (let i = 0; i < 100 && existsSync(join(dir, 'tile/0/001.p')); i++) await new Promise((r) => setTimeout(r, 20)); // (in the background)
      expect(existsSync(join(dir, 'tile/0/001.p'))).toBe(false);
      expect((await c.proveInclusion(299, 300)).hashes).toEqual(g.proveInclusion(299, 300).hashes);
      expect(s.requests).toContain('tile/0/001');
      expect((await c.checkpoint()).size).toBe(600);
      expect(c.size).toBe(600);
    } finally {
      await s.close();
      g.close();
    }
  });

  it('rejects tampered tiles and bundles, forks and shrinking logs', async () => {
    const dir = makeTmpDir('bpfseal-tlog-bad-');
    cpSync(log.dir, dir, { recursive: true });
    const s = await serveLog(dir);
    try {
      const flip = (path: string, at: number) => {
        const b = readFileSync(join(dir, path));
        b[at] ^= 1;
        writeFileSync(join(dir, path), b);
      };
      flip('tile/0/048', 100);
      flip('tile/entries/002', 50);
      const c = await client(s.url);
      await expect(c.proveInclusion(12_345)).rejects.toMatchObject({ code: 'TLOG_CORRUPT' });
      await expect(c.entry(600)).rejects.toMatchObject({ code: 'TLOG_CORRUPT' });
      await expect(c.verifyAll()).rejects.toMatchObject({ code: 'TLOG_CORRUPT' });
      // The same key signs another history in its place (a split view): larger, then smaller.
      const rewrite = async (size: number) => {
        for (const x of ['tile', 'checkpoint', 'pending', 'integrated-times']) rmSync(join(dir, x), { recursive: true, force: true });
        const l = openLog(dir, { origin: 'bpfseal.test/remote' });
        await l.appendMany(Array.from({ length: size }, (_, i) => Buffer.from(`other ${i}`)));
        l.close();
      };
      await rewrite(N + 10);
      await expect(c.checkpoint()).rejects.toMatchObject({ code: 'TLOG_CONSISTENCY_INVALID' });
      await rewrite(5);
      await expect(c.checkpoint()).rejects.toMatchObject({ code: 'TLOG_SHRUNK' });
      expect(c.size).toBe(N);
    } finally {
      await s.close();
    }
  });

  it('checks the key, limits responses, refuses plain http off loopback, reads file:// logs', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await expect(client(server.url, { keys: [other] })).rejects.toMatchObject({ code: 'TLOG_NOTE_SIGNATURE_INVALID' });
    const unpinned = await client(server.url, { keys: [] });
    expect(unpinned.keyPinned).toBe(false);
    expect(unpinned.verifiers.map((v) => v.name)).toEqual(['bpfseal.test/remote', 'bpfseal.test/remote']); // log.pub and log.vkey
    await expect(client(server.url, { keys: [log.vkey!] })).resolves.toBeDefined();
    const big = createServer((_req, res) => res.end(Buffer.alloc(1 << 20, 0x41)));
    await new Promise<void>((r) => big.listen(0, '127.0.0.1', r));
    try {
      await expect(client(`http://127.0.0.1:${(big.address() as AddressInfo).port}/`)).rejects.toThrow(/larger than the 65536 bytes/);
    } finally {
      big.close();
    }
    await expect(client('http://example.com/log/')).rejects.toThrow(/only used for loopback/);
    const f = await openLogReader(pathToFileURL(log.dir).href, { keys: [pub] });
    expect((await f.proveInclusion(7)).hashes).toEqual(log.proveInclusion(7).hashes);
    // A plain path to a bpfseal log directory opens the local log itself.
    expect(await openLogReader(log.dir)).toMatchObject({ dir: log.dir });
  });
});

describe('serveLog', () => {
  it('serves the public files only, and envelopes by hash', async () => {
    const env = '{"payload":"x"}';
    const hash = createHash('sha256').update(env).digest('hex');
    mkdirSync(join(log.dir, 'envelopes'), { recursive: true });
    writeFileSync(join(log.dir, 'envelopes', `${hash}.json`), env);
    const get = (p: string) => fetch(new URL(p, server.url)).then(async (r) => ({ status: r.status, type: r.headers.get('content-type'), cache: r.headers.get('cache-control') }));
    for (const p of ['log.key', 'log.ed25519', 'pending', 'log.json', 'commit.lock', 'integrated-times', 'tile/0/0', 'tile/../log.key', '%2e%2e/log.key', 'envelopes/x.json']) {
      expect((await get(p)).status, p).toBe(404);
    }
    expect((await get('tile/%E0%A4%A')).status).toBe(400);
    expect(await get('checkpoint')).toMatchObject({ status: 200, type: 'text/plain; charset=utf-8', cache: 'no-cache, max-age=5' });
    expect(await get('tile/0/000')).toMatchObject({ status: 200, type: 'application/octet-stream', cache: 'public, max-age=31536000, immutable' });
    const c = await client();
    expect((await c.readPublished(`envelopes/${hash}.json`))?.toString()).toBe(env);
    expect(log.readPublished(`envelopes/${hash}.json`)?.toString()).toBe(env);
    await expect(c.readPublished('log.key')).rejects.toMatchObject({ code: 'TLOG_BAD_ARGUMENT' });
  });
});

function entryLeaf(i: number): Buffer {
  return log.leafHash(i);
}
