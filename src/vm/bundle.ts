/**
 * What the guest needs from the host: busybox, node and the shared libraries it links, and the built
 * project with its production dependencies. Collected as cpio entries with host sources; nothing is
 * copied until the archive is written.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import type { CpioEntry } from './cpio.js';
import { VmError } from './errors.js';
import { GUEST_PROJECT } from './init.js';

/**
 * Absolute paths of the shared objects `ldd` lists for `binary` (the loader included); empty for a
 * static binary. The guest gets each at the same path, so the binary's interpreter and its
 * DT_NEEDED lookups resolve there as they do here.
 */
export function sharedLibraries(binary: string): string[] {
  let out: string;
  try {
    out = execFileSync('ldd', [binary], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const text = `${(e as { stdout?: string }).stdout ?? ''}${(e as { stderr?: string }).stderr ?? ''}`;
    if (/not a dynamic executable|statically linked/.test(text)) return [];
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new VmError('initramfs', 'VM_LDD_MISSING', 'ldd not found: it lists the libraries node needs in the guest');
    throw new VmError('initramfs', 'VM_LDD_FAILED', `ldd ${binary}: ${text.trim() || (e as Error).message}`, { cause: e });
  }
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    if (/not found/.test(line)) throw new VmError('initramfs', 'VM_LDD_FAILED', `ldd ${binary}: ${line.trim()}`);
    const lib = (/=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line))?.[1];
    if (lib !== undefined) libs.push(lib);
  }
  return libs;
}

/** A host binary and its libraries, at `guestPath` and the libraries' own paths. */
export function binaryEntries(hostPath: string, guestPath: string): CpioEntry[] {
  return [
    { kind: 'file', path: guestPath, source: realpathSync(hostPath), mode: 0o755 },
    ...sharedLibraries(hostPath).map((l): CpioEntry => ({ kind: 'file', path: l, source: realpathSync(l), mode: 0o755 })),
  ];
}

interface PackageJson {
  name?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

/** Node's lookup of a bare package name from `fromDir`: the nearest node_modules/<name> above it. */
function findPackage(name: string, fromDir: string): string | undefined {
  for (let d = fromDir; ; d = dirname(d)) {
    const candidate = join(d, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    if (dirname(d) === d) return undefined;
  }
}

/**
 * Directories of every package the project needs at run time: dependencies, and the optional and
 * peer dependencies that are installed (koffi's prebuilt native module is an optional dependency,
 * @koromix/koffi-linux-x64). Resolved the way node resolves them, so the set is exactly what can be
 * loaded, whatever installed it (npm ci, npm i -g, a hoisted layout).
 */
export function productionPackages(root: string): string[] {
  const seen = new Set<string>();
  const walk = (dir: string): void => {
    if (seen.has(dir)) return;
    seen.add(dir);
    const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
    const deps: [string, boolean][] = [
      ...Object.keys(pj.dependencies ?? {}).map((n): [string, boolean] => [n, true]),
      ...Object.keys({ ...pj.optionalDependencies, ...pj.peerDependencies }).map((n): [string, boolean] => [n, false]),
    ];
    for (const [dep, req] of deps) {
      const at = findPackage(dep, dir);
      if (at) walk(at);
      else if (req) throw new VmError('initramfs', 'VM_DEPENDENCY_MISSING', `${dep} (needed by ${pj.name ?? dir}) is not installed: run npm ci`);
    }
  };
  walk(realpathSync(root));
  seen.delete(realpathSync(root));
  return [...seen].sort();
}

/**
 * Every file under `dir` as entries under `guestDir`, skipping nested node_modules (those packages
 * are walked on their own when needed) and anything `skip` names.
 */
export function treeEntries(dir: string, guestDir: string, skip: (rel: string) => boolean = () => false): CpioEntry[] {
  const out: CpioEntry[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const rel = relative(dir, p);
      if (name === 'node_modules' || skip(rel)) continue;
      const st = lstatSync(p);
      const guest = `${guestDir}/${rel.split(sep).join('/')}`;
      if (st.isSymbolicLink()) out.push({ kind: 'symlink', path: guest, target: readlinkSync(p) });
      else if (st.isDirectory()) {
        out.push({ kind: 'dir', path: guest });
        walk(p);
      } else if (st.isFile()) out.push({ kind: 'file', path: guest, source: p, mode: st.mode & 0o111 ? 0o755 : 0o644 });
    }
  };
  walk(dir);
  return out;
}

/** The project as the guest sees it at /opt/bpfseal: package.json, dist/, keys/, examples/, node_modules. */
export function projectEntries(root: string): CpioEntry[] {
  if (!existsSync(join(root, 'dist', 'bundle', 'bpfseal.mjs'))) {
    throw new VmError('initramfs', 'VM_NOT_BUILT', `${root}/dist/bundle/bpfseal.mjs is missing: build the project first (npm run build)`);
  }
  const out: CpioEntry[] = [{ kind: 'file', path: `${GUEST_PROJECT}/package.json`, source: join(root, 'package.json') }];
  for (const d of ['dist', 'keys', 'examples']) {
    if (existsSync(join(root, d))) out.push({ kind: 'dir', path: `${GUEST_PROJECT}/${d}` }, ...treeEntries(join(root, d), `${GUEST_PROJECT}/${d}`));
  }
  const realRoot = realpathSync(root);
  for (const pkg of productionPackages(root)) {
    const rel = relative(realRoot, pkg);
    if (rel.startsWith('..')) {
      throw new VmError('initramfs', 'VM_DEPENDENCY_OUTSIDE', `${pkg} is outside the project ${root}: the guest layout mirrors the project's node_modules`);
    }
    const guest = `${GUEST_PROJECT}/${rel.split(sep).join('/')}`;
    out.push({ kind: 'dir', path: guest }, ...treeEntries(pkg, guest));
  }
  return out;
}

/** Native addons (*.node) in the bundled packages: their libraries must be in the guest too. */
export function nativeAddons(entries: CpioEntry[]): string[] {
  return entries.flatMap((e) => (e.kind === 'file' && 'source' in e && e.source.endsWith('.node') ? [e.source] : []));
}
