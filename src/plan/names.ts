/**
 * Names in a plan become file names (the plan's, and pins `<dir>/<program>`, `<dir>/maps/<map>`) and
 * appear in messages and logs, so they are checked wherever a plan is made or read: non-empty, at most
 * 255 bytes, no '/', no NUL or other control characters, not '.' or '..'. Other strings (sections,
 * extern names) may not hold control characters. bpffs refuses '.' in names, so pins use '_' for it
 * (pinFileName); two names that pin to the same file are refused.
 */
export const MAX_NAME_BYTES = 255;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Why `s` is not a usable file-facing name, or undefined when it is. */
export function nameProblem(s: string): string | undefined {
  if (s.length === 0) return 'is empty';
  if (Buffer.byteLength(s, 'utf8') > MAX_NAME_BYTES) return `is longer than ${MAX_NAME_BYTES} bytes`;
  if (s.includes('/')) return "contains '/'";
  if (CONTROL.test(s)) return 'contains a control character';
  if (s === '.' || s === '..') return `is '${s}'`;
  return undefined;
}

/** Why `s` is not an acceptable label (section or extern name), or undefined. */
export function labelProblem(s: string): string | undefined {
  if (Buffer.byteLength(s, 'utf8') > 4096) return 'is longer than 4096 bytes';
  if (CONTROL.test(s)) return 'contains a control character';
  return undefined;
}

/** File name of a pin for an object name: bpffs refuses '.', so it becomes '_' (as libbpf does for maps). */
export function pinFileName(name: string): string {
  return name.replace(/\./g, '_');
}
