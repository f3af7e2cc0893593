/**
 * `bpfseal log verify|prove|consistency|show|migrate|witness|witness-key|add-cosignatures`
 * (src/cli/log.ts), on directories and on tiled logs served over loopback HTTP, run through the CLI's
 * main() in process (test/helpers/cli.ts).
 * Exit codes: 0 ok, 1 verification failure, 2 usage or malformed input.
 */
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { leafHash, verifyConsistency, verifyInclusion } from '../src/tlog/merkle.js';
import { openLog } from '../src/tlog/store.js';
import { serveLog } from '../src/tlog/serve.js';
import { verifyCosignatures } from '../src/tlog/witness/cosign.js';
import { cleanupTmpDirs, makeTmpDir, ROOT } from './helpers/paths.js';
import { type CliResult, runCli } from './helpers/cli.js';
afterAll(cleanupTmpDirs);

/** `bpfseal log <args>` in process (helpers/cli.ts), with no default log from the environment. */
async function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return await runCli(['log', ...args], { cwd: opts.cwd ?? process.cwd(), env: { BPFSEAL_LOG: '', ...opts.env } });
}

/** The same: runCli does not block this process, so tests can serve a log from it. */
const cliAsync = cli;

const digest = (i: number) => `sha256:${createHash('sha256').update(`artifact ${i % 4}`).digest('hex')}`;
const entry = (i: number) => Buffer.from(JSON.stringify({ subjectDigest: digest(i), n: i }));

async function makeLog(n: number, dir = makeTmpDir('bpfseal-tlog-cli-')): Promise<string> {
  const log = openLog(dir);
  await log.appendMany(Array.from({ length: n }, (_, i) => entry(i)));
  log.close();
  return dir;
}

describe('bpfseal log verify / show', () => {
  it('verifies a good log, defaulting to ./attestations or $BPFSEAL_LOG', async () => {
    const cwd = makeTmpDir('bpfseal-tlog-cwd-');
    await makeLog(10, join(cwd, 'attestations'));
    const r = await cli(['verify', '--json'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, size: 10, pendingBytes: 0 });
    const elsewhere = await makeLog(3);
    expect(JSON.parse((await cli(['verify', '--json'], { cwd, env: { BPFSEAL_LOG: elsewhere } })).stdout)).toMatchObject({ size: 3 });
    expect((await cli(['verify'], { cwd })).stdout).toMatch(/^ok .* 10 entries/);
  });

  it('exits 1 for a damaged log and 2 for a missing one', async () => {
    const dir = await makeLog(10);
    const p = join(dir, 'tile/entries/000.p/10');
    const b = readFileSync(p);
    b[30] ^= 1;
    writeFileSync(p, b);
    const r = await cli(['verify', '--log', dir, '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'TLOG_CORRUPT' });
    expect((await cli(['verify', '--log', dir])).code).toBe(1);
    const missing = await cli(['verify', '--log', join(dir, 'nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no transparency log/);
  });

  it('lists entries with leaf hashes and summaries', async () => {
    const dir = await makeLog(5);
    const text = await cli(['show', '--log', dir]);
    expect(text.code).toBe(0);
    expect(text.stdout.trim().split('\n')).toHaveLength(5);
    expect(text.stdout).toContain(`subject ${digest(2)}`);
    const json = JSON.parse((await cli(['show', '--log', dir, '--json'])).stdout) as { index: number; leafHash: string; entry: { n: number } }[];
    expect(json.map((e) => e.entry.n)).toEqual([0, 1, 2, 3, 4]);
    expect(json[4].leafHash).toBe(leafHash(entry(4)).toString('hex'));
  });
});

describe('bpfseal log prove', () => {
  it('proves an index and every entry with a subject digest', async () => {
    const dir = await makeLog(11);
    const r = await cli(['prove', '6', '--log', dir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const { proofs } = JSON.parse(r.stdout) as { proofs: { index: number; treeSize: number; leafHash: string; rootHash: string; hashes: string[]; checkpoint: string }[] };
    const p = proofs[0];
    const hex = (s: string) => Buffer.from(s, 'hex');
    expect(p.leafHash).toBe(leafHash(entry(6)).toString('hex'));
    verifyInclusion(hex(p.leafHash), 6, 11, p.hashes.map(hex), Buffer.from(p.checkpoint.split('\n')[2], 'base64'));
    const byDigest = JSON.parse((await cli(['prove', digest(1), '--log', dir, '--json'])).stdout) as { proofs: { index: number }[] };
    expect(byDigest.proofs.map((q) => q.index)).toEqual([1, 5, 9]);
    expect((await cli(['prove', '3', '--log', dir])).stdout).toMatch(/^entry 3 of 11/);
  });

  it('exits 1 for an unknown digest and 2 for bad arguments', async () => {
    const dir = await makeLog(4);
    expect((await cli(['prove', `sha256:${'ab'.repeat(32)}`, '--log', dir])).code).toBe(1);
    expect((await cli(['prove', '4', '--log', dir])).code).toBe(2);
    expect((await cli(['prove', 'sha256:xyz', '--log', dir])).code).toBe(2);
    expect((await cli(['prove', '--log', dir])).code).toBe(2);
  });
});

describe('bpfseal log consistency', () => {
  it('accepts a log that only grew, and rejects one that was rewritten or shrank', async () => {
    const base = await makeLog(5);
    const saved = join(makeTmpDir('bpfseal-tlog-ckpt-'), 'old.checkpoint');
    cpSync(join(base, 'checkpoint'), saved);
    // Two copies with the same key diverge after entry 5: "a rewritten history".
    const a = makeTmpDir('bpfseal-tlog-a-');
    const b = makeTmpDir('bpfseal-tlog-b-');
    cpSync(base, a, { recursive: true });
    cpSync(base, b, { recursive: true });
    for (const [dir, tag] of [[a, 'a'], [b, 'b']] as const) {
      const log = openLog(dir);
      await log.appendMany(Array.from({ length: 4 }, (_, i) => Buffer.from(`${tag}${i}`)));
      log.close();
    }
    const ok = await cli(['consistency', saved, '--log', a, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const j = JSON.parse(ok.stdout) as { old: { size: number; rootHash: string }; new: { size: number; rootHash: string }; hashes: string[] };
    verifyConsistency(j.old.size, j.new.size, Buffer.from(j.old.rootHash, 'hex'), Buffer.from(j.new.rootHash, 'hex'), j.hashes.map((h) => Buffer.from(h, 'hex')));
    expect(j.old.size).toBe(5);
    expect(j.new.size).toBe(9);
    const aCheckpoint = join(makeTmpDir('bpfseal-tlog-ckpt-'), 'a.checkpoint');
    cpSync(join(a, 'checkpoint'), aCheckpoint);
    const rewritten = await cli(['consistency', aCheckpoint, '--log', b, '--json']);
    expect(rewritten.code).toBe(1);
    expect(JSON.parse(rewritten.stdout)).toMatchObject({ ok: false, code: 'TLOG_CONSISTENCY_INVALID' });
    const shrank = await cli(['consistency', aCheckpoint, '--log', base]);
    expect(shrank.code).toBe(1);
    expect(shrank.stderr).toMatch(/had 9 entries then and has 5 now/);
  });

  it('exits 2 for a malformed checkpoint file and 1 for one signed by another log', async () => {
    const dir = await makeLog(3);
    const other = await makeLog(3);
    const bad = join(makeTmpDir('bpfseal-tlog-ckpt-'), 'bad');
    writeFileSync(bad, 'not a checkpoint\n');
    expect((await cli(['consistency', bad, '--log', dir])).code).toBe(2);
    expect((await cli(['consistency', join(bad, 'missing'), '--log', dir])).code).toBe(2);
    expect((await cli(['consistency', join(other, 'checkpoint'), '--log', dir])).code).toBe(1);
  });
});

describe('bpfseal log with a tiled-log URL', () => {
  it('verifies, proves and checks consistency of a log served over HTTP, with the key pinned', async () => {
    const dir = await makeLog(300);
    const saved = join(makeTmpDir('bpfseal-tlog-ckpt-'), 'old.checkpoint');
    cpSync(join(dir, 'checkpoint'), saved);
    const log = openLog(dir);
    await log.appendMany(Array.from({ length: 30 }, (_, i) => entry(300 + i)));
    log.close();
    const server = await serveLog(dir);
    try {
      const key = ['--log-key', join(dir, 'log.pub'), '--cache', makeTmpDir('bpfseal-tile-cache-')];
      const v = await cliAsync(['verify', '--log', server.url, ...key, '--json']);
      expect(v.code, v.stderr).toBe(0);
      expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, size: 330, log: server.url });
      const p = JSON.parse((await cliAsync(['prove', '7', '--log', server.url, ...key, '--json'])).stdout) as { proofs: { hashes: string[] }[] };
      expect(p.proofs[0].hashes).toHaveLength(9);
      expect((await cliAsync(['consistency', saved, '--log', server.url, ...key])).stdout).toMatch(/grew from 300 to 330/);
      // Without --log-key the log's own key is used, and the command says so.
      const unpinned = await cliAsync(['verify', '--log', server.url, '--no-cache']);
      expect(unpinned.code).toBe(0);
      expect(unpinned.stderr).toMatch(/give --log-key/);
      const other = await makeLog(1);
      expect((await cliAsync(['verify', '--log', server.url, '--log-key', join(other, 'log.pub'), '--no-cache'])).code).toBe(1);
    } finally {
      await server.close();
    }
  });
});

describe('bpfseal log migrate / witness / add-cosignatures', () => {
  it('migrates a first-layout log in place', async () => {
    const d = join(makeTmpDir('bpfseal-tlog-v1-'), 'log');
    cpSync(join(ROOT, 'test/tlog/fixtures/v1-log'), d, { recursive: true });
    cpSync(join(ROOT, 'test/tlog/fixtures/v1-log-key.pem'), join(d, 'log.key'));
    chmodSync(join(d, 'log.key'), 0o600);
    expect((await cli(['verify', '--log', d])).code).toBe(2); // refused: old layout
    const m = await cli(['migrate', '--log', d, '--json']);
    expect(m.code, m.stderr).toBe(0);
    expect(JSON.parse(m.stdout)).toMatchObject({ ok: true, alreadyMigrated: false, old: { size: 300 }, new: { size: 301 }, carriedOver: 1 });
    expect((await cli(['verify', '--log', d])).stdout).toMatch(/^ok .* 301 entries/);
    expect((await cli(['migrate', '--log', d])).stdout).toMatch(/already a tiled log/);
  });

  it('makes a witness key, cosigns a local log and a served one, and adds the cosignatures', async () => {
    const dir = await makeLog(20);
    const tmp = makeTmpDir('bpfseal-witness-cli-');
    const k = await cli(['witness-key', join(tmp, 'w.key'), '--name', 'w.test/cli']);
    expect(k.code, k.stderr).toBe(0);
    const vkey = k.stdout.trim();
    expect(vkey).toMatch(/^w\.test\/cli\+[0-9a-f]{8}\+/);
    expect((await cli(['witness-key', join(tmp, 'w.key'), '--name', 'w.test/cli'])).code).toBe(2); // never overwritten
    const w = await cli(['witness', dir, '--key', join(tmp, 'w.key'), '--state', join(tmp, 'state'), '--json']);
    expect(w.code, w.stderr).toBe(0);
    expect(JSON.parse(w.stdout)).toMatchObject({ ok: true, witness: 'w.test/cli', oldSize: 0, size: 20, added: { current: true, cosigned: true } });
    expect(verifyCosignatures(readFileSync(join(dir, 'checkpoint'), 'utf8'), [{ name: 'w.test/cli', key: vkey }], 1).ok).toBe(true);
    // A served log: the witness writes the cosigned checkpoint; the operator adds it.
    const log = openLog(dir);
    await log.appendMany([entry(20), entry(21)]);
    log.close();
    const server = await serveLog(dir);
    try {
      const out = join(tmp, 'cosigned');
      const r = await cliAsync(['witness', server.url, '--key', join(tmp, 'w.key'), '--state', join(tmp, 'state'), '--log-key', join(dir, 'log.vkey'), '--no-cache', '--out', out]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/cosigned .* at size 22, consistent with size 20/);
      expect((await cli(['add-cosignatures', out, '--log', dir])).stdout).toMatch(/size 22, added to checkpoint, kept in checkpoint.cosigned/);
      expect(verifyCosignatures(readFileSync(join(dir, 'checkpoint.cosigned'), 'utf8'), [{ name: 'w.test/cli', key: vkey }], 1).ok).toBe(true);
    } finally {
      await server.close();
    }
  });
});
