/**
 * `bpfseal log verify|prove|consistency|show` (src/cli/log.ts), run as a child process from dist/ through
 * test/helpers/tlog-cli.mjs (the same Commander setup and exit-code mapping as src/cli/main.ts).
 * Exit codes: 0 ok, 1 verification failure, 2 usage or malformed input.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leafHash, verifyConsistency, verifyInclusion } from '../src/tlog/merkle.js';
import { openLog } from '../src/tlog/store.js';
import { cleanupTmpDirs, makeTmpDir } from './helpers/paths.js';
import { ensureTlogDist, TLOG_CLI } from './helpers/tlog-dist.js';

beforeAll(ensureTlogDist, 180_000);
afterAll(cleanupTmpDirs);

function cli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [TLOG_CLI, 'log', ...args], {
    cwd: opts.cwd ?? process.cwd(),
    env: { ...process.env, BPFSEAL_LOG: '', BPFSEAL_DEBUG: '', ...opts.env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

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
    const r = cli(['verify', '--json'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, size: 10, pendingBytes: 0 });
    const elsewhere = await makeLog(3);
    expect(JSON.parse(cli(['verify', '--json'], { cwd, env: { BPFSEAL_LOG: elsewhere } }).stdout)).toMatchObject({ size: 3 });
    expect(cli(['verify'], { cwd }).stdout).toMatch(/^ok .* 10 entries/);
  });

  it('exits 1 for a damaged log and 2 for a missing one', async () => {
    const dir = await makeLog(10);
    const p = join(dir, 'tile/entries/000.p/10');
    const b = readFileSync(p);
    b[30] ^= 1;
    writeFileSync(p, b);
    const r = cli(['verify', '--log', dir, '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'TLOG_CORRUPT' });
    expect(cli(['verify', '--log', dir]).code).toBe(1);
    const missing = cli(['verify', '--log', join(dir, 'nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no transparency log/);
  });

  it('lists entries with leaf hashes and summaries', async () => {
    const dir = await makeLog(5);
    const text = cli(['show', '--log', dir]);
    expect(text.code).toBe(0);
    expect(text.stdout.trim().split('\n')).toHaveLength(5);
    expect(text.stdout).toContain(`subject ${digest(2)}`);
    const json = JSON.parse(cli(['show', '--log', dir, '--json']).stdout) as { index: number; leafHash: string; entry: { n: number } }[];
    expect(json.map((e) => e.entry.n)).toEqual([0, 1, 2, 3, 4]);
    expect(json[4].leafHash).toBe(leafHash(entry(4)).toString('hex'));
  });
});

describe('bpfseal log prove', () => {
  it('proves an index and every entry with a subject digest', async () => {
    const dir = await makeLog(11);
    const r = cli(['prove', '6', '--log', dir, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const { proofs } = JSON.parse(r.stdout) as { proofs: { index: number; treeSize: number; leafHash: string; rootHash: string; hashes: string[]; checkpoint: string }[] };
    const p = proofs[0];
    const hex = (s: string) => Buffer.from(s, 'hex');
    expect(p.leafHash).toBe(leafHash(entry(6)).toString('hex'));
    verifyInclusion(hex(p.leafHash), 6, 11, p.hashes.map(hex), Buffer.from(p.checkpoint.split('\n')[2], 'base64'));
    const byDigest = JSON.parse(cli(['prove', digest(1), '--log', dir, '--json']).stdout) as { proofs: { index: number }[] };
    expect(byDigest.proofs.map((q) => q.index)).toEqual([1, 5, 9]);
    expect(cli(['prove', '3', '--log', dir]).stdout).toMatch(/^entry 3 of 11/);
  });

  it('exits 1 for an unknown digest and 2 for bad arguments', async () => {
    const dir = await makeLog(4);
    expect(cli(['prove', `sha256:${'ab'.repeat(32)}`, '--log', dir]).code).toBe(1);
    expect(cli(['prove', '4', '--log', dir]).code).toBe(2);
    expect(cli(['prove', 'sha256:xyz', '--log', dir]).code).toBe(2);
    expect(cli(['prove', '--log', dir]).code).toBe(2);
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
    const ok = cli(['consistency', saved, '--log', a, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const j = JSON.parse(ok.stdout) as { old: { size: number; rootHash: string }; new: { size: number; rootHash: string }; hashes: string[] };
    verifyConsistency(j.old.size, j.new.size, Buffer.from(j.old.rootHash, 'hex'), Buffer.from(j.new.rootHash, 'hex'), j.hashes.map((h) => Buffer.from(h, 'hex')));
    expect(j.old.size).toBe(5);
    expect(j.new.size).toBe(9);
    const aCheckpoint = join(makeTmpDir('bpfseal-tlog-ckpt-'), 'a.checkpoint');
    cpSync(join(a, 'checkpoint'), aCheckpoint);
    const rewritten = cli(['consistency', aCheckpoint, '--log', b, '--json']);
    expect(rewritten.code).toBe(1);
    expect(JSON.parse(rewritten.stdout)).toMatchObject({ ok: false, code: 'TLOG_CONSISTENCY_INVALID' });
    const shrank = cli(['consistency', aCheckpoint, '--log', base]);
    expect(shrank.code).toBe(1);
    expect(shrank.stderr).toMatch(/had 9 entries then and has 5 now/);
  });

  it('exits 2 for a malformed checkpoint file and 1 for one signed by another log', async () => {
    const dir = await makeLog(3);
    const other = await makeLog(3);
    const bad = join(makeTmpDir('bpfseal-tlog-ckpt-'), 'bad');
    writeFileSync(bad, 'not a checkpoint\n');
    expect(cli(['consistency', bad, '--log', dir]).code).toBe(2);
    expect(cli(['consistency', join(bad, 'missing'), '--log', dir]).code).toBe(2);
    expect(cli(['consistency', join(other, 'checkpoint'), '--log', dir]).code).toBe(1);
  });
});
