/**
 * Interoperability with an independent implementation: golang.org/x/mod/sumdb/tlog and sumdb/note
 * (Debian's golang-golang-x-mod-dev, built offline from test/interop/go).
 *   - Go reads our tiles (directory, and over HTTP from serveLog) through tlog.TileHashReader, which
 *     authenticates every tile; it checks the tree head against our checkpoint's Ed25519 signature,
 *     and inclusion and consistency proofs against entries from our bundles. Tile paths are Go's
 *     own Tile.Path encoding.
 *   - We read a tiled log that Go wrote (tlog.NewTiles / ReadTileData, note.Sign) and verify it all.
 *   - Go checks a cosignature/v1 that we made, by hand from the spec.
 * Skipped, with the reason in the test name, when `go` is not installed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leafHash, rootFromLeaves } from '../src/tlog/merkle.js';
import { openLogReader } from '../src/tlog/open-reader.js';
import { serveLog } from '../src/tlog/serve.js';
import { openLog, type TransparencyLog } from '../src/tlog/store.js';
import { generateWitnessKey, parseWitnessSigner } from '../src/tlog/witness/cosign.js';
import { WitnessState, witnessLog } from '../src/tlog/witness/witness.js';
import { cleanupTmpDirs, makeTmpDir, ROOT } from './helpers/paths.js';

const GO = spawnSync('go', ['version'], { encoding: 'utf8' }).status === 0;
let bin = '';

/** Run the interop program without blocking this process (it may read from our server). */
function interop(args: string[]): Promise<{ code: number | null; json: Record<string, unknown>; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(bin, args);
    let out = '';
    let err = '';
    p.stdout.on('data', (c: Buffer) => (out += c.toString()));
    p.stderr.on('data', (c: Buffer) => (err += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, json: code === 0 ? (JSON.parse(out) as Record<string, unknown>) : {}, stderr: err }));
  });
}

beforeAll(() => {
  if (!GO) return;
  const src = makeTmpDir('bpfseal-interop-go-');
  cpSync(join(ROOT, 'test/interop/go'), src, { recursive: true });
  bin = join(src, 'interop');
  const r = spawnSync('go', ['build', '-o', bin, '.'], { cwd: src, encoding: 'utf8', env: { ...process.env, GOFLAGS: '-mod=mod', GOPROXY: 'off', GO111MODULE: 'on' }, timeout: 170_000 });
  if (r.status !== 0) throw new Error(`building test/interop/go failed:\n${r.stderr}`);
}, 180_000);
afterAll(cleanupTmpDirs);

describe.skipIf(!GO)(GO ? 'Go x/mod sumdb/tlog interop' : 'Go x/mod sumdb/tlog interop (SKIPPED: `go` is not installed; apt-get install golang-go golang-golang-x-mod-dev)', () => {
  let log: TransparencyLog;

  beforeAll(async () => {
    log = openLog(makeTmpDir('bpfseal-interop-'), { origin: 'bpfseal.test/interop' });
    // Past 256,000 entries: level-0 tile 1000 is tile/0/x001/000 (the x prefix, checked by Go's paths).
    for (let i = 0; i < 256_100; i += 25_000) await log.appendMany(Array.from({ length: Math.min(25_000, 256_100 - i) }, (_, k) => Buffer.from(`entry ${i + k}`)));
    for (let i = 0; i < 5; i++) await log.append(Buffer.from(`single ${i}`)); // partial tiles of several widths
  }, 60_000);
  afterAll(() => log.close());

  it('Go reads our tiles, from the directory and over HTTP, and checks the tree head and proofs', async () => {
    const indexes = '0,1,255,256,4095,65535,65536,255999,256000,256104';
    const root = log.checkpoint().rootHash.toString('base64');
    const fromDir = await interop(['read', log.dir, log.vkey!, indexes]);
    expect(fromDir.code, fromDir.stderr).toBe(0);
    expect(existsSync(join(log.dir, 'tile/0/x001/000.p/105'))).toBe(true);
    expect(fromDir.json).toMatchObject({ origin: 'bpfseal.test/interop', size: 256_105, root, checked: 10, signatures: 2 });
    const server = await serveLog(log.dir);
    try {
      const overHttp = await interop(['read', server.url, log.vkey!, indexes]);
      expect(overHttp.code, overHttp.stderr).toBe(0);
      expect(overHttp.json).toMatchObject({ size: 256_105, root });
      expect(server.requests).toContain('tile/0/x001/000.p/105');
      expect(server.requests.every((p) => p === 'checkpoint' || p.startsWith('tile/'))).toBe(true);
    } finally {
      await server.close();
    }
    // Go rejects a checkpoint our log did not sign.
    const other = openLog(makeTmpDir('bpfseal-interop-other-'), { origin: 'bpfseal.test/interop' });
    const bad = await interop(['read', log.dir, other.vkey!, '0']);
    other.close();
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/does not verify/);
  });

  it('we read and verify a tiled log that Go wrote, locally and over HTTP, and witness it', async () => {
    const dir = makeTmpDir('bpfseal-interop-golog-');
    const n = 70_001;
    const w = await interop(['write', dir, 'go.test/log', String(n)]);
    expect(w.code, w.stderr).toBe(0);
    const vkey = String(w.json.vkey);
    const leaves = Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`go entry ${i}`)));
    const root = rootFromLeaves(leaves);
    const r = await openLogReader(dir, { keys: [vkey] });
    expect(r.size).toBe(n);
    expect((await r.verifyAll()).rootHash.equals(root)).toBe(true);
    expect((await r.entry(69_999)).toString()).toBe('go entry 69999');
    const p = await r.proveInclusion(12_345);
    expect(p.rootHash.equals(root)).toBe(true);
    const server = await serveLog(dir);
    try {
      const remote = await openLogReader(server.url, { keys: [vkey], cacheDir: false });
      expect((await remote.proveInclusion(12_345)).hashes).toEqual(p.hashes);
      // Witness the Go log and let Go check the cosignature.
      const wk = generateWitnessKey('w.test/interop');
      const run = await witnessLog(remote, parseWitnessSigner(wk.signer), new WitnessState(makeTmpDir('bpfseal-witness-')));
      const file = join(makeTmpDir('bpfseal-interop-cosig-'), 'cosigned');
      writeFileSync(file, run.note);
      const c = await interop(['cosig', file, wk.vkey]);
      expect(c.code, c.stderr).toBe(0);
      expect(c.json).toMatchObject({ witness: 'w.test/interop', timestamp: run.timestamp });
    } finally {
      await server.close();
    }
  });
});
