/**
 * Every command with --json prints exactly one JSON document on stdout for every outcome (issue
 * "daily use" §2): on success its result, on failure `{"error": {code, message, file?, exit}}` (or,
 * for commands over several inputs, their per-item results with an `error` each), and exits with the
 * documented status (README, "Commands"). One success and one failure per command, as a user runs it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './helpers/cli.js';
import { cleanupTmpDirs, fixturePath, makeTmpDir } from './helpers/paths.js';
import { newPinDir, probeBpf, removePinDirs } from './helpers/kernel.js';

let d: string;
const canBpf = probeBpf().ok;

afterAll(() => {
  removePinDirs();
  cleanupTmpDirs();
});

beforeAll(async () => {
  d = makeTmpDir();
  expect((await runCli(['keygen', '--out', join(d, 'keys'), '--name', 'k'])).code).toBe(0);
  expect((await runCli(['sign', fixturePath('minimal'), '--key', join(d, 'keys/k.key'), '--log', join(d, 'att'), '-o', join(d, 'm.bpfseal')])).code).toBe(0);
  writeFileSync(join(d, 'junk.bpfseal'), 'not a release');
  writeFileSync(join(d, 'cp.txt'), 'not a checkpoint');
});

/** One JSON document on stdout, and nothing after it. */
function oneDocument(stdout: string): unknown {
  const text = stdout.trim();
  expect(text.length, 'stdout is empty').toBeGreaterThan(0);
  return JSON.parse(text);
}

type Case = [name: string, args: () => string[], exit: number, shape: (j: any) => void];

const hasError = (code: RegExp | string) => (j: any) => {
  const e = Array.isArray(j) ? j.find((x) => x.error)?.error : j.error;
  expect(e, JSON.stringify(j)).toBeDefined();
  expect(e.code).toMatch(code);
  expect(typeof e.message).toBe('string');
  expect(typeof e.exit).toBe('number');
};

const cases: Case[] = [
  ['plan', () => ['plan', fixturePath('minimal'), '-o', join(d, 'out.plan'), '--json'], 0, (j) => expect(j[0].digest).toMatch(/^sha256:/)],
  ['plan of a missing object', () => ['plan', join(d, 'nope.o'), '--json'], 2, hasError('INPUT_UNREADABLE')],
  ['inspect', () => ['inspect', fixturePath('minimal'), '--json'], 0, (j) => expect(j.name).toBe('minimal')],
  ['inspect of a missing object', () => ['inspect', join(d, 'nope.o'), '--json'], 2, hasError('INPUT_UNREADABLE')],
  ['inspect of a release', () => ['inspect', join(d, 'm.bpfseal'), '--json'], 0, (j) => expect([j.name, j.release.verified, j.release.plan.name]).toEqual(['minimal', false, 'minimal'])],
  ['inspect of a release that is not one', () => ['inspect', join(d, 'junk.bpfseal'), '--json'], 2, hasError('RELEASE_INVALID')],
  ['features', () => ['features', '--json'], 0, (j) => expect(typeof j.bpf.permitted).toBe('boolean')],
  ['features with an unknown option', () => ['features', '--bogus', '--json'], 2, hasError('USAGE_UNKNOWN_OPTION')],
  ['version', () => ['version', '--json'], 0, (j) => expect(j.bpfseal).toMatch(/^\d+\.\d+\.\d+/)],
  ['version with an argument', () => ['version', 'extra', '--json'], 2, hasError('USAGE_EXCESS_ARGUMENTS')],
  ['keygen', () => ['keygen', '--out', join(d, 'k2'), '--name', 'x', '--json'], 0, (j) => expect(j.keyId).toMatch(/^[0-9a-f]{64}$/)],
  ['keygen with an unknown algorithm', () => ['keygen', '--out', join(d, 'k3'), '--algorithm', 'dsa', '--json'], 2, hasError('KEY_ALGORITHM_UNKNOWN')],
  ['sign', () => ['sign', fixturePath('globals'), '--key', join(d, 'keys/k.key'), '--no-log', '-o', join(d, 'g.bpfseal'), '--json'], 0, (j) => expect(j[0].release).toBeDefined()],
  ['sign without a key', () => ['sign', fixturePath('globals'), '--no-log', '--json'], 2, hasError(/^USAGE/)],
  ['verify', () => ['verify', join(d, 'm.bpfseal'), '--key', join(d, 'keys/k.pub'), '--json'], 0, (j) => expect(j[0].ok).toBe(true)],
  ['verify of a bad release', () => ['verify', join(d, 'junk.bpfseal'), '--key', join(d, 'keys/k.pub'), '--json'], 2, hasError(/./)],
  ['verify with an unknown option', () => ['verify', join(d, 'm.bpfseal'), '--bogus', '--json'], 2, hasError('USAGE_UNKNOWN_OPTION')],
  ['load --dry-run', () => ['load', join(d, 'm.bpfseal'), '--key', join(d, 'keys/k.pub'), '--dry-run', '--json'], 0, (j) => expect(j.plan).toBe('minimal')],
  ['load without --pin', () => ['load', join(d, 'm.bpfseal'), '--key', join(d, 'keys/k.pub'), '--json'], 2, hasError('USAGE_NO_PIN')],
  ['load refused by the policy', () => ['load', join(d, 'm.bpfseal'), '--key', join(d, 'k2/x.pub'), '--dry-run', '--json'], 1, hasError('UNTRUSTED_SIGNER')],
  ['unload of a directory bpfseal did not pin', () => ['unload', join(d, 'nothing'), '--host-log', join(d, 'hl'), '--json'], 2, hasError(/./)],
  ['recover', () => ['recover', '--host-log', join(d, 'hl'), '--json'], 0, (j) => expect(j.recovered).toEqual([])],
  ['log verify', () => ['log', 'verify', '--log', join(d, 'att'), '--json'], 0, (j) => expect(j.ok).toBe(true)],
  ['log verify of no log', () => ['log', 'verify', '--log', join(d, 'nolog'), '--json'], 2, hasError(/^TLOG_/)],
  ['log prove', () => ['log', 'prove', '0', '--log', join(d, 'att'), '--json'], 0, (j) => expect(j).toBeDefined()],
  ['log prove of a missing index', () => ['log', 'prove', '99', '--log', join(d, 'att'), '--json'], 2, hasError(/./)],
  ['log show', () => ['log', 'show', '--log', join(d, 'att'), '--json'], 0, (j) => expect(j).toBeDefined()],
  ['log consistency with a bad checkpoint', () => ['log', 'consistency', join(d, 'cp.txt'), '--log', join(d, 'att'), '--json'], 2, hasError(/./)],
  ['log witness-key', () => ['log', 'witness-key', join(d, 'w.key'), '--name', 'w.example/x', '--json'], 0, (j) => expect(j.vkey).toMatch(/^w\.example\/x\+/)],
  ['log witness-key over an existing file', () => ['log', 'witness-key', join(d, 'w.key'), '--name', 'w.example/x', '--json'], 2, hasError(/./)],
  ['preflight with a bad --kernel spec', () => ['preflight', join(d, 'm.bpfseal'), '--kernel', 'not a kernel', '--offline', '--json'], 2, hasError(/./)],
  ['verify-report of a file that is not a report', () => ['verify-report', join(d, 'junk.bpfseal'), '--key', join(d, 'keys/k.pub'), '--json'], 2, hasError(/./)],
  ['completion (the command tree)', () => ['completion', 'bash', '--json'], 0, (j) => expect(j.name).toBe('bpfseal')],
  ['completion for an unknown shell', () => ['completion', 'fish', '--json'], 2, hasError('USAGE_INVALID_ARGUMENT')],
  ['verify with an identity but no issuer', () => ['verify', join(d, 'm.bpfseal'), '--certificate-identity', 'x', '--json'], 2, hasError('USAGE_KEYLESS_ISSUER')],
  ['enforce --status with no enforcer (exit 1: the status, with its error)', () => ['enforce', '--status', '--pin', join(d, 'no-enforcer'), '--host-log', join(d, 'hl-enforce'), '--json'], 1, (j) => { expect(j.active).toBe(false); hasError('ENFORCE_INACTIVE')(j); }],
  ['enforce with two modes', () => ['enforce', '--status', '--off', '--json'], 2, hasError('USAGE_ENFORCE_MODE')],
  ['audit', () => ['audit', '--log', join(d, 'att'), '--key', join(d, 'keys/k.pub'), '--state', join(d, 'as.json'), '--json'], 0, (j) => expect(j.findings).toEqual([])],
  ['audit with a bad --since', () => ['audit', '--log', join(d, 'att'), '--key', join(d, 'keys/k.pub'), '--since', 'soon', '--json'], 2, hasError('USAGE_SINCE')],
  ['audit with an untrusting key (findings)', () => ['audit', '--log', join(d, 'att'), '--key', join(d, 'k2/x.pub'), '--state', join(d, 'as2.json'), '--json'], 1, (j) => expect(j.findings.length).toBeGreaterThan(0)],
];

describe('--json: one document on stdout for every outcome', () => {
  it.each(cases)('%s', async (_name, args, exit, shape) => {
    const r = await runCli(args());
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(exit);
    shape(oneDocument(r.stdout));
  });

  it.skipIf(!canBpf)('load and unload for real', async () => {
    const pin = newPinDir();
    const l = await runCli(['load', join(d, 'm.bpfseal'), '--key', join(d, 'keys/k.pub'), '--pin', pin, '--host-log', join(d, 'hl'), '--state', join(d, 'st.json'), '--json']);
    expect(l.code, l.stderr).toBe(0);
    expect((oneDocument(l.stdout) as { pinDir: string }).pinDir).toBe(pin);
    const u = await runCli(['unload', pin, '--host-log', join(d, 'hl'), '--json']);
    expect(u.code, u.stderr).toBe(0);
    expect((oneDocument(u.stdout) as { removed: string[] }).removed.length).toBeGreaterThan(0);
  });
});
