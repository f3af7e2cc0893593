/**
 * Fetch one Debian kernel package into the cache: download it with the private apt state, unpack it
 * with dpkg-deb, and keep only the image and its config. Where the files are depends on the release
 * (measured, docs/vm.md): up to 6.18 both are in linux-image-<rel> (/boot/vmlinuz-<rel>,
 * /boot/config-<rel>); from 6.19 linux-image-<rel> is a meta package whose image is in its dependency
 * linux-binary-<rel> (/boot up to 7.1, /usr/lib/modules/<rel>/vmlinuz from 7.2) and whose config is
 * in linux-base-<rel> (/usr/lib/modules/<rel>/config). So: unpack the package, and follow its linux-*
 * dependencies (never linux-modules-*, which only loadable modules need) until both files are found.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AptPackage, AptState } from './apt.js';
import { at } from '../errors.js';
import { VmError } from './errors.js';
import { bzImageRelease, sha256Digest } from './image.js';
import { withLock } from './lock.js';

const run = promisify(execFile);

/** What the cache keeps per package (kernels/<package>/kernel.json). */
export interface CachedKernelMeta {
  format: 1;
  package: string;
  /** Debian version of the package, e.g. 7.3.4-1~bpo13+1. */
  version: string;
  release: string;
  vmlinuzSha256: string;
  configSha256?: string;
  /** Every .deb the files came from, with the SHA-256 apt verified it against. */
  debs: { package: string; version: string; sha256: string; member: string }[];
  fetchedAt: string;
}

interface Found {
  vmlinuz?: { path: string; member: string; deb: AptPackage };
  config?: { path: string; member: string; deb: AptPackage };
}

/** The image and config a package unpacked into `root` provides, in either layout. */
function look(root: string, deb: AptPackage, found: Found): void {
  const boot = join(root, 'boot');
  if (existsSync(boot)) {
    for (const f of readdirSync(boot).sort()) {
      if (!found.vmlinuz && f.startsWith('vmlinuz-')) found.vmlinuz = { path: join(boot, f), member: `/boot/${f}`, deb };
      if (!found.config && f.startsWith('config-')) found.config = { path: join(boot, f), member: `/boot/${f}`, deb };
    }
  }
  const mods = join(root, 'usr/lib/modules');
  if (existsSync(mods)) {
    for (const rel of readdirSync(mods).sort()) {
      const v = join(mods, rel, 'vmlinuz');
      const c = join(mods, rel, 'config');
      if (!found.vmlinuz && existsSync(v)) found.vmlinuz = { path: v, member: `/usr/lib/modules/${rel}/vmlinuz`, deb };
      if (!found.config && existsSync(c)) found.config = { path: c, member: `/usr/lib/modules/${rel}/config`, deb };
    }
  }
}

async function unpack(deb: string, into: string): Promise<void> {
  try {
    await run('dpkg-deb', ['-x', deb, into], { maxBuffer: 16 << 20 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new VmError('extract', 'VM_DPKG_MISSING', 'dpkg-deb not found: it unpacks the kernel packages');
    throw new VmError('extract', 'VM_EXTRACT_FAILED', `dpkg-deb -x ${deb} failed: ${(err.stderr ?? err.message).trim()}`, { cause: e, file: deb });
  }
}

/** Fetch `pkg` (already looked up) into `<kernelsDir>/<package>/`; returns the cached entry's meta. */
export async function fetchKernelPackage(apt: AptState, pkg: AptPackage, kernelsDir: string, log: (m: string) => void): Promise<CachedKernelMeta> {
  mkdirSync(kernelsDir, { recursive: true });
  const entry = join(kernelsDir, pkg.package);
  return withLock(`${entry}.lock`, 'cache', async () => {
    // Another process may have fetched it while this one waited for the lock.
    const meta = join(entry, 'kernel.json');
    if (existsSync(meta)) return JSON.parse(readFileSync(meta, 'utf8')) as CachedKernelMeta;
    const work = mkdtempSync(join(kernelsDir, '.fetch-'));
    try {
      return await fetchInto(apt, pkg, work, entry, log);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

async function fetchInto(apt: AptState, top: AptPackage, work: string, entry: string, log: (m: string) => void): Promise<CachedKernelMeta> {
  const found: Found = {};
  const used: AptPackage[] = [];
  const tried = new Set<string>();
  let queue: AptPackage[] = [top];
  for (let round = 0; round < 4 && queue.length > 0 && !(found.vmlinuz && found.config); round++) {
    log(`downloading ${queue.map((p) => `${p.package} ${p.version} (${(p.size / 1e6).toFixed(1)} MB)`).join(', ')}`);
    const files = await apt.download(queue, work);
    for (const [i, deb] of queue.entries()) {
      tried.add(deb.package);
      const root = join(work, `root-${used.length}`);
      const file = at(files, i, 'downloaded package'); // download answers one file per package
      await unpack(file, root);
      used.push(deb);
      look(root, deb, found);
      rmSync(file, { force: true });
    }
    const next: AptPackage[] = [];
    for (const name of new Set(queue.flatMap((p) => p.depends))) {
      if (tried.has(name) || !/^linux-(image|binary|base)-/.test(name)) continue;
      tried.add(name);
      const dep = await apt.show(name); // 6.18's linux-base-<rel> is named but not in the archive
      if (dep) next.push(dep);
    }
    queue = next;
  }
  if (!found.vmlinuz) {
    throw new VmError('extract', 'VM_NO_VMLINUZ', `${top.package} ${top.version}: no /boot/vmlinuz-* or /usr/lib/modules/*/vmlinuz in ${used.map((p) => p.package).join(', ')}`);
  }
  const image = readFileSync(found.vmlinuz.path);
  const release = bzImageRelease(image);
  if (!release) throw new VmError('extract', 'VM_NOT_BZIMAGE', `${top.package}: ${found.vmlinuz.member} is not an x86 bzImage`);
  const stage = join(work, 'entry');
  mkdirSync(stage);
  writeFileSync(join(stage, 'vmlinuz'), image);
  const config = found.config ? readFileSync(found.config.path) : undefined;
  if (config) writeFileSync(join(stage, 'config'), config);
  const debs = [found.vmlinuz, ...(found.config ? [found.config] : [])].map((f) => ({
    package: f.deb.package, version: f.deb.version, sha256: f.deb.sha256, member: f.member,
  }));
  const meta: CachedKernelMeta = {
    format: 1, package: top.package, version: top.version, release,
    vmlinuzSha256: sha256Digest(image), ...(config ? { configSha256: sha256Digest(config) } : {}),
    debs, fetchedAt: new Date().toISOString(),
  };
  writeFileSync(join(stage, 'kernel.json'), `${JSON.stringify(meta, null, 2)}\n`);
  rmSync(entry, { recursive: true, force: true }); // a half entry without kernel.json
  renameSync(stage, entry);
  log(`cached ${top.package} (release ${release}) in ${entry}`);
  return meta;
}
