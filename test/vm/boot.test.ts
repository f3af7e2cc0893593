/**
 * Debian's kernels for real, one boot each (two at a time): the guest runs the released kernel
 * (uname), node and bpfseal start, bpf(2) works through the project's binding, certificates go
 * into keyrings (ECDSA and RSA), the kernel checks a program signature made on the host, a signed
 * release loads with `bpfseal load`, and MB-sized files come back intact. Prints the timings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { signInstructions } from '../../src/attest/pkcs7.js';
import { generateKeyPair } from '../../src/trust/keys.js';
import { certificateDer, selfSignedCertificate } from '../../src/trust/x509.js';
import { runInVm, type RunResult } from '../../src/vm/run.js';
import { CLI, cleanupTmpDirs, makeTmpDir, ROOT } from '../helpers/paths.js';
import { atLeast, availableKernels, pool, vmSetup } from './helpers.js';

const { setup, why } = vmSetup();
const kernels = availableKernels(setup, why);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const results = new Map<string, RunResult>();
const blob = randomBytes(4 << 20);

/** Inputs made on the host: certificates, a program and its signatures, a signed release. */
function guestFiles(): Record<string, Buffer | string> {
  const ec = generateKeyPair('ecdsa-p256');
  const rsa = generateKeyPair('rsa-3072');
  const ecPem = selfSignedCertificate(ec.privateKey, ec.publicKey, { commonName: 'vmtest-ec' });
  const rsaPem = selfSignedCertificate(rsa.privateKey, rsa.publicKey, { commonName: 'vmtest-rsa' });
  const prog = Buffer.from('b7000000020000009500000000000000', 'hex'); // r0 = 2; exit
  const tampered = Buffer.from('b7000000030000009500000000000000', 'hex'); // r0 = 3; exit
  const dir = makeTmpDir('bpfseal-vm-release-');
  const cli = (...args: string[]): string => execFileSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: 'utf8' });
  cli('keygen', '--out', join(dir, 'keys'), '--name', 'release');
  cli('sign', join(ROOT, 'examples', 'xdp_counter.o'), '--key', 'keys/release.key', '--cert', 'keys/release.crt', '-o', 'x.bpfseal', '--no-log');
  return {
    '/root/checks.sh': readFileSync(join(ROOT, 'test/vm/guest/checks.sh')),
    '/root/bpf-check.mjs': readFileSync(join(ROOT, 'test/vm/guest/bpf-check.mjs')),
    '/root/ec.der': certificateDer(ecPem),
    '/root/rsa.pem': rsaPem,
    '/root/prog.bin': prog,
    '/root/prog-tampered.bin': tampered,
    '/root/sig-ec.der': signInstructions(prog, ec.privateKey, ecPem),
    '/root/sig-rsa.der': signInstructions(prog, rsa.privateKey, rsaPem),
    '/root/x.bpfseal': readFileSync(join(dir, 'x.bpfseal')),
    '/root/release.crt': readFileSync(join(dir, 'keys/release.crt')),
    '/root/release.pub': readFileSync(join(dir, 'keys/release.pub')),
    '/root/blob.bin': blob,
  };
}

beforeAll(async () => {
  if (kernels.length === 0) return;
  const files = guestFiles();
  const limit = Number(process.env.BPFSEAL_VM_CONCURRENCY ?? 2);
  await pool(kernels, limit, async (k) => {
    results.set(k.release, await runInVm(k, { files, command: 'sh /root/checks.sh', timeoutMs: 300_000 }));
  });
});

afterAll(() => {
  cleanupTmpDirs();
  if (results.size === 0) return;
  const rows = [...results.values()].map((r) => {
    const t = (n: string): number => Number(r.files[`t.${n}`]?.toString() ?? NaN);
    const fetch = setup?.kernels.find((k) => k.kernel?.release === r.kernel.release)?.fetchMs ?? NaN;
    return `${r.kernel.release.padEnd(28)} fetch ${String(fetch).padStart(6)} ms | boot to /init ${r.bootMs} ms (guest uptime ${r.guestInitUptime.toFixed(2)} s)`
      + ` | node -e 0 ${((t('node1') - t('node0')) * 1000).toFixed(0)} ms | bpfseal --version ${((t('version') - t('node1')) * 1000).toFixed(0)} ms`
      + ` | checks ${r.commandMs} ms | total ${r.totalMs} ms${r.boots > 1 ? ` (${r.boots} boots)` : ''}`;
  });
  const base = setup?.base;
  console.log(`[vm] base initramfs ${base ? `${(base.bytes / 1e6).toFixed(0)} MB, ${base.built ? 'built' : 'cached'} in ${base.ms} ms` : '?'}\n${rows.join('\n')}`);
});

/** One step of checks.sh: its stdout, stderr and exit status. */
function step(r: RunResult, name: string): { out: string; err: string; rc: number } {
  const f = (ext: string): string => r.files[`${name}.${ext}`]?.toString('utf8') ?? '';
  return { out: f('out').trim(), err: f('err').trim(), rc: Number(f('rc').trim() || NaN) };
}

interface Attempt { ok: boolean; value?: number | string; code?: string; message?: string }

for (const k of kernels) {
  const get = (): RunResult => {
    const r = results.get(k.release);
    if (!r) throw new Error(`${k.release}: no run`);
    return r;
  };
  const bpf = (): Record<string, Attempt> => JSON.parse(step(get(), 'bpf').out || '{}') as Record<string, Attempt>;
  // Signature fields in bpf_attr (signature, signature_size, keyring_id) arrived in 6.18.
  const verifies = atLeast(k.release, 6, 18);

  describe(`${k.package ?? k.release}`, () => {
    it('runs the whole check script', () => {
      expect(get().exitCode, get().stderr).toBe(0);
      expect(get().timedOut).toBe(false);
    });

    it('boots the kernel of the package (uname -r)', () => {
      expect(step(get(), 'uname')).toMatchObject({ out: k.release, rc: 0 });
    });

    it('runs node and bpfseal --version inside', () => {
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
      expect(step(get(), 'node-start').rc).toBe(0);
      expect(step(get(), 'version')).toMatchObject({ out: pkg.version, rc: 0 });
    });

    it('bpf(2) works through dist/kernel/bpf.js: array map, program load and test run', () => {
      const b = bpf();
      expect(b.map).toEqual({ ok: true, value: '0123456789abcdef' });
      expect(b.unsigned).toEqual({ ok: true, value: 2 });
    });

    it('adds ECDSA P-256 and RSA certificates to keyrings and returns serials', () => {
      const b = bpf();
      expect(b.certEc.ok && Number(b.certEc.value) > 0, b.certEc.message).toBe(true);
      expect(b.certRsa.ok && Number(b.certRsa.value) > 0, b.certRsa.message).toBe(true);
      const cli = step(get(), 'cert-cli');
      expect(cli.rc, cli.err).toBe(0);
      expect(Number(cli.out)).toBeGreaterThan(0);
      expect(step(get(), 'describe').out).toMatch(/^asymmetric;0;0;[0-9a-f]+;vmtest-ec: [0-9a-f]{40}$/);
      const ring = step(get(), 'keyring');
      expect(ring.rc, ring.err).toBe(0);
      const keys = get().files['proc-keys']?.toString() ?? '';
      expect(keys).toMatch(/asymmetri vmtest-ec: .*X509\.ecdsa-nist-p256/);
      expect(keys).toMatch(/asymmetri vmtest-rsa: .*X509\.rsa/);
      expect(keys).toMatch(/keyring +vmtest: 1/);
    });

    it.runIf(verifies)('the kernel verifies a program signature: ENOKEY without the certificate, EKEYREJECTED when tampered', () => {
      const b = bpf();
      expect(b.signedNoCert).toMatchObject({ ok: false, code: 'KERNEL_ENOKEY' });
      expect(b.signedEc).toEqual({ ok: true, value: 2 });
      expect(b.signedRsa).toEqual({ ok: true, value: 2 });
      expect(b.tampered).toMatchObject({ ok: false, code: 'KERNEL_EKEYREJECTED' });
    });

    it.runIf(!verifies)('a kernel before 6.18 refuses signature fields it does not know (E2BIG)', () => {
      expect(bpf().signedEc).toMatchObject({ ok: false, code: 'KERNEL_E2BIG' });
    });

    // Known gaps of `bpfseal load`, kept as expected failures so a fix shows up here: before 6.18
    // it passes signature fields the kernel refuses (E2BIG); from 7.3 the kernel refuses signed
    // programs that use maps unless they go through a signed loader (shared/facts/kernel-vm.md).
    const known = !verifies || atLeast(k.release, 7, 3);
    (known ? it.fails : it)(`bpfseal load of a signed release (cert in the session keyring)${known ? ' [known gap on this kernel]' : ''}`, () => {
      const s = step(get(), 'signed-load');
      expect(s.rc, s.err).toBe(0);
      expect(s.out).toContain('count_packets');
      expect(s.err).toContain('kernel verifies program signatures');
    });

    it('returns MB-sized files intact (a 4 MiB blob, /sys/kernel/btf/vmlinux)', () => {
      const r = get();
      expect(sha(r.files['blob.bin'])).toBe(sha(blob));
      const btf = r.files['btf-vmlinux'];
      expect(btf.length).toBeGreaterThan(1 << 20);
      expect(btf.readUInt16LE(0)).toBe(0xeb9f); // BTF magic
      expect(sha(btf)).toBe(r.files['btf.sha256'].toString().trim());
    });
  });
}
