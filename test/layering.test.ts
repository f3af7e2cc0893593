/**
 * The layering of src/, checked over its import graph (test/helpers/imports.ts):
 * - no cycles between folders (src/<folder>), so each folder can be read and tested from below;
 * - nothing outside src/cli/ imports src/cli/ (the CLI is the top: it holds no rules others need);
 * - the spec side (elf/, bpf/, plan/, loader/: plain data from object files and the loader generator)
 *   never reaches, even indirectly, the live side that makes syscalls (kernel/, runtime/, sys/) or koffi.
 * The checks are also run on small made-up graphs, so a rule that could not fail would show here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { folderCycles, folderOf, importGraph, importsOf, reachable, tsFiles, type ImportEdge } from './helpers/imports.js';
import { SRC } from './helpers/paths.js';

const SPEC_SIDE = ['elf', 'bpf', 'plan', 'loader'];
const LIVE_SIDE = ['kernel', 'runtime', 'sys'];
const NATIVE = ['koffi'];

const edge = (from: string, to: string): ImportEdge => ({ from, to, line: 1, resolved: true });

function upwardIntoCli(edges: readonly ImportEdge[]): string[] {
  return edges.filter((e) => folderOf(e.to) === 'cli' && folderOf(e.from) !== 'cli').map((e) => `${e.from}:${e.line} -> ${e.to}`);
}

function specReachesLive(edges: readonly ImportEdge[], files: readonly string[]): string[] {
  const bad: string[] = [];
  for (const f of files.filter((f) => SPEC_SIDE.includes(folderOf(f)))) {
    for (const [to, path] of reachable(edges, f)) if (LIVE_SIDE.includes(folderOf(to))) bad.push(path.join(' -> '));
  }
  return bad;
}

describe('the checks themselves', () => {
  it('parse every import form the sources use, with line numbers, and skip comments', () => {
    const text = [
      "import { a } from './a.js';",
      'import type { B } from "../b/b.js";',
      "export { c } from './c.js';",
      "export * from './d.js';",
      "import './side.js';",
      'import {',
      '  e,',
      "} from './e.js';",
      "const f = await import('../f/f.js');",
      "// import { g } from './g.js';",
      "/* import('./h.js') */",
      "import { readFileSync } from 'node:fs';",
    ].join('\n');
    expect(importsOf(text)).toEqual([
      { spec: './a.js', line: 1 },
      { spec: '../b/b.js', line: 2 },
      { spec: './c.js', line: 3 },
      { spec: './d.js', line: 4 },
      { spec: './side.js', line: 5 },
      { spec: './e.js', line: 6 },
      { spec: '../f/f.js', line: 9 },
      { spec: 'node:fs', line: 12 },
    ]);
  });

  it('find a folder cycle, an import of cli/ from below, and a spec file reaching the live side', () => {
    const g = [edge('trust/x509.ts', 'attest/asn1.ts'), edge('attest/sign.ts', 'trust/keys.ts'), edge('attest/sign.ts', 'errors.ts'), edge('demo/run.ts', 'cli/version.ts'), edge('plan/build.ts', 'bpf/spec.ts'), edge('bpf/spec.ts', 'kernel/probe.ts')];
    expect(folderCycles(g)).toEqual([{ folders: ['attest', 'trust'], imports: ['trust/x509.ts:1 -> attest/asn1.ts', 'attest/sign.ts:1 -> trust/keys.ts'] }]);
    expect(upwardIntoCli(g)).toEqual(['demo/run.ts:1 -> cli/version.ts']);
    expect(specReachesLive(g, ['plan/build.ts', 'bpf/spec.ts'])).toEqual(['plan/build.ts -> bpf/spec.ts -> kernel/probe.ts', 'bpf/spec.ts -> kernel/probe.ts']);
    expect(folderCycles(g.filter((e) => e.from !== 'trust/x509.ts'))).toEqual([]);
  });
});

describe('src/ layering', () => {
  const files = tsFiles(SRC);
  const edges = importGraph(SRC);

  it('reads the whole tree, and every relative import resolves to a source file', () => {
    expect(files.length).toBeGreaterThan(150);
    expect(edges.length).toBeGreaterThan(500);
    expect(edges.filter((e) => !e.resolved).map((e) => `${e.from}:${e.line}: ${e.to}`)).toEqual([]);
  });

  it('has no cycles between folders', () => {
    expect(folderCycles(edges)).toEqual([]);
  });

  it('has nothing outside cli/ importing cli/', () => {
    expect(upwardIntoCli(edges)).toEqual([]);
  });

  it('keeps the spec side (elf, bpf, plan, loader) free of the live side (kernel, runtime, sys), even indirectly', () => {
    expect(specReachesLive(edges, files)).toEqual([]);
    for (const f of files.filter((f) => SPEC_SIDE.includes(folderOf(f)))) {
      const native = [...reachable(edges, f).keys()].flatMap((r) => importsOf(readFileSync(join(SRC, r), 'utf8')).filter((i) => NATIVE.includes(i.spec)).map(() => r));
      expect(native, `${f} reaches a native binding`).toEqual([]);
    }
  });
});
