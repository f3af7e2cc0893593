/**
 * Names in a plan become file names (the plan's, and pins `<dir>/<program>`, `<dir>/maps/<map>`) and
 * appear in messages and logs, so they are checked wherever a plan is made or read: non-empty, at most
 * 255 bytes, no '/', no NUL or other control characters, not '.' or '..'. Other strings (sections,
 * extern names) may not hold control characters. bpffs refuses '.' in names, so pins use '_' for it
 * (pinFileName); two names that pin to the same file are refused.
 */
export const MAX_NAME_BYTES = 255;

// C0 and C1 controls, DEL, and the bidirectional overrides/isolates and marks that make a name read
// differently from what it is in a terminal or log viewer (CVE-2021-42574, "Trojan Source").
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it rejects
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/** Characters the kernel keeps in an object name (kernel/bpf/syscall.c bpf_obj_name_cpy), at most 15. */
const KERNEL_NAME = /^[A-Za-z0-9_.]{0,15}$/;

/** Why `s` is not a name the kernel accepts for a map or program, or undefined. */
export function kernelNameProblem(s: string): string | undefined {
  return KERNEL_NAME.test(s) ? undefined : 'is not 0-15 characters from A-Z a-z 0-9 _ . (what the kernel accepts)';
}

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
