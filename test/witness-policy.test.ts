/**
 * Witnesses in the trust policy (issue "the attestation log at fleet scale" §3): a policy naming
 * witnesses refuses a release whose log checkpoint they have not cosigned (WITNESS_THRESHOLD), accepts
 * it once `log refresh` proves the entry against a checkpoint they cosigned, and catches a split view:
 * a second history under the same log key, which no witness that saw the first will cosign. Audits
 * judge the log's witnessed checkpoint once. Real CLI, real keys, real logs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parsePolicy } from '../src/trust/policy.js';
import { openLog } from '../src/tlog/store.js';
import { runCli, runCliAsync } from './helpers/cli.js';
import { serveLog } from '../src/tlog/serve.js';
import { cleanupTmpDirs, fixturePath, makeTmpDir } from './helpers/paths.js';

afterAll(cleanupTmpDirs);

let d: string;
let vkeys: string[];
beforeAll(async () => {
  d = makeTmpDir();
  expect((await runCli(['keygen', '--out', d, '--name', 'k'])).code).toBe(0);
  vkeys = [];
  for (const [i, name] of ['w.example/one', 'w.example/two'].entries()) {
    const r = await runCli(['log', 'witness-key', join(d, `w${i}.key`), '--name', name]);
    expect(r.code, r.stderr).toBe(0);
    vkeys.push(r.stdout.trim());
  }
});

const origin = (dir: string) => { const l = openLog(dir, { create: false }); try { return l.origin; } finally { l.close(); } };

function policy(logDir: string, extra: object): string {
  const p = join(d, `policy-${Math.random().toString(16).slice(2)}.json`);
  writeFileSync(p, JSON.stringify({ version: 1, signers: [{ name: 'k', key: 'k.pub', plans: ['*'], programTypes: ['*'] }], logs: [{ key: join(logDir, 'log.pub'), origin: origin(logDir) }], ...extra }));
  return p;
}

async function sign(logDir: string, name: string): Promise<string> {
  const out = join(d, `${name}.bpfseal`);
  const obj = join(d, `${name}.o`);
  cpSync(fixturePath('minimal'), obj);
  const r = await runCli(['sign', obj, '--key', join(d, 'k.key'), '--log', logDir, '-o', out]);
  expect(r.code, r.stderr).toBe(0);
  return out;
}

const witness = async (logDir: string, i: number, state = join(d, `wstate${i}`)) => await runCli(['log', 'witness', logDir, '--key', join(d, `w${i}.key`), '--state', state, '--log-key', join(logDir, 'log.pub')]);

describe('policy witnesses', () => {
  it('refused until cosigned by the threshold; accepted after log refresh; audit judges the witnessed checkpoint', async () => {
    const log = join(makeTmpDir(), 'att');
    const rel = await sign(log, 'wa');
    const both = policy(log, { witnesses: vkeys.map((vkey) => ({ vkey })) });
    const before = await runCli(['verify', rel, '--policy', both, '--json']);
    expect(before.code).toBe(1);
    expect(before.stdout).toContain('WITNESS_THRESHOLD');
    expect(before.stdout).toMatch(/bpfseal log refresh/);
    // One witness cosigns: a threshold of 2 (the default: all) is not met, refresh says so.
    expect((await witness(log, 0)).code).toBe(0);
    const one = await runCli(['log', 'refresh', rel, '--log', log, '--policy', both]);
    expect(one.code).toBe(1);
    expect(one.stderr).toContain('WITNESS_THRESHOLD');
    // The second cosigns the same checkpoint: refresh proves the entry against it, verify accepts.
    expect((await witness(log, 1)).code).toBe(0);
    const r = await runCli(['log', 'refresh', rel, '--log', log, '--policy', both, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)[0]).toMatchObject({ ok: true, witnessed: true, index: 0, treeSize: 1 });
    const after = await runCli(['verify', rel, '--policy', both, '--json']);
    expect(after.code, after.stdout).toBe(0);
    // A threshold of 1 of 2 accepts as well; a witness the policy does not name does not count.
    const stranger = (await runCli(['log', 'witness-key', join(d, 'ws.key'), '--name', 'w.example/stranger'])).stdout.trim();
    expect((await runCli(['verify', rel, '--policy', policy(log, { witnesses: [{ vkey: vkeys[0] }, { vkey: stranger }], witnessThreshold: 1 })])).code).toBe(0);
    expect((await runCli(['verify', rel, '--policy', policy(log, { witnesses: [{ vkey: stranger }] })])).code).toBe(1);
    // Audit: witnessed; once the log grows past it, a note; with a witness that never cosigned, a finding.
    const a = await runCli(['audit', '--log', log, '--policy', both, '--state', join(makeTmpDir(), 's.json'), '--json']);
    expect(a.code, a.stdout).toBe(0);
    expect(JSON.parse(a.stdout).witnessed).toEqual({ size: 1 });
    await sign(log, 'wb');
    const grown = await runCli(['audit', '--log', log, '--policy', both, '--state', join(makeTmpDir(), 's.json'), '--json']);
    expect(grown.code, grown.stdout).toBe(0);
    expect(JSON.parse(grown.stdout).notes.join('\n')).toMatch(/entries 1\.\.1 are past the newest witnessed checkpoint/);
    const never = await runCli(['audit', '--log', log, '--policy', policy(log, { witnesses: [{ vkey: stranger }] }), '--state', join(makeTmpDir(), 's.json'), '--json']);
    expect(never.code).toBe(1);
    expect(JSON.parse(never.stdout).findings.map((f: { code: string }) => f.code)).toContain('WITNESS_THRESHOLD');
  });

  it('a split view (a second history under the same log key) is never cosigned, so its releases are refused', async () => {
    const base = makeTmpDir();
    const log = join(base, 'att');
    await sign(log, 'sv0');
    const fork = join(base, 'fork');
    cpSync(log, fork, { recursive: true });
    // The log owner shows hosts two different histories from here on.
    const honest = await sign(log, 'sv-honest');
    const forked = await sign(fork, 'sv-forked');
    const pol = policy(log, { witnesses: [{ vkey: vkeys[0] }] });
    const state = join(makeTmpDir(), 'wstate');
    expect((await witness(log, 0, state)).code).toBe(0);
    // The same witness (same state) refuses the fork: not consistent with what it cosigned.
    const w = await witness(fork, 0, state);
    expect(w.code).toBe(1);
    expect(`${w.stdout}${w.stderr}`).toMatch(/TLOG_CONSISTENCY_INVALID|not consistent|409/);
    expect((await runCli(['log', 'refresh', honest, '--log', log, '--policy', pol])).code).toBe(0);
    expect((await runCli(['verify', honest, '--policy', pol])).code).toBe(0);
    const f = await runCli(['log', 'refresh', forked, '--log', fork, '--policy', pol]);
    expect(f.code).toBe(1);
    expect(f.stderr).toContain('WITNESS_THRESHOLD');
    expect((await runCli(['verify', forked, '--policy', pol])).code).toBe(1);
  });
});

describe('policy witness fields are checked', () => {
  const logDir = async () => { const l = join(makeTmpDir(), 'att'); await sign(l, `pf${Math.random().toString(16).slice(2, 8)}`); return l; };
  it.each([
    ['a witness listed twice', (v: string[]) => ({ witnesses: [{ vkey: v[0] }, { vkey: v[0] }] }), /listed twice/],
    ['a threshold above the number of witnesses', (v: string[]) => ({ witnesses: [{ vkey: v[0] }], witnessThreshold: 2 }), /more than the 1 witness/],
    ['a threshold without witnesses', () => ({ witnessThreshold: 1 }), /no witnesses are listed/],
    ['a note signing key where a witness key belongs', () => ({ witnesses: [{ vkey: 'log.example+01020304+AQ' + 'A'.repeat(42) }] }), /witnesses\[0\]/],
  ])('%s is POLICY_INVALID', async (_w, extra, msg) => {
    const p = policy(await logDir(), extra(vkeys));
    expect(() => parsePolicy(readFileSync(p, 'utf8'), p)).toThrow(expect.objectContaining({ code: 'POLICY_INVALID', message: expect.stringMatching(msg) }));
  });

  it('a witness given by name and key file (its vkey) parses to the same witness', async () => {
    writeFileSync(join(d, 'w0.vkey'), `${vkeys[0]}\n`);
    const p = policy(await logDir(), { witnesses: [{ name: 'w.example/one', key: 'w0.vkey' }] });
    const parsed = parsePolicy(readFileSync(p, 'utf8'), p);
    expect(parsed.witnesses.map((w) => w.name)).toEqual(['w.example/one']);
    expect(parsed.witnessThreshold).toBe(1);
  });
});

describe('verify --log <url>: the release against the log as served now', () => {
  it('passes against the log; a fork under the same key is LOG_SPLIT_VIEW; a URL the policy does not trust is a usage error', async () => {
    const base = makeTmpDir();
    const log = join(base, 'att');
    await sign(log, 'on0');
    const fork = join(base, 'fork');
    cpSync(log, fork, { recursive: true });
    const rel = await sign(log, 'on1'); // entry 1 of the honest log
    await sign(fork, 'on1-fork');
    await sign(fork, 'on2-fork');
    const pol = policy(log, {});
    const honest = await serveLog(log);
    const forked = await serveLog(fork);
    try {
      const ok = await runCliAsync(['verify', rel, '--policy', pol, '--log', honest.url, '--json']);
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout)[0].online).toEqual([{ location: honest.url, origin: origin(log), size: 2, checked: 1 }]);
      const split = await runCliAsync(['verify', rel, '--policy', pol, '--log', forked.url, '--json']);
      expect(split.code).toBe(1);
      expect(JSON.parse(split.stdout)[0].error.code).toBe('LOG_SPLIT_VIEW');
      const untrusted = await runCliAsync(['verify', rel, '--key', join(d, 'k.pub'), '--log', honest.url]);
      expect(untrusted.code).toBe(2);
      expect(untrusted.stderr).toContain('USAGE_LOG_URL');
    } finally {
      await honest.close();
      await forked.close();
    }
  });
});
