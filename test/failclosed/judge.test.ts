/**
 * Fail closed, one judge (issue "fail closed" §2): audit reaches its verdicts by the path verify takes
 * (a keyless certificate that does not chain to the policy's root is not "verified" in audit either),
 * checks the log's identity and remembers it per directory, never hides an entry by an unsigned time,
 * checks every predicate claim (types included) against the plan, and requireKernelSignatures refuses
 * a release with nothing the kernel could verify.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPublicKey } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DSSEBundleBuilder, type Witness } from '@sigstore/sign';
import { keylessSigner } from '../../src/attest/keyless.js';
import { encodeRelease } from '../../src/attest/release.js';
import { signInstructions } from '../../src/attest/pkcs7.js';
import { localKeySigner, signPlan } from '../../src/attest/sign.js';
import { buildStatement, PAYLOAD_TYPE, type Statement } from '../../src/attest/statement.js';
import { verifyRelease } from '../../src/attest/verify.js';
import { judge } from '../../src/trust/judge.js';
import { keyId, loadPublicKey } from '../../src/trust/keys.js';
const keyIdOf = (p: string) => keyId(loadPublicKey(p));
import { auditAttestations } from '../../src/audit/attestations.js';
import { AttestationLogWitness, savePlan } from '../../src/attest/witness.js';
import type { BpfsealError } from '../../src/errors.js';
import { encodePlan } from '../../src/plan/codec.js';
import { planFromBytes } from '../../src/plan/file.js';
import { openLog } from '../../src/tlog/store.js';
import { parsePolicy, type TrustPolicy } from '../../src/trust/policy.js';
import { loadPrivateKey, writeKeyFiles, type KeyFiles } from '../../src/trust/keys.js';
import { planCopy } from '../helpers/plans.js';
import { cliJson } from '../helpers/audit.js';
import { cleanupTmpDirs, makeTmpDir, readFixture } from '../helpers/paths.js';
import { ciToken, ISSUER, startMockSigstore, SUBJECT, type MockSigstore } from '../helpers/sigstore-mock.js';

afterAll(cleanupTmpDirs);

let dir: string;
let k: KeyFiles;
beforeAll(() => {
  dir = makeTmpDir('bpfseal-judge-');
  k = writeKeyFiles(dir, 'k', 'ecdsa-p256');
});

function policyAt(doc: object): TrustPolicy {
  const p = join(dir, `policy-${Math.random().toString(16).slice(2)}.json`);
  writeFileSync(p, JSON.stringify(doc));
  return parsePolicy(JSON.stringify(doc), p);
}

async function signInto(logDir: string, fixture: string, name: string, opts: { statement?: (s: Statement) => void; key?: KeyFiles } = {}): Promise<Buffer> {
  const { plan, bytes, digest } = planFromBytes(readFixture(fixture), `${name}.o`);
  const { key } = loadPrivateKey((opts.key ?? k).key);
  const log = openLog(logDir);
  try {
    savePlan(logDir, bytes);
    const witnesses: Witness[] = [new AttestationLogWitness(log)];
    if (!opts.statement) {
      const s = await signPlan(plan, bytes, { digest, signer: localKeySigner(key, createPublicKey(key)), witnesses, version: 1, toolVersion: 'test' });
      return Buffer.from(encodeRelease(s.release));
    }
    const st = buildStatement(plan, digest, { version: 1, toolVersion: 'test' });
    opts.statement(st);
    const bundle = await new DSSEBundleBuilder({ signer: localKeySigner(key, createPublicKey(key)), witnesses }).create({ data: Buffer.from(JSON.stringify(st)), type: PAYLOAD_TYPE });
    return Buffer.from(encodeRelease({ plan: bytes, bundle, kernelSignatures: new Map() }));
  } finally {
    log.close();
  }
}

function auditOf(logDir: string, policy: TrustPolicy, extra: { statePath?: string; since?: Date; logFromCommandLine?: boolean } = {}) {
  const log = openLog(logDir, { create: false });
  try {
    return auditAttestations(log, { policy, logFromCommandLine: true, ...extra });
  } finally {
    log.close();
  }
}

describe('keyless entries in audit are judged by the verify path (chain to the trusted root, signed time)', () => {
  let real: MockSigstore;
  let impostor: MockSigstore;
  beforeAll(async () => {
    real = await startMockSigstore({ fulcioURL: 'https://fulcio.real.test', rekorURL: 'https://rekor.real.test' });
    impostor = await startMockSigstore({ fulcioURL: 'https://fulcio.evil.test', rekorURL: 'https://rekor.evil.test' });
  });
  afterAll(() => { real.stop(); impostor.stop(); });

  async function keylessInto(logDir: string, fulcioURL: string, name: string): Promise<void> {
    const { plan, bytes, digest } = planFromBytes(readFixture('minimal'), `${name}.o`);
    const log = openLog(logDir);
    try {
      savePlan(logDir, bytes);
      await signPlan(plan, bytes, { digest, signer: keylessSigner({ fulcioURL, identityToken: ciToken() }), witnesses: [new AttestationLogWitness(log)], version: 1, toolVersion: 'test' });
    } finally {
      log.close();
    }
  }

  it('a certificate from the trusted Fulcio is verified; one with the same SAN and issuer from another CA is untrusted', async () => {
    const logDir = join(makeTmpDir(), 'att');
    await keylessInto(logDir, real.fulcioURL, 'kl-good');
    await keylessInto(logDir, impostor.fulcioURL, 'kl-evil'); // the "self-made" certificate: same identity, untrusted CA
    writeFileSync(join(dir, 'root.json'), JSON.stringify(real.trustedRoot));
    const policy = policyAt({ version: 1, trustedRoot: 'root.json', signers: [{ name: 'ci', keyless: { issuer: ISSUER, subject: SUBJECT }, plans: ['*'], programTypes: ['*'] }] });
    const a = auditOf(logDir, policy);
    expect(a.entries.map((e) => [e.plan, e.status, e.identity])).toEqual([['kl-good', 'verified', SUBJECT], ['kl-evil', 'untrusted', SUBJECT]]);
    expect(a.entries[1].reason).toMatch(/does not chain to the policy's trusted root/);
    expect(a.entries[0].timeSigned).toBe(true);
    // Without the signed entry timestamp there is no trusted time to check the 10-minute certificate at.
    const sets = readdirSync(join(logDir, 'envelopes')).filter((f) => f.endsWith('.set'));
    for (const f of sets) unlinkSync(join(logDir, 'envelopes', f));
    const b = auditOf(logDir, policy);
    expect(b.entries[0]).toMatchObject({ status: 'untrusted', code: 'NO_TIMESTAMP', timeSigned: false });
  });
});

describe("the log's identity", () => {
  it('a policy must list the audited log (key and origin); --key audits trust the log named with --log', async () => {
    const logDir = join(makeTmpDir(), 'att');
    await signInto(logDir, 'minimal', 'id-a');
    const other = join(makeTmpDir(), 'other');
    await signInto(other, 'minimal', 'id-b');
    const origin = (d: string) => { const l = openLog(d, { create: false }); try { return l.origin; } finally { l.close(); } };
    const signer = { name: 'k', key: k.pub, plans: ['*'], programTypes: ['*'] };
    const listed = auditOf(logDir, policyAt({ version: 1, signers: [signer], logs: [{ key: join(logDir, 'log.pub'), origin: origin(logDir) }] }), { logFromCommandLine: false });
    expect([listed.logTrust, listed.findings]).toEqual(['policy', []]);
    const wrong = auditOf(logDir, policyAt({ version: 1, signers: [signer], logs: [{ key: join(other, 'log.pub'), origin: origin(other) }] }), { logFromCommandLine: false });
    expect(wrong.logTrust).toBe('untrusted');
    expect(wrong.findings.map((f) => f.code)).toEqual(['LOG_UNTRUSTED']);
    // The right key under another origin is another log.
    const origin2 = auditOf(logDir, policyAt({ version: 1, signers: [signer], logs: [{ key: join(logDir, 'log.pub'), origin: 'example.com/other' }] }), { logFromCommandLine: false });
    expect(origin2.findings.map((f) => f.code)).toContain('LOG_UNTRUSTED');
    expect(origin2.entries[0].status).not.toBe('verified'); // its checkpoints name another origin than the policy's
  });

  it('a log deleted and started again with a new key in the same directory is caught by the next audit', async () => {
    const root = makeTmpDir();
    const logDir = join(root, 'att');
    const state = join(root, 'audit-state.json');
    await signInto(logDir, 'minimal', 're-a');
    const args = ['audit', '--log', logDir, '--key', k.pub, '--state', state, '--json'];
    expect((await cliJson(args)).code).toBe(0);
    rmSync(logDir, { recursive: true });
    await signInto(logDir, 'minimal', 're-b'); // a fresh log: new key, one entry, verifies on its own
    const r = await cliJson(args);
    expect(r.code).toBe(1);
    expect(r.json.findings.map((f: { code: string }) => f.code)).toContain('LOG_REPLACED');
    // ... and it stays a finding: the state is not advanced to the impostor.
    expect((await cliJson(args)).code).toBe(1);
  });
});

describe('entry times', () => {
  it('--since never hides an entry whose time is not covered by a signed entry timestamp, and never hides a finding', async () => {
    const logDir = join(makeTmpDir(), 'att');
    await signInto(logDir, 'minimal', 't-a');
    await signInto(logDir, 'minimal', 't-b');
    const pol = policyAt({ version: 1, signers: [{ name: 'k', key: k.pub, plans: ['t-a'], programTypes: ['*'] }] });
    // Remove entry 1's signed timestamp: its logged time is the log's word only.
    const sets = readdirSync(join(logDir, 'envelopes')).filter((f) => f.endsWith('.1.set'));
    expect(sets).toHaveLength(1);
    unlinkSync(join(logDir, 'envelopes', sets[0]));
    const since = new Date('2099-01-01T00:00:00Z');
    // Without a previous audit nothing is hidden: the log's owner can sign any time on a new entry.
    const first = auditOf(logDir, pol, { since });
    expect(first.entries.map((e) => [e.index, e.timeSigned])).toEqual([[0, true], [1, false]]);
    const statePath = join(makeTmpDir(), 'audit-state.json');
    auditOf(logDir, pol, { statePath });
    // Entries the remembered audit already checked are hidden when their time is signed.
    const a = auditOf(logDir, pol, { since, statePath });
    expect(a.entries.map((e) => [e.index, e.timeSigned])).toEqual([[1, false]]);
    expect(a.judged.map((e) => e.index)).toEqual([0, 1]);
    // Entry 1 (t-b) is untrusted under this policy: a finding whatever --since says.
    expect(a.findings.map((f) => [f.index, f.code])).toEqual([[1, 'UNTRUSTED_SIGNER']]);
  });
});

describe('every claim of the predicate must describe the plan', () => {
  it.each([
    ['a program type', (s: Statement) => { s.predicate.programs[0].type = 'kprobe'; }, 'PREDICATE_MISMATCH', /programs\[0\]\.type is "kprobe", but the plan gives "xdp"/],
    ['an attach type', (s: Statement) => { s.predicate.programs[0].attachType = s.predicate.programs[0].attachType === 'xdp' ? 'cgroup_inet_ingress' : 'xdp'; }, 'PREDICATE_MISMATCH', /programs\[0\]\.attachType/],
    ['a section', (s: Statement) => { s.predicate.programs[0].section = 'xdp/other'; }, 'PREDICATE_MISMATCH', /programs\[0\]\.section/],
    ['the object digest', (s: Statement) => { s.predicate.object.digest.sha256 = '00'.repeat(32); }, 'PREDICATE_MISMATCH', /object\.digest\.sha256/],
    ['a map that the plan does not have', (s: Statement) => { s.predicate.maps = [{ name: 'x', type: 'array', keySize: 4, valueSize: 4, maxEntries: 1, flags: 0, frozen: false }]; }, 'PREDICATE_MISMATCH', /maps\[0\]/],
    ['an extra field', (s: Statement) => { (s.predicate as unknown as Record<string, unknown>).extra = 1; }, 'STATEMENT_INVALID', /unknown field 'extra'/],
  ])('%s: verify refuses naming it, and audit does not call it verified', async (_what, edit, code, msg) => {
    const logDir = join(makeTmpDir(), 'att');
    const rel = await signInto(logDir, 'minimal', 'claims', { statement: edit });
    const pol = policyAt({ version: 1, signers: [{ name: 'k', key: k.pub, plans: ['*'], programTypes: ['*'] }] });
    let err: BpfsealError | undefined;
    try {
      verifyRelease(rel, pol, { state: new Map() });
    } catch (e) {
      err = e as BpfsealError;
    }
    expect(err?.code).toBe(code);
    expect(err?.message).toMatch(msg);
    const a = auditOf(logDir, pol);
    expect(['mismatch', 'not-attestation']).toContain(a.entries[0].status);
  });

  it('control: the statement as sign writes it verifies and audits as verified', async () => {
    const logDir = join(makeTmpDir(), 'att');
    const rel = await signInto(logDir, 'minimal', 'claims-ok', { statement: () => {} });
    const pol = policyAt({ version: 1, signers: [{ name: 'k', key: k.pub, plans: ['*'], programTypes: ['*'] }] });
    expect(verifyRelease(rel, pol, { state: new Map() }).plan.name).toBe('claims-ok');
    expect(auditOf(logDir, pol).entries[0].status).toBe('verified');
  });
});

describe('requireKernelSignatures', () => {
  it('a release with no program (maps only) is refused: nothing in it could be kernel-verified', async () => {
    const plan = planCopy('globals.o');
    plan.name = 'maps-only';
    plan.programs = [];
    plan.slots = [];
    const bytes = encodePlan(plan);
    const { key } = loadPrivateKey(k.key);
    const s = await signPlan(plan, bytes, { signer: localKeySigner(key, createPublicKey(key)), version: 1, toolVersion: 'test' });
    const rel = Buffer.from(encodeRelease(s.release));
    const doc = { version: 1, signers: [{ name: 'k', key: k.pub, plans: ['*'], programTypes: ['*'] }] };
    expect(verifyRelease(rel, policyAt(doc), { state: new Map() }).plan.programs).toHaveLength(0);
    let err: BpfsealError | undefined;
    try {
      verifyRelease(rel, policyAt({ ...doc, requireKernelSignatures: true }), { state: new Map() });
    } catch (e) {
      err = e as BpfsealError;
    }
    expect(err?.code).toBe('KERNEL_SIGNATURE_REQUIRED');
    expect(err?.message).toMatch(/no program the kernel could verify/);
  });
});

describe('the audit state remembers only what was verified, under every name of the log', () => {
  it('a log directory reached through a symlink that is repointed at another log is LOG_REPLACED', async () => {
    const base = makeTmpDir();
    // The log directory itself may not be a link, but a parent may: /srv/current -> /srv/a.
    const a = join(base, 'a'), b = join(base, 'b'), link = join(base, 'current');
    await signInto(join(a, 'att'), 'minimal', 'rp-a');
    await signInto(join(b, 'att'), 'minimal', 'rp-b');
    symlinkSync(a, link);
    const pol = policyAt({ version: 1, signers: [{ name: 'k', key: k.pub, plans: ['*'], programTypes: ['*'] }] });
    const statePath = join(makeTmpDir(), 'audit-state.json');
    expect(auditOf(join(link, 'att'), pol, { statePath }).findings).toEqual([]);
    unlinkSync(link);
    symlinkSync(b, link);
    expect(auditOf(join(link, 'att'), pol, { statePath }).findings.map((f) => f.code)).toContain('LOG_REPLACED');
    // The first log, by its real path, is still the one remembered there.
    expect(auditOf(join(a, 'att'), pol, { statePath }).findings.map((f) => f.code)).not.toContain('LOG_REPLACED');
  });

  it('the checkpoint stored is the one whose tree was verified (its size and root)', async () => {
    const logDir = join(makeTmpDir(), 'att');
    await signInto(logDir, 'minimal', 'cp-a');
    await signInto(logDir, 'minimal', 'cp-b');
    const pol = policyAt({ version: 1, signers: [{ name: 'k', key: k.pub, plans: ['*'], programTypes: ['*'] }] });
    const statePath = join(makeTmpDir(), 'audit-state.json');
    const a = auditOf(logDir, pol, { statePath });
    const stored = JSON.parse(readFileSync(statePath, 'utf8')) as { logs: Record<string, { checkpoint: string }> };
    const note = stored.logs[a.log.logId].checkpoint;
    const lines = note.split('\n');
    expect(Number(lines[1])).toBe(a.log.size);
    expect(Buffer.from(lines[2], 'base64').toString('hex')).toBe(a.log.rootHash);
  });
});

describe('no entry stops the audit', () => {
  it('entries whose DSSE body fields hold any JSON value are findings, never a crash (300 mutations)', async () => {
    const logDir = join(makeTmpDir(), 'att');
    await signInto(logDir, 'minimal', 'fz');
    const log0 = openLog(logDir, { create: false });
    const good = JSON.parse(log0.entry(0).toString('utf8')) as Record<string, unknown>;
    log0.close();
    const values: unknown[] = [null, 0, -1, 1e308, '', 'x', 'LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFBQUEKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=', [], {}, [{}], { value: 'zz' }, true];
    const paths: string[][] = [['kind'], ['apiVersion'], ['spec'], ['spec', 'envelopeHash'], ['spec', 'envelopeHash', 'value'], ['spec', 'payloadHash', 'value'], ['spec', 'signatures'], ['spec', 'signatures', '0', 'signature'], ['spec', 'signatures', '0', 'verifier']];
    let seed = 7;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    const log = openLog(logDir, { create: false });
    try {
      for (let i = 0; i < 300; i++) {
        const body = JSON.parse(JSON.stringify(good)) as Record<string, unknown>;
        const path = paths[rnd(paths.length)];
        let o = body as Record<string, unknown>;
        for (const p of path.slice(0, -1)) {
          if (!o[p] || typeof o[p] !== 'object') o[p] = {};
          o = o[p] as Record<string, unknown>;
        }
        o[path[path.length - 1]] = values[rnd(values.length)];
        await log.append(Buffer.from(JSON.stringify(body)));
      }
    } finally {
      log.close();
    }
    const pol = policyAt({ version: 1, signers: [{ name: 'k', key: k.pub, plans: ['*'], programTypes: ['*'] }] });
    for (const p of [pol, undefined]) {
      const l = openLog(logDir, { create: false });
      try {
        const a = auditAttestations(l, { policy: p, logFromCommandLine: true });
        expect(a.judged).toHaveLength(301);
        expect(a.judged[0].status).toBe(p ? 'verified' : 'signature-ok');
        // Each mutated entry is verified only if the mutation left what is checked unchanged.
        for (const e of a.judged.slice(1)) if (e.status !== 'verified' && e.status !== 'signature-ok') expect(e.code).toMatch(/^[A-Z][A-Z0-9_]+$/);
      } finally {
        l.close();
      }
    }
  });
});

describe('kernel signatures only on final instructions', () => {
  it('a release carrying a kernel signature for a program with host fix-ups is refused, even when attested', async () => {
    const { plan, bytes, digest } = planFromBytes(readFixture('externs'), 'fixed.o');
    const prog = plan.programs[0];
    expect(prog.fixups.length).toBeGreaterThan(0);
    const { key } = loadPrivateKey(k.key);
    const cert = readFileSync(k.crt, 'utf8');
    const st = buildStatement(plan, digest, { version: 1, toolVersion: 'test', kernelSigned: [prog.name] });
    const bundle = await new DSSEBundleBuilder({ signer: localKeySigner(key, createPublicKey(key)), witnesses: [] }).create({ data: Buffer.from(JSON.stringify(st)), type: PAYLOAD_TYPE });
    const rel = Buffer.from(encodeRelease({ plan: bytes, bundle, kernelSignatures: new Map([[prog.name, signInstructions(prog.insns, key, cert)]]), certificate: cert }));
    const pol = policyAt({ version: 1, signers: [{ name: 'k', key: k.pub, plans: ['*'], programTypes: ['*'] }] });
    expect(() => verifyRelease(rel, pol, { state: new Map() })).toThrow(expect.objectContaining({ code: 'BAD_KERNEL_SIGNATURE', message: expect.stringMatching(/needs host fix-ups .* cannot carry a kernel signature/) }));
  });
});

describe('signer entries are not added up', () => {
  it('two entries for one key, one allowing xdp and one socket_filter, do not together allow a plan with both', () => {
    const keyId = keyIdOf(k.pub);
    const facts = (types: string[]) => ({
      plan: 'mixed', digest: `sha256:${'00'.repeat(32)}`, version: 1, signer: { keyId }, trustedLogEntries: 0, untrustedLogEntries: 0,
      programTypes: types.map((t, i) => ({ program: `p${i}`, type: t })),
    });
    const split = policyAt({ version: 1, signers: [
      { name: 'xdp-only', key: k.pub, plans: ['*'], programTypes: ['xdp'] },
      { name: 'socket-only', key: k.pub, plans: ['*'], programTypes: ['socket_filter'] },
    ] });
    expect(() => judge(split, facts(['xdp', 'socket_filter']))).toThrow(expect.objectContaining({ code: 'PROGRAM_TYPE_FORBIDDEN', message: expect.stringContaining('no single signer entry') }));
    expect(judge(split, facts(['xdp'])).signer.name).toBe('xdp-only');
    expect(judge(split, facts(['socket_filter'])).signer.name).toBe('socket-only');
  });
});
