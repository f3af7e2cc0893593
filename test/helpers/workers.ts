/**
 * Test workers that tests start by the hundred (the SIGKILL tests of load and of the log) run as one
 * bundled file: node then reads one module instead of the few hundred of dist/ they import, which is
 * most of a worker's start-up (measured here: ~0.3 s -> ~0.1 s). The bundle is made from the built
 * dist/ (requireDist() refuses a stale build), like package.json's own bundle, with koffi left to
 * node_modules; it is written under node_modules/.cache so that koffi resolves from it, one per test
 * process, and removed with the other temporary files.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { build } from 'esbuild';
import { requireDist, ROOT } from './paths.js';

const made: string[] = [];

/** Bundle test/helpers/<name> (an .mjs importing ../../dist/...) and return the bundle's path. */
export async function bundledWorker(name: string): Promise<string> {
  requireDist();
  const dir = join(ROOT, 'node_modules', '.cache', 'bpfseal-test');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `${basename(name, '.mjs')}-${process.pid}-${made.length}.mjs`);
  await build({
    entryPoints: [join(ROOT, 'test', 'helpers', name)],
    outfile: out,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: ['koffi'],
    banner: { js: "import { createRequire as __workerRequire } from 'node:module'; const require = __workerRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  made.push(out);
  return out;
}

export function removeBundledWorkers(): void {
  for (const f of made.splice(0)) rmSync(f, { force: true });
}
