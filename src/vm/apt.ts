/**
 * A private apt state: its own sources.list, lists and download cache under the harness's cache
 * directory, so kernel packages are fetched (and verified by apt against the archive's signed Release
 * files) without installing anything on the host or touching the host's apt state.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { compareDebianVersions } from './debver.js';
import { at } from '../errors.js';
import { VmError } from './errors.js';
import { withLock } from './lock.js';

const run = promisify(execFile);

export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';
/** Where the kernels the project tests against live (shared/facts/kernel-vm.md). */
export const DEFAULT_SUITES = ['trixie', 'trixie-backports', 'forky'];
export const ARCHIVE_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

export interface AptOptions {
  mirror?: string;
  suites?: string[];
  /** Lists older than this are refreshed before a lookup (default 24 h). */
  maxListAgeMs?: number;
}

export interface AptPackage {
  package: string;
  version: string;
  /** Package names of Depends (alternatives flattened, version constraints dropped). */
  depends: string[];
  sha256: string;
  filename: string;
  size: number;
}

export class AptState {
  readonly dir: string;
  private readonly sources: string;
  private readonly maxListAgeMs: number;

  constructor(dir: string, opts: AptOptions = {}) {
    this.dir = dir;
    const mirror = opts.mirror ?? process.env.BPFSEAL_VM_MIRROR ?? DEFAULT_MIRROR;
    const suites = opts.suites ?? DEFAULT_SUITES;
    this.sources = suites.map((s) => `deb [signed-by=${ARCHIVE_KEYRING}] ${mirror} ${s} main\n`).join('');
    this.maxListAgeMs = opts.maxListAgeMs ?? 24 * 3600_000;
  }

  private get args(): string[] {
    const d = this.dir;
    return [
      '-o', `Dir::Etc=${d}/etc/apt`, '-o', `Dir::State=${d}/state`, '-o', `Dir::Cache=${d}/cache`,
      '-o', `Dir::State::status=${d}/state/status`, '-o', 'APT::Architecture=amd64',
      // Container images often switch the binary cache off (""); without it every apt-cache call
      // re-parses 20 MB of lists (1.2 s instead of 30 ms, measured).
      '-o', `Dir::Cache::pkgcache=${d}/cache/pkgcache.bin`, '-o', `Dir::Cache::srcpkgcache=${d}/cache/srcpkgcache.bin`,
      // Our own state directory: the host's dpkg lock is none of our business; our lock is withLock.
      '-o', 'Debug::NoLocking=1', '-o', 'APT::Sandbox::User=root', '-o', 'Acquire::Retries=2',
    ];
  }

  private get stamp(): string {
    return join(this.dir, 'updated');
  }

  /** Create the state directory; a changed sources.list (other mirror or suites) forces an update. */
  private prepare(): boolean {
    if (!existsSync(ARCHIVE_KEYRING)) {
      throw new VmError('apt', 'VM_APT_KEYRING', `${ARCHIVE_KEYRING} is missing: install debian-archive-keyring to fetch kernels`);
    }
    for (const sub of ['etc/apt/preferences.d', 'etc/apt/apt.conf.d', 'state/lists/partial', 'cache/archives/partial']) {
      mkdirSync(join(this.dir, sub), { recursive: true });
    }
    if (!existsSync(join(this.dir, 'state/status'))) writeFileSync(join(this.dir, 'state/status'), '');
    const list = join(this.dir, 'etc/apt/sources.list');
    const old = existsSync(list) ? readFileSync(list, 'utf8') : '';
    if (old === this.sources) return false;
    writeFileSync(list, this.sources);
    return true;
  }

  private async apt(tool: 'apt-get' | 'apt-cache', argv: string[], cwd?: string): Promise<{ stdout: string; stderr: string }> {
    try {
      return await run(tool, [...this.args, ...argv], { cwd, maxBuffer: 64 << 20, env: { ...process.env, LC_ALL: 'C' } });
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: string; code?: string | number };
      if (err.code === 'ENOENT') throw new VmError('apt', 'VM_APT_MISSING', `${tool} not found: the harness fetches kernels with apt (Debian or Ubuntu host)`);
      const tail = (err.stderr ?? '').trim().split('\n').slice(-6).join('\n');
      throw new VmError('apt', 'VM_APT_FAILED', `${tool} ${argv.join(' ')} failed: ${tail || err.message}`, { cause: e });
    }
  }

  /** apt-get update; apt exits 0 when the mirror is unreachable, so its warnings are errors here. */
  async update(): Promise<void> {
    await withLock(join(this.dir, '.lock'), 'apt', async () => {
      this.prepare();
      const { stderr } = await this.apt('apt-get', ['update']);
      const failed = stderr.split('\n').filter((l) => /^(W|E): (Failed to fetch|Some index files failed)/.test(l));
      if (failed.length > 0) {
        throw new VmError('apt', 'VM_APT_UNREACHABLE', `cannot update the package lists from the Debian archive:\n${failed.join('\n')}\n(offline? use the cache only: BPFSEAL_VM_OFFLINE=1)`);
      }
      writeFileSync(this.stamp, new Date().toISOString());
    });
  }

  /** True when the lists are missing, stale, or were made for other sources. */
  needsUpdate(): boolean {
    if (this.prepare()) return true;
    try {
      return Date.now() - statSync(this.stamp).mtimeMs > this.maxListAgeMs;
    } catch {
      return true;
    }
  }

  async ensureLists(): Promise<void> {
    if (this.needsUpdate()) await this.update();
  }

  /** Names of known packages starting with `prefix` (real packages, not virtual ones). */
  async packageNames(prefix: string): Promise<string[]> {
    const { stdout } = await this.apt('apt-cache', ['pkgnames', prefix]).catch((e: unknown) => {
      // "E: No packages found" is exit 100: no names, not a failure.
      if (e instanceof VmError && /No packages found/.test(e.message)) return { stdout: '' };
      throw e;
    });
    return stdout.split('\n').filter((l) => l !== '').sort();
  }

  /** The newest version of `name` the lists know, or undefined when there is none. */
  async show(name: string): Promise<AptPackage | undefined> {
    let stdout: string;
    try {
      ({ stdout } = await this.apt('apt-cache', ['show', name]));
    } catch (e) {
      if (e instanceof VmError && /No packages found|Unable to locate|has no candidate|no installation candidate/.test(e.message)) return undefined;
      throw e;
    }
    const records = stdout.split(/\n\n+/).map(parseRecord).filter((r): r is AptPackage => r !== undefined && r.package === name);
    records.sort((a, b) => compareDebianVersions(b.version, a.version));
    return records[0];
  }

  /** Download exact package versions into `dir` (apt checks each against the signed index). */
  async download(pkgs: AptPackage[], dir: string): Promise<string[]> {
    await this.apt('apt-get', ['download', ...pkgs.map((p) => `${p.package}=${p.version}`)], dir);
    return pkgs.map((p) => {
      const f = join(dir, p.filename.split('/').pop() ?? '');
      if (!existsSync(f)) throw new VmError('apt', 'VM_APT_FAILED', `apt-get download ${p.package}=${p.version} left no ${f}`);
      return f;
    });
  }
}

/** One deb822 stanza of `apt-cache show`. */
export function parseRecord(text: string): AptPackage | undefined {
  const fields = new Map<string, string>();
  let last = '';
  for (const line of text.split('\n')) {
    if (/^\s/.test(line) && last) fields.set(last, `${fields.get(last)}\n${line.trim()}`);
    else {
      const [, key, value] = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line) ?? [];
      if (key !== undefined && value !== undefined) fields.set((last = key), value);
    }
  }
  const pkg = fields.get('Package');
  const version = fields.get('Version');
  const filename = fields.get('Filename');
  if (!pkg || !version || !filename) return undefined;
  const depends = (fields.get('Depends') ?? '')
    .split(/[,|]/)
    .map((d) => at(d.trim().split(/[\s(:]/), 0, 'dependency')) // split yields at least one part
    .filter((d) => d !== '');
  return { package: pkg, version, depends, sha256: fields.get('SHA256') ?? '', filename, size: Number(fields.get('Size') ?? 0) };
}
