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
  BpfsealError: 'first', InputError: 'input', VerifyError: 'verify', TlogVerifyError: 'verify',
  ElfError: 'input', Pkcs7Error: 'input', CertificateError: 'input', VmError: 'vm-step', pinError: 'usage',
};
export const VM_KERNEL_STEPS = new Set(['boot', 'guest', 'result']);
export const RAISE = /\b(?:new\s+(?<cls>[A-Z]\w*Error)|(?<fn>pinError))\(\s*(?:'(?<kind>[a-z-]+)'\s*,\s*|[\w.]+\s*\?\s*'(?<either>[a-z-]+)'\s*:\s*'(?<or>[a-z-]+)'\s*,\s*|(?<variable>[a-zA-Z]\w*)\s*,\s*)?(?:'(?<code>[A-Z][A-Z0-9_]+)'|TLOG_CODES\.(?<tlog>[A-Z][A-Z0-9_]+))\s*(?:,\s*(?<message>`(?:[^`\\]|\\.|\$\{(?:[^{}]|\{[^{}]*\})*\})*`|'(?:[^'\\]|\\.)*'))?/g;
/** An error class with a code of its own: `class X extends Parent { ... super(['kind', ]'CODE', ...)`. */
const CLASS = /\bclass\s+(\w+)\s+extends\s+(\w+)\s*\{/g;
const SUPER = /\bsuper\(\s*(?:'([a-z-]+)'\s*,\s*)?'([A-Z][A-Z0-9_]+)'\s*,\s*(`(?:[^`\\]|\\.|\$\{(?:[^{}]|\{[^{}]*\})*\})*`|'(?:[^'\\]|\\.)*')?/;
/**
 * Functions that take a code and raise it (or return the error), by file: which argument is the code,
 * and the kind they raise it with. Their `code` parameters are typed ErrorCode, so tsc refuses a
 * literal this scan does not put in the table; a new helper of this sort is listed here.
 */
export const HELPERS = {
  'tlog/verify-proof.ts': { checkHashes: [1, 'verify'] },
  'elf/reader.ts': { fail: [0, 'input'] },
  'trust/keyless-flags.ts': { usage: [0, 'usage'] },
  'cli/preflight.ts': { usage: [0, 'usage'] },
  'cli/sign.ts': { usage: [0, 'usage'] },
};
/** Helpers exported to other files (fsx/, the witness error): their calls are read in every file. */
const EXPORTED_HELPERS = {
  ensureDirectory: [2, 'input'], checkPrivateDir: [2, 'input'], checkRegularFile: [2, 'input'], writeError: [2, 'input'], writeFileDurable: [3, 'input'], createExclusive: [3, 'input'],
  // tlog/witness: `new WitnessError(status, code, message)`: 400 is input, other statuses verify.
  WitnessError: [1, 'witness-status'],
};

function tsFiles(dir, base = dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p, base));
    else if (name.endsWith('.ts') && !name.endsWith('.gen.ts') && !name.endsWith('.d.ts')) out.push(relative(base, p));
  }
  return out;
}

let tlogCache;

/** TLOG_CODES of tlog/errors.ts, read once. */
function tlogCodes() {
  if (tlogCache) return tlogCache;
  const text = readFileSync(join(SRC, 'tlog/errors.ts'), 'utf8');
  const block = /TLOG_CODES\s*=\s*\{([\s\S]*?)\}/.exec(text)?.[1] ?? '';
  tlogCache = Object.fromEntries([...block.matchAll(/([A-Z][A-Z0-9_]*)\s*:\s*'([A-Z][A-Z0-9_]+)'/g)].map((m) => [m[1], m[2]]));
  return tlogCache;
}

/** A message literal as a reader sees it: interpolations shown as "…". */
function shown(lit) {
  if (!lit) return '';
  let s = lit.slice(1, -1);
  if (lit[0] === '`') s = s.replace(/\$\{(?:[^{}]|\{[^{}]*\})*\}/g, '…').replace(/\$\{[\s\S]*$/, '…');
  return s.replace(/\\'/g, "'").replace(/\\n/g, ' ').replace(/\s+/g, ' ').trim();
}

/** The top-level arguments of the call whose '(' is at `open`: their source text, and the text after the call. */
function callArgs(text, open) {
  const args = [];
  let depth = 0;
  let start = open + 1;
  let quote = '';
  for (let i = open + 1; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      if (depth === 0) {
        args.push(text.slice(start, i).trim());
        return args;
      }
      depth--;
    } else if (c === ',' && depth === 0) {
      args.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  return args;
}

const CODE_LITERAL = /^'([A-Z][A-Z0-9_]+)'$/;
const MESSAGE_LITERAL = /^(`[\s\S]*`|'(?:[^'\\]|\\.)*')$/;

/** Raises of one file's text: { code, kind, exit, file, line, message }, and the raises of classes the scan does not know. */
export function raisesIn(f, text, tlog = tlogCodes()) {
  const raised = [];
  const unknown = [];
  const lineOf = (i) => text.slice(0, i).split('\n').length;
  const add = (code, kind, i, message) => raised.push({ code, kind, exit: EXIT[kind], file: f, line: lineOf(i), message: shown(message) });
  for (const m of text.matchAll(RAISE)) {
    const g = m.groups;
    const cls = g.cls ?? g.fn;
    const code = g.code ?? tlog[g.tlog];
    const k = CLASS_KIND[cls];
    if (!k || !code) {
      unknown.push(`${f}:${lineOf(m.index)}: ${cls}`);
      continue;
    }
    // A VmError's step: a literal, one of two (`x ? 'guest' : 'boot'`, both of one kind), or a variable,
    // which is one of the steps before qemu runs (vm/lock.ts types it so).
    const vmKind = (step) => (VM_KERNEL_STEPS.has(step) ? 'kernel' : 'input');
    let kind;
    if (k === 'first') kind = g.kind;
    else if (k === 'vm-step') kind = g.either ? (vmKind(g.either) === vmKind(g.or) ? vmKind(g.either) : undefined) : vmKind(g.kind);
    else kind = g.kind || g.either || g.variable ? undefined : k;
    if (!kind) {
      unknown.push(`${f}:${lineOf(m.index)}: ${cls} with a kind the scan cannot tell`);
      continue;
    }
    add(code, kind, m.index, g.message);
  }
  // A class's own super() call: looked for only up to the next class, so that one class's literal
  // code is never read as another's.
  const classes = [...text.matchAll(CLASS)];
  for (const [n, m] of classes.entries()) {
    const body = text.slice(m.index, classes[n + 1]?.index ?? text.length);
    const s = SUPER.exec(body);
    if (!s) continue;
    const k = CLASS_KIND[m[2]] ?? (m[2] === 'BpfsealError' ? 'first' : undefined);
    const kind = k === 'first' ? s[1] : k;
    if (!kind || k === 'vm-step') {
      unknown.push(`${f}:${lineOf(m.index)}: class ${m[1]} extends ${m[2]}`);
      continue;
    }
    add(s[2], kind, m.index + s.index, s[3]);
  }
  const helpers = { ...EXPORTED_HELPERS, ...(HELPERS[f] ?? {}) };
  for (const [name, [at, kind]] of Object.entries(helpers)) {
    for (const m of text.matchAll(new RegExp(`(?<![\\w.])${name}\\(`, 'g'))) {
      const args = callArgs(text, m.index + name.length);
      const arg = args[at] ?? '';
      const code = CODE_LITERAL.exec(arg)?.[1] ?? tlog[/^TLOG_CODES\.([A-Z][A-Z0-9_]+)$/.exec(arg)?.[1] ?? ''];
      const k = kind === 'witness-status' ? (args[0] === '400' ? 'input' : 'verify') : kind;
      if (code) add(code, k, m.index, MESSAGE_LITERAL.test(args[at + 1] ?? '') ? args[at + 1] : undefined);
      // A default code in the helper's own parameter list (`code = 'DIR_UNUSABLE'`).
      const def = /^\w*[cC]ode(?:\??:\s*ErrorCode)?\s*=\s*'([A-Z][A-Z0-9_]+)'$/.exec(arg);
      if (def) add(def[1], k, m.index, undefined);
    }
  }
  return { raised, unknown };
}

/** Every raise in src/: { code, kind, exit, file, line, message }. */
export function scan() {
  const tlog = tlogCodes();
  const raised = [];
  const unknown = [];
  for (const f of tsFiles(SRC)) {
    const r = raisesIn(f, readFileSync(join(SRC, f), 'utf8'), tlog);
    raised.push(...r.raised);
    unknown.push(...r.unknown);
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
