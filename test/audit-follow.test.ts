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
beforeAll(() => {
  d = makeTmpDir();
  for (const k of ['k', 'other']) expect(runCli(['keygen', '--out', d, '--name', k]).code).toBe(0);
});

function sign(log: string, name: string, key = 'k'): void {
  const obj = join(d, `${name}.o`);
  cpSync(fixturePath('minimal'), obj);
  const r = runCli(['sign', obj, '--key', join(d, `${key}.key`), '--log', log, '-o', join(d, `${name}.bpfseal`)]);
  expect(r.code, r.stderr).toBe(0);
}

const follow = (log: string, state: string, key = 'k') => {
  const r = runCli(['audit', '--follow', '--log', log, '--key', join(d, `${key}.pub`), '--state', state, '--json']);
  return { ...r, json: JSON.parse(r.stdout) as { from: number; entries: { index: number; status: string }[]; findings: { code: string }[]; log: { size: number } } };
};

describe('audit --follow', () => {
  it('first a full audit; then only the entries appended since; nothing new is still a clean run', () => {
    const log = join(makeTmpDir(), 'att');
    sign(log, 'f0');
    sign(log, 'f1');
    const state = join(makeTmpDir(), 'state.json');
    const first = follow(log, state);
    expect(first.code, first.stdout).toBe(0);
    expect([first.json.from, first.json.entries.map((e) => e.index)]).toEqual([0, [0, 1]]);
    sign(log, 'f2');
    sign(log, 'f3');
    const next = follow(log, state);
    expect(next.code, next.stdout).toBe(0);
    expect([next.json.from, next.json.entries.map((e) => [e.index, e.status])]).toEqual([2, [[2, 'verified'], [3, 'verified']]]);
    const idle = follow(log, state);
    expect([idle.code, idle.json.from, idle.json.entries]).toEqual([0, 4, []]);
    expect(runCli(['audit', '--follow', '--log', log, '--key', join(d, 'k.pub'), '--state', state]).stdout).toMatch(/judged entries 4\.\.3|consistent with the last audit \(size 4\)/);
  });

  it('a new entry the key does not trust is a finding, and the checkpoint is not advanced past it', () => {
    const log = join(makeTmpDir(), 'att');
    sign(log, 'g0');
    const state = join(makeTmpDir(), 'state.json');
    expect(follow(log, state).code).toBe(0);
    sign(log, 'g1', 'other');
    const r = follow(log, state);
    expect(r.code).toBe(1);
    expect(r.json.entries.map((e) => [e.index, e.status])).toEqual([[1, 'untrusted']]);
    // Not remembered: the next run judges entry 1 again.
    expect(follow(log, state).json.from).toBe(1);
  });

  it('a rewritten history under the same key is LOG_REWRITTEN', () => {
    const base = makeTmpDir();
    const log = join(base, 'att');
    sign(log, 'h0');
    const saved = join(base, 'saved');
    cpSync(log, saved, { recursive: true });
    sign(log, 'h1');
    const state = join(makeTmpDir(), 'state.json');
    expect(follow(log, state).code).toBe(0);
    // The owner replaces the log with another history from entry 1 on (same key, same origin).
    rmSync(log, { recursive: true });
    cpSync(saved, log, { recursive: true });
    sign(log, 'h1-other');
    sign(log, 'h2-other');
    const r = follow(log, state);
    expect(r.code).toBe(1);
    expect(r.json.findings.map((f) => f.code)).toContain('LOG_REWRITTEN');
    expect(readFileSync(state, 'utf8')).toContain('"checkpoint"');
  });

  it('with --kernel is a usage error', () => {
    const r = runCli(['audit', '--follow', '--kernel', '--log', join(makeTmpDir(), 'x'), '--key', join(d, 'k.pub')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('USAGE_FOLLOW');
  });
});
