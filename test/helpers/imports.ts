/**
 * The import graph of src/, read from the source text: static `import … from`, `export … from`,
 * side-effect `import '…'` and dynamic `import('…')` with relative specifiers (type-only imports
 * included: a type import still ties two modules' meanings together). No parser dependency: the
 * project's sources use one import style, and every relative specifier must resolve to a file, so a
 * form this misses would not go unnoticed for long.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

export interface ImportEdge {
  /** Importing file, relative to the source root, '/'-separated. */
  from: string;
  /** Imported file, relative to the source root ('.ts'), or the unresolved specifier. */
  to: string;
  line: number;
  resolved: boolean;
}

const IMPORT = /(?<=^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]*?\sfrom\s*)?['"]([^'"\n]+)['"]|\bimport\(\s*['"]([^'"\n]+)['"]\s*\)/g;

/** Comments blanked (kept as spaces and newlines, so line numbers stay right). */
function stripComments(src: string): string {
  return src.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, (c) => c.replace(/[^\n]/g, ' '));
}

export function tsFiles(root: string): string[] {
  return readdirSync(root, { recursive: true }).map(String).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).map((f) => f.split(sep).join('/')).sort();
}

/** Every import specifier of one file's text (relative paths and packages). */
export function importsOf(text: string): { spec: string; line: number }[] {
  const code = stripComments(text);
  const out: { spec: string; line: number }[] = [];
  for (const m of code.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    out.push({ spec, line: code.slice(0, m.index).split('\n').length });
  }
  return out;
}

export function importGraph(root: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const from of tsFiles(root)) {
    for (const { spec, line } of importsOf(readFileSync(join(root, from), 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = join(dirname(join(root, from)), spec.replace(/\.js$/, '.ts'));
      const resolved = existsSync(target);
      edges.push({ from, to: resolved ? relative(root, target).split(sep).join('/') : spec, line, resolved });
    }
  }
  return edges;
}

/** The top-level folder of a source file ('.' for files directly in the root). */
export function folderOf(file: string): string {
  const i = file.indexOf('/');
  return i < 0 ? '.' : file.slice(0, i);
}

/**
 * Folder-level cycles: strongly connected components (Tarjan) of the graph whose nodes are folders,
 * with an edge a→b when a file in a imports a file in b. Each cycle is returned with the file-level
 * imports that make it, so a failure says what to move.
 */
export function folderCycles(edges: readonly ImportEdge[]): { folders: string[]; imports: string[] }[] {
  const adj = new Map<string, Set<string>>();
  const node = (f: string) => adj.get(f) ?? adj.set(f, new Set()).get(f)!;
  for (const e of edges) {
    if (!e.resolved) continue;
    const a = folderOf(e.from);
    const b = folderOf(e.to);
    node(b);
    if (a !== b) node(a).add(b);
  }
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const sccs: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of adj.get(v)!) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) sccs.push(c.sort());
    }
  };
  for (const v of [...adj.keys()].sort()) if (!index.has(v)) visit(v);
  return sccs.map((folders) => ({
    folders,
    imports: edges.filter((e) => e.resolved && folders.includes(folderOf(e.from)) && folders.includes(folderOf(e.to)) && folderOf(e.from) !== folderOf(e.to)).map((e) => `${e.from}:${e.line} -> ${e.to}`),
  }));
}

/** Every file reachable from `start` through relative imports (start included). */
export function reachable(edges: readonly ImportEdge[], start: string): Map<string, string[]> {
  const out = new Map<string, string[]>([[start, [start]]]);
  const queue = [start];
  while (queue.length) {
    const f = queue.shift()!;
    for (const e of edges) {
      if (e.from !== f || !e.resolved || out.has(e.to)) continue;
      out.set(e.to, [...out.get(f)!, e.to]);
      queue.push(e.to);
    }
  }
  return out;
}
