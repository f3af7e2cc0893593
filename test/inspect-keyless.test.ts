/**
 * `inspect` and `log show` of a keyless release (issue 12 §3): the Fulcio identity and issuer as the
 * bundle names them, the Rekor entry beside the local log's. Signed in this process against the
 * offline @sigstore/mock Fulcio and Rekor (nock intercepts only here); inspected by the built CLI.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nock from 'nock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keylessSigner, rekorWitness } from '../src/attest/keyless.js';
import { encodeRelease } from '../src/attest/release.js';
import { signPlan } from '../src/attest/sign.js';
import { AttestationLogWitness, savePlan } from '../src/attest/witness.js';
import { planFromBytes } from '../src/plan/file.js';
import { openLogForWriting } from '../src/tlog/migrate.js';
import { runCli } from './helpers/cli.js';
import { cleanupTmpDirs, makeTmpDir, readFixture } from './helpers/paths.js';
import { ciToken, ISSUER, startMockSigstore, SUBJECT, type MockSigstore } from './helpers/sigstore-mock.js';

let m: MockSigstore;
let dir: string;

beforeAll(async () => {
  nock.disableNetConnect();
  m = await startMockSigstore();
  dir = makeTmpDir('bpfseal-inspect-keyless-');
  const { plan, bytes, digest } = planFromBytes(readFixture('minimal'), 'minimal.o');
  const log = await openLogForWriting(join(dir, 'att'));
  try {
    savePlan(log.dir, bytes);
    const s = await signPlan(plan, bytes, {
      digest, signer: keylessSigner({ fulcioURL: m.fulcioURL, identityToken: ciToken() }),
      witnesses: [rekorWitness(m.rekorURL), new AttestationLogWitness(log)], version: 4, toolVersion: 'test', builder: { ci: 'github' },
    });
    writeFileSync(join(dir, 'k.bpfseal'), encodeRelease(s.release));
  } finally {
    log.close();
  }
});

afterAll(() => {
  m?.stop();
  nock.enableNetConnect();
  cleanupTmpDirs();
});

describe('a keyless release', () => {
  it('inspect names the identity and issuer, without claiming they are trusted', async () => {
    const r = await runCli(['inspect', join(dir, 'k.bpfseal'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const { release } = JSON.parse(r.stdout);
    expect(release.verified).toBe(false);
    expect(release.signer).toMatchObject({ kind: 'keyless', identity: SUBJECT, issuer: ISSUER, keyId: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(Date.parse(release.signer.notAfter)).toBeGreaterThan(Date.parse(release.signer.notBefore));
    expect(release.log.map((l: { kind: string }) => l.kind).sort()).toEqual(['dsse 0.0.1', 'intoto 0.0.2']);
    expect(release.signedAt.source).toBe('log');
    expect(release).toMatchObject({ version: 4, builder: { ci: 'github' }, kernelSignatures: { certificate: null } });
    const t = (await runCli(['inspect', join(dir, 'k.bpfseal')])).stdout;
    expect(t).toContain(`signer    keyless ${SUBJECT}  issuer ${ISSUER}`);
    expect(t).toContain('not checked against any root or policy');
  });

  it('log show lists the entry with the identity as its signer', async () => {
    const r = await runCli(['log', 'show', '--log', join(dir, 'att'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const [e] = JSON.parse(r.stdout);
    expect(e).toMatchObject({ kind: 'attestation', plan: 'minimal', version: 4, signer: { identity: SUBJECT, issuer: ISSUER } });
    expect((await runCli(['log', 'show', '--log', join(dir, 'att')])).stdout).toContain(`${SUBJECT} (${ISSUER})`);
  });
});
