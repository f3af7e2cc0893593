/**
 * Kernel specs → a bootable kernel. A spec is a Debian package name
 * (linux-image-7.3.4+deb13-cloud-amd64), a release (7.3.4+deb13-cloud-amd64), a short version
 * (7.3.4, or 6.12 for the newest 6.12.x) of the cloud flavour, or a path to a vmlinuz. Packages are
 * fetched once into the cache ($BPFSEAL_VM_CACHE, else ~/.cache/bpfseal/vm); offline, only the cache
 * is consulted.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { packageRoot } from '../pkg.js';
import { AptState, type AptOptions } from './apt.js';
import { compareDebianVersions } from './debver.js';
import { VmError } from './errors.js';
import { fetchKernelPackage, type CachedKernelMeta } from './fetch.js';
import { bzImageRelease, parseKernelConfig, sha256Digest } from './image.js';

export type KernelSpec =
  | { kind: 'path'; path: string }
  | { kind: 'package'; package: string }
  | { kind: 'version'; version: string };

export interface Kernel {
  /** What `uname -r` prints inside. */
  release: string;
  vmlinuz: string;
  vmlinuzSha256: string;
  /** The kernel's build config, when the package (or the directory of a path spec) has it. */
  config?: string;
  /** sha256:<hex> of the config file: names the kernel's build options in attestations. */
  configSha256?: string;
  /** Debian package and version, for package and version specs. */
  package?: string;
  version?: string;
  /** The .debs the files came from, with the SHA-256 apt verified. */
  debs?: CachedKernelMeta['debs'];
  source: 'path' | 'cache' | 'download';
}

export interface KernelOptions {
  cacheDir?: string;
  /** Use only the cache (default: BPFSEAL_VM_OFFLINE=1). */
  offline?: boolean;
  /** Flavour for version specs (default cloud-amd64: small, virtio built in). */
  flavour?: string;
  apt?: AptOptions;
  /** Progress lines (downloads). */
  log?: (message: string) => void;
}

export function defaultCacheDir(): string {
  return process.env.BPFSEAL_VM_CACHE || join(homedir(), '.cache', 'bpfseal', 'vm');
}

const VERSION = /^\d+\.\d+(\.\d+)?(~rc\d+)?$/;
const RELEASE = /^\d+\.\d+[0-9.~a-z]*\+deb\d+-[a-z0-9-]+$/;

export function parseKernelSpec(spec: string): KernelSpec {
  const s = spec.trim();
  if (s.includes('/') || (existsSync(s) && statSync(s).isFile())) return { kind: 'path', path: resolve(s) };
  if (/^linux-image-[a-z0-9.+~-]+$/.test(s)) return { kind: 'package', package: s };
  if (RELEASE.test(s)) return { kind: 'package', package: `linux-image-${s}` };
  if (VERSION.test(s)) return { kind: 'version', version: s };
  throw new VmError('spec', 'VM_BAD_SPEC', `kernel spec ${JSON.stringify(spec)}: expected a package (linux-image-7.3.4+deb13-cloud-amd64), a version (7.3.4, 6.12) or a path to a vmlinuz`);
}

/** Package names of `flavour` that a version spec means, newest first (7.2.12+deb14 before +deb13). */
export function matchVersion(version: string, names: string[], flavour: string): string[] {
  const esc = version.replace(/[.~+]/g, (c) => `\\${c}`);
  const sub = version.split('.').length === 2 && !version.includes('~') ? '(?:\\.\\d+)?' : '';
  const re = new RegExp(`^linux-image-(${esc}${sub}\\+deb\\d+)-${flavour.replace(/[.+]/g, (c) => `\\${c}`)}$`);
  const hits = names.flatMap((n) => {
    const v = re.exec(n)?.[1];
    return v !== undefined ? [{ n, v }] : [];
  });
  return hits.sort((a, b) => compareDebianVersions(b.v, a.v)).map((h) => h.n);
}

function kernelsDir(cacheDir: string): string {
  return join(cacheDir, 'kernels');
}

/** Every complete cache entry (a kernel.json whose image is there and unchanged). */
export function cachedKernels(cacheDir = defaultCacheDir()): Kernel[] {
  const dir = kernelsDir(cacheDir);
  if (!existsSync(dir)) return [];
  const out: Kernel[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.') || name.endsWith('.lock')) continue;
    const k = fromCache(join(dir, name));
    if (k) out.push(k);
  }
  return out;
}

function fromCache(entry: string): Kernel | undefined {
  let meta: CachedKernelMeta;
  try {
    meta = JSON.parse(readFileSync(join(entry, 'kernel.json'), 'utf8')) as CachedKernelMeta;
  } catch {
    return undefined;
  }
  const vmlinuz = join(entry, 'vmlinuz');
  if (!existsSync(vmlinuz) || sha256Digest(readFileSync(vmlinuz)) !== meta.vmlinuzSha256) return undefined;
  const config = join(entry, 'config');
  return {
    release: meta.release, vmlinuz, vmlinuzSha256: meta.vmlinuzSha256,
    ...(meta.configSha256 && existsSync(config) ? { config, configSha256: meta.configSha256 } : {}),
    package: meta.package, version: meta.version, debs: meta.debs, source: 'cache',
  };
}

/** The command that fills this cache, for "not cached" errors. */
function fetchHint(spec: string, cacheDir: string): string {
  // From src/ (tests), point at the built file people can run.
  const cli = join(packageRoot(), 'dist/vm/cli.js'); // from the bundle too (dist/bundle/ has no vm/cli.js)
  const env = resolve(cacheDir) === resolve(defaultCacheDir()) ? '' : `BPFSEAL_VM_CACHE=${cacheDir} `;
  return `fetch it with network access: ${env}node ${cli} fetch ${spec}`;
}

/** Resolve a spec to a kernel on disk, downloading into the cache unless offline. */
export async function resolveKernel(spec: string, opts: KernelOptions = {}): Promise<Kernel> {
  const s = parseKernelSpec(spec);
  if (s.kind === 'path') return fromPath(s.path);
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const offline = opts.offline ?? process.env.BPFSEAL_VM_OFFLINE === '1';
  const flavour = opts.flavour ?? 'cloud-amd64';
  const log = opts.log ?? (() => {});
  if (s.kind === 'package') {
    const cached = fromCache(join(kernelsDir(cacheDir), s.package));
    if (cached) return cached;
  }
  if (offline) return offlineLookup(s, cacheDir, flavour);
  const apt = new AptState(join(cacheDir, 'apt'), opts.apt);
  const updated = apt.needsUpdate();
  if (updated) await apt.update();
  const name = s.kind === 'package' ? s.package : await newest(apt, s.version, flavour, !updated);
  if (s.kind === 'version') {
    const cached = fromCache(join(kernelsDir(cacheDir), name));
    if (cached) return cached;
  }
  let pkg = await apt.show(name);
  if (!pkg && !updated) {
    await apt.update(); // lists a day old may predate the package
    pkg = await apt.show(name);
  }
  if (!pkg) {
    const near = (await apt.packageNames(name.split('.').slice(0, 2).join('.'))).slice(-8);
    throw new VmError('apt', 'VM_NO_PACKAGE', `no package ${name} in the configured suites${near.length ? ` (similar: ${near.join(', ')})` : ''}`);
  }
  await fetchKernelPackage(apt, pkg, kernelsDir(cacheDir), log);
  const k = fromCache(join(kernelsDir(cacheDir), pkg.package));
  if (!k) throw new VmError('cache', 'VM_CACHE_CORRUPT', `${pkg.package}: the cache entry in ${kernelsDir(cacheDir)} does not match its kernel.json`);
  return { ...k, source: 'download' };
}

/** Offline: a package spec must be cached as such; a version spec takes the newest cached match. */
function offlineLookup(s: Exclude<KernelSpec, { kind: 'path' }>, cacheDir: string, flavour: string): Kernel {
  const dir = kernelsDir(cacheDir);
  if (s.kind === 'package') {
    throw new VmError('cache', 'VM_NOT_CACHED', `${s.package} is not in the cache ${dir} (offline); ${fetchHint(s.package, cacheDir)}`);
  }
  const names = cachedKernels(cacheDir).flatMap((k) => (k.package ? [k.package] : []));
  const hit = matchVersion(s.version, names, flavour)[0];
  const k = hit ? fromCache(join(dir, hit)) : undefined;
  if (!k) {
    throw new VmError('cache', 'VM_NOT_CACHED', `no ${flavour} kernel ${s.version} in the cache ${dir} (offline; cached: ${names.join(', ') || 'none'}); ${fetchHint(s.version, cacheDir)}`);
  }
  return k;
}

async function newest(apt: AptState, version: string, flavour: string, mayRefresh: boolean): Promise<string> {
  const prefix = `linux-image-${version}`;
  let hits = matchVersion(version, await apt.packageNames(prefix), flavour);
  if (hits.length === 0 && mayRefresh) {
    await apt.update();
    hits = matchVersion(version, await apt.packageNames(prefix), flavour);
  }
  const [best] = hits;
  if (best === undefined) throw new VmError('apt', 'VM_NO_PACKAGE', `no linux-image-${version}*-${flavour} package in the configured suites`);
  return best;
}

/** A vmlinuz given by path; its config is looked for beside it (/boot/config-<rel>, or ./config). */
function fromPath(path: string): Kernel {
  let image: Buffer;
  try {
    image = readFileSync(path);
  } catch (e) {
    throw new VmError('spec', 'VM_NO_VMLINUZ', `${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'EIO'})`, { file: path, cause: e });
  }
  const release = bzImageRelease(image);
  if (!release) throw new VmError('spec', 'VM_NOT_BZIMAGE', `${path} is not an x86 bzImage (no boot-protocol header)`, { file: path });
  const dir = dirname(path);
  const config = [join(dir, `config-${release}`), join(dir, basename(path) === 'vmlinuz' ? 'config' : `config-${release}`)].find(existsSync);
  return {
    release, vmlinuz: path, vmlinuzSha256: sha256Digest(image),
    ...(config ? { config, configSha256: sha256Digest(readFileSync(config)) } : {}),
    source: 'path',
  };
}

/** The kernel's config options (CONFIG_ prefix dropped), or undefined when it has no config. */
export function kernelConfig(k: Kernel): Map<string, string> | undefined {
  return k.config ? parseKernelConfig(readFileSync(k.config, 'utf8')) : undefined;
}
