/**
 * `audit --log <url>` (issue "the attestation log at fleet scale" §2): an auditor audits a log served
 * by any static server, from the tiles and published files alone, with the same verdicts as a local
 * audit of the directory; nothing the server says is taken on trust (a changed plan, a log the policy
 * does not list, a different log under the same URL are each caught). Real CLI, real keys, a real
 * HTTP server on loopback (src/tlog/serve.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openLog } from '../src/tlog/store.js';
import { serveLog, type LogServer } from '../src/tlog/serve.js';
import { runCli, runCliAsync } from './helpers/cli.js';
import { cleanupTmpDirs, fixturePath, makeTmpDir } from './helpers/paths.js';

let d: string;
let log: string;
let server: LogServer;
const servers: LogServer[] = [];

afterAll(async () => {
  for (const s of servers) await s.close();
  cleanupTmpDirs();
});

const origin = (dir: string) => { const l = openLog(dir, { create: false }); try { return l.origin; } finally { l.close(); } };

function policy(logDir: string, name = 'policy.json'): string {
  const p = join(d, name);
  writeFileSync(p, JSON.stringify({ version: 1, signers: [{ name: 'k', key: 'k.pub', plans: ['*'], programTypes: ['*'] }], logs: [{ key: join(logDir, 'log.pub'), origin: origin(logDir) }] }));
  return p;
}

async function sign(logDir: string, fixture: string, name: string): Promise<void> {
  const obj = join(d, `${name}.o`);
  cpSync(fixturePath(fixture), obj);
  const r = await runCli(['sign', obj, '--key', join(d, 'k.key'), '--log', logDir, '-o', join(d, `${name}.bpfseal`)]);
  expect(r.code, r.stderr).toBe(0);
}

/** The CLI runs in a child process while the server answers in this one: spawn asynchronously. */
const audit = async (args: string[], cache: string) => {
  const r = await runCliAsync(['audit', ...args, '--json'], { env: { ...process.env, BPFSEAL_TILE_CACHE: join(cache, 'tiles') } });
  return { ...r, json: r.stdout.trim() ? JSON.parse(r.stdout) : undefined };
};

beforeAll(async () => {
  d = makeTmpDir();
  expect((await runCli(['keygen', '--out', d, '--name', 'k'])).code).toBe(0);
  log = join(d, 'att');
  await sign(log, 'minimal', 'm');
  await sign(log, 'globals', 'g');
  server = await serveLog(log);
  servers.push(server);
});

describe('audit --log <url>', () => {
  it('audits a served log as the local directory audits: every entry verified, no finding; an appended entry audits consistent with the last run', async () => {
    const cache = makeTmpDir();
    const local = await runCli(['audit', '--log', log, '--policy', policy(log), '--state', join(cache, 'local-state.json'), '--json']);
    expect(local.code, local.stdout).toBe(0);
    const r = await audit(['--log', server.url, '--policy', policy(log), '--state', join(cache, 'state.json')], cache);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json.findings).toEqual([]);
    const strip = (es: { index: number; status: string; plan: string; digest: string; signer: string }[]) => es.map(({ index, status, plan, digest, signer }) => ({ index, status, plan, digest, signer }));
    expect(strip(r.json.entries)).toEqual(strip(JSON.parse(local.stdout).entries));
    expect(r.json.entries.map((e: { status: string }) => e.status)).toEqual(['verified', 'verified']);
    expect(r.json.remote).toMatchObject({ url: server.url, size: 2, envelopes: 2, plans: 2, missing: 0 });
    expect(r.json.logTrust).toBe('policy');
    expect(r.json.notes.join('\n')).toMatch(/commit times are not published/);
    // Only published files were asked for: never a private key, the log's config or its state.
    expect(server.requests.filter((p) => /log\.key|log\.ed25519|log\.json|pending|integrated-times|lock/.test(p))).toEqual([]);
    // Again, after one more entry: consistent with the remembered checkpoint (no rewrite), three verified.
    await sign(log, 'testrun', 't');
    const again = await audit(['--log', server.url, '--policy', policy(log), '--state', join(cache, 'state.json')], cache);
    expect(again.code, again.stdout).toBe(0);
    expect(again.json.previous).toMatchObject({ size: 2 });
    expect(again.json.entries).toHaveLength(3);
  });

  it('a plan changed on the server is caught: the entry is a finding (its plan is not the one the statement names)', async () => {
    const copy = join(makeTmpDir(), 'att');
    cpSync(log, copy, { recursive: true });
    const plans = readdirSync(join(copy, 'plans'));
    writeFileSync(join(copy, 'plans', plans[0]), Buffer.from('not the plan'));
    const s = await serveLog(copy);
    servers.push(s);
    const cache = makeTmpDir();
    const r = await audit(['--log', s.url, '--policy', policy(log, 'p2.json'), '--state', join(cache, 'state.json')], cache);
    expect(r.code).toBe(1);
    expect(r.json.findings.map((f: { code: string }) => f.code)).toContain('PLAN_MISSING');
    expect(r.json.remote.missing).toBe(1);
  });

  it('refuses a remote log the policy does not list, and an audit with only --key (exit 2, USAGE_LOG_URL); nothing is mirrored', async () => {
    const other = join(makeTmpDir(), 'att');
    await sign(other, 'minimal', 'o');
    const cache = makeTmpDir();
    const unlisted = await audit(['--log', server.url, '--policy', policy(other, 'p3.json'), '--state', join(cache, 'state.json')], cache);
    // Its checkpoint is not signed by the key the policy has for the origin it claims: not that log.
    expect(unlisted.code, unlisted.stdout).toBe(1);
    expect(unlisted.json.error.code).toMatch(/^TLOG_/);
    const keyOnly = await audit(['--log', server.url, '--key', join(d, 'k.pub'), '--state', join(cache, 'state.json')], cache);
    expect(keyOnly.code).toBe(2);
    expect(keyOnly.json.error.code).toBe('USAGE_LOG_URL');
    expect(existsSync(join(cache, 'mirrors'))).toBe(false);
  });

  it('a different log served under the same URL later is caught (LOG_REPLACED or a rewrite), not audited as the same log', async () => {
    const a = join(makeTmpDir(), 'att');
    await sign(a, 'minimal', 'ra');
    const dir = makeTmpDir();
    const serveDir = join(dir, 'served');
    cpSync(a, serveDir, { recursive: true });
    const s = await serveLog(serveDir);
    servers.push(s);
    const cache = makeTmpDir();
    const pa = policy(a, 'pa.json');
    const first = await audit(['--log', s.url, '--policy', pa, '--state', join(cache, 'state.json')], cache);
    expect(first.code, first.stdout).toBe(0);
    // Same key and origin (a copy of the log directory), but another history: the split view.
    const b = join(makeTmpDir(), 'att');
    cpSync(a, b, { recursive: true });
    await sign(b, 'globals', 'rb');
    await sign(a, 'testrun', 'rc');
    const { rmSync } = await import('node:fs');
    rmSync(serveDir, { recursive: true });
    cpSync(a, serveDir, { recursive: true });
    const consistent = await audit(['--log', s.url, '--policy', pa, '--state', join(cache, 'state.json')], cache);
    expect(consistent.code, consistent.stdout).toBe(0);
    rmSync(serveDir, { recursive: true });
    cpSync(b, serveDir, { recursive: true });
    const forked = await audit(['--log', s.url, '--policy', pa, '--state', join(cache, 'state.json')], cache);
    expect(forked.code).not.toBe(0);
    expect(JSON.stringify(forked.json)).toMatch(/REWRITTEN|LOG_|INCONSISTENT|CONSISTENCY/);
  });
});
