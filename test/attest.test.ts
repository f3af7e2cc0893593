/**
 * Acceptance tests for signing and verification: keygen -> sign -> verify -> load (dry run and kernel)
 * -> unload through the CLI, every single-byte flip of a release, policy rejections with their codes,
 * PKCS#7 kernel signatures, the EOPNOTSUPP path, and independent verifiers (@sigstore/verify used
 * directly, openssl, python3-cryptography) over the same bytes.
 *
 * Keys are generated and releases signed once (beforeAll) and reused. Everything is written under a
 * fresh tmp dir; every verify/load passes --state <tmp>; kernel pins go to unique
 * /sys/fs/bpf/bpfseal-attest-<pid>-<n> directories removed after each test.
 */
import { openLog } from '../src/tlog/store.js';
import { trustedRootTlog } from '../src/attest/rekor.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createPublicKey, type KeyObject } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { bundleFromJSON, type SerializedBundle } from '@sigstore/bundle';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { signInstructions } from '../src/attest/pkcs7.js';
import { decodeRelease, encodeRelease, type Release } from '../src/attest/release.js';
import { localKeySigner, signPlan } from '../src/attest/sign.js';
import { parseInstructionSignature } from '../src/attest/pkcs7.js';
import { buildStatement, PAYLOAD_TYPE, type Statement } from '../src/attest/statement.js';
import { DSSEBundleBuilder } from '@sigstore/sign';
import type { VerifiedRelease } from '../src/attest/verify.js';
import { BpfsealError } from '../src/errors.js';
import { decodePlan } from '../src/plan/codec.js';
import { planFromBytes } from '../src/plan/file.js';
import { progTypeName } from '../src/bpf/constants.js';
import { loadRelease, verifyWithPolicy } from '../src/runtime/load.js';
import { loadPolicy, singleKeyPolicy } from '../src/trust/policy.js';
import { keyId, loadPrivateKey, loadPublicKey } from '../src/trust/keys.js';
import { DIGEST_LINE } from './helpers/cli.js';
import { cleanupTmpDirs, fixturePath, makeTmpDir, requireDist, sha256hex } from './helpers/paths.js';
import {
  hasOpenssl, hasPyCryptography, listTree, openssl, pae, PinDirs, probeKernel, runCli, verifyCli, verifyCliMany,
  writePolicy, writeState,
} from './helpers/attest.js';

const kernel = await probeKernel();
const KERNEL_SKIP = !kernel.bpf;
if (KERNEL_SKIP) console.warn(`attest.test.ts: skipping kernel-load tests: ${kernel.why}`);
const EOPNOTSUPP_SKIP = KERNEL_SKIP || kernel.verifiesSignatures !== false;
if (!KERNEL_SKIP && EOPNOTSUPP_SKIP) {
  console.warn(`attest.test.ts: skipping the EOPNOTSUPP tests: this kernel ${kernel.verifiesSignatures ? 'verifies program signatures' : `could not be probed (${kernel.why})`}`);
}
if (!hasOpenssl) console.warn('attest.test.ts: openssl not found: skipping the openssl cross-checks');
if (!hasPyCryptography) console.warn('attest.test.ts: python3 cryptography not importable: skipping the python cross-check');

// ---------------------------------------------------------------------------------------------------
// Shared state: keys and releases, made once.

interface KeygenJson { key: string; pub: string; crt: string; keyId: string; algorithm: string }
interface SignJson { input: string; release?: string; digest?: string; version?: number; kernelSignatures?: number; unsignedPrograms?: string[]; error?: { code: string; exit: number } }

let work: string;
let keysDir: string;
let polDir: string;
const keys: Record<'ec' | 'rsa' | 'ed' | 'other', KeygenJson & { stdout: string; exit: number | null }> = {} as never;
const sign: Record<'ec' | 'nocert' | 'rsa' | 'ed', { code: number | null; stdout: string; stderr: string; dir: string }> = {} as never;
let src: { minimalO: string; testrunO: string; globalsO: string; testrunPlan: string };
/** A path for a state file that is never written (fresh host). */
let noState: string;

const rel = (which: keyof typeof sign, name: string) => join(sign[which].dir, `${name}.bpfseal`);
const readRel = (which: keyof typeof sign, name: string) => readFileSync(rel(which, name));

let tmpCount = 0;
function tmpFile(name: string, data: string | Buffer): string {
  const p = join(work, 'tmp', `${tmpCount++}-${name}`);
  mkdirSync(join(work, 'tmp'), { recursive: true });
  writeFileSync(p, data);
  return p;
}
const freshState = () => join(work, 'tmp', `state-${tmpCount++}.json`);

beforeAll(async () => {
  requireDist();
  work = makeTmpDir('bpfseal-attest-');
  keysDir = join(work, 'keys');
  polDir = join(work, 'policies');
  noState = join(work, 'never-written-state.json');
  mkdirSync(join(work, 'src'));
  src = {
    minimalO: join(work, 'src', 'minimal.o'), testrunO: join(work, 'src', 'testrun.o'), globalsO: join(work, 'src', 'globals.o'),
    testrunPlan: join(work, 'src', 'testrun.plan'),
  };
  for (const n of ['minimal', 'testrun', 'globals']) copyFileSync(fixturePath(n), join(work, 'src', `${n}.o`));
  const p = await runCli(['plan', src.testrunO, '-o', src.testrunPlan]);
  if (p.code !== 0) throw new Error(`plan failed: ${p.stderr}`);

  for (const [name, alg] of [['ec', undefined], ['rsa', 'rsa-3072'], ['ed', 'ed25519'], ['other', 'ecdsa-p256']] as const) {
    const r = await runCli(['keygen', '--out', keysDir, '--name', name, ...(alg ? ['--algorithm', alg] : []), '--json']);
    keys[name] = { ...(JSON.parse(r.stdout || '{}') as KeygenJson), stdout: r.stdout, exit: r.code };
  }

  const run = async (which: keyof typeof sign, dirArg: string, args: string[]) => {
    const dir = join(work, which);
    mkdirSync(dir);
    const r = await runCli(['sign', ...args, '-o', dirArg === 'slash' ? `${dir}/` : dir]);
    sign[which] = { code: r.code, stdout: r.stdout, stderr: r.stderr, dir };
  };
  // ECDSA + certificate: object and .plan inputs, several at once, -o dir, --json.
  await run('ec', 'dir', [src.minimalO, src.testrunPlan, src.globalsO, '--key', keys.ec.key, '--cert', keys.ec.crt, '--json']);
  // ECDSA without certificate, text output, --version 7.
  await run('nocert', 'dir', [src.minimalO, src.testrunO, '--key', keys.ec.key, '--version', '7']);
  // RSA-3072 + certificate, -o dir/ (trailing slash).
  await run('rsa', 'slash', [src.testrunO, '--key', keys.rsa.key, '--cert', keys.rsa.crt]);
  // Ed25519 + certificate: the attestation only, with a note.
  await run('ed', 'dir', [src.minimalO, '--key', keys.ed.key, '--cert', keys.ed.crt]);
});

afterAll(cleanupTmpDirs);

const pins = new PinDirs();
afterEach(() => pins.cleanup());

function payloadOf(r: Release): Buffer {
  if (r.bundle.content.$case !== 'dsseEnvelope') throw new Error('no DSSE envelope');
  return r.bundle.content.dsseEnvelope.payload;
}
function statementOf(r: Release): { subject: { name: string; digest: { sha256: string } }[]; predicate: { release: { version: number }; programs: { name: string }[] } } {
  return JSON.parse(payloadOf(r).toString('utf8'));
}

// ---------------------------------------------------------------------------------------------------
describe('1. keygen -> sign -> verify -> load -> unload (CLI)', () => {
  it('keygen writes key/pub/crt for ecdsa-p256 (default), rsa-3072 and ed25519; keyId is SHA-256 of the DER SPKI', () => {
    for (const [name, alg] of [['ec', 'ecdsa-p256'], ['rsa', 'rsa-3072'], ['ed', 'ed25519'], ['other', 'ecdsa-p256']] as const) {
      const k = keys[name];
      expect(k.exit, k.stdout).toBe(0);
      expect(k.algorithm).toBe(alg);
      expect(statSync(k.key).mode & 0o777).toBe(0o600);
      const spki = createPublicKey(readFileSync(k.pub)).export({ type: 'spki', format: 'der' });
      expect(k.keyId).toBe(sha256hex(spki));
      expect(k.keyId).toMatch(/^[0-9a-f]{64}$/);
      // the certificate carries the same key
      expect(keyId(loadPublicKey(k.crt))).toBe(k.keyId);
    }
    expect(new Set(Object.values(keys).map((k) => k.keyId)).size).toBe(4);
  });

  it('sign object and .plan inputs at once, -o dir, --json: one release per input, digests of the plan bytes', () => {
    const s = sign.ec;
    expect(s.code, s.stderr).toBe(0);
    const out = JSON.parse(s.stdout) as SignJson[]; // stdout is only the JSON array
    expect(out.map((r) => r.input)).toEqual([src.minimalO, src.testrunPlan, src.globalsO]);
    expect(out.map((r) => r.release)).toEqual(['minimal', 'testrun', 'globals'].map((n) => rel('ec', n)));
    for (const r of out) {
      expect(r.error).toBeUndefined();
      const release = decodeRelease(readFileSync(r.release!));
      expect(r.digest).toBe(`sha256:${sha256hex(release.plan)}`);
      expect(statementOf(release).subject[0]!.digest.sha256).toBe(sha256hex(release.plan));
      expect(r.version).toBe(1);
      expect(statementOf(release).predicate.release.version).toBe(1);
      const plan = decodePlan(release.plan);
      expect(r.kernelSignatures).toBe(plan.programs.length);
      expect(r.unsignedPrograms).toEqual([]);
      expect([...release.kernelSignatures.keys()].sort()).toEqual(plan.programs.map((p) => p.name).sort());
      expect(release.certificate).toBe(readFileSync(keys.ec.crt, 'utf8'));
    }
    // the .plan input is signed as is
    expect(decodeRelease(readRel('ec', 'testrun')).plan.equals(readFileSync(src.testrunPlan))).toBe(true);
    expect(out.map((r) => r.kernelSignatures)).toEqual([1, 4, 2]);
  });

  it('text output is `sha256:<64hex>  <path>` per input; --version N is the signed release version; no --cert, no kernel signatures', () => {
    const s = sign.nocert;
    expect(s.code, s.stderr).toBe(0);
    const lines = s.stdout.split('\n').filter((l) => l !== '');
    expect(lines).toHaveLength(2);
    const parsed = lines.map((l) => {
      const m = DIGEST_LINE.exec(l);
      expect(m, `not a digest line: ${JSON.stringify(l)}`).not.toBeNull();
      return { digest: m![1], path: m![2] };
    });
    expect(parsed.map((p) => p.path)).toEqual([rel('nocert', 'minimal'), rel('nocert', 'testrun')]);
    for (const p of parsed) {
      const bytes = readFileSync(p.path);
      const release = decodeRelease(bytes);
      expect(p.digest).toBe(sha256hex(release.plan));
      expect(statementOf(release).predicate.release.version).toBe(7);
      expect(release.kernelSignatures.size).toBe(0);
      expect(release.certificate).toBeUndefined();
      expect(JSON.parse(bytes.toString()).kernelSignatures).toBeUndefined();
    }
    // the object input planned at sign time gives the same plan bytes as `bpfseal plan`
    expect(decodeRelease(readRel('nocert', 'testrun')).plan.equals(readFileSync(src.testrunPlan))).toBe(true);
  });

  it('RSA-3072 with --cert adds a kernel signature per program', () => {
    expect(sign.rsa.code, sign.rsa.stderr).toBe(0);
    expect(DIGEST_LINE.test(sign.rsa.stdout.trimEnd())).toBe(true);
    const release = decodeRelease(readRel('rsa', 'testrun'));
    expect([...release.kernelSignatures.keys()].sort()).toEqual(['socket_len', 'syscall_store', 'tc_mark', 'xdp_count']);
    expect(release.certificate).toBe(readFileSync(keys.rsa.crt, 'utf8'));
  });

  it('--cert on a plan whose programs all need host fix-ups: no per-program signature; the signed loader covers them, and it verifies', async () => {
    // externs.o: its only program calls kfuncs, so its bytes change on the host and cannot be signed per
    // program; the kernel loader resolves them in the kernel, and its `insns || blob` is signed.
    const { plan, bytes } = planFromBytes(readFileSync(fixturePath('externs')), 'externs.o');
    const { key } = loadPrivateKey(keys.ec.key);
    const cert = readFileSync(keys.ec.crt, 'utf8');
    const asked: Buffer[] = [];
    const s = await signPlan(plan, bytes, {
      signer: localKeySigner(key, createPublicKey(key)), version: 1, toolVersion: 't',
      kernelSigner: {
        sign: (data) => {
          if (data.equals(plan.programs[0].insns)) throw new Error('must not be asked to sign a program with fix-ups');
          asked.push(data);
          return signInstructions(data, key, cert);
        },
        certificate: cert,
      },
    });
    expect(s.unsignedPrograms).toEqual(['externs_prog']);
    expect(s.release.kernelSignatures.size).toBe(0);
    expect(asked).toHaveLength(1); // the loader, once
    expect(s.release.loaderSignature).toBeDefined();
    expect(s.release.certificate).toBe(cert);
    const v = verifyWithPolicy(Buffer.from(encodeRelease(s.release)), singleKeyPolicy(keys.ec.pub), freshState());
    expect(v.plan.name).toBe('externs');
    expect(v.loader?.signature.equals(s.release.loaderSignature!)).toBe(true);
    // --no-loader: nothing to sign for the kernel, so no certificate either.
    const n = await signPlan(plan, bytes, { signer: localKeySigner(key, createPublicKey(key)), version: 1, toolVersion: 't', loader: false, kernelSigner: { sign: () => { throw new Error('no'); }, certificate: cert } });
    expect([n.release.loaderSignature, n.release.certificate]).toEqual([undefined, undefined]);
  });

  it('Ed25519 with --cert: a note, the attestation only, no kernel signatures and no certificate', () => {
    expect(sign.ed.code, sign.ed.stderr).toBe(0);
    expect(sign.ed.stderr).toContain('note: Ed25519 keys cannot make kernel program signatures');
    const bytes = readRel('ed', 'minimal');
    const release = decodeRelease(bytes);
    expect(release.kernelSignatures.size).toBe(0);
    expect(release.certificate).toBeUndefined();
    expect(Object.keys(JSON.parse(bytes.toString())).sort()).toEqual(['bundle', 'mediaType', 'plan']);
  });

  it('verify --key: exit 0 for every release with its key (pub or crt), with the expected facts', async () => {
    const groups: [string, [keyof typeof sign, string, number, number][]][] = [
      [keys.ec.pub, [['ec', 'minimal', 1, 1], ['ec', 'globals', 1, 2], ['nocert', 'minimal', 7, 0], ['nocert', 'testrun', 7, 0]]],
      [keys.ec.crt, [['ec', 'testrun', 1, 4]]],
      [keys.rsa.pub, [['rsa', 'testrun', 1, 4]]],
      [keys.ed.pub, [['ed', 'minimal', 1, 0]]],
    ];
    for (const [key, cases] of groups) {
      const { code, results, stderr } = await verifyCliMany(cases.map(([w, n]) => rel(w, n)), ['--key', key], noState);
      expect(code, `--key ${key}: ${stderr}`).toBe(0);
      for (const [i, [which, name, version, ksigs]] of cases.entries()) {
        const result = results[i]!;
        expect(result.release).toBe(rel(which, name));
        expect(result.ok, JSON.stringify(result.error)).toBe(true);
        expect(result.plan).toBe(name);
        expect(result.version).toBe(version);
        expect(result.kernelSignatures).toBe(ksigs);
        expect(result.signer?.keyId).toBe(keyId(loadPublicKey(key)));
      }
    }
    // text mode: one OK line per release, exit 0
    const t = await runCli(['verify', rel('ec', 'minimal'), rel('ec', 'globals'), '--key', keys.ec.pub, '--state', noState]);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout.split('\n').filter(Boolean).map((l) => l.split(':')[0])).toEqual([`OK ${rel('ec', 'minimal')}`, `OK ${rel('ec', 'globals')}`]);
    expect(existsSync(noState)).toBe(false);
  });

  it('load --dry-run: exit 0, nothing recorded in the state file', async () => {
    for (const [which, name, key] of [['ec', 'testrun', keys.ec.pub], ['rsa', 'testrun', keys.rsa.pub], ['ed', 'minimal', keys.ed.pub]] as const) {
      const state = freshState();
      const r = await runCli(['load', rel(which, name), '--key', key, '--dry-run', '--state', state]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.split('\n')[0]).toBe(`would load ${name} v1 sha256:${sha256hex(decodeRelease(readRel(which, name)).plan)} (signer ${key})`);
      expect(existsSync(state)).toBe(false);
    }
  });

  it.skipIf(KERNEL_SKIP)('load --pin (kernel): exit 0, programs and maps pinned, version recorded; unload removes them', async () => {
    const dir = pins.next();
    const state = freshState();
    const hl = join(work, 'tmp', `host-log-${tmpCount++}`);
    const r = await runCli(['load', rel('nocert', 'testrun'), '--key', keys.ec.pub, '--pin', dir, '--state', state, '--host-log', hl]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')[0]).toBe(`loaded testrun v7 sha256:${sha256hex(decodeRelease(readRel('nocert', 'testrun')).plan)} (signer ${keys.ec.pub})`);
    expect(r.stdout).toContain(`  pinned under ${dir}\n`);
    expect(listTree(dir).filter((p) => !p.startsWith('maps/'))).toEqual(['socket_len', 'syscall_store', 'tc_mark', 'xdp_count']);
    expect(listTree(dir).filter((p) => p.startsWith('maps/')).length).toBe(3);
    expect(JSON.parse(readFileSync(state, 'utf8')).versions).toEqual({ testrun: 7 });
    const u = await runCli(['unload', dir, '--host-log', hl]);
    expect(u.code, u.stderr).toBe(0);
    expect(u.stdout).toBe(`removed 7 pin(s) from ${dir}\n`);
    expect(existsSync(dir)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('2. every single-byte flip of a release (ECDSA + cert, kernel signatures present)', () => {
  type Cls = 'reject-exit1' | 'reject-exit2' | 'accepted-identical' | 'accepted-DIFFERENT' | 'reject-other-exit' | 'NOT-A-BpfsealError';
  interface Flip { pos: number; mask: number; region: string; cls: Cls; code: string }
  const flips: Flip[] = [];
  let bytes: Buffer;
  let base: VerifiedRelease;
  let regions: { name: string; start: number; end: number }[];

  function regionOf(pos: number): string {
    return regions.find((r) => pos >= r.start && pos < r.end)?.name ?? 'structure';
  }
  function same(a: VerifiedRelease, b: VerifiedRelease): string[] {
    const diff: string[] = [];
    if (!a.planBytes.equals(b.planBytes)) diff.push('plan');
    if (!payloadOf(a.release).equals(payloadOf(b.release))) diff.push('payload');
    if (a.signer.keyId !== b.signer.keyId) diff.push('keyId');
    if (a.version !== b.version) diff.push('version');
    const names = (m: Map<string, Buffer>) => [...m.keys()].sort().join(',');
    if (names(a.kernelSignatures) !== names(b.kernelSignatures) || [...a.kernelSignatures].some(([n, s]) => !s.equals(b.kernelSignatures.get(n)!))) {
      diff.push('kernelSignatures');
    }
    return diff;
  }

  /** Where a verified kernel signature differs from the original: DER offset and what is there. */
  function derDiff(v: VerifiedRelease): string {
    const orig = base.kernelSignatures.get('xdp_pass')!;
    const got = v.kernelSignatures.get('xdp_pass');
    if (!got || got.length !== orig.length) return '';
    const at = got.findIndex((x, i) => x !== orig[i]);
    if (at < 0) return '';
    const cert = parseInstructionSignature(orig).certificates[0]!;
    const c0 = orig.indexOf(cert);
    const what = at >= c0 && at < c0 + cert.length ? 'embedded certificate' : at < c0 ? 'SignedData version/digestAlgorithms' : 'SignerInfo';
    return ` [PKCS#7 ${what}, DER offset ${at}]`;
  }

  beforeAll(() => {
    bytes = readRel('ec', 'minimal');
    const policy = singleKeyPolicy(keys.ec.pub);
    base = verifyWithPolicy(bytes, policy, noState);
    expect(base.kernelSignatures.size).toBe(1);
    // Regions: the string values of the release file, found by their keys.
    const text = bytes.toString('latin1');
    regions = [];
    for (const key of ['mediaType', 'plan', 'hint', 'payload', 'payloadType', 'sig', 'keyid', 'xdp_pass', 'certificate']) {
      const re = new RegExp(`"${key}": "`, 'g');
      let m: RegExpExecArray | null;
      while ((m = re.exec(text))) {
        const start = m.index + m[0].length;
        regions.push({ name: key === 'mediaType' && start > 100 ? 'bundle.mediaType' : key === 'xdp_pass' ? 'kernelSignatures.xdp_pass' : key, start, end: text.indexOf('"', start) });
      }
    }
    const t0 = performance.now();
    for (let pos = 0; pos < bytes.length; pos++) {
      for (const mask of [0x01, 0x80]) {
        const b = Buffer.from(bytes);
        b[pos]! ^= mask;
        let cls: Cls;
        let code: string;
        try {
          const v = verifyWithPolicy(b, policy, noState);
          const d = same(v, base);
          cls = d.length ? 'accepted-DIFFERENT' : 'accepted-identical';
          code = d.length ? `differs: ${d.join(',')}${derDiff(v)}` : 'OK';
        } catch (e) {
          if (e instanceof BpfsealError) {
            code = e.code;
            cls = e.exitCode === 1 ? 'reject-exit1' : e.exitCode === 2 ? 'reject-exit2' : 'reject-other-exit';
          } else {
            cls = 'NOT-A-BpfsealError';
            code = `${(e as Error).constructor?.name}: ${(e as Error).message}`;
          }
        }
        flips.push({ pos, mask, region: regionOf(pos), cls, code });
      }
    }
    const count = (f: Flip[]) => f.reduce<Record<string, number>>((acc, x) => ((acc[x.cls] = (acc[x.cls] ?? 0) + 1), acc), {});
    const byRegion: Record<string, Record<string, number>> = {};
    for (const f of flips) {
      const r = (byRegion[f.region] ??= {});
      const k = f.cls === 'reject-exit1' || f.cls === 'reject-exit2' ? f.code : f.cls;
      r[k] = (r[k] ?? 0) + 1;
    }
    console.log(`byte flips of ${bytes.length}-byte release (${Math.round(performance.now() - t0)} ms): XOR 0x01 ${JSON.stringify(count(flips.filter((f) => f.mask === 1)))}; ` +
      `XOR 0x80 ${JSON.stringify(count(flips.filter((f) => f.mask === 0x80)))}\nby region: ${JSON.stringify(byRegion, null, 1)}`);
  });

  const show = (f: Flip[]) => f.slice(0, 8).map((x) => `@${x.pos}^0x${x.mask.toString(16)} [${x.region}] ${x.code}`).join('\n');

  it('flips every byte position, XOR 0x01 and XOR 0x80', () => {
    expect(flips.length).toBe(bytes.length * 2);
    expect(new Set(flips.map((f) => f.pos)).size).toBe(bytes.length);
  });

  it('every rejection is a BpfsealError with exit 1 or 2', () => {
    const bad = flips.filter((f) => f.cls === 'NOT-A-BpfsealError' || f.cls === 'reject-other-exit');
    expect(bad.length, `${bad.length} flips threw something else:\n${show(bad)}`).toBe(0);
  });

  it('every accepted flip verifies to byte-identical content (plan, payload, key id, version, kernel signatures)', () => {
    const bad = flips.filter((f) => f.cls === 'accepted-DIFFERENT');
    const regionsHit = [...new Set(bad.map((f) => f.region))];
    const what: Record<string, number> = {};
    for (const f of bad) {
      const k = /\[PKCS#7 ([^,]+),/.exec(f.code)?.[1] ?? f.code;
      what[k] = (what[k] ?? 0) + 1;
    }
    expect(bad.length, `${bad.length} accepted flips changed verified content (regions ${regionsHit.join(', ')}; ${JSON.stringify(what)}):\n${show(bad)}`).toBe(0);
  });

  it('flips in the signed parts (plan, payload, DSSE signature, key hint, payload type) are all rejected', () => {
    const signed = flips.filter((f) => ['plan', 'payload', 'sig', 'hint', 'payloadType'].includes(f.region));
    expect(signed.length).toBeGreaterThan(2000);
    const accepted = signed.filter((f) => f.cls.startsWith('accepted'));
    expect(accepted.length, show(accepted)).toBe(0);
    // and the rejections in the signature and payload are signature failures or encoding failures
    expect(new Set(flips.filter((f) => f.region === 'sig').map((f) => f.code))).toEqual(new Set(['BAD_SIGNATURE', 'RELEASE_INVALID']));
  });

  it('load --dry-run (CLI) refuses representative flipped files (plan, DSSE signature, payload): exit 1 or 2, nothing loaded', async () => {
    for (const region of ['plan', 'sig', 'payload']) {
      // one that gets past decoding (exit 1) and one that does not (exit 2), where the region has both
      const picks = [flips.find((f) => f.region === region && f.cls === 'reject-exit1'), flips.find((f) => f.region === region && f.cls === 'reject-exit2')]
        .filter((f): f is Flip => f !== undefined);
      expect(picks.length, region).toBeGreaterThan(0);
      for (const f of picks) {
        const b = Buffer.from(bytes);
        b[f.pos]! ^= f.mask;
        const file = tmpFile(`flip-${region}-${f.pos}.bpfseal`, b);
        const state = freshState();
        const r = await runCli(['load', file, '--key', keys.ec.pub, '--dry-run', '--state', state]);
        expect(r.code, `${region} @${f.pos}: ${r.stderr}`).toBe(f.cls === 'reject-exit1' ? 1 : 2);
        expect(r.stdout).toBe('');
        expect(r.stderr).toMatch(/^bpfseal: /);
        expect(r.stderr).not.toContain('would load');
        expect(existsSync(state)).toBe(false);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------
describe('3. rejections: specific code, exit 1 (verify --json); malformed releases exit 2', () => {
  const expectReject = async (release: string, trust: string[], code: string, exit = 1, state = noState) => {
    const r = await verifyCli(release, trust, state);
    expect(r.result.ok, JSON.stringify(r.result)).toBe(false);
    expect(r.result.error?.code, r.result.error?.message).toBe(code);
    expect(r.result.error?.exit).toBe(exit);
    expect(r.code).toBe(exit);
    expect(r.stderr).toContain(code);
    return r;
  };
  const expectOk = async (release: string, trust: string[], state = noState) => {
    const r = await verifyCli(release, trust, state);
    expect(r.code, JSON.stringify(r.result)).toBe(0);
    expect(r.result.ok).toBe(true);
    return r;
  };
  const signer = (extra: Record<string, unknown> = {}) => ({ name: 'ci', key: '../keys/ec.pub', ...extra });

  it('wrong key: another key trusted -> UNTRUSTED_SIGNER', async () => {
    await expectReject(rel('ec', 'minimal'), ['--key', keys.other.pub], 'UNTRUSTED_SIGNER');
    await expectReject(rel('ed', 'minimal'), ['--key', keys.ec.pub], 'UNTRUSTED_SIGNER');
  });

  it('signature by key B with the hint of trusted key A -> BAD_SIGNATURE', async () => {
    const planBytes = decodeRelease(readRel('nocert', 'minimal')).plan;
    const plan = decodePlan(planBytes);
    const privA = loadPrivateKey(keys.ec.key).key;
    const privB = loadPrivateKey(keys.other.key).key;
    const pubA = loadPublicKey(keys.ec.pub);
    const make = async (priv: KeyObject) => encodeRelease((await signPlan(plan, planBytes, { signer: localKeySigner(priv, pubA), version: 1, toolVersion: 'test' })).release);
    const forged = await make(privB);
    const doc = JSON.parse(forged);
    expect(doc.bundle.verificationMaterial.publicKey.hint).toBe(keys.ec.keyId);
    await expectReject(tmpFile('forged.bpfseal', forged), ['--key', keys.ec.pub], 'BAD_SIGNATURE');
    // control: the same construction with A's private key verifies
    await expectOk(tmpFile('genuine.bpfseal', await make(privA)), ['--key', keys.ec.pub]);
  });

  it("untrusted identity: signer allowed only plans 'other-*' -> UNTRUSTED_SIGNER (control: 'min*' accepted)", async () => {
    await expectReject(rel('ec', 'minimal'), ['--policy', writePolicy(polDir, 'other-plans.json', { signers: [signer({ plans: ['other-*'] })] })], 'UNTRUSTED_SIGNER');
    await expectOk(rel('ec', 'minimal'), ['--policy', writePolicy(polDir, 'min-plans.json', { signers: [signer({ plans: ['min*'] })] })]);
  });

  it('revoked key -> REVOKED_KEY; revoked digest -> REVOKED_DIGEST', async () => {
    await expectReject(rel('ec', 'minimal'), ['--policy', writePolicy(polDir, 'revoked-key.json', { signers: [signer()], revoked: { keys: [keys.ec.keyId] } })], 'REVOKED_KEY');
    const digest = sha256hex(decodeRelease(readRel('ec', 'minimal')).plan);
    const p = writePolicy(polDir, 'revoked-digest.json', { signers: [signer()], revoked: { digests: [`sha256:${digest}`] } });
    await expectReject(rel('ec', 'minimal'), ['--policy', p], 'REVOKED_DIGEST');
    // another plan of the same signer is not affected
    await expectOk(rel('ec', 'globals'), ['--policy', p]);
  });

  it('rollback: state above the release version -> ROLLBACK; minVersions -> ROLLBACK; allowRollback accepts', async () => {
    const r = rel('nocert', 'minimal'); // version 7
    const any = writePolicy(polDir, 'any.json', { signers: [signer()] });
    await expectReject(r, ['--key', keys.ec.pub], 'ROLLBACK', 1, writeState(freshState(), { minimal: 8 }));
    await expectReject(r, ['--policy', any], 'ROLLBACK', 1, writeState(freshState(), { minimal: 8 }));
    await expectOk(r, ['--key', keys.ec.pub], writeState(freshState(), { minimal: 7, testrun: 100 }));
    await expectReject(r, ['--policy', writePolicy(polDir, 'min-version.json', { signers: [signer()], minVersions: { minimal: 8 } })], 'ROLLBACK');
    await expectOk(r, ['--policy', writePolicy(polDir, 'min-version-ok.json', { signers: [signer()], minVersions: { minimal: 7 } })]);
    await expectOk(r, ['--policy', writePolicy(polDir, 'allow-rollback.json', { signers: [signer()], allowRollback: true })], writeState(freshState(), { minimal: 8 }));
  });

  it('forbidden program type: programTypes [xdp] for a plan with a socket_filter program -> PROGRAM_TYPE_FORBIDDEN', async () => {
    const types = decodePlan(decodeRelease(readRel('ec', 'testrun')).plan).programs.map((p) => progTypeName(p.progType));
    expect(types).toContain('socket_filter');
    await expectReject(rel('ec', 'testrun'), ['--policy', writePolicy(polDir, 'xdp-only.json', { signers: [signer({ programTypes: ['xdp'] })] })], 'PROGRAM_TYPE_FORBIDDEN');
    await expectOk(rel('ec', 'testrun'), ['--policy', writePolicy(polDir, 'all-types.json', { signers: [signer({ programTypes: [...new Set(types)] })] })]);
  });

  it("subject != plan digest: another plan's bytes re-encoded with encodeRelease -> SUBJECT_MISMATCH", async () => {
    const r = decodeRelease(readRel('nocert', 'minimal'));
    const other = decodeRelease(readRel('nocert', 'testrun')).plan;
    await expectReject(tmpFile('swapped-plan.bpfseal', encodeRelease({ ...r, plan: other })), ['--key', keys.ec.pub], 'SUBJECT_MISMATCH');
    // control: re-encoding without a change is byte-identical and verifies
    expect(encodeRelease(r)).toBe(readRel('nocert', 'minimal').toString());
  });

  it('kernel signatures swapped between programs -> BAD_KERNEL_SIGNATURE', async () => {
    const r = decodeRelease(readRel('ec', 'testrun'));
    const ks = r.kernelSignatures;
    const swapped = new Map([...ks, ['xdp_count', ks.get('socket_len')!], ['socket_len', ks.get('xdp_count')!]]);
    await expectReject(tmpFile('swapped-ksig.bpfseal', encodeRelease({ ...r, kernelSignatures: swapped })), ['--key', keys.ec.pub], 'BAD_KERNEL_SIGNATURE');
    // an RSA signature from the other release for the same program (same instructions, other key) is refused too
    const rsaSig = decodeRelease(readRel('rsa', 'testrun')).kernelSignatures.get('tc_mark')!;
    await expectReject(tmpFile('foreign-ksig.bpfseal', encodeRelease({ ...r, kernelSignatures: new Map([...ks, ['tc_mark', rsaSig]]) })), ['--key', keys.ec.pub], 'BAD_KERNEL_SIGNATURE');
  });

  it('a statement whose claims do not describe the signed plan (extra program, changed map) -> PREDICATE_MISMATCH', async () => {
    const { plan, bytes, digest } = planFromBytes(readFileSync(fixturePath('testrun')), 'testrun.o');
    const { key } = loadPrivateKey(keys.ec.key);
    const signWith = async (edit: (s: Statement) => void) => {
      const st = buildStatement(plan, digest, { version: 1, toolVersion: 't' });
      edit(st);
      const bundle = await new DSSEBundleBuilder({ signer: localKeySigner(key, createPublicKey(key)), witnesses: [] })
        .create({ data: Buffer.from(JSON.stringify(st)), type: PAYLOAD_TYPE });
      return tmpFile(`claims-${tmpCount++}.bpfseal`, encodeRelease({ plan: bytes, bundle, kernelSignatures: new Map() }));
    };
    await expectOk(await signWith(() => {}), ['--key', keys.ec.pub]); // control: the statement as sign writes it
    await expectReject(await signWith((st) => st.predicate.programs.push({ ...st.predicate.programs[0], name: 'ghost' })), ['--key', keys.ec.pub], 'PREDICATE_MISMATCH');
    await expectReject(await signWith((st) => { st.predicate.maps[0].maxEntries += 1; }), ['--key', keys.ec.pub], 'PREDICATE_MISMATCH');
  });

  it('requireKernelSignatures with a release signed without --cert -> KERNEL_SIGNATURE_REQUIRED', async () => {
    const p = writePolicy(polDir, 'require-ksig.json', { signers: [signer()], requireKernelSignatures: true });
    await expectReject(rel('nocert', 'minimal'), ['--policy', p], 'KERNEL_SIGNATURE_REQUIRED');
    await expectOk(rel('ec', 'minimal'), ['--policy', p]); // verify itself needs no kernel
  });

  it('malformed releases: not JSON, unknown field, non-canonical whitespace -> exit 2 RELEASE_INVALID', async () => {
    const good = readRel('ec', 'minimal').toString();
    const doc = JSON.parse(good);
    const cases: [string, string][] = [
      ['not-json', good.slice(0, 200)],
      ['unknown-field', JSON.stringify({ ...doc, extra: 1 }, null, 2) + '\n'],
      ['indent-4', JSON.stringify(doc, null, 4) + '\n'],
      ['trailing-space', good.replace('\n', ' \n')],
      ['no-final-newline', good.trimEnd()],
    ];
    const files = cases.map(([name, text]) => tmpFile(`${name}.bpfseal`, text));
    const r = await verifyCliMany([...files, rel('ec', 'minimal')], ['--key', keys.ec.pub], noState);
    expect(r.code).toBe(2);
    expect(r.results.map((x) => x.error?.code)).toEqual([...cases.map(() => 'RELEASE_INVALID'), undefined]);
    expect(r.results.map((x) => x.error?.exit)).toEqual([...cases.map(() => 2), undefined]);
    expect(r.results.at(-1)!.ok).toBe(true); // the good one next to them still verifies
  });
});

// ---------------------------------------------------------------------------------------------------
describe('4. kernel signatures', () => {
  it.skipIf(!hasOpenssl)('each PKCS#7 verifies with openssl cms over the plan\'s instruction bytes (ECDSA and RSA); a wrong program\'s bytes do not', () => {
    let checked = 0;
    for (const [which, name] of [['ec', 'minimal'], ['ec', 'testrun'], ['ec', 'globals'], ['rsa', 'testrun']] as const) {
      const r = decodeRelease(readRel(which, name));
      const cert = tmpFile(`${which}-${name}.crt`, r.certificate!);
      const plan = decodePlan(r.plan);
      for (const [i, p] of plan.programs.entries()) {
        const sig = tmpFile(`${which}-${name}-${p.name}.der`, r.kernelSignatures.get(p.name)!);
        const insns = tmpFile(`${which}-${name}-${p.name}.insns`, p.insns);
        const v = openssl(['cms', '-verify', '-binary', '-inform', 'DER', '-in', sig, '-content', insns, '-certfile', cert, '-noverify', '-out', '/dev/null']);
        expect(v.status, `${which}/${name}/${p.name}: ${v.out}`).toBe(0);
        checked++;
        if (plan.programs.length > 1) {
          const wrong = tmpFile(`${which}-${name}-${p.name}.wrong`, plan.programs[(i + 1) % plan.programs.length]!.insns);
          const w = openssl(['cms', '-verify', '-binary', '-inform', 'DER', '-in', sig, '-content', wrong, '-certfile', cert, '-noverify', '-out', '/dev/null']);
          expect(w.status, `${which}/${name}/${p.name} over the wrong bytes`).not.toBe(0);
        }
      }
    }
    expect(checked).toBe(1 + 4 + 2 + 4);
  });

  it.skipIf(EOPNOTSUPP_SKIP)('EOPNOTSUPP: load --pin with kernel signatures prints the note and loads (policy does not require them)', async () => {
    const dir = pins.next();
    const state = freshState();
    const hl = join(work, 'tmp', `host-log-${tmpCount++}`);
    const r = await runCli(['load', rel('ec', 'testrun'), '--key', keys.ec.pub, '--pin', dir, '--state', state, '--host-log', hl]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('note: this kernel cannot verify program signatures (EOPNOTSUPP)');
    expect(listTree(dir).filter((p) => !p.startsWith('maps/'))).toEqual(['socket_len', 'syscall_store', 'tc_mark', 'xdp_count']);
    expect(JSON.parse(readFileSync(state, 'utf8')).versions).toEqual({ testrun: 1 });
    expect((await runCli(['unload', dir, '--host-log', hl])).code).toBe(0);
    expect(existsSync(dir)).toBe(false);
  });

  it.skipIf(EOPNOTSUPP_SKIP)('EOPNOTSUPP: requireKernelSignatures refuses with exit 3 (KERNEL_SIGNATURES_UNSUPPORTED), nothing pinned', async () => {
    const p = writePolicy(polDir, 'require-ksig-load.json', { signers: [{ name: 'ci', key: '../keys/ec.pub' }], requireKernelSignatures: true });
    const dir = pins.next();
    const state = freshState();
    const r = await runCli(['load', rel('ec', 'testrun'), '--policy', p, '--pin', dir, '--state', state]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain('EOPNOTSUPP');
    expect(r.stderr).toContain('nothing was loaded');
    expect(r.stdout).toBe('');
    expect(listTree(dir)).toEqual([]);
    expect(existsSync(state)).toBe(false);
    // the code, in-process, against the real kernel
    const dir2 = pins.next();
    let err: unknown;
    try {
      await loadRelease(readRel('ec', 'testrun'), { policy: loadPolicy(p), statePath: state, pinDir: dir2, hostLog: join(dirname(state), `host-log-${Date.now()}`) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BpfsealError);
    expect((err as BpfsealError).code).toBe('KERNEL_SIGNATURES_UNSUPPORTED');
    expect((err as BpfsealError).exitCode).toBe(3);
    expect(listTree(dir2)).toEqual([]);
    expect(existsSync(state)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------
describe('5. independent verifiers over the same bytes', () => {
  // The releases were signed with the default local attestation log ($BPFSEAL_LOG, test/setup-env.ts):
  // list that log's key so @sigstore/verify also checks each bundle's inclusion proof.
  const logRoot = () => {
    const log = openLog(process.env.BPFSEAL_LOG!, { create: false });
    try {
      return TrustedRoot.fromJSON({
        mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [trustedRootTlog(log)], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [],
      });
    } finally {
      log.close();
    }
  };
  function sigstoreVerify(bundleJson: SerializedBundle, pub: KeyObject): void {
    const keyFinder = (hint: string) => {
      if (hint !== keyId(pub)) throw new Error(`unknown key ${hint}`);
      return { publicKey: pub, validFor: () => true };
    };
    const verifier = new Verifier(toTrustMaterial(logRoot(), keyFinder), { tlogThreshold: 1, ctlogThreshold: 0, timestampThreshold: 0 });
    verifier.verify(toSignedEntity(bundleFromJSON(bundleJson)));
  }

  it.each([['ec', 'ec'], ['rsa', 'rsa'], ['ed', 'ed']] as const)('@sigstore/verify accepts the bundle of the %s release, rejects an altered payload', (which, k) => {
    const bytes = readRel(which, which === 'rsa' ? 'testrun' : 'minimal');
    const doc = JSON.parse(bytes.toString());
    const pub = loadPublicKey(keys[k].pub);
    expect(() => sigstoreVerify(doc.bundle, pub)).not.toThrow();
    // the signed statement names the plan carried in the release
    const stmt = JSON.parse(Buffer.from(doc.bundle.dsseEnvelope.payload, 'base64').toString());
    expect(stmt.subject[0].digest.sha256).toBe(sha256hex(Buffer.from(doc.plan, 'base64')));
    // altered payload: another version number
    const altered = structuredClone(doc.bundle);
    altered.dsseEnvelope.payload = Buffer.from(JSON.stringify({ ...stmt, predicate: { ...stmt.predicate, release: { version: 999 } } })).toString('base64');
    expect(() => sigstoreVerify(altered, pub)).toThrow();
    // and another key does not verify it
    expect(() => sigstoreVerify(doc.bundle, loadPublicKey(keys.other.pub))).toThrow();
  });

  describe('DSSE PAE over the release envelope (ECDSA P-256)', () => {
    let env: { payloadType: string; payload: Buffer; sig: Buffer };
    let files: { pae: string; sig: string; pub: string; bad: string };
    beforeAll(() => {
      const doc = JSON.parse(readRel('ec', 'minimal').toString());
      const e = doc.bundle.dsseEnvelope;
      env = { payloadType: e.payloadType, payload: Buffer.from(e.payload, 'base64'), sig: Buffer.from(e.signatures[0].sig, 'base64') };
      const p = pae(env.payloadType, env.payload);
      const bad = Buffer.from(p);
      bad[bad.length - 2]! ^= 0x01;
      files = { pae: tmpFile('pae.bin', p), sig: tmpFile('sig.bin', env.sig), pub: tmpFile('rel.pub', readFileSync(keys.ec.pub)), bad: tmpFile('pae-bad.bin', bad) };
    });

    it('PAE bytes are as the DSSE spec gives them', () => {
      expect(env.payloadType).toBe(PAYLOAD_TYPE);
      const p = readFileSync(files.pae);
      const head = `DSSEv1 ${Buffer.byteLength(PAYLOAD_TYPE)} ${PAYLOAD_TYPE} ${env.payload.length} `;
      expect(p.subarray(0, head.length).toString()).toBe(head);
      expect(p.subarray(head.length).equals(env.payload)).toBe(true);
      expect(env.sig[0]).toBe(0x30); // DER Ecdsa-Sig-Value
    });

    it.skipIf(!hasOpenssl)('openssl dgst -sha256 -verify accepts the DSSE signature over PAE, refuses a changed byte', () => {
      const ok = openssl(['dgst', '-sha256', '-verify', files.pub, '-signature', files.sig, files.pae]);
      expect(ok.status, ok.out).toBe(0);
      expect(ok.out).toContain('Verified OK');
      const bad = openssl(['dgst', '-sha256', '-verify', files.pub, '-signature', files.sig, files.bad]);
      expect(bad.status).not.toBe(0);
    });

    it.skipIf(!hasPyCryptography)('python3 cryptography accepts the DSSE signature over PAE, refuses a changed byte', () => {
      const script = [
        'import sys',
        'from cryptography.hazmat.primitives import hashes, serialization',
        'from cryptography.hazmat.primitives.asymmetric import ec',
        'from cryptography.exceptions import InvalidSignature',
        'pub = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())',
        'assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1"',
        'try:',
        '    pub.verify(open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read(), ec.ECDSA(hashes.SHA256()))',
        '    print("OK")',
        'except InvalidSignature:',
        '    print("BAD"); sys.exit(1)',
      ].join('\n');
      const run = (data: string) => spawnSync('python3', ['-c', script, files.pub, files.sig, data], { encoding: 'utf8' });
      const ok = run(files.pae);
      expect(ok.status, ok.stderr).toBe(0);
      expect(ok.stdout.trim()).toBe('OK');
      const bad = run(files.bad);
      expect(bad.status).toBe(1);
      expect(bad.stdout.trim()).toBe('BAD');
    });
  });
});
