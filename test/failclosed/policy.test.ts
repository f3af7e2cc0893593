/**
 * Fail closed, trust policy (issue "fail closed" §1): one strict schema at every depth, canonical ids,
 * expired certificates, and the property that a mistake in a policy never widens trust: a mutated
 * policy either fails to parse (exit 2, POLICY_INVALID) or accepts a subset of what the original accepts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPublicKey } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { localKeySigner, signPlan } from '../../src/attest/sign.js';
import { encodeRelease } from '../../src/attest/release.js';
import { verifyRelease } from '../../src/attest/verify.js';
import { checkKernelSignature } from '../../src/attest/pkcs7.js';
import { BpfsealError } from '../../src/errors.js';
import { parsePolicy, loadPolicy, type TrustPolicy } from '../../src/trust/policy.js';
import { loadPrivateKey, writeKeyFiles, type KeyFiles } from '../../src/trust/keys.js';
import { planFromBytes } from '../../src/plan/file.js';
import { generate } from '../../scripts/gen-schemas.mjs';
import { iterSeed, prng } from '../helpers/mutate.mjs';
import { cleanupTmpDirs, makeTmpDir, readFixture, ROOT } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';

afterAll(cleanupTmpDirs);

let dir: string;
const keys: Record<'a' | 'b' | 'c', KeyFiles> = {} as never;

function policyError(text: string): BpfsealError {
  try {
    parsePolicy(text, join(dir, 'p.json'));
  } catch (e) {
    if (e instanceof BpfsealError) return e;
    throw e;
  }
  throw new Error(`policy parsed: ${text}`);
}

const base = () => ({
  version: 1,
  signers: [{ name: 'a', key: 'a.pub', plans: ['pp-a', 'pp-c'], programTypes: ['xdp', 'socket_filter'] }],
  revoked: { keys: [] as string[], digests: [] as string[] },
  minVersions: { 'pp-a': 1 } as Record<string, number>,
  requireLogInclusion: false,
  allowRollback: false,
});

beforeAll(() => {
  dir = makeTmpDir('bpfseal-policy-');
  for (const k of ['a', 'b', 'c'] as const) keys[k] = writeKeyFiles(dir, k, 'ecdsa-p256');
});

describe('strict schema: the examples from the attack, each exit 2 naming the field', () => {
  it.each([
    ['"plan" instead of "plans"', (p: any) => { p.signers[0].plan = p.signers[0].plans; delete p.signers[0].plans; }, /signers\[0\]\.plan: unknown field.*signers\[0\]\.plans: missing required field|signers\[0\]\.plans: missing required field.*signers\[0\]\.plan: unknown field/],
    ['"revoked": {"key": [...]}', (p: any) => { p.revoked = { key: [keys.b.keyId] }; }, /revoked\.key: unknown field/],
    ['"requireLogInclusion": "true" (a string)', (p: any) => { p.requireLogInclusion = 'true'; }, /requireLogInclusion: must be a boolean \(got the string "true"\)/],
    ['signers: [null]', (p: any) => { p.signers = [null]; }, /signers\[0\]: must be an object \(got null\)/],
    ['logs: {}', (p: any) => { p.logs = {}; }, /logs: must be an array \(got an object\)/],
    ['signers: []', (p: any) => { p.signers = []; }, /signers: must not be empty/],
    ['a signer with both key and keyless', (p: any) => { p.signers[0].keyless = { issuer: 'https://i', subject: 's' }; }, /signers\[0\]: give exactly one of "key".*or "keyless"/],
    ['a signer with neither', (p: any) => { delete p.signers[0].key; }, /signers\[0\]: give exactly one of/],
    ['an unknown top-level field', (p: any) => { p.requireLogInclusions = true; }, /requireLogInclusions: unknown field/],
    ['minVersions value as a string', (p: any) => { p.minVersions['pp-a'] = '2'; }, /minVersions\["pp-a"\]: must be an integer/],
    ['a negative minimum version', (p: any) => { p.minVersions['pp-a'] = -1; }, /minVersions\["pp-a"\]: must be >= 0/],
    ['keyring out of range', (p: any) => { p.keyring = 2 ** 31; }, /keyring: must be <= 2147483647/],
    ['version 2', (p: any) => { p.version = 2; }, /version: must be 1 \(got number 2\)/],
    ['an empty plans list', (p: any) => { p.signers[0].plans = []; }, /signers\[0\]\.plans: must not be empty/],
    ['a null inside plans', (p: any) => { p.signers[0].plans = [null]; }, /signers\[0\]\.plans\[0\]: must be a string \(got null\)/],
  ])('%s', (_what, edit, msg) => {
    const p = base();
    edit(p);
    const e = policyError(JSON.stringify(p));
    expect([e.code, e.exitCode]).toEqual(['POLICY_INVALID', 2]);
    expect(e.message).toMatch(msg);
    expect(e.message).not.toMatch(/internal error|undefined|\[object Object\]/);
  });

  it('a duplicate key is refused (JSON.parse would keep the last one silently)', () => {
    const e = policyError('{"version":1,"requireLogInclusion":true,"requireLogInclusion":false,"signers":[{"name":"a","key":"a.pub","plans":["*"],"programTypes":["*"]}]}');
    expect(e.message).toMatch(/duplicate key "requireLogInclusion"/);
    const deep = policyError('{"version":1,"signers":[{"name":"a","key":"a.pub","plans":["x"],"plans":["*"],"programTypes":["*"]}]}');
    expect(deep.message).toMatch(/duplicate key "plans" in signers\[0\]/);
  });

  it('an invalid regular expression in a keyless subject is refused', () => {
    writeFileSync(join(dir, 'root.json'), JSON.stringify({ mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] }));
    const e = policyError(JSON.stringify({ version: 1, trustedRoot: 'root.json', signers: [{ name: 'ci', keyless: { issuer: 'https://i', subject: '/^(unclosed/' }, plans: ['*'], programTypes: ['*'] }] }));
    expect(e.message).toMatch(/signers\[0\]\.keyless\.subject: not a valid regular expression/);
    // A body that only compiles inside the anchoring group would escape the anchors: refused too.
    const esc = policyError(JSON.stringify({ version: 1, trustedRoot: 'root.json', signers: [{ name: 'ci', keyless: { issuer: 'https://i', subject: '/https://ci.acme)|(.*/' }, plans: ['*'], programTypes: ['*'] }] }));
    expect(esc.message).toMatch(/keyless\.subject: not a valid regular expression/);
  });

  it('keyless subject regexes match the whole SAN (an unanchored pattern cannot match a longer, foreign SAN)', () => {
    const p = parsePolicy(JSON.stringify({ version: 1, trustedRoot: 'root.json', signers: [{ name: 'ci', keyless: { issuer: 'https://i', subject: '/https://github.com/acme/.*@refs/tags/v.*/' }, plans: ['*'], programTypes: ['*'] }] }), join(dir, 'p.json'));
    const re = p.signers[0].keyless!.subjectRegex!;
    expect(re.test('https://github.com/acme/bpf/.github/workflows/r.yml@refs/tags/v1.2')).toBe(true);
    expect(re.test('https://evil.example/https://github.com/acme/x@refs/tags/v1')).toBe(false);
  });

  it('the published schema and the compiled validator agree (regenerated from docs/policy.schema.json)', () => {
    expect(readFileSync(join(ROOT, 'src/trust/policy.validate.gen.ts'), 'utf8')).toBe(generate('docs/policy.schema.json'));
  });

  it('the CLI reports a policy error with exit 2 and the field path', async () => {
    const p = base();
    (p.signers[0] as any).plan = ['*'];
    writeFileSync(join(dir, 'bad.json'), JSON.stringify(p));
    const r = await runCli(['verify', join(dir, 'nothing.bpfseal'), '--policy', join(dir, 'bad.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('POLICY_INVALID');
    expect(r.stderr).toContain('signers[0].plan: unknown field');
  });
});

describe('key ids and digests: one canonical form', () => {
  it('upper case and a sha256: prefix are the same id; revocation by either works', () => {
    const a = keys.a.keyId;
    for (const form of [a.toUpperCase(), `sha256:${a}`, `sha256:${a.toUpperCase()}`]) {
      const p = base();
      p.revoked.keys = [form];
      expect([...parsePolicy(JSON.stringify(p), join(dir, 'p.json')).revokedKeys]).toEqual([a]);
    }
  });

  it('the 16-digit key id verify prints is refused with a message to use the full id', () => {
    const p = base();
    p.revoked.keys = [keys.a.keyId.slice(0, 16)];
    const e = policyError(JSON.stringify(p));
    expect(e.message).toMatch(/revoked\.keys\[0\]: not a full SHA-256 .* it has 16 digits: use the full id, as `bpfseal verify --json` prints it/);
    p.revoked.keys = ['not-hex'];
    expect(policyError(JSON.stringify(p)).message).toMatch(/revoked\.keys\[0\]: not a full SHA-256/);
    const d = base();
    d.revoked.digests = [`sha256:${'ab'.repeat(31)}`];
    expect(policyError(JSON.stringify(d)).message).toMatch(/revoked\.digests\[0\]: not a full SHA-256/);
  });
});

// ---------------------------------------------------------------------------------------------------
// Releases judged in-process

interface Rel { name: string; bytes: Buffer }
const releases: Rel[] = [];

async function sign(k: KeyFiles, fixture: string, plan: string, version: number): Promise<Buffer> {
  const { plan: p, bytes, digest } = planFromBytes(readFixture(fixture), `${plan}.o`);
  const { key } = loadPrivateKey(k.key);
  const s = await signPlan(p, bytes, { digest, signer: localKeySigner(key, createPublicKey(key)), version, toolVersion: 'test' });
  return Buffer.from(encodeRelease(s.release));
}

function accepted(policy: TrustPolicy, r: Rel): boolean {
  try {
    verifyRelease(r.bytes, policy, { state: new Map(), verifyKernelSignature: checkKernelSignature });
    return true;
  } catch (e) {
    if (e instanceof BpfsealError) return false;
    throw e;
  }
}

describe('expired and not-yet-valid signer certificates', () => {
  it('a certificate outside its validity is not a trusted signer, unless allowExpired (and then verify says so)', async () => {
    const d = makeTmpDir('bpfseal-expired-');
    const old = writeKeyFiles(d, 'old', 'ecdsa-p256', { days: 1, notBefore: new Date(Date.now() - 10 * 86_400_000) });
    const future = writeKeyFiles(d, 'future', 'ecdsa-p256', { days: 30, notBefore: new Date(Date.now() + 5 * 86_400_000) });
    for (const [k, why] of [[old, /expired on/], [future, /is not valid before/]] as const) {
      const rel = { name: 'r', bytes: await sign(k, 'minimal', 'pp-a', 1) };
      const pol = (extra: object) => parsePolicy(JSON.stringify({ version: 1, signers: [{ name: 's', key: k.crt, plans: ['*'], programTypes: ['*'], ...extra }] }), join(d, 'p.json'));
      let err: BpfsealError | undefined;
      try {
        verifyRelease(rel.bytes, pol({}), { state: new Map() });
      } catch (e) {
        err = e as BpfsealError;
      }
      expect(err?.code).toBe('CERTIFICATE_EXPIRED');
      expect(err?.message).toMatch(why);
      expect(err?.message).toContain('allowExpired');
      const v = verifyRelease(rel.bytes, pol({ allowExpired: true }), { state: new Map() });
      expect(v.notes.join('\n')).toMatch(/certificate (expired on|is not valid before).*accepted because .* sets allowExpired/);
      // The bare public key (no certificate) carries no validity period: trusted as before.
      expect(accepted(parsePolicy(JSON.stringify({ version: 1, signers: [{ name: 's', key: k.pub, plans: ['*'], programTypes: ['*'] }] }), join(d, 'p.json')), rel)).toBe(true);
      // allowExpired on a signer without a certificate is itself a mistake: refused.
      expect(() => parsePolicy(JSON.stringify({ version: 1, signers: [{ name: 's', key: k.pub, plans: ['*'], programTypes: ['*'], allowExpired: true }] }), join(d, 'p.json'))).toThrow(/allowExpired: the signer has no X.509 certificate/);
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// Property: a mistake never widens trust

type J = null | boolean | number | string | J[] | { [k: string]: J };

function pick<T>(rnd: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rnd() * xs.length)];
}

/** Every (container, key) position in a JSON value. */
function positions(v: J, out: { parent: any; key: string | number }[] = []): { parent: any; key: string | number }[] {
  if (Array.isArray(v)) v.forEach((x, i) => { out.push({ parent: v, key: i }); positions(x, out); });
  else if (v && typeof v === 'object') for (const k of Object.keys(v)) { out.push({ parent: v, key: k }); positions(v[k], out); }
  return out;
}

const typo = (rnd: () => number, s: string): string => {
  const i = Math.floor(rnd() * s.length);
  switch (Math.floor(rnd() * 5)) {
    case 0: return s.slice(0, i) + s.slice(i + 1) || `${s}x`;
    case 1: return s.slice(0, i) + s[i] + s.slice(i);
    case 2: return s.endsWith('s') ? s.slice(0, -1) : `${s}s`;
    case 3: return s === s.toLowerCase() ? s.toUpperCase() : s.toLowerCase();
    default: return `${s}_`;
  }
};

/** One mistake of the kinds people make in configuration (never a deliberate edit of a value). */
function mutate(p: J, rnd: () => number): { text: string; what: string } {
  const pos = positions(p);
  const at = pick(rnd, pos);
  const val = at.parent[at.key] as J;
  const kind = Math.floor(rnd() * 7);
  if (kind === 0 && typeof at.key === 'string') {
    const k2 = typo(rnd, at.key);
    const o = at.parent as Record<string, J>;
    if (k2 !== at.key && !(k2 in o)) { o[k2] = val; delete o[at.key]; }
    return { text: JSON.stringify(p), what: `rename ${at.key} -> ${k2}` };
  }
  if (kind === 1) {
    // A value of another JSON type (the same type with other contents is an edit, not a format mistake).
    const typeOf = (x: J) => (x === null ? 'null' : Array.isArray(x) ? 'array' : typeof x);
    const other = pick(rnd, ([null, 'true', 'false', 0, 1, '1', [], {}, [val], { value: val }, String(val)] as J[]).filter((x) => typeOf(x) !== typeOf(val)));
    at.parent[at.key] = other;
    return { text: JSON.stringify(p), what: `${String(at.key)}: ${JSON.stringify(val)} -> ${JSON.stringify(other)}` };
  }
  if (kind === 2) {
    const objs = pos.map((x) => x.parent[x.key]).filter((x) => x && typeof x === 'object' && !Array.isArray(x)) as Record<string, J>[];
    const o = objs.length && rnd() < 0.8 ? pick(rnd, objs) : (p as Record<string, J>);
    const names = ['plan', 'keys', 'key', 'digest', 'type', 'comment2', 'requireKernelSignature', 'allow_rollback', '__proto__'].filter((n) => !Object.prototype.hasOwnProperty.call(o, n));
    const name = pick(rnd, names);
    Object.defineProperty(o, name, { value: pick(rnd, [true, [], 'x', 0] as J[]), enumerable: true, writable: true, configurable: true });
    return { text: JSON.stringify(p), what: `unknown field ${name}` };
  }
  if (kind === 3 && typeof val === 'string' && /^(sha256:)?[0-9a-fA-F]{64}$/.test(val)) {
    const forms = [val.toUpperCase(), `sha256:${val.replace(/^sha256:/, '')}`, val.replace(/^sha256:/, '').slice(0, 16), val.slice(0, -1)];
    at.parent[at.key] = pick(rnd, forms);
    return { text: JSON.stringify(p), what: `id ${val} -> ${at.parent[at.key]}` };
  }
  if (kind === 4) {
    // A duplicate key, textually: the first occurrence is the original value, the second a mistake.
    const text = JSON.stringify(p);
    const m = /"(requireLogInclusion|allowRollback|plans|keys|digests|programTypes|minVersions)":/.exec(text);
    if (m) return { text: `${text.slice(0, m.index)}"${m[1]}":${JSON.stringify(pick(rnd, [['*'], true, false, {}] as J[]))},${text.slice(m.index)}`, what: `duplicate ${m[1]}` };
  }
  if (kind === 5) {
    const s = (p as any).signers[0];
    s.keyless = { issuer: 'https://i', subject: pick(rnd, ['/(/', '/[/', 'x']) };
    return { text: JSON.stringify(p), what: 'key and keyless' };
  }
  if (Array.isArray(val) && val.length === 1) at.parent[at.key] = val[0];
  else at.parent[at.key] = [val];
  return { text: JSON.stringify(p), what: `wrap/unwrap ${String(at.key)}` };
}

describe('property: a mutated policy fails to parse, or accepts no release the original rejects', () => {
  let basePolicy: Record<string, unknown>;
  let baseline: boolean[];

  beforeAll(async () => {
    releases.push(
      { name: 'a signs pp-a v1 (accepted)', bytes: await sign(keys.a, 'minimal', 'pp-a', 1) },
      { name: 'a signs pp-b (plan not allowed)', bytes: await sign(keys.a, 'minimal', 'pp-b', 1) },
      { name: 'b (revoked) signs pp-a', bytes: await sign(keys.b, 'minimal', 'pp-a', 1) },
      { name: 'a signs pp-a v0 (below minimum)', bytes: await sign(keys.a, 'minimal', 'pp-a', 0) },
      { name: 'c (unknown) signs pp-a', bytes: await sign(keys.c, 'minimal', 'pp-a', 1) },
      { name: 'a signs pp-c (digest revoked)', bytes: await sign(keys.a, 'globals', 'pp-c', 1) },
      { name: 'a signs pp-a with a sched_cls program (type not allowed)', bytes: await sign(keys.a, 'testrun', 'pp-a', 1) },
      { name: 'b signs pp-c v2', bytes: await sign(keys.b, 'minimal', 'pp-c', 2) },
    );
    const revokedDigest = verifyRelease(releases[5].bytes, parsePolicy(JSON.stringify({ version: 1, signers: [{ name: 'a', key: 'a.pub', plans: ['*'], programTypes: ['*'] }] }), join(dir, 'p.json')), { state: new Map() }).digest;
    basePolicy = {
      version: 1,
      signers: [
        { name: 'a', key: 'a.pub', plans: ['pp-a', 'pp-c'], programTypes: ['xdp'] },
        { name: 'b', key: 'b.pub', plans: ['pp-c'], programTypes: ['xdp'] },
      ],
      revoked: { keys: [keys.b.keyId], digests: [`sha256:${revokedDigest}`] },
      minVersions: { 'pp-a': 1 },
      allowRollback: false,
      requireLogInclusion: false,
      comment: 'base',
    };
    const p = parsePolicy(JSON.stringify(basePolicy), join(dir, 'p.json'));
    baseline = releases.map((r) => accepted(p, r));
  });

  it('the fixed set of releases: exactly the first is accepted by the original policy', () => {
    expect(baseline).toEqual([true, false, false, false, false, false, false, false]);
  });

  it('3000 seeded mutations: parse error (POLICY_INVALID, never an internal error) or the same or a stricter verdict on every release', () => {
    const SEED = 0x5eed_901c;
    let parsed = 0, refused = 0;
    for (let i = 0; i < 3000; i++) {
      const rnd = prng(iterSeed(SEED, i));
      const { text, what } = mutate(structuredClone(basePolicy) as J, rnd);
      let p: TrustPolicy;
      try {
        p = parsePolicy(text, join(dir, 'p.json'));
      } catch (e) {
        if (!(e instanceof BpfsealError)) throw new Error(`mutation ${i} (${what}): ${(e as Error).stack}`);
        expect([e.code, e.exitCode], `mutation ${i} (${what})`).toEqual(['POLICY_INVALID', 2]);
        refused++;
        continue;
      }
      parsed++;
      releases.forEach((r, j) => {
        if (!baseline[j]) expect(accepted(p, r), `mutation ${i} (${what}) accepts "${r.name}"`).toBe(false);
      });
    }
    console.log(`policy property test: ${refused} mutations refused, ${parsed} parsed (canonical-equivalent ids and the like), none widened trust`);
    expect(refused).toBeGreaterThan(2000);
  });
});

it('loadPolicy: a missing, unreadable or oversized policy is POLICY_UNREADABLE, exit 2', () => {
  const d = makeTmpDir();
  expect(() => loadPolicy(join(d, 'none.json'))).toThrow(expect.objectContaining({ code: 'POLICY_UNREADABLE' }));
  mkdirSync(join(d, 'adir'));
  expect(() => loadPolicy(join(d, 'adir'))).toThrow(expect.objectContaining({ code: 'POLICY_UNREADABLE', message: expect.stringMatching(/adir: not a regular file.*\(trust policy\)/) }));
  writeFileSync(join(d, 'big.json'), ' '.repeat(2 << 20));
  expect(() => loadPolicy(join(d, 'big.json'))).toThrow(expect.objectContaining({ code: 'POLICY_UNREADABLE', message: expect.stringContaining('larger than the 1 MiB') }));
});
