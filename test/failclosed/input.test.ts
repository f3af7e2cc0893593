/**
 * Fail closed, bounded and clean input handling (issue "fail closed" §6, §7): size limits, exit 70 for
 * real bugs only, a seeded structure-aware fuzz of release and statement parsing that never produces
 * an internal error, `sign -o` to an unwritable place logs nothing, `load --max-entries` for a map the
 * plan does not have, and local-storage maps created with max_entries 0.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, ftruncateSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkKernelSignature } from '../../src/attest/pkcs7.js';
import { verifyRelease } from '../../src/attest/verify.js';
import { decodeRelease } from '../../src/attest/release.js';
import { failure } from '../../src/cli/output.js';
import { BpfsealError, type ErrorCode } from '../../src/errors.js';
import { readInput } from '../../src/fsx/read.js';
import { planFromBytes } from '../../src/plan/file.js';
import { parsePolicy, type TrustPolicy } from '../../src/trust/policy.js';
import { writeKeyFiles, type KeyFiles } from '../../src/trust/keys.js';
import { openLog } from '../../src/tlog/store.js';
import { iterSeed, prng } from '../helpers/mutate.mjs';
import { cleanupTmpDirs, fixturePath, makeTmpDir, readFixture } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { probeBpf, newPinDir, removePinDirs } from '../helpers/kernel.js';
import { signFixture } from '../helpers/releases.js';

afterAll(() => { cleanupTmpDirs(); removePinDirs(); });

let dir: string;
let k: KeyFiles;
let policy: TrustPolicy;
beforeAll(() => {
  dir = makeTmpDir('bpfseal-input-');
  k = writeKeyFiles(dir, 'k', 'ecdsa-p256');
  const doc = { version: 1, signers: [{ name: 'k', key: 'k.pub', plans: ['*'], programTypes: ['*'] }] };
  writeFileSync(join(dir, 'policy.json'), JSON.stringify(doc));
  policy = parsePolicy(JSON.stringify(doc), join(dir, 'policy.json'));
});

describe('size limits', () => {
  it('a release larger than the limit is refused before it is read, naming the file and the limit', async () => {
    const p = join(dir, 'huge.bpfseal');
    const fd = openSync(p, 'w');
    ftruncateSync(fd, 200 * 1024 * 1024); // sparse: nothing is written
    closeSync(fd);
    expect(() => readInput(p, { kind: 'release' })).toThrow(expect.objectContaining({ code: 'INPUT_TOO_LARGE', message: expect.stringMatching(/huge\.bpfseal: 200 MiB is larger than the 192 MiB bpfseal accepts for a release file/) }));
    const r = await runCli(['verify', p, '--policy', join(dir, 'policy.json')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('INPUT_TOO_LARGE');
  });
});

describe('internal errors', () => {
  it('a JavaScript error (a bug) is INTERNAL with exit 70, never a rejection code', () => {
    expect(failure(new TypeError("Cannot read properties of undefined (reading 'x')"))).toMatchObject({ code: 'INTERNAL', exit: 70 });
    expect(failure(new BpfsealError('input', 'X' as ErrorCode, 'y'))).toMatchObject({ code: 'X', exit: 2 });
  });
});

type J = null | boolean | number | string | J[] | { [k: string]: J };

/** A structural mutation of a JSON document: change, drop, retype or duplicate a value at any depth. */
function mutateJson(doc: J, rnd: () => number): J {
  const all: { parent: any; key: string | number }[] = [];
  const walk = (v: J) => {
    if (Array.isArray(v)) v.forEach((x, i) => { all.push({ parent: v, key: i }); walk(x); });
    else if (v && typeof v === 'object') for (const key of Object.keys(v)) { all.push({ parent: v, key }); walk(v[key]); }
  };
  walk(doc);
  const at = all[Math.floor(rnd() * all.length)];
  const v = at.parent[at.key] as J;
  const choices: (() => void)[] = [
    () => { at.parent[at.key] = null; },
    () => { at.parent[at.key] = typeof v === 'string' ? v.slice(0, Math.floor(rnd() * v.length)) : 'x'; },
    // biome-ignore lint/correctness/noPrecisionLoss: any number past 2^53 will do
    () => { at.parent[at.key] = typeof v === 'string' ? `${v}=` : 12345678901234567890; },
    () => { at.parent[at.key] = Array.isArray(v) ? [] : [v]; },
    () => { at.parent[at.key] = {}; },
    () => { if (Array.isArray(at.parent)) at.parent.splice(at.key as number, 1); else delete at.parent[at.key]; },
    () => { at.parent[at.key] = typeof v === 'number' ? -1 : typeof v === 'string' ? Buffer.from(v).toString('base64') : true; },
    () => { if (Array.isArray(v)) v.push(structuredClone(v[0] ?? null)); else if (v && typeof v === 'object') (v as Record<string, J>).__proto__x = 1; },
  ];
  choices[Math.floor(rnd() * choices.length)]();
  return doc;
}

describe('fuzz: release and statement parsing never end in an internal error', () => {
  it('4000 seeded structural mutations of a signed release (bundle, statement, plan, kernel signatures): each a BpfsealError', async () => {
    const rel = await signFixture('testrun', 'fuzzed', k, 3, { kernel: true });
    const base = JSON.parse(rel.bytes.toString('utf8')) as Record<string, J>;
    // The payload is base64 JSON inside the bundle: mutate the statement too, re-encoded.
    const env = (base.bundle as any).dsseEnvelope;
    const statement = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as J;
    const codes = new Map<string, number>();
    const SEED = 0xf022_7e1e;
    for (let i = 0; i < 4000; i++) {
      const rnd = prng(iterSeed(SEED, i));
      const doc = structuredClone(base);
      if (rnd() < 0.4) {
        const st = mutateJson(structuredClone(statement), rnd);
        (doc.bundle as any).dsseEnvelope.payload = Buffer.from(JSON.stringify(st)).toString('base64');
      } else mutateJson(doc, rnd);
      const bytes = Buffer.from(rnd() < 0.5 ? `${JSON.stringify(doc, null, 2)}\n` : JSON.stringify(doc));
      try {
        verifyRelease(bytes, policy, { state: new Map(), verifyKernelSignature: checkKernelSignature });
        // Accepted only if the mutation changed nothing: the canonical form pins every byte.
        expect(bytes.equals(rel.bytes), `mutation ${i} changed the release and still verified`).toBe(true);
        codes.set('ACCEPTED', (codes.get('ACCEPTED') ?? 0) + 1);
      } catch (e) {
        if (!(e instanceof BpfsealError)) throw new Error(`mutation ${i}: not a BpfsealError: ${(e as Error).stack}`);
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      }
    }
    console.log(`release fuzz: ${[...codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ')}`);
    expect(codes.has('INTERNAL')).toBe(false);
  });
});

describe('sign -o to a place that cannot be written', () => {
  it('fails before anything is logged: no entry without a release', async () => {
    const logDir = join(makeTmpDir(), 'att');
    const ro = join(makeTmpDir(), 'ro');
    mkdirSync(ro);
    for (const out of [join(ro, 'no', 'such', 'dir', 'x.bpfseal'), '/proc/bpfseal-x.bpfseal']) {
      const r = await runCli(['sign', fixturePath('minimal'), '--key', k.key, '--log', logDir, '-o', out]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('OUTPUT_UNWRITABLE');
    }
    const log = openLog(logDir, { create: false });
    try {
      expect(log.size).toBe(0);
    } finally {
      log.close();
    }
  });
});

describe('load --max-entries', () => {
  it('naming a map the plan does not have is a usage error (exit 2) that lists the maps sized at load', async () => {
    const rel = join(dir, 'maps.bpfseal');
    writeFileSync(rel, (await signFixture('maps_btf', 'maps', k)).bytes);
    const r = await runCli(['load', rel, '--policy', join(dir, 'policy.json'), '--dry-run', '--max-entries', 'nosuch=4']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/USAGE_MAX_ENTRIES: --max-entries nosuch=N: plan 'maps' has no map 'nosuch' \(maps sized at load: perf_map\)/);
    expect((await runCli(['load', rel, '--policy', join(dir, 'policy.json'), '--dry-run', '--max-entries', 'perf_map=4', '--max-entries', 'perf_map=8'])).stderr).toContain('given twice');
  });
});

describe('local-storage maps', () => {
  it('are planned with max_entries 0 and no fix-up (their definition), and load as they are', async () => {
    const { plan } = planFromBytes(readFixture('storage'), 'storage.o');
    expect(plan.maps.map((m) => [m.name, m.maxEntries, m.maxEntriesFixup])).toEqual([['sk_stats', 0, 'none'], ['task_marks', 0, 'none']]);
    const rel = join(dir, 'storage.bpfseal');
    writeFileSync(rel, (await signFixture('storage', 'storage', k)).bytes);
    const dry = await runCli(['load', rel, '--policy', join(dir, 'policy.json'), '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    if (!probeBpf().ok) return;
    const d = makeTmpDir();
    const pin = newPinDir();
    const r = await runCli(['load', rel, '--policy', join(dir, 'policy.json'), '--pin', pin, '--host-log', join(d, 'hl'), '--state', join(d, 's.json'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).maps.map((m: { name: string }) => m.name)).toEqual(['sk_stats', 'task_marks']);
    expect((await runCli(['unload', pin, '--host-log', join(d, 'hl')])).code).toBe(0);
  });
});

describe('sign --builder', () => {
  it('a key named __proto__ is recorded as a key (no prototype write); a key given twice is a usage error', async () => {
    const d = makeTmpDir();
    expect((await runCli(['keygen', '--out', d, '--name', 'k'])).code).toBe(0);
    const out = join(d, 'm.bpfseal');
    const r = await runCli(['sign', fixturePath('minimal'), '--key', join(d, 'k.key'), '--no-log', '-o', out, '--builder', '__proto__=x', '--builder', 'ci=yes']);
    expect(r.code, r.stderr).toBe(0);
    const v = await runCli(['verify', out, '--key', join(d, 'k.pub'), '--json']);
    expect(v.code, v.stderr).toBe(0);
    const rel = decodeRelease(readInput(out, { kind: 'release' }));
    const env = rel.bundle.content as { $case: 'dsseEnvelope'; dsseEnvelope: { payload: Buffer } };
    const st = JSON.parse(env.dsseEnvelope.payload.toString('utf8')) as { predicate: { builder?: Record<string, string> } };
    expect(Object.entries(st.predicate.builder ?? {})).toEqual([['__proto__', 'x'], ['ci', 'yes']]);
    const twice = await runCli(['sign', fixturePath('minimal'), '--key', join(d, 'k.key'), '--no-log', '-o', join(d, 'n.bpfseal'), '--builder', 'a=1', '--builder', 'a=2']);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('USAGE_BUILDER');
  });
});
