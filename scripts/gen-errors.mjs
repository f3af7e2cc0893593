#!/usr/bin/env node
// The error-code table, read from the source: every code raised in src/ (the same scan as
// test/error-codes.test.ts), its exit status, and the message it is raised with. Writes
// src/errors.gen.ts (the ErrorCode union and the table) and docs/errors.md. Run `npm run errors`
// after adding a code; test/error-codes.test.ts checks both files are current.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(root, 'src');
export const EXIT = { verify: 1, usage: 2, input: 2, kernel: 3, internal: 70 };
/** The kind each error class (or code-taking helper) raises; 'first' when its first argument says. */
export const CLASS_KIND = {
  BpfsealError: 'first', InputError: 'input', VerifyError: 'verify', TlogVerifyError: 'verify', WitnessError: 'verify',
  ElfError: 'input', Pkcs7Error: 'input', CertificateError: 'input', VmError: 'vm-step', pinError: 'usage',
};
export const VM_KERNEL_STEPS = new Set(['boot', 'guest', 'result']);
export const RAISE = /\b(?:new\s+([A-Z]\w*Error)|(pinError))\(\s*(?:'([a-z-]+)'\s*,\s*)?(?:'([A-Z][A-Z0-9_]+)'|TLOG_CODES\.([A-Z][A-Z0-9_]+))\s*(?:,\s*(`(?:[^`\\]|\\.|\$\{(?:[^{}]|\{[^{}]*\})*\})*`|'(?:[^'\\]|\\.)*'))?/g;

function tsFiles(dir, base = dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p, base));
    else if (name.endsWith('.ts') && !name.endsWith('.gen.ts') && !name.endsWith('.d.ts')) out.push(relative(base, p));
  }
  return out;
}

function tlogCodes() {
  const text = readFileSync(join(SRC, 'tlog/errors.ts'), 'utf8');
  const block = /TLOG_CODES\s*=\s*\{([\s\S]*?)\}/.exec(text)?.[1] ?? '';
  return Object.fromEntries([...block.matchAll(/([A-Z][A-Z0-9_]*)\s*:\s*'([A-Z][A-Z0-9_]+)'/g)].map((m) => [m[1], m[2]]));
}

/** A message literal as a reader sees it: interpolations shown as "…". */
function shown(lit) {
  if (!lit) return '';
  let s = lit.slice(1, -1);
  if (lit[0] === '`') s = s.replace(/\$\{(?:[^{}]|\{[^{}]*\})*\}/g, '…').replace(/\$\{[\s\S]*$/, '…');
  return s.replace(/\\'/g, "'").replace(/\\n/g, ' ').replace(/\s+/g, ' ').trim();
}

/** Every raise in src/: { code, kind, exit, file, line, message }. */
export function scan() {
  const tlog = tlogCodes();
  const raised = [];
  const unknown = [];
  for (const f of tsFiles(SRC)) {
    const text = readFileSync(join(SRC, f), 'utf8');
    for (const m of text.matchAll(RAISE)) {
      const cls = m[1] ?? m[2];
      const code = m[4] ?? tlog[m[5]];
      const line = text.slice(0, m.index).split('\n').length;
      const k = CLASS_KIND[cls];
      if (!k || !code) {
        unknown.push(`${f}:${line}: ${cls}`);
        continue;
      }
      const kind = k === 'first' ? m[3] : k === 'vm-step' ? (VM_KERNEL_STEPS.has(m[3]) ? 'kernel' : 'input') : k;
      raised.push({ code, kind, exit: EXIT[kind], file: f, line, message: shown(m[6]) });
    }
  }
  return { raised, unknown };
}

/** What to do, per family (prefix before the first '_' or a listed longer prefix). */
const FAMILIES = [
  ['USAGE_', 'The command line: fix the flag or argument the message names (`bpfseal <command> --help`).'],
  ['POLICY_', 'The trust policy file: fix the field the message names (docs/policy.schema.json validates it in an editor).'],
  ['TRUST_', 'Trust material on disk: make it owned by you or root and not writable by others (SECURITY.md, "Trust material on disk").'],
  ['KERNEL_', 'The kernel refused (errno name in the code; `KERNEL_<ERRNO>` for every errno): read the verifier or BTF log in the message; `bpfseal features` says what this kernel can verify.'],
  ['TLOG_', 'A transparency log: the log directory, its checkpoint or a proof. A verification failure here means the log is not what it claims: do not trust it until explained.'],
  ['ELF_', 'The BPF object: not a well-formed ELF64 BPF relocatable (rebuild it with clang -target bpf).'],
  ['BTF_', 'The object\'s BTF: malformed or unsupported.'],
  ['PLAN_', 'A plan (or the plan inside a release): malformed, non-canonical, or unsupported.'],
  ['RELEASE_', 'A release file: malformed or truncated; re-download it or re-sign.'],
  ['PIN_', 'The pin directory: choose an empty directory you own on bpffs.'],
  ['VM_', 'The VM harness (preflight, test:vm): fetching, booting or running a kernel.'],
  ['ENFORCE', 'bpfseal enforce: see README "enforce" for what each needs.'],
  ['WITNESS_', 'Witness cosignatures: run the witnesses and `bpfseal log refresh`, or fix the policy\'s witnesses.'],
  ['HOST_LOG_', 'The host load log (default /var/lib/bpfseal/host-log).'],
  ['STATE_', 'The anti-rollback state file.'],
  ['LOADER_', 'The kernel loader: the plan is beyond the loader format\'s limits (docs/loader-format.md); sign with --no-loader.'],
];

export function table() {
  const { raised } = scan();
  const by = new Map();
  for (const r of raised) {
    const e = by.get(r.code) ?? by.set(r.code, { code: r.code, exits: new Set(), kinds: new Set(), messages: [], where: [] }).get(r.code);
    e.exits.add(r.exit);
    e.kinds.add(r.kind);
    if (r.message && !e.messages.includes(r.message)) e.messages.push(r.message);
    if (!e.where.includes(r.file)) e.where.push(r.file); // files, not lines: an edit above a raise must not stale the table
  }
  return [...by.values()].sort((a, b) => (a.code < b.code ? -1 : 1));
}

const md = (s) => s.replace(/\|/g, '\\|').replace(/</g, '&lt;');

export function renderDoc(rows) {
  const out = [
    '# Error codes',
    '',
    '<!-- Generated by scripts/gen-errors.mjs from the raises in src/. Do not edit: run `npm run errors`. -->',
    '',
    'Every failure names a stable code: `bpfseal: <file>: <CODE>: <reason>` on stderr, and',
    '`{"error": {"code", "message", "file", "exit"}}` with `--json`. Exit statuses: **1** verification or',
    'policy rejection, **2** usage or invalid input, **3** the kernel refused (or a VM kernel could not run),',
    '**70** an internal error (a bug: please report it, with `BPFSEAL_DEBUG=1` output). A code has one exit',
    'status wherever it is raised (test/error-codes.test.ts). Codes built at run time: `KERNEL_<ERRNO>`',
    '(`KERNEL_EPERM`, `KERNEL_EACCES`, ... for every errno the kernel returns) and `USAGE_*` codes of',
    'commander (`USAGE_UNKNOWN_OPTION`, `USAGE_MISSING_ARGUMENT`, ...).',
    '',
    '## What to do, by family',
    '',
    '| codes | what to do |',
    '|---|---|',
    ...FAMILIES.map(([p, what]) => `| \`${p}*\` | ${md(what)} |`),
    '',
    '## Every code',
    '',
    `${rows.length} codes. "Raised as" is the message (with \`…\` where a value is filled in); "where" is the file in src/ that raises it (and how many others do).`,
    '',
    '| code | exit | raised as | where |',
    '|---|---|---|---|',
    ...rows.map((r) => `| \`${r.code}\` | ${[...r.exits].join(', ')} | ${md(r.messages.slice(0, 2).join(' / ') || '(message built at run time)')} | \`${r.where[0]}\`${r.where.length > 1 ? ` (+${r.where.length - 1})` : ''} |`),
    '',
  ];
  return out.join('\n');
}

export function renderTs(rows) {
  return [
    '// Generated by scripts/gen-errors.mjs from the raises in src/. Do not edit: run `npm run errors`.',
    '/** Every error code raised in src/, with its exit status (docs/errors.md). */',
    'export const ERROR_CODES = {',
    ...rows.map((r) => `  ${r.code}: ${[...r.exits][0]},`),
    '} as const;',
    '',
    '/** A stable error code: one of the table, or a kernel errno or commander usage code built at run time. */',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: TypeScript template literal types, written out as text
    'export type ErrorCode = keyof typeof ERROR_CODES | `KERNEL_${string}` | `USAGE_${string}`;',
    '',
    'export function isErrorCode(code: string): code is ErrorCode {',
    '  return Object.hasOwn(ERROR_CODES, code) || /^(KERNEL|USAGE)_[A-Z0-9_]+$/.test(code);',
    '}',
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = table();
  writeFileSync(join(root, 'docs/errors.md'), renderDoc(rows));
  writeFileSync(join(root, 'src/errors.gen.ts'), renderTs(rows));
  console.log(`${rows.length} codes -> docs/errors.md, src/errors.gen.ts`);
}
