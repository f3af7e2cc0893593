/** The README's first command runs `bpfseal demo`: it must work end to end, with and without bpf(2). */
import { existsSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { makeTmpDir } from './helpers/paths.js';
import { canUseBpf } from '../src/kernel/probe.js';

const PREDICTED = /\[plan\] {3}program count_packets \(xdp\), \d+ insns, predicted tag ([0-9a-f]{16}), stable bytes/;

describe('bpfseal demo', () => {
  it('--dry-run: plans, signs, logs, verifies and model-loads the example, keeping its files', async () => {
    const dir = makeTmpDir('bpfseal-demo-test-');
    const r = await runCli(['demo', '--dry-run', '--dir', dir]);
    expect(r.code, r.stderr).toBe(0);
    const tag = PREDICTED.exec(r.stdout)?.[1];
    expect(tag).toBeDefined();
    expect(r.stdout).toContain('[verify] signature, subject digest, log inclusion and policy OK: xdp_counter v1');
    expect(r.stdout).toContain(`[load] model-loaded count_packets: id 5, tag ${tag} (= predicted)`);
    expect(readdirSync(dir).sort()).toEqual(expect.arrayContaining(['attestations', 'keys', 'policy.json', 'xdp_counter.bpfseal', 'xdp_counter.plan']));
    expect(existsSync(`${dir}/attestations/envelopes`)).toBe(true);
  });

  it.skipIf(!canUseBpf())('real kernel: the loaded program gets the predicted tag, counts 3 test packets, is attested, and is unloaded', async () => {
    const dir = makeTmpDir('bpfseal-demo-test-');
    const r = await runCli(['demo', '--dir', dir]);
    expect(r.code, r.stderr).toBe(0);
    const tag = PREDICTED.exec(r.stdout)?.[1];
    expect(r.stdout).toMatch(new RegExp(`\\[load\\] loaded count_packets: id \\d+, tag ${tag} \\(= predicted\\)`));
    expect(r.stdout).toContain('proto_stats[17] = {packets: 3, bytes: 192}');
    expect(r.stdout).toMatch(/\[audit\] log: 1 attestation\(s\), 1 verified, 0 finding\(s\); .*count_packets \(id \d+\) attested/);
    const pinDir = /removed 4 pins from (\S+)/.exec(r.stdout)?.[1];
    expect(pinDir).toBeDefined();
    expect(existsSync(pinDir!)).toBe(false);
  });
});
