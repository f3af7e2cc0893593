/**
 * Signed kernel loaders on Debian's kernels (issue "the kernel as verifier"), one boot per kernel:
 *  - 7.3+: with a policy that requires kernel-verified loads, every release that loads with the
 *    user-space loader also loads through its signed loader, and the kernel says so (kernelVerified
 *    'loader'); one byte changed in the blob or the loader instructions is EKEYREJECTED (a test-only
 *    path skips the user-space verification that refuses them first); a release whose certificate is
 *    not in the keyring is ENOKEY, exit 3, and leaves nothing pinned.
 *  - 6.18-7.2: what worked before still works: per-program signatures (kernelVerified 'programs') for
 *    releases whose programs need no host fix-ups; the others are refused by a requiring policy, with
 *    the reason, and load with one that only verifies.
 * Releases: every little-endian fixture, the example, and the real objects under test/fixtures/corpus.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { runInVm, type RunResult } from '../../src/vm/run.js';
import { CLI, cleanupTmpDirs, FIXTURES, makeTmpDir, ROOT } from '../helpers/paths.js';
import { atLeast, availableKernels, pool, vmSetup } from './helpers.js';

const { setup, why } = vmSetup();
const all = availableKernels(setup, why);
// The loader matters where the kernel verifies signatures: 6.18 and later.
const kernels = all.filter((k) => atLeast(k.release, 6, 18));
const results = new Map<string, RunResult>();
const CORPUS = join(FIXTURES, 'corpus');

/** Objects to sign: fixtures (little-endian), the example, the committed real objects. */
function objects(): string[] {
  const fx = readdirSync(FIXTURES).filter((f) => f.endsWith('.o') && f !== 'minimal_be.o').map((f) => join(FIXTURES, f));
  const corpus = existsSync(CORPUS) ? readdirSync(CORPUS).filter((f) => f.endsWith('.o')).map((f) => join(CORPUS, f)) : [];
  return [...fx, join(ROOT, 'examples/xdp_counter.o'), ...corpus];
}

const nameOf = (o: string) => basename(o).replace(/\.o$/, '').replace(/[^A-Za-z0-9_]/g, '_');
let names: string[] = [];

function guestFiles(): Record<string, Buffer | string> {
  const d = makeTmpDir('bpfseal-vm-loader-');
  const cli = (...args: string[]) => execFileSync(process.execPath, [CLI, ...args], { cwd: d, encoding: 'utf8' });
  cli('keygen', '--out', join(d, 'keys'), '--name', 'trusted');
  cli('keygen', '--out', join(d, 'keys'), '--name', 'stranger');
  const files: Record<string, Buffer | string> = {
    '/root/loader.sh': readFileSync(join(ROOT, 'test/vm/guest/loader.sh')),
    '/root/tamper.mjs': readFileSync(join(ROOT, 'test/vm/guest/tamper.mjs')),
    '/root/trusted.crt': readFileSync(join(d, 'keys/trusted.crt')),
    '/root/keys/trusted.pub': readFileSync(join(d, 'keys/trusted.pub')),
    '/root/keys/stranger.pub': readFileSync(join(d, 'keys/stranger.pub')),
  };
  const signer = (key: string) => ({ name: key, key: `keys/${key}.pub`, plans: ['*'], programTypes: ['*'] });
  files['/root/plain.json'] = JSON.stringify({ version: 1, signers: [signer('trusted')] });
  files['/root/require.json'] = JSON.stringify({ version: 1, signers: [signer('trusted')], requireKernelSignatures: true, keyring: -3 });
  files['/root/stranger.json'] = JSON.stringify({ version: 1, signers: [signer('stranger')], requireKernelSignatures: true, keyring: -3 });
  names = [];
  for (const o of objects()) {
    const n = nameOf(o);
    const out = join(d, `${n}.bpfseal`);
    cli('sign', o, '--key', 'keys/trusted.key', '--cert', 'keys/trusted.crt', '--no-log', '-o', out);
    files[`/root/rel/${n}.bpfseal`] = readFileSync(out);
    names.push(n);
  }
  cli('sign', join(FIXTURES, 'globals.o'), '--key', 'keys/stranger.key', '--cert', 'keys/stranger.crt', '--no-log', '-o', join(d, 'stranger.bpfseal'));
  files['/root/stranger.bpfseal'] = readFileSync(join(d, 'stranger.bpfseal'));
  return files;
}

beforeAll(async () => {
  if (kernels.length === 0) return;
  const files = guestFiles();
  await pool(kernels, Number(process.env.BPFSEAL_VM_CONCURRENCY ?? 2), async (k) => {
    // The guest has no /boot: the kernel's config (kconfig externs) is given where bpfseal looks for it.
    const withConfig = k.config ? { ...files, [`/boot/config-${k.release}`]: readFileSync(k.config) } : files;
    results.set(k.release, await runInVm(k, { files: withConfig, command: 'sh /root/loader.sh', timeoutMs: 540_000, memoryMiB: 2048 }));
  });
}, 900_000);

afterAll(() => {
  for (const [release, r] of results) {
    const t = (m: string) => { const [a, b] = (r.files[`${m}.t`]?.toString() ?? '').trim().split(' ').map(Number); return (b - a) * 1000; };
    const n = names.length;
    console.log(`[vm] loader ${release}: boot ${r.bootMs} ms, script ${r.commandMs} ms; ${n} releases in one call: user loader ${t('user').toFixed(0)} ms`
      + ` (${(t('user') / n).toFixed(0)} ms each), kernel-verified ${t('kernel').toFixed(0)} ms (${(t('kernel') / n).toFixed(0)} ms each)`);
    for (const m of ['user', 'kernel']) for (const x of outcomes(r, m)) if (!x.ok) console.log(`  ${m} ${x.name}: ${x.error?.code}: ${x.error?.message.split('\n')[0]}`);
  }
  cleanupTmpDirs();
});

interface LoadJson { release: string; ok: boolean; loader?: string; kernelVerified?: string; programs?: { name: string; id: number; tag: string }[]; error?: { code: string; message: string; exit: number } }

/** Per-release outcomes of one mode, by release name. */
function outcomes(r: RunResult, mode: string): (LoadJson & { name: string })[] {
  try {
    const v = JSON.parse(r.files[`${mode}.json`]?.toString() ?? '') as LoadJson[];
    return v.map((x) => ({ ...x, name: basename(x.release).replace(/\.bpfseal$/, '') }));
  } catch {
    return [];
  }
}

function outcome(r: RunResult, mode: string, n: string): LoadJson & { name: string } {
  const x = outcomes(r, mode).find((o) => o.name === n);
  if (!x) throw new Error(`no ${mode} outcome for ${n}: ${r.files[`${mode}.err`]?.toString().slice(0, 2000)}`);
  return x;
}

const explain = (x: LoadJson) => (x.ok ? 'ok' : `${x.error?.code}: ${x.error?.message}`);

for (const k of kernels) {
  const get = (): RunResult => {
    const r = results.get(k.release);
    if (!r) throw new Error(`${k.release}: no run`);
    return r;
  };
  const loaderVerified = atLeast(k.release, 7, 3);

  describe(`${k.package ?? k.release}`, () => {
    it('runs the whole script', () => {
      expect(get().timedOut, get().console.slice(-2000)).toBe(false);
      expect(get().exitCode, get().stderr).toBe(0);
      expect(Number(get().files['cert.serial']?.toString())).toBeGreaterThan(0);
    });

    it('the fixtures, the example and the real objects were all signed with a kernel loader', () => {
      expect(names.length).toBeGreaterThanOrEqual(14);
      for (const n of ['minimal', 'globals', 'map_in_map', 'core', 'testrun', 'externs', 'xdp_counter']) expect(names).toContain(n);
    });

    it.runIf(loaderVerified)('7.3+: every release that loads in user space loads kernel-verified through its signed loader', () => {
      const r = get();
      const user = outcomes(r, 'user');
      expect(user.map((x) => x.name).sort()).toEqual([...names].sort());
      const loaded = user.filter((x) => x.ok);
      // What this kernel refuses with the user-space loader as well is not the loader's to load.
      expect(loaded.length, user.map((x) => `${x.name}: ${explain(x)}`).join('\n')).toBeGreaterThanOrEqual(12);
      // The real objects (global data, CO-RE, a map sized at load, fentry) among them: objects are
      // named foo.bpf.o, so their plans (foo.bpf) are pinned at <pin>/foo_bpf.
      const real = ['opensnoop_bpf', 'tcpsynbl_bpf', 'xdp_dispatcher_bpf'].filter((n) => names.includes(n));
      expect(real.length).toBe(3);
      for (const n of real) expect(explain(outcome(r, 'kernel', n)), n).toBe('ok');
      for (const u of loaded) {
        const j = outcome(r, 'kernel', u.name);
        expect(j.ok, `${u.name}: ${explain(j)}`).toBe(true);
        expect([j.loader, j.kernelVerified], u.name).toEqual(['kernel', 'loader']);
        // The same programs, with the same tags, as the user-space loader gave.
        expect(j.programs?.map((p) => [p.name, p.tag]), u.name).toEqual(u.programs?.map((p) => [p.name, p.tag]));
      }
    });

    it.runIf(loaderVerified)('7.3+: one byte changed in the blob or in the loader is refused by the kernel: EKEYREJECTED', () => {
      const r = get();
      expect(r.files['tamper.rc']?.toString().trim(), r.files['tamper.err']?.toString()).toBe('0');
      const t = JSON.parse(r.files['tamper.json']!.toString()) as Record<string, { ok: boolean; errno?: number; message?: string }>;
      expect(t.control).toEqual({ ok: true });
      expect(t.blob).toMatchObject({ ok: false, errno: 129 });
      expect(t.insns).toMatchObject({ ok: false, errno: 129 });
    });

    it.runIf(loaderVerified)('7.3+: a certificate missing from the keyring is ENOKEY, exit 3, nothing pinned', () => {
      const r = get();
      const text = `${r.files['stranger.err']?.toString() ?? ''}${r.files['stranger.json']?.toString() ?? ''}`;
      expect(r.files['stranger.rc']?.toString().trim(), text).toBe('3');
      expect(text).toMatch(/ENOKEY/);
      expect(r.files['stranger.left']).toBeUndefined();
    });

    it.runIf(!loaderVerified)('6.18-7.2: per-program signatures are verified where the programs need no fix-ups; the rest load with a verifying policy', () => {
      const r = get();
      const user = outcomes(r, 'user');
      const loaded = user.filter((x) => x.ok);
      expect(loaded.length, user.map((x) => `${x.name}: ${explain(x)}`).join('\n')).toBeGreaterThanOrEqual(12);
      for (const u of loaded) expect(u.kernelVerified, u.name).toMatch(/^(programs|none)$/);
      // Every program signed and its instructions final: the kernel checks each signature.
      for (const n of ['minimal', 'globals', 'testrun', 'map_in_map']) {
        const j = outcome(r, 'kernel', n);
        expect(j.ok, `${n}: ${explain(j)}`).toBe(true);
        expect(j, n).toMatchObject({ loader: 'user', kernelVerified: 'programs' });
      }
      // externs needs host fix-ups (kconfig, ksym, kfunc): no per-program signature, refused with the reason.
      const ext = outcome(r, 'kernel', 'externs');
      expect(ext.ok).toBe(false);
      expect(explain(ext)).toMatch(/KERNEL_SIGNATURE_REQUIRED.*externs_prog/s);
    });

    it('nothing stays pinned', () => {
      expect(get().files['bpffs.ls']?.toString().trim() ?? '').toBe('');
    });
  });
}
