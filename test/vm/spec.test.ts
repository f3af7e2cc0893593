/**
 * Kernel specs, the cache and the bundle, without network or VM: Debian version order (checked
 * against dpkg where it is installed), version specs picking the newest package, the cache's
 * offline answers and errors, the boot header, apt records, and which packages go into the guest.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compareDebianVersions } from '../../src/vm/debver.js';
import { cachedKernels, matchVersion, parseKernelSpec, resolveKernel } from '../../src/vm/kernels.js';
import { bzImageRelease, parseKernelConfig, sha256Digest } from '../../src/vm/image.js';
import { parseRecord } from '../../src/vm/apt.js';
import { productionPackages } from '../../src/vm/bundle.js';
import { withLock } from '../../src/vm/lock.js';
import { cleanupTmpDirs, makeTmpDir, ROOT } from '../helpers/paths.js';

afterAll(cleanupTmpDirs);

const PAIRS: [string, string][] = [
  ['7.2.12-1', '7.2.12-1~bpo13+1'], ['7.2.12+deb14', '7.2.12+deb13'], ['6.12.117', '6.12.107'], ['7.3', '7.3~rc7'],
  ['1.0', '1.0~'], ['1.0a', '1.0'], ['1.0-1', '1.0'], ['1:0.1', '9.9'], ['1.0+b1', '1.0'], ['2.10', '2.9'], ['1.0.0', '1.0'],
];

describe('Debian version order', () => {
  it('orders like deb-version(7)', () => {
    for (const [hi, lo] of PAIRS) {
      expect(compareDebianVersions(hi, lo), `${hi} > ${lo}`).toBeGreaterThan(0);
      expect(compareDebianVersions(lo, hi)).toBeLessThan(0);
      expect(compareDebianVersions(hi, hi)).toBe(0);
    }
    expect(compareDebianVersions('1.01', '1.1')).toBe(0);
  });

  it.skipIf(spawnSync('dpkg', ['--version']).status !== 0)('agrees with dpkg --compare-versions', () => {
    for (const [a, b] of PAIRS.flatMap(([x, y]) => [[x, y], [y, x]] as [string, string][])) {
      const dpkgSaysGt = spawnSync('dpkg', ['--compare-versions', a, 'gt', b]).status === 0;
      expect(compareDebianVersions(a, b) > 0, `${a} vs ${b}`).toBe(dpkgSaysGt);
    }
  });
});

describe('kernel specs', () => {
  it('parses packages, releases, versions and paths', () => {
    expect(parseKernelSpec('linux-image-7.3.4+deb13-cloud-amd64')).toEqual({ kind: 'package', package: 'linux-image-7.3.4+deb13-cloud-amd64' });
    expect(parseKernelSpec('7.2.12+deb14-cloud-amd64')).toEqual({ kind: 'package', package: 'linux-image-7.2.12+deb14-cloud-amd64' });
    expect(parseKernelSpec('6.12')).toEqual({ kind: 'version', version: '6.12' });
    expect(parseKernelSpec('7.3~rc7')).toEqual({ kind: 'version', version: '7.3~rc7' });
    expect(parseKernelSpec('./boot/vmlinuz')).toMatchObject({ kind: 'path' });
    expect(() => parseKernelSpec('latest')).toThrow(/kernel spec "latest"/);
  });

  it('a version picks the newest matching package of the flavour', () => {
    const names = [
      'linux-image-6.12.107+deb13-cloud-amd64', 'linux-image-6.12.117+deb13-cloud-amd64', 'linux-image-6.12.117+deb13-amd64',
      'linux-image-6.120.1+deb13-cloud-amd64', 'linux-image-7.2.12+deb13-cloud-amd64', 'linux-image-7.2.12+deb14-cloud-amd64',
      'linux-image-7.2.1+deb14-cloud-amd64', 'linux-image-cloud-amd64',
    ];
    expect(matchVersion('6.12', names, 'cloud-amd64')).toEqual(['linux-image-6.12.117+deb13-cloud-amd64', 'linux-image-6.12.107+deb13-cloud-amd64']);
    expect(matchVersion('7.2.12', names, 'cloud-amd64')[0]).toBe('linux-image-7.2.12+deb14-cloud-amd64');
    expect(matchVersion('7.2.1', names, 'cloud-amd64')).toEqual(['linux-image-7.2.1+deb14-cloud-amd64']);
    expect(matchVersion('6.12', names, 'amd64')).toEqual(['linux-image-6.12.117+deb13-amd64']);
  });
});

/** A minimal bzImage: boot flag, "HdrS", protocol 2.15, the version string at 0x200 + 0x100. */
function fakeBzImage(release: string): Buffer {
  const b = Buffer.alloc(0x400);
  b.writeUInt16LE(0xaa55, 0x1fe);
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(0x20f, 0x206);
  b.writeUInt16LE(0x100, 0x20e);
  b.write(`${release} (builder@example) #1 SMP\0`, 0x300, 'latin1');
  return b;
}

describe('kernel files', () => {
  it('reads the release from the boot header and refuses other files', () => {
    expect(bzImageRelease(fakeBzImage('7.3.4+deb13-cloud-amd64'))).toBe('7.3.4+deb13-cloud-amd64');
    expect(bzImageRelease(Buffer.from('\x7fELF'.padEnd(0x400, '\0')))).toBeUndefined();
  });

  it('parses set and unset config options', () => {
    const c = parseKernelConfig('CONFIG_VIRTIO_BLK=m\n# CONFIG_NET_9P is not set\nCONFIG_LSM="landlock,bpf"\n');
    expect([...c]).toEqual([['VIRTIO_BLK', 'm'], ['NET_9P', 'n'], ['LSM', 'landlock,bpf']]);
  });

  it('parses apt records, alternatives and constraints dropped', () => {
    const r = parseRecord('Package: linux-image-7.3.4+deb13-cloud-amd64\nVersion: 7.3.4-1~bpo13+1\nDepends: dracut | initramfs-tools (>= 0.120), linux-base-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)\nFilename: pool/main/l/x.deb\nSize: 1928\nSHA256: ab\nDescription: x\n more\n');
    expect(r).toMatchObject({ version: '7.3.4-1~bpo13+1', size: 1928, sha256: 'ab', depends: ['dracut', 'initramfs-tools', 'linux-base-7.3.4+deb13-cloud-amd64'] });
  });
});

describe('cache, offline', () => {
  function fakeEntry(cache: string, pkg: string, release: string): void {
    const dir = join(cache, 'kernels', pkg);
    mkdirSync(dir, { recursive: true });
    const image = fakeBzImage(release);
    writeFileSync(join(dir, 'vmlinuz'), image);
    writeFileSync(join(dir, 'config'), 'CONFIG_BPF=y\n');
    writeFileSync(join(dir, 'kernel.json'), JSON.stringify({
      format: 1, package: pkg, version: '1', release, vmlinuzSha256: sha256Digest(image), configSha256: sha256Digest('CONFIG_BPF=y\n'), debs: [], fetchedAt: '',
    }));
  }

  it('resolves packages and versions from the cache alone, config digest included', async () => {
    const cache = makeTmpDir();
    fakeEntry(cache, 'linux-image-6.12.9+deb13-cloud-amd64', '6.12.9+deb13-cloud-amd64');
    fakeEntry(cache, 'linux-image-6.12.10+deb13-cloud-amd64', '6.12.10+deb13-cloud-amd64');
    const k = await resolveKernel('6.12', { cacheDir: cache, offline: true });
    expect(k).toMatchObject({ release: '6.12.10+deb13-cloud-amd64', source: 'cache', configSha256: sha256Digest('CONFIG_BPF=y\n') });
    expect((await resolveKernel('linux-image-6.12.9+deb13-cloud-amd64', { cacheDir: cache, offline: true })).release).toBe('6.12.9+deb13-cloud-amd64');
    // An entry whose image no longer matches its digest is not a cache hit.
    writeFileSync(join(cache, 'kernels', 'linux-image-6.12.9+deb13-cloud-amd64', 'vmlinuz'), 'x');
    expect(cachedKernels(cache).map((c) => c.package)).toEqual(['linux-image-6.12.10+deb13-cloud-amd64']);
  });

  it('names what is missing and how to fetch it', async () => {
    const cache = makeTmpDir();
    await expect(resolveKernel('7.3.4', { cacheDir: cache, offline: true })).rejects.toMatchObject({
      code: 'VM_NOT_CACHED', step: 'cache', message: expect.stringMatching(/no cloud-amd64 kernel 7\.3\.4 in the cache .*fetch it with network access: BPFSEAL_VM_CACHE=\S+ node \S+\/vm\/cli\.js fetch 7\.3\.4$/),
    });
    await expect(resolveKernel('linux-image-7.3.4+deb13-cloud-amd64', { cacheDir: cache, offline: true })).rejects.toMatchObject({ code: 'VM_NOT_CACHED' });
  });

  it('takes a vmlinuz path with its config beside it', async () => {
    const dir = makeTmpDir();
    writeFileSync(join(dir, 'vmlinuz-6.1.0-test'), fakeBzImage('6.1.0-test'));
    writeFileSync(join(dir, 'config-6.1.0-test'), 'CONFIG_X=y\n');
    expect(await resolveKernel(join(dir, 'vmlinuz-6.1.0-test'))).toMatchObject({ release: '6.1.0-test', source: 'path', configSha256: sha256Digest('CONFIG_X=y\n') });
    writeFileSync(join(dir, 'notakernel'), 'hello');
    await expect(resolveKernel(join(dir, 'notakernel'))).rejects.toMatchObject({ code: 'VM_NOT_BZIMAGE' });
  });
});

describe('bundle and locks', () => {
  it('bundles the production dependencies node resolves, koffi native module included, no dev tools', () => {
    const rel = productionPackages(ROOT).map((p) => p.slice(p.indexOf('node_modules/')));
    expect(rel).toContain('node_modules/koffi');
    expect(rel).toContain('node_modules/@koromix/koffi-linux-x64');
    expect(rel).toContain('node_modules/commander');
    expect(rel.some((p) => /node_modules\/(vitest|typescript|nock)$/.test(p))).toBe(false);
  });

  it('withLock serializes holders', async () => {
    const lock = join(makeTmpDir(), 'l.lock');
    const order: string[] = [];
    const hold = (n: string) => withLock(lock, 'cache', async () => {
      order.push(`${n}+`);
      await new Promise((r) => setTimeout(r, 50));
      order.push(`${n}-`);
    });
    await Promise.all([hold('a'), hold('b')]);
    expect(order.join(' ')).toMatch(/^(a\+ a- b\+ b-|b\+ b- a\+ a-)$/);
  });
});
