/**
 * `audit --follow` (issue "the attestation log at fleet scale" §4): the first run is a full audit and
 * remembers the checkpoint; later runs judge only what was appended since, proving consistency with
 * the remembered checkpoint and each new entry's inclusion from tiles; a rewritten history or a bad
 * new entry is a finding (exit 1) and the remembered checkpoint does not advance. Real CLI and logs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';
import { cleanupTmpDirs, fixturePath, makeTmpDir } from './helpers/paths.js';

afterAll(cleanupTmpDirs);

let d: string;
beforeAll(async () => {
  d = makeTmpDir();
  for (const k of ['k', 'other']) expect((await runCli(['keygen', '--out', d, '--name', k])).code).toBe(0);
});

async function sign(log: string, name: string, key = 'k'): Promise<void> {
  const obj = join(d, `${name}.o`);
  cpSync(fixturePath('minimal'), obj);
  const r = await runCli(['sign', obj, '--key', join(d, `${key}.key`), '--log', log, '-o', join(d, `${name}.bpfseal`)]);
  expect(r.code, r.stderr).toBe(0);
}

const follow = async (log: string, state: string, key = 'k') => {
  const r = await runCli(['audit', '--follow', '--log', log, '--key', join(d, `${key}.pub`), '--state', state, '--json']);
  return { ...r, json: JSON.parse(r.stdout) as { from: number; entries: { index: number; status: string }[]; findings: { code: string }[]; log: { size: number } } };
};

describe('audit --follow', () => {
  it('first a full audit; then only the entries appended since; nothing new is still a clean run', async () => {
    const log = join(makeTmpDir(), 'att');
    await sign(log, 'f0');
    await sign(log, 'f1');
    const state = join(makeTmpDir(), 'state.json');
    const first = await follow(log, state);
    expect(first.code, first.stdout).toBe(0);
    expect([first.json.from, first.json.entries.map((e) => e.index)]).toEqual([0, [0, 1]]);
    await sign(log, 'f2');
    await sign(log, 'f3');
    const next = await follow(log, state);
    expect(next.code, next.stdout).toBe(0);
    expect([next.json.from, next.json.entries.map((e) => [e.index, e.status])]).toEqual([2, [[2, 'verified'], [3, 'verified']]]);
    const idle = await follow(log, state);
    expect([idle.code, idle.json.from, idle.json.entries]).toEqual([0, 4, []]);
    expect((await runCli(['audit', '--follow', '--log', log, '--key', join(d, 'k.pub'), '--state', state])).stdout).toMatch(/judged entries 4\.\.3|consistent with the last audit \(size 4\)/);
  });

  it('a new entry the key does not trust is a finding, and the checkpoint is not advanced past it', async () => {
    const log = join(makeTmpDir(), 'att');
    await sign(log, 'g0');
    const state = join(makeTmpDir(), 'state.json');
    expect((await follow(log, state)).code).toBe(0);
    await sign(log, 'g1', 'other');
    const r = await follow(log, state);
    expect(r.code).toBe(1);
    expect(r.json.entries.map((e) => [e.index, e.status])).toEqual([[1, 'untrusted']]);
    // Not remembered: the next run judges entry 1 again.
    expect((await follow(log, state)).json.from).toBe(1);
  });

  it('a rewritten history under the same key is LOG_REWRITTEN', async () => {
    const base = makeTmpDir();
    const log = join(base, 'att');
    await sign(log, 'h0');
    const saved = join(base, 'saved');
    cpSync(log, saved, { recursive: true });
    await sign(log, 'h1');
    const state = join(makeTmpDir(), 'state.json');
    expect((await follow(log, state)).code).toBe(0);
    // The owner replaces the log with another history from entry 1 on (same key, same origin).
    rmSync(log, { recursive: true });
    cpSync(saved, log, { recursive: true });
    await sign(log, 'h1-other');
    await sign(log, 'h2-other');
    const r = await follow(log, state);
    expect(r.code).toBe(1);
    expect(r.json.findings.map((f) => f.code)).toContain('LOG_REWRITTEN');
    expect(readFileSync(state, 'utf8')).toContain('"checkpoint"');
  });

  it('with --kernel is a usage error', async () => {
    const r = await runCli(['audit', '--follow', '--kernel', '--log', join(makeTmpDir(), 'x'), '--key', join(d, 'k.pub')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('USAGE_FOLLOW');
  });
});
