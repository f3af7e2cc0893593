#!/usr/bin/env node
// What `npm test` runs before vitest, side by side (they share nothing; two cores run them in about
// the time of the longest): the build (tsc, then the bundle: the CLI tests run what it builds), the
// type-check of src/ and test/, and the linter. Each one's output is printed when it ends; the exit
// status is the first failure's.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const run = (label, cmd, args) =>
  new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (e) => resolve({ label, code: 1, out: `${out}${e.message}\n` }));
    child.on('close', (code) => resolve({ label, code: code ?? 1, out }));
  });
const steps = [
  run('build', 'sh', ['-c', `"${bin('tsc')}" -p tsconfig.json && "${process.execPath}" scripts/bundle.mjs`]),
  run('type-check', bin('tsc'), ['-p', 'tsconfig.test.json']),
  run('lint', bin('biome'), ['lint', '--error-on-warnings']),
];
let failed = 0;
for (const r of await Promise.all(steps)) {
  if (r.code !== 0) {
    failed ||= r.code;
    process.stderr.write(`check: ${r.label} failed (exit ${r.code}):\n${r.out}`);
  } else if (r.out.trim() && r.label !== 'lint') process.stdout.write(r.out);
}
process.exit(failed);
