/**
 * Where the installed package is and which version it is. Found by walking up from this module to
 * the package.json named "bpfseal", so it holds wherever the code runs from: dist/ as tsc writes it,
 * the bundle (dist/bundle/), or a copy inside the VM's initramfs.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;
let version: string | undefined;

export function packageRoot(): string {
  if (root) return root;
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'bpfseal') {
        version = pkg.version;
        return (root = d);
      }
    } catch {
      /* not here */
    }
    const up = dirname(d);
    if (up === d) throw new Error('bpfseal: cannot find its package.json above ' + fileURLToPath(import.meta.url));
    d = up;
  }
}

/** The tool's version, from package.json (recorded in attestations). */
export function toolVersion(): string {
  if (version === undefined) packageRoot();
  return version ?? '0.0.0';
}
