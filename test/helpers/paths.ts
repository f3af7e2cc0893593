/** Shared paths and temporary directories for the test suite. */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
export const SRC = join(ROOT, 'src');
export const DIST = join(ROOT, 'dist');
/** The CLI as installed: the bundle `npm run build` writes (package.json "bin"). */
export const CLI = join(DIST, 'bundle', 'bpfseal.mjs');

export function fixturePath(name: string): string {
  return join(FIXTURES, name.endsWith('.o') ? name : `${name}.o`);
}

export function readFixture(name: string): Buffer {
  return readFileSync(fixturePath(name));
}

/** Every fixture object (file names, sorted). */
export function allFixtures(): string[] {
  return readdirSync(FIXTURES).filter((f) => f.endsWith('.o')).sort();
}

/** Fixtures whose ELF header says little-endian (EI_DATA == ELFDATA2LSB). */
export function leFixtures(): string[] {
  return allFixtures().filter((f) => readFileSync(join(FIXTURES, f))[5] === 1);
}

export function sha256hex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

const made: string[] = [];

/** A fresh temporary directory (never under test/fixtures); remove them all with cleanupTmpDirs(). */
export function makeTmpDir(prefix = 'bpfseal-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

export function cleanupTmpDirs(): void {
  while (made.length) rmSync(made.pop()!, { recursive: true, force: true });
}

function newestMtime(dir: string, ext: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newestMtime(p, ext));
    else if (e.name.endsWith(ext)) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}

let checked = false;
/**
 * The CLI tests run dist/ (built by `npx tsc -p .`). Fail clearly when it is missing, and warn when a
 * source file is newer than the build (the results would then describe an older src/).
 */
export function requireDist(): void {
  if (checked) return;
  checked = true;
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` in ${ROOT} before the tests (npm test does)`);
  if (newestMtime(SRC, '.ts') > Math.min(newestMtime(DIST, '.js'), statSync(CLI).mtimeMs)) {
    throw new Error('src/ is newer than the build: CLI tests would run old code (run `npm run build`; npm test does)');
  }
}
