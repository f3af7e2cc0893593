/**
 * Where two JSON-like values first differ, as a field path (`programs[0].type`), or undefined when
 * they are equal. Used to say exactly which signed claim does not describe the plan.
 */
import { pathString } from './strict.js';

type V = unknown;

export function firstDifference(signed: V, expected: V, at: (string | number)[] = []): { path: string; signed: V; expected: V } | undefined {
  const diff = () => ({ path: pathString(at) || '(whole value)', signed, expected });
  if (signed === expected) return undefined;
  if (typeof signed !== typeof expected || signed === null || expected === null || typeof signed !== 'object') return diff();
  if (Array.isArray(signed) !== Array.isArray(expected)) return diff();
  if (Array.isArray(signed)) {
    const e = expected as V[];
    for (let i = 0; i < Math.max(signed.length, e.length); i++) {
      if (i >= signed.length || i >= e.length) return { path: pathString([...at, i]), signed: signed[i], expected: e[i] };
      const d = firstDifference(signed[i], e[i], [...at, i]);
      if (d) return d;
    }
    return undefined;
  }
  const s = signed as Record<string, V>, e = expected as Record<string, V>;
  const keys = [...new Set([...Object.keys(e), ...Object.keys(s)])];
  for (const k of keys) {
    if (!Object.prototype.hasOwnProperty.call(s, k) || !Object.prototype.hasOwnProperty.call(e, k)) return { path: pathString([...at, k]), signed: s[k], expected: e[k] };
    const d = firstDifference(s[k], e[k], [...at, k]);
    if (d) return d;
  }
  return undefined;
}
