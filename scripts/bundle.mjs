#!/usr/bin/env node
// Bundle the CLI (dist/cli/bin.js and what it imports, as tsc wrote them) into dist/bundle/: one entry module plus chunks
// for what commands import on use, so a command loads a few files instead of hundreds, and nothing
// it does not use. koffi (a native addon) stays a normal dependency. Run by `npm run build`.
import { build } from 'esbuild';
import { chmodSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdir = join(root, 'dist/bundle');
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { bpfseal: join(root, 'dist/cli/bin.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outExtension: { '.js': '.mjs' },
  external: ['koffi'],
  // CommonJS dependencies (the Sigstore packages) call require() for Node built-ins.
  banner: { js: "import { createRequire as __bpfsealRequire } from 'node:module'; const require = __bpfsealRequire(import.meta.url);" },
  legalComments: 'linked',
  logLevel: 'warning',
});
chmodSync(join(outdir, 'bpfseal.mjs'), 0o755);
