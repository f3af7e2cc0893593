/**
 * The guest's initramfs, in two parts the kernel unpacks one after the other (it accepts
 * concatenated, separately compressed cpio archives: Documentation/driver-api/early-userspace/
 * buffer-format.rst). The base (busybox, node and its libraries, the built project, /init) is large
 * and the same for every run: built once per content digest and cached. The per-run part (command,
 * environment, timeout, input files) is small and built for each run.
 */
import { packageRoot } from '../pkg.js';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { binaryEntries, nativeAddons, projectEntries, sharedLibraries } from './bundle.js';
import { cpioBuffer, writeCpio, type CpioEntry } from './cpio.js';
import { VmError } from './errors.js';
import { commandScript, envScript, INIT_SCRIPT, RUN_DIR } from './init.js';
import { defaultCacheDir } from './kernels.js';
import { withLock } from './lock.js';

/** Bumped when the archive's layout changes, so old cached bases are not reused. */
const LAYOUT = 'bpfseal-vm-base 1';

export interface BaseOptions {
  cacheDir?: string;
  /** The project to put at /opt/bpfseal (default: the one this module belongs to). */
  projectRoot?: string;
  busybox?: string;
  node?: string;
  /** More host binaries for the guest, each at its own path with its libraries (e.g. /usr/bin/keyctl). */
  extraBinaries?: string[];
  /**
   * gzip level 1..9, or 0 (the default) for an uncompressed archive. Measured on 7.3.4 under TCG:
   * uncompressed (121 MB) reaches /init in 4.1 s, gzip -1 (48 MB) in 6.5 s and gzip -6 (44 MB) in
   * 6.2 s, because the guest inflates it without JIT help; a cache entry on disk is cheaper than that.
   */
  gzipLevel?: number;
  log?: (message: string) => void;
}

export interface BaseInitramfs {
  path: string;
  /** sha256 over the archive's layout and every file's content. */
  digest: string;
  bytes: number;
  /** Whether this call built it (false: found in the cache). */
  built: boolean;
  ms: number;
}

export function defaultProjectRoot(): string {
  return packageRoot();
}

function busyboxApplets(busybox: string): string[] {
  try {
    return execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => /^[A-Za-z0-9_.[-]+$/.test(a));
  } catch (e) {
    throw new VmError('initramfs', 'VM_NO_BUSYBOX', `${busybox} cannot list its applets (install busybox-static): ${(e as Error).message}`, { cause: e });
  }
}

/** The base archive's entries, in a deterministic order. */
export function baseEntries(opts: BaseOptions = {}): CpioEntry[] {
  const busybox = opts.busybox ?? '/bin/busybox';
  if (!existsSync(busybox)) throw new VmError('initramfs', 'VM_NO_BUSYBOX', `${busybox} not found: install busybox-static`);
  if (sharedLibraries(busybox).length > 0) throw new VmError('initramfs', 'VM_NO_BUSYBOX', `${busybox} is dynamically linked: install busybox-static`);
  const project = projectEntries(opts.projectRoot ?? defaultProjectRoot());
  const entries: CpioEntry[] = [
    { kind: 'chardev', path: '/dev/console', major: 5, minor: 1 },
    ...['/proc', '/sys', '/tmp', '/root', '/out', '/etc', '/sbin', '/usr/sbin'].map((p): CpioEntry => ({ kind: 'dir', path: p })),
    { kind: 'file', path: '/etc/passwd', data: Buffer.from('root:x:0:0:root:/root:/bin/sh\n') },
    { kind: 'file', path: '/etc/group', data: Buffer.from('root:x:0:\n') },
    { kind: 'file', path: '/init', data: Buffer.from(INIT_SCRIPT), mode: 0o755 },
    { kind: 'file', path: '/bin/busybox', source: busybox, mode: 0o755 },
    ...binaryEntries(opts.node ?? process.execPath, '/usr/bin/node'),
    { kind: 'file', path: '/usr/local/bin/bpfseal', data: Buffer.from('#!/bin/sh\nexec node /opt/bpfseal/dist/bundle/bpfseal.mjs "$@"\n'), mode: 0o755 },
    ...(opts.extraBinaries ?? []).flatMap((b) => binaryEntries(b, b)),
    ...nativeAddons(project).flatMap((a) => {
      try {
        return sharedLibraries(a).map((l): CpioEntry => ({ kind: 'file', path: l, source: l, mode: 0o755 }));
      } catch {
        return []; // an addon for another libc (koffi ships musl_x64 beside linux_x64): never loaded here
      }
    }),
    ...project,
  ];
  const byPath = new Map<string, CpioEntry>();
  for (const e of entries) if (!byPath.has(e.path)) byPath.set(e.path, e);
  for (const a of busyboxApplets(busybox)) {
    const p = `/bin/${a}`;
    if (a !== 'busybox' && !byPath.has(p) && !byPath.has(`/usr/bin/${a}`)) byPath.set(p, { kind: 'symlink', path: p, target: 'busybox' });
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Host file digests by path, size and mtime: each run would otherwise re-read ~130 MB (0.3 s). */
const fileDigests = new Map<string, string>();

function fileDigest(path: string): string {
  const st = statSync(path);
  const key = `${path}\0${st.size}\0${st.mtimeMs}`;
  let d = fileDigests.get(key);
  if (!d) {
    d = createHash('sha256').update(readFileSync(path)).digest('hex');
    fileDigests.set(key, d);
  }
  return d;
}

/** Digest of the layout and every byte that goes into the archive. */
export function entriesDigest(entries: CpioEntry[], extra = ''): string {
  const h = createHash('sha256').update(`${LAYOUT}\n${extra}\n`);
  for (const e of entries) {
    let what: string;
    if (e.kind === 'file') {
      what = 'data' in e ? createHash('sha256').update(e.data).digest('hex') : fileDigest(e.source);
    } else if (e.kind === 'symlink') what = e.target;
    else if (e.kind === 'chardev') what = `${e.major}:${e.minor}`;
    else what = '';
    h.update(`${e.kind} ${e.path} ${'mode' in e ? (e.mode ?? '') : ''} ${what}\n`);
  }
  return h.digest('hex');
}

/** The cached base archive for these options, built (under a lock) when missing. */
export async function baseInitramfs(opts: BaseOptions = {}): Promise<BaseInitramfs> {
  const t0 = Date.now();
  const level = opts.gzipLevel ?? 0;
  const entries = baseEntries(opts);
  const digest = entriesDigest(entries, `gzip ${level}`);
  const dir = join(opts.cacheDir ?? defaultCacheDir(), 'initramfs');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `base-${digest.slice(0, 16)}.cpio${level ? '.gz' : ''}`);
  let built = false;
  await withLock(`${path}.lock`, 'initramfs', async () => {
    if (existsSync(path)) return;
    opts.log?.(`building the base initramfs (${entries.length} entries) into ${path}`);
    const tmp = `${path}.${process.pid}.tmp`;
    try {
      await writeCpio(entries, tmp, level);
      renameSync(tmp, path);
      built = true;
    } finally {
      rmSync(tmp, { force: true });
    }
  });
  const now = new Date();
  utimesSync(path, now, now); // "recently used", for pruning
  prune(dir, path);
  return { path, digest: `sha256:${digest}`, bytes: statSync(path).size, built, ms: Date.now() - t0 };
}

/** Keep the three most recently used bases: each is 50-120 MB, one per project build. */
function prune(dir: string, keep: string): void {
  const bases = readdirSync(dir)
    .filter((f) => /^base-[0-9a-f]{16}\.cpio(\.gz)?$/.test(f))
    .map((f) => ({ p: join(dir, f), t: statSync(join(dir, f)).mtimeMs }))
    .sort((a, b) => b.t - a.t);
  for (const b of bases.slice(3)) if (b.p !== keep) rmSync(b.p, { force: true });
}

export interface RunArchiveSpec {
  command: string | string[];
  env?: Record<string, string>;
  /** Guest path → content; a string is UTF-8 text. Content starting with "#!" is made executable. */
  files?: Record<string, Buffer | string>;
  /** Seconds the guest's watchdog gives the command. */
  timeoutSec: number;
  /** Run the command in a session keyring of its own (costs one node start, ~1 s under TCG). */
  sessionKeyring?: boolean;
}

/** The per-run archive, gzip-compressed, to append to the base. */
export async function runArchive(spec: RunArchiveSpec): Promise<Buffer> {
  const entries: CpioEntry[] = [
    { kind: 'file', path: `${RUN_DIR}/command`, data: Buffer.from(commandScript(spec.command)) },
    { kind: 'file', path: `${RUN_DIR}/env`, data: Buffer.from(envScript(spec.env ?? {})) },
    { kind: 'file', path: `${RUN_DIR}/timeout`, data: Buffer.from(`${Math.max(1, Math.ceil(spec.timeoutSec))}\n`) },
    ...(spec.sessionKeyring ? [{ kind: 'file', path: `${RUN_DIR}/session-keyring`, data: Buffer.alloc(0) } as const] : []),
  ];
  for (const [path, content] of Object.entries(spec.files ?? {})) {
    if (!path.startsWith('/')) throw new VmError('initramfs', 'VM_CPIO_BAD_PATH', `guest file paths are absolute: ${JSON.stringify(path)}`);
    const data = typeof content === 'string' ? Buffer.from(content) : content;
    entries.push({ kind: 'file', path, data, mode: data.subarray(0, 2).toString('latin1') === '#!' ? 0o755 : 0o644 });
  }
  return gzipSync(await cpioBuffer(entries), { level: 1 });
}
