/**
 * Keyless signing (Fulcio + Rekor) end to end, offline: @sigstore/mock's Fulcio (CA + CT log) and
 * Rekor v1 behind nock (test/helpers/sigstore-mock.ts), with their keys written into a Sigstore
 * trusted_root.json that the verifying policy names. Signing runs in this process (nock intercepts
 * only here): signPlan directly, and the `sign` command through commander with registerSign.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import nock from 'nock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { bundleFromJSON, type SerializedBundle } from '@sigstore/bundle';
import { bundleSignerIdentity, identityProvider, keylessSigner, rekorWitness, KeylessSigner } from '../src/attest/keyless.js';
import { decodeRelease, encodeRelease } from '../src/attest/release.js';
import { signPlan } from '../src/attest/sign.js';
import { verifyRelease } from '../src/attest/verify.js';
import { registerSign } from '../src/cli/sign.js';
import { failure } from '../src/cli/output.js';
import { BpfsealError } from '../src/errors.js';
import { planFromBytes } from '../src/plan/file.js';
import { allPlans } from './helpers/attest.js';
import { loadPolicy, type TrustPolicy } from '../src/trust/policy.js';
import { writeKeyFiles } from '../src/trust/keys.js';
import { runCli } from './helpers/cli.js';
import { cleanupTmpDirs, fixturePath, makeTmpDir, readFixture } from './helpers/paths.js';
import { ciToken, ISSUER, startMockSigstore, SUBJECT, unsignedJwt, type MockSigstore } from './helpers/sigstore-mock.js';
import { FulcioSigner, RekorWitness } from '@sigstore/sign';

let m: MockSigstore;
let dir: string;
const { plan, bytes } = planFromBytes(readFixture('minimal'), 'minimal.o');
const savedEnv = { ...process.env };

beforeAll(async () => {
  nock.disableNetConnect();
  m = await startMockSigstore();
  dir = makeTmpDir('bpfseal-keyless-');
  writeFileSync(join(dir, 'trusted_root.json'), JSON.stringify(m.trustedRoot, null, 2));
  writeFileSync(join(dir, 'rekor_root.json'), JSON.stringify(m.rekorOnlyRoot, null, 2));
  // A second, unrelated Sigstore: its CA and Rekor must not be accepted for the first one's releases.
  const other = await startMockSigstore({ fulcioURL: 'https://fulcio.other.test', rekorURL: 'https://rekor.other.test' });
  writeFileSync(join(dir, 'other_root.json'), JSON.stringify(other.trustedRoot, null, 2));
  // Mixed roots: the other CA with our CT log and Rekor; our CA and Rekor with the other CT log.
  writeFileSync(join(dir, 'other_ca_root.json'), JSON.stringify({ ...m.trustedRoot, certificateAuthorities: other.trustedRoot.certificateAuthorities }));
  writeFileSync(join(dir, 'other_ct_root.json'), JSON.stringify({ ...m.trustedRoot, ctlogs: other.trustedRoot.ctlogs }));
});
afterAll(() => {
  m?.stop();
  nock.enableNetConnect();
  cleanupTmpDirs();
});
afterEach(() => {
  m.rekorTransform = undefined;
  for (const k of ['SIGSTORE_ID_TOKEN', 'ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN']) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
  vi.restoreAllMocks();
});

let n = 0;
/** Write a policy next to the trusted roots and load it as verify/load would. */
function policy(signers: unknown[], extra: Record<string, unknown> = { trustedRoot: 'trusted_root.json' }): TrustPolicy {
  const p = join(dir, `policy-${n++}.json`);
  writeFileSync(p, JSON.stringify({ version: 1, signers: signers.map(allPlans), ...extra }));
  return loadPolicy(p);
}
const ci = (subject = SUBJECT, issuer = ISSUER) => ({ name: 'github-release', keyless: { issuer, subject }, plans: ['minimal'], programTypes: ['*'] });

async function signKeyless(opts: { token?: string; witnesses?: RekorWitness[] } = {}): Promise<Buffer> {
  const s = await signPlan(plan, bytes, {
    signer: keylessSigner({ fulcioURL: m.fulcioURL, identityToken: opts.token ?? ciToken() }),
    witnesses: opts.witnesses ?? [rekorWitness(m.rekorURL)],
    version: 3, toolVersion: 'test',
  });
  return Buffer.from(encodeRelease(s.release));
}

function rejected(f: () => unknown): BpfsealError {
  try {
    f();
  } catch (e) {
    if (e instanceof BpfsealError) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

/** Edit the bundle of a release and re-encode it canonically (as an attacker could). */
function editBundle(release: Buffer, edit: (b: SerializedBundle) => void): Buffer {
  const doc = JSON.parse(release.toString('utf8')) as { bundle: SerializedBundle };
  edit(doc.bundle);
  const r = decodeRelease(release);
  return Buffer.from(encodeRelease({ ...r, bundle: bundleFromJSON(doc.bundle) }));
}

describe('keyless signing with signPlan (mock Fulcio + Rekor)', () => {
  let release: Buffer;
  beforeAll(async () => {
    release = await signKeyless();
  });

  it('makes a DSSE bundle with a Fulcio certificate and one Rekor intoto entry, and says who signed', () => {
    const { bundle } = decodeRelease(release);
    expect(bundle.verificationMaterial.content.$case).toBe('certificate');
    const entries = bundle.verificationMaterial.tlogEntries;
    expect(entries).toHaveLength(1);
    expect(entries[0].kindVersion).toEqual({ kind: 'intoto', version: '0.0.2' });
    expect(entries[0].inclusionPromise).toBeDefined();
    expect(bundleSignerIdentity(bundle)).toEqual({ san: SUBJECT, issuer: ISSUER });
    expect(keylessSigner({ identityToken: ciToken() })).toBeInstanceOf(FulcioSigner);
    expect(rekorWitness('https://rekor.test')).toBeInstanceOf(RekorWitness);
  });

  it('verifies under a policy trusting that issuer and exact subject, reporting identity and issuer', () => {
    const v = verifyRelease(release, policy([ci()]));
    expect(v.signer).toMatchObject({ name: 'github-release', identity: SUBJECT, issuer: ISSUER });
    expect(v.log).toMatchObject({ verified: 1, untrusted: 0 });
    expect(v.version).toBe(3);
    expect(v.plan.name).toBe('minimal');
  });

  it('verifies with the subject as /regex/', () => {
    const v = verifyRelease(release, policy([ci('/^https://github\\.com/acme/.*@refs/heads/main$/')]));
    expect(v.signer.identity).toBe(SUBJECT);
  });

  it('rejects another subject, another issuer, or a regex that does not match: UNTRUSTED_SIGNER', () => {
    for (const s of [
      ci('https://github.com/acme/bpf-progs/.github/workflows/release.yml@refs/heads/dev'),
      ci(SUBJECT, 'https://accounts.google.com'),
      ci('/^https://github\\.com/evil/'),
    ]) {
      const e = rejected(() => verifyRelease(release, policy([s])));
      expect(e.code).toBe('UNTRUSTED_SIGNER');
      expect(e.exitCode).toBe(1);
    }
  });

  it('rejects under a policy that trusts no keyless identity: UNTRUSTED_SIGNER', () => {
    const keys = writeKeyFiles(makeTmpDir(), 'k', 'ecdsa-p256');
    copyFileSync(keys.pub, join(dir, 'k.pub'));
    const e = rejected(() => verifyRelease(release, policy([{ name: 'release-key', key: 'k.pub' }])));
    expect(e.code).toBe('UNTRUSTED_SIGNER');
    expect(e.message).toContain('trusts no keyless identity');
  });

  it('rejects a signer allowed only for other plans', () => {
    const e = rejected(() => verifyRelease(release, policy([{ ...ci(), plans: ['xdp_*'] }])));
    expect(e.code).toBe('UNTRUSTED_SIGNER');
  });

  it('rejects a tampered Rekor entry body (BAD_LOG_PROOF)', () => {
    const bad = editBundle(release, (b) => {
      const e = b.verificationMaterial.tlogEntries[0];
      const body = JSON.parse(Buffer.from(e.canonicalizedBody, 'base64').toString('utf8'));
      body.spec.content.payloadHash.value = 'ab'.repeat(32);
      e.canonicalizedBody = Buffer.from(JSON.stringify(body)).toString('base64');
    });
    const e = rejected(() => verifyRelease(bad, policy([ci()])));
    expect(e.code).toBe('BAD_LOG_PROOF');
    expect(e.exitCode).toBe(1);
  });

  it('rejects a Rekor entry with a changed integrated time (the SET no longer verifies)', () => {
    const bad = editBundle(release, (b) => {
      const e = b.verificationMaterial.tlogEntries[0];
      e.integratedTime = String(Number(e.integratedTime) + 1);
    });
    const e = rejected(() => verifyRelease(bad, policy([ci()])));
    expect(e.code).toBe('BAD_LOG_PROOF');
  });

  it('rejects a release whose Rekor entry was removed (no signed time for the short-lived certificate)', () => {
    const bad = editBundle(release, (b) => {
      b.verificationMaterial.tlogEntries = [];
    });
    const e = rejected(() => verifyRelease(bad, policy([ci()])));
    // @sigstore/verify checks timestamps first: with no entry there is no SET, so TIMESTAMP_ERROR.
    expect(e.code).toBe('NO_TIMESTAMP');
    expect(e.message).toMatch(/no verified time for the signature.*expected 1 timestamps, got 0/);
    expect(e.exitCode).toBe(1);
  });

  it('rejects when the Rekor that logged it is not in the trusted root (its entry does not count)', () => {
    const root = JSON.parse(readFileSync(join(dir, 'trusted_root.json'), 'utf8'));
    writeFileSync(join(dir, 'no_rekor_root.json'), JSON.stringify({ ...root, tlogs: [] }));
    const e = rejected(() => verifyRelease(release, policy([ci()], { trustedRoot: 'no_rekor_root.json' })));
    expect(e.exitCode).toBe(1);
    expect(e.message).toMatch(/timestamps, got 0/);
  });

  it('rejects under another Sigstore\'s trusted root, another Fulcio CA, or another CT log', () => {
    const all = rejected(() => verifyRelease(release, policy([ci()], { trustedRoot: 'other_root.json' })));
    expect(all.exitCode).toBe(1);
    const ca = rejected(() => verifyRelease(release, policy([ci()], { trustedRoot: 'other_ca_root.json' })));
    expect([ca.code, ca.exitCode]).toEqual(['UNTRUSTED_SIGNER', 1]);
    expect(ca.message).toMatch(/does not chain to the policy's trusted root: Failed to verify certificate chain/);
    const ct = rejected(() => verifyRelease(release, policy([ci()], { trustedRoot: 'other_ct_root.json' })));
    expect([ct.code, ct.exitCode]).toEqual(['UNTRUSTED_SIGNER', 1]);
    expect(ct.message).toMatch(/SCT verification failed/);
  });

  it('a keyless signer in a policy without a trustedRoot is a policy error (exit 2): nothing could ever verify it', () => {
    const e = rejected(() => verifyRelease(release, policy([ci()], {})));
    expect([e.code, e.exitCode]).toEqual(['POLICY_INVALID', 2]);
    expect(e.message).toContain('a keyless signer needs "trustedRoot"');
  });

  it('rejects a bundle whose certificate was swapped for another signing\'s', async () => {
    const other = decodeRelease(await signKeyless());
    const bad = editBundle(release, (b) => {
      const o = JSON.parse(encodeRelease(other)).bundle as SerializedBundle;
      b.verificationMaterial.certificate = o.verificationMaterial.certificate;
    });
    const e = rejected(() => verifyRelease(bad, policy([ci()])));
    expect(e.exitCode).toBe(1);
    // Issued in a later second, the swapped certificate is not valid at the entry's integrated time
    // (CERTIFICATE_ERROR); in the same second, the signature does not verify with its key.
    if (e.code === 'UNTRUSTED_SIGNER') expect(e.message).toMatch(/does not chain/);
    else expect(e.code).toBe('BAD_SIGNATURE');
  });

  it('a Rekor that logs another signature or payload hash than submitted (valid SET and proof): BAD_LOG_PROOF', async () => {
    const b64 = (x: string) => Buffer.from(x).toString('base64');
    for (const edit of [
      (p: Record<string, any>) => { p.spec.content.envelope.signatures[0].sig = b64(Buffer.alloc(70, 1).toString('base64')); },
      (p: Record<string, any>) => { p.spec.content.payloadHash.value = '00'.repeat(32); },
    ]) {
      m.rekorTransform = (proposed) => (edit(proposed), proposed);
      const bad = await signKeyless();
      const e = rejected(() => verifyRelease(bad, policy([ci()])));
      expect(e.code).toBe('BAD_LOG_PROOF');
      expect(e.message).toMatch(/TLOG_BODY_ERROR|mismatch/);
    }
  });

  it('quirk: @sigstore/verify 3.1 does not check an intoto entry\'s envelope `hash` (signature and payload hash are what bind it)', async () => {
    m.rekorTransform = (proposed) => {
      proposed.spec.content.hash.value = '00'.repeat(32);
      return proposed;
    };
    const r = await signKeyless();
    expect(verifyRelease(r, policy([ci()])).log.verified).toBe(1);
  });

  it('why intoto: a `dsse` entry from this mock Rekor (stored as submitted) fails verification', async () => {
    const dsse = new RekorWitness({ rekorBaseURL: m.rekorURL, entryType: 'dsse' });
    const r = await signKeyless({ witnesses: [dsse] });
    expect(decodeRelease(r).bundle.verificationMaterial.tlogEntries[0].kindVersion.kind).toBe('dsse');
    expect(rejected(() => verifyRelease(r, policy([ci()]))).code).toBe('BAD_LOG_PROOF');
  });
});

describe('identity tokens', () => {
  const clean = () => {
    for (const k of ['SIGSTORE_ID_TOKEN', 'ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN']) delete process.env[k];
  };

  it('no token anywhere: KEYLESS_NO_TOKEN, exit 2, before any request', () => {
    clean();
    const before = m.calls.fulcio;
    const e = rejected(() => keylessSigner({ fulcioURL: m.fulcioURL }));
    expect(e.code).toBe('KEYLESS_NO_TOKEN');
    expect(e.exitCode).toBe(2);
    expect(e.message).toMatch(/SIGSTORE_ID_TOKEN/);
    expect(m.calls.fulcio).toBe(before);
  });

  it('takes $SIGSTORE_ID_TOKEN; an explicit token wins over it', async () => {
    clean();
    process.env.SIGSTORE_ID_TOKEN = ciToken('https://github.com/acme/env@refs/heads/main');
    expect(await identityProvider().getToken()).toBe(process.env.SIGSTORE_ID_TOKEN);
    const t = ciToken();
    expect(await identityProvider({ identityToken: t }).getToken()).toBe(t);
    const r = await signKeyless({ token: process.env.SIGSTORE_ID_TOKEN });
    expect(bundleSignerIdentity(decodeRelease(r).bundle)?.san).toBe('https://github.com/acme/env@refs/heads/main');
  });

  it('falls back to the GitHub Actions OIDC endpoint (CIContextProvider, audience sigstore)', async () => {
    clean();
    const t = ciToken();
    process.env.ACTIONS_ID_TOKEN_REQUEST_URL = 'https://actions.test/token?api-version=2.0';
    process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN = 'runtime-token';
    const scope = nock('https://actions.test').get('/token').query({ 'api-version': '2.0', audience: 'sigstore' })
      .matchHeader('authorization', 'Bearer runtime-token').reply(200, { value: t });
    expect(await identityProvider().getToken()).toBe(t);
    scope.done();
  });

  it('the GitHub Actions endpoint failing is KEYLESS_NO_TOKEN at signing', async () => {
    clean();
    process.env.ACTIONS_ID_TOKEN_REQUEST_URL = 'https://actions.test/token';
    process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN = 'runtime-token';
    nock('https://actions.test').get('/token').query(true).times(3).reply(403, { message: 'no id-token permission' });
    const s = new KeylessSigner({ fulcioURL: m.fulcioURL });
    await expect(s.sign(Buffer.from('x'))).rejects.toMatchObject({ code: 'KEYLESS_NO_TOKEN', exitCode: 2 });
    nock.abortPendingRequests();
  });

  it('malformed, subject-less, unverified-email and expired tokens: KEYLESS_BAD_TOKEN without echoing the token', () => {
    const now = Math.floor(Date.now() / 1000);
    for (const t of ['not-a-jwt', unsignedJwt({ sub: 'x' }), unsignedJwt({ iss: ISSUER }), unsignedJwt({ iss: ISSUER, email: 'a@b.c' }),
      unsignedJwt({ iss: ISSUER, sub: SUBJECT, exp: now - 60 })]) {
      const e = rejected(() => keylessSigner({ identityToken: t }));
      expect(e.code).toBe('KEYLESS_BAD_TOKEN');
      expect(e.exitCode).toBe(2);
      expect(e.message).not.toContain(t);
    }
  });

  it('Fulcio refusing or unreachable, Rekor unreachable: stable codes, exit 2', async () => {
    nock('https://fulcio.down.test').post('/api/v2/signingCert').reply(401, { message: 'token rejected' }, { 'Content-Type': 'application/json' });
    const s = keylessSigner({ fulcioURL: 'https://fulcio.down.test', identityToken: ciToken() }); // 401: not retried
    await expect(signPlan(plan, bytes, { signer: s, version: 1, toolVersion: 't' })).rejects.toMatchObject({ code: 'KEYLESS_FULCIO_ERROR', exitCode: 2 });
    // No interceptor and net connect disabled: nothing leaves this process.
    const s2 = keylessSigner({ fulcioURL: 'https://fulcio.nowhere.test', identityToken: ciToken(), retry: 0 });
    await expect(signPlan(plan, bytes, { signer: s2, version: 1, toolVersion: 't' })).rejects.toMatchObject({ code: 'KEYLESS_FULCIO_ERROR' });
    const e = await signPlan(plan, bytes, {
      signer: keylessSigner({ fulcioURL: m.fulcioURL, identityToken: ciToken() }), witnesses: [rekorWitness('https://rekor.nowhere.test', { retry: 0 })], version: 1, toolVersion: 't',
    }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'KEYLESS_REKOR_ERROR', exitCode: 2 });
    expect((e as Error).message).toContain('https://rekor.nowhere.test');
  });
});

/** Run `bpfseal sign ...` in this process; returns exit code and captured output, as main() would. */
async function sign(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
  const saved = process.exitCode;
  process.exitCode = undefined;
  const p = new Command().name('bpfseal').enablePositionalOptions().exitOverride().configureOutput({ writeErr: (s) => process.stderr.write(s), writeOut: (s) => process.stdout.write(s) });
  registerSign(p);
  for (const c of p.commands) c.exitOverride();
  let code: number;
  try {
    await p.parseAsync(['node', 'bpfseal', 'sign', ...args]);
    code = typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) code = e.code === 'commander.helpDisplayed' ? 0 : 2;
    else {
      const f = failure(e);
      stderr += `bpfseal: ${f.message}\n`;
      code = f.exit;
    }
  } finally {
    process.exitCode = saved;
    vi.restoreAllMocks();
  }
  return { code, stdout, stderr };
}

describe('bpfseal sign --keyless (in-process CLI)', () => {
  let work: string;
  let obj: string;
  beforeAll(() => {
    work = makeTmpDir('bpfseal-keyless-cli-');
    obj = join(work, 'minimal.o');
    copyFileSync(fixturePath('minimal'), obj);
  });

  it('signs with the given token, prints the digest line and "signed as <san> (issuer <iss>)"; the release verifies', async () => {
    const out = join(work, 'a.bpfseal');
    const r = await sign([obj, '--keyless', '--fulcio-url', m.fulcioURL, '--rekor-url', m.rekorURL, '--identity-token', ciToken(), '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^sha256:[0-9a-f]{64}  ${out}\\n$`));
    expect(r.stderr).toBe(`signed as ${SUBJECT} (issuer ${ISSUER})\n`);
    const v = verifyRelease(readFileSync(out), policy([ci()]));
    expect(v.signer).toMatchObject({ identity: SUBJECT, issuer: ISSUER });
    expect(v.log.verified).toBe(1);
  });

  it('`bpfseal verify --policy` (child process: verification is offline) reports the keyless identity', async () => {
    const out = join(work, 'v.bpfseal');
    const r = await sign([obj, '--keyless', '--fulcio-url', m.fulcioURL, '--rekor-url', m.rekorURL, '--identity-token', ciToken(), '--version', '7', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    const pol = join(dir, 'cli-policy.json');
    writeFileSync(pol, JSON.stringify({ version: 1, trustedRoot: 'trusted_root.json', signers: [ci()], state: join(work, 'state.json') }));
    const v = await runCli(['verify', '--policy', pol, out]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(new RegExp(`^OK ${out}: minimal v7 sha256:[0-9a-f]{64} signed by ${SUBJECT} \\(${ISSUER}\\), in log \\(1 entry\\)\\n$`));
    writeFileSync(pol, JSON.stringify({ version: 1, trustedRoot: 'trusted_root.json', signers: [ci('/@refs/tags/v/')], state: join(work, 'state.json') }));
    const bad = await runCli(['verify', '--policy', pol, out]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('UNTRUSTED_SIGNER');
  });

  it('takes $SIGSTORE_ID_TOKEN; --json carries identity and issuer', async () => {
    process.env.SIGSTORE_ID_TOKEN = ciToken();
    const out = join(work, 'b.bpfseal');
    const r = await sign([obj, '--keyless', '--fulcio-url', m.fulcioURL, '--rekor-url', `${m.rekorURL}/`, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const [res] = JSON.parse(r.stdout);
    expect(res).toMatchObject({ input: obj, release: out, identity: SUBJECT, issuer: ISSUER, kernelSignatures: 0 });
    expect(r.stderr).toContain(`signed as ${SUBJECT}`);
    expect(verifyRelease(readFileSync(out), policy([ci()])).signer.identity).toBe(SUBJECT);
  });

  it('--keyless defaults to the public Fulcio and Rekor (refused here: network disabled, exit 2 after 2 retries, nothing written)', async () => {
    const out = join(work, 'c.bpfseal');
    const r = await sign([obj, '--keyless', '--identity-token', ciToken(), '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Fulcio https://fulcio.sigstore.dev');
    expect(() => readFileSync(out)).toThrow();
  });

  it('usage errors (exit 2): neither --key nor --keyless, both, --cert with --keyless, Fulcio flags with --key, bad URL, no token', async () => {
    const keys = writeKeyFiles(makeTmpDir(), 'u', 'ecdsa-p256');
    const cases: [string[], RegExp][] = [
      [[obj], /exactly one of --key <key> or --keyless/],
      [[obj, '--key', keys.key, '--keyless', '--identity-token', ciToken()], /--key or --keyless, not both/],
      [[obj, '--keyless', '--cert', keys.crt, '--identity-token', ciToken()], /--cert cannot be used with --keyless: .*long-lived key/],
      [[obj, '--key', keys.key, '--fulcio-url', m.fulcioURL], /--fulcio-url needs --keyless/],
      [[obj, '--key', keys.key, '--identity-token', ciToken()], /--identity-token needs --keyless/],
      [[obj, '--keyless', '--identity-token', ciToken(), '--rekor-url', 'ftp://rekor.test'], /--rekor-url ftp:\/\/rekor.test: expected an https/],
      [[obj, '--keyless', '--fulcio-url', 'not a url', '--identity-token', ciToken()], /--fulcio-url not a url: not a URL/],
    ];
    for (const [args, msg] of cases) {
      const r = await sign(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stdout).toBe('');
    }
    for (const k of ['SIGSTORE_ID_TOKEN', 'ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN']) delete process.env[k];
    const r = await sign([obj, '--keyless', '--fulcio-url', m.fulcioURL, '--rekor-url', m.rekorURL]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/keyless signing needs an OIDC identity token/);
  });
});

describe('bpfseal sign --key with --rekor-url (key signer + Rekor witness)', () => {
  it('logs the key-signed bundle in Rekor; verifies with the Rekor key in the policy\'s trustedRoot', async () => {
    const work = makeTmpDir('bpfseal-rekor-key-');
    const obj = join(work, 'minimal.o');
    copyFileSync(fixturePath('minimal'), obj);
    const keys = writeKeyFiles(work, 'rel', 'ecdsa-p256');
    copyFileSync(keys.pub, join(dir, 'rel.pub'));
    const out = join(work, 'minimal.bpfseal');
    const r = await sign([obj, '--key', keys.key, '--rekor-url', m.rekorURL, '--no-log']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^sha256:[0-9a-f]{64}  ${out}\\n$`));
    expect(r.stderr).toBe(''); // no "signed as" line for a key
    const { bundle } = decodeRelease(readFileSync(out));
    expect(bundle.verificationMaterial.content.$case).toBe('publicKey');
    expect(bundle.verificationMaterial.tlogEntries).toHaveLength(1);

    const signer = { name: 'release-key', key: 'rel.pub' };
    const v = verifyRelease(readFileSync(out), policy([signer], { trustedRoot: 'rekor_root.json', requireLogInclusion: true }));
    expect(v.signer).toMatchObject({ name: 'release-key', keyId: keys.keyId });
    expect(v.log).toMatchObject({ verified: 1, untrusted: 0 });

    // Without the Rekor key in the trusted root the entry does not count: inclusion required -> rejected.
    const e = rejected(() => verifyRelease(readFileSync(out), policy([signer], { requireLogInclusion: true })));
    expect(e.code).toBe('LOG_INCLUSION_REQUIRED');
    // ...and accepted when inclusion is not required (the entry is reported as untrusted).
    expect(verifyRelease(readFileSync(out), policy([signer], {})).log).toMatchObject({ verified: 0, untrusted: 1 });

    // A tampered entry from the trusted Rekor is rejected.
    const bad = editBundle(readFileSync(out), (b) => {
      const en = b.verificationMaterial.tlogEntries[0];
      const body = JSON.parse(Buffer.from(en.canonicalizedBody, 'base64').toString('utf8'));
      body.spec.content.payloadHash.value = 'cd'.repeat(32);
      en.canonicalizedBody = Buffer.from(JSON.stringify(body)).toString('base64');
    });
    expect(rejected(() => verifyRelease(bad, policy([signer], { trustedRoot: 'rekor_root.json', requireLogInclusion: true }))).code).toBe('BAD_LOG_PROOF');
  });

  it('without --rekor-url, --key signing makes no Rekor request; --no-log leaves no log entry at all', async () => {
    const work = makeTmpDir('bpfseal-key-');
    const obj = join(work, 'minimal.o');
    copyFileSync(fixturePath('minimal'), obj);
    const keys = writeKeyFiles(work, 'rel', 'ecdsa-p256');
    const before = m.calls.rekor;
    const r = await sign([obj, '--key', keys.key, '--no-log']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(m.calls.rekor).toBe(before);
    expect(decodeRelease(readFileSync(join(work, 'minimal.bpfseal'))).bundle.verificationMaterial.tlogEntries).toEqual([]);
    // By default the local attestation log (here $BPFSEAL_LOG) gets the entry, still without Rekor.
    const r2 = await sign([obj, '--key', keys.key, '--log', join(work, 'att')]);
    expect(r2.code, r2.stderr).toBe(0);
    expect(m.calls.rekor).toBe(before);
    expect(decodeRelease(readFileSync(join(work, 'minimal.bpfseal'))).bundle.verificationMaterial.tlogEntries).toHaveLength(1);
  });
});

describe('service URL defaults', () => {
  it('the CLI-side defaults equal @sigstore/sign\'s (kept apart so --help does not load the signing stack)', async () => {
    const urls = await import('../src/attest/urls.js');
    const sign = await import('@sigstore/sign');
    expect(urls.FULCIO_URL).toBe(sign.DEFAULT_FULCIO_URL);
    expect(urls.REKOR_URL).toBe(sign.DEFAULT_REKOR_URL);
  });
});
