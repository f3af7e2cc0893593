/**
 * cosign-style keyless verification from the command line (`verify`/`load` with
 * --certificate-identity[-regexp], --certificate-oidc-issuer, --trusted-root): releases signed keyless
 * in this process against @sigstore/mock (test/helpers/sigstore-mock.ts), verified by the built CLI in
 * a child process (verification is offline, so nock is not needed there). Every mistake in the flags
 * is exit 2 and never a wider trust; the regexp must match the whole SAN.
 */
import { chmodSync, copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nock from 'nock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keylessSigner, rekorWitness } from '../src/attest/keyless.js';
import { encodeRelease } from '../src/attest/release.js';
import { signPlan } from '../src/attest/sign.js';
import { planFromBytes } from '../src/plan/file.js';
import { writeKeyFiles } from '../src/trust/keys.js';
import { runCli } from './helpers/cli.js';
import { cleanupTmpDirs, fixturePath, makeTmpDir, readFixture } from './helpers/paths.js';
import { ciToken, ISSUER, startMockSigstore, SUBJECT, type MockSigstore } from './helpers/sigstore-mock.js';

let m: MockSigstore;
let dir: string;
let release: string;
let root: string;
let state: string;

beforeAll(async () => {
  nock.disableNetConnect();
  m = await startMockSigstore();
  dir = makeTmpDir('bpfseal-cosign-');
  root = join(dir, 'trusted_root.json');
  writeFileSync(root, JSON.stringify(m.trustedRoot, null, 2));
  state = join(dir, 'state.json');
  const { plan, bytes } = planFromBytes(readFixture('minimal'), 'minimal.o');
  const s = await signPlan(plan, bytes, {
    signer: keylessSigner({ fulcioURL: m.fulcioURL, identityToken: ciToken() }),
    witnesses: [rekorWitness(m.rekorURL)], version: 4, toolVersion: 'test',
  });
  release = join(dir, 'minimal.bpfseal');
  writeFileSync(release, encodeRelease(s.release));
});
afterAll(() => {
  m?.stop();
  nock.enableNetConnect();
  cleanupTmpDirs();
});

const idFlags = (identity = SUBJECT, issuer = ISSUER) => ['--certificate-identity', identity, '--certificate-oidc-issuer', issuer, '--trusted-root', root];
const reFlags = (re: string, issuer = ISSUER) => ['--certificate-identity-regexp', re, '--certificate-oidc-issuer', issuer, '--trusted-root', root];
const verify = async (flags: string[], ...more: string[]) => await runCli(['verify', release, '--state', state, ...flags, ...more]);

describe('verify with --certificate-identity / --certificate-oidc-issuer / --trusted-root', () => {
  it('the exact identity and issuer verify; the output names identity and issuer', async () => {
    const r = await verify(idFlags());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^OK ${release}: minimal v4 sha256:[0-9a-f]{64} signed by ${SUBJECT} \\(${ISSUER}\\), in log \\(1 entry\\)\\n$`));
    const j = await verify(idFlags(), '--json');
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)[0]).toMatchObject({ ok: true, plan: 'minimal', signer: { identity: SUBJECT, issuer: ISSUER } });
  });

  it('another identity, another issuer, or the identity given as a /regex/-looking exact string: exit 1, UNTRUSTED_SIGNER', async () => {
    for (const flags of [
      idFlags(SUBJECT.replace('refs/heads/main', 'refs/heads/dev')),
      idFlags(`${SUBJECT}x`),
      idFlags(SUBJECT, 'https://accounts.google.com'),
      idFlags(SUBJECT, `${ISSUER}/`),
      idFlags('/.*/'), // --certificate-identity is exact: slashes do not make it a pattern
    ]) {
      const r = await verify(flags);
      expect(r.code, flags.join(' ')).toBe(1);
      expect(r.stderr).toContain('UNTRUSTED_SIGNER');
      expect(r.stdout).toBe('');
    }
  });

  it('--certificate-identity-regexp matching the whole SAN verifies', async () => {
    for (const re of ['https://github\\.com/acme/.*@refs/heads/main', '.*', `${SUBJECT.replace(/[.?]/g, '\\$&')}`, '^https://github\\.com/acme/bpf-progs/.*$']) {
      const r = await verify(reFlags(re));
      expect(r.code, `${re}: ${r.stderr}`).toBe(0);
    }
  });

  it('a regexp that matches only part of the SAN is refused (anchored, unlike a bare RegExp.test)', async () => {
    expect(/acme\/bpf-progs/.test(SUBJECT)).toBe(true); // what an unanchored match would accept
    for (const re of ['acme/bpf-progs', 'https://github\\.com/acme', 'refs/heads/main', '.*@refs/heads/ma', 'evil|https://github\\.com/acme']) {
      const r = await verify(reFlags(re));
      expect(r.code, re).toBe(1);
      expect(r.stderr).toContain('UNTRUSTED_SIGNER');
    }
    // ...and with the wrong issuer even ".*" is refused.
    expect((await verify(reFlags('.*', 'https://accounts.google.com'))).code).toBe(1);
  });

  it('load --dry-run takes the same flags: match loads into the model kernel, mismatch is refused', async () => {
    const ok = await runCli(['load', release, '--dry-run', '--state', state, ...idFlags()]);
    expect(ok.code, ok.stderr).toBe(0);
    const bad = await runCli(['load', release, '--dry-run', '--state', state, ...reFlags('acme/bpf-progs')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('UNTRUSTED_SIGNER');
  });

  it('a key-signed release is not trusted by a keyless identity', async () => {
    const work = makeTmpDir('bpfseal-cosign-key-');
    const keys = writeKeyFiles(work, 'rel', 'ecdsa-p256');
    const obj = join(work, 'minimal.o');
    copyFileSync(fixturePath('minimal'), obj);
    const s = await runCli(['sign', obj, '--key', keys.key, '--no-log']);
    expect(s.code, s.stderr).toBe(0);
    const r = await runCli(['verify', join(work, 'minimal.bpfseal'), '--state', state, ...idFlags()]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('UNTRUSTED_SIGNER');
  });

  it('mistakes in the flags: exit 2 with a usage or policy code, nothing verified', async () => {
    const bad = join(dir, 'not-a-root.json');
    writeFileSync(bad, JSON.stringify({ mediaType: 'application/json' }));
    const open = join(dir, 'open-root.json');
    writeFileSync(open, JSON.stringify(m.trustedRoot));
    chmodSync(open, 0o666);
    const keys = writeKeyFiles(makeTmpDir(), 'k', 'ecdsa-p256');
    const cases: [string[], string, RegExp][] = [
      [['--certificate-identity', SUBJECT, '--trusted-root', root], 'USAGE_KEYLESS_ISSUER', /needs --certificate-oidc-issuer/],
      [['--certificate-identity-regexp', '.*', '--trusted-root', root], 'USAGE_KEYLESS_ISSUER', /needs --certificate-oidc-issuer/],
      [['--certificate-oidc-issuer', ISSUER, '--trusted-root', root], 'USAGE_KEYLESS_IDENTITY', /needs --certificate-identity/],
      [['--trusted-root', root], 'USAGE_KEYLESS_IDENTITY', /needs --certificate-identity/],
      [[...idFlags(), '--certificate-identity-regexp', '.*'], 'USAGE_KEYLESS_IDENTITY', /not both/],
      [['--certificate-identity', '', '--certificate-oidc-issuer', ISSUER, '--trusted-root', root], 'USAGE_KEYLESS_IDENTITY', /empty/],
      [['--certificate-identity', SUBJECT, '--certificate-oidc-issuer', ''], 'USAGE_KEYLESS_ISSUER', /empty/],
      [reFlags('main)|(.*'), 'USAGE_KEYLESS_REGEXP', /not a valid regular expression/],
      [reFlags('(['), 'USAGE_KEYLESS_REGEXP', /not a valid regular expression/],
      [['--certificate-identity', SUBJECT, '--certificate-oidc-issuer', ISSUER], 'USAGE_KEYLESS_TRUSTED_ROOT', /needs --trusted-root/],
      [['--certificate-identity', SUBJECT, '--certificate-oidc-issuer', ISSUER, '--trusted-root', join(dir, 'missing.json')], 'POLICY_UNREADABLE', /--trusted-root .*missing\.json/],
      [['--certificate-identity', SUBJECT, '--certificate-oidc-issuer', ISSUER, '--trusted-root', bad], 'POLICY_INVALID', /not a Sigstore trusted root/],
      [['--certificate-identity', SUBJECT, '--certificate-oidc-issuer', ISSUER, '--trusted-root', open], 'TRUST_FILE_UNSAFE', /writable by group or others/],
      [[...idFlags(), '--key', keys.pub], 'USAGE_TRUST', /not --key and --certificate-\*/],
      [[...idFlags(), '--policy', join(dir, 'p.json')], 'USAGE_TRUST', /not --policy and --certificate-\*/],
      [['--trusted-root', root, '--key', keys.pub], 'USAGE_TRUST', /not --key and/],
    ];
    for (const [flags, code, msg] of cases) {
      const r = await verify(flags);
      expect(r.code, flags.join(' ')).toBe(2);
      expect(r.stderr, flags.join(' ')).toContain(`${code}: `);
      expect(r.stderr, flags.join(' ')).toMatch(msg);
      expect(r.stdout).toBe('');
      const j = await verify(flags, '--json');
      expect(JSON.parse(j.stdout).error ?? JSON.parse(j.stdout)[0].error, flags.join(' ')).toMatchObject({ code, exit: 2 });
    }
  });

  it('--help says the identity is trusted for any plan and any program type', async () => {
    for (const cmd of ['verify', 'load']) {
      const h = await runCli([cmd, '--help']);
      expect(h.code).toBe(0);
      expect(h.stdout.replace(/\s+/g, ' ')).toMatch(/--certificate-identity <san>.*any plan and any program type/);
      expect(h.stdout).toContain('--certificate-identity-regexp <re>');
      expect(h.stdout).toContain('--trusted-root <file>');
    }
  });
});
