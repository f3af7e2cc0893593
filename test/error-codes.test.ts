/**
 * Error codes as raised in src/: read from the source text, each code must mean one exit status
 * wherever it is raised (README "Exit codes": 1 verify, 2 usage or input, 3 kernel), and every
 * USAGE_* code must be a usage error. A code raised as "the kernel refused" on one path and as a
 * usage error on another (BPFFS_NOT_MOUNTED did) gives a script two answers for one name.
 * The scan knows each error class's kind; a class it does not know fails the test, so a new class
 * cannot hide its codes from it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { at, BpfsealError, EXIT, type ErrorKind, failure } from '../src/errors.js';
import { TLOG_CODES } from '../src/tlog/errors.js';
import { ROOT, SRC } from './helpers/paths.js';
import { raisesIn, renderDoc, renderTs, scan, table } from '../scripts/gen-errors.mjs';

interface Raise { code: string; kind: ErrorKind; where: string }

/** The generator's own scan (scripts/gen-errors.mjs: the table is made from it). */
function raises(file: string, text: string): { raised: Raise[]; unknown: string[] } {
  const r = raisesIn(file, text) as { raised: { code: string; kind: ErrorKind; file: string; line: number }[]; unknown: string[] };
  return { raised: r.raised.map((x) => ({ code: x.code, kind: x.kind, where: `${x.file}:${x.line}` })), unknown: r.unknown };
}

function exitsByCode(all: Raise[]): Map<string, Map<number, string[]>> {
  const by = new Map<string, Map<number, string[]>>();
  for (const r of all) {
    const exits = by.get(r.code) ?? by.set(r.code, new Map()).get(r.code)!;
    const exit = EXIT[r.kind];
    exits.set(exit, [...(exits.get(exit) ?? []), r.where]);
  }
  return by;
}

const inconsistent = (all: Raise[]) => [...exitsByCode(all)].filter(([, e]) => e.size > 1).map(([code, e]) => `${code}: ${[...e].map(([x, w]) => `exit ${x} at ${w.join(', ')}`).join('; ')}`);

describe('the scan itself', () => {
  it('reads every form of raise, and finds a code with two exit statuses', () => {
    const text = [
      "throw new BpfsealError('kernel', 'BPFFS_NOT_MOUNTED', 'mount failed');",
      "throw new BpfsealError('usage', 'BPFFS_NOT_MOUNTED', 'not on a bpffs');",
      "throw new InputError('USAGE_OUTPUT', '-o');",
      "throw new TlogVerifyError(TLOG_CODES.BAD_ARGUMENT, 'x');",
      "throw new VmError('boot', 'VM_BOOT_FAILED', 'x');",
      "throw pinError('PIN_EXISTS', 'x');",
      "throw new FancyError('CODE_X', 'x');",
      "kill(new VmError(initAt ? 'guest' : 'boot', 'VM_TIMEOUT', 'x'));",
      "throw new VmError(step, 'VM_LOCKED', 'x');",
      'class PlanFormatError extends InputError {\n  constructor(m: string) {\n    super(\'PLAN_INVALID\', m);\n  }\n}',
      "ensureDirectory(dir, 0o700, 'AUDIT_STATE_UNWRITABLE');",
      "checkPrivateDir(dir, 'the log directory', TLOG_CODES.UNSAFE);",
      "throw new WitnessError(409, TLOG_CODES.WITNESS_CONFLICT, 'x');",
      "export function checkRegularFile(path: string, what: string, code: ErrorCode = 'FILE_UNSAFE') {",
    ].join('\n');
    const { raised, unknown } = raises('t.ts', text);
    expect(raised.map((r) => `${r.code}/${r.kind}`).sort()).toEqual([
      'BPFFS_NOT_MOUNTED/kernel', 'BPFFS_NOT_MOUNTED/usage', 'USAGE_OUTPUT/input', `${TLOG_CODES.BAD_ARGUMENT}/verify`, 'VM_BOOT_FAILED/kernel', 'PIN_EXISTS/usage',
      'VM_TIMEOUT/kernel', 'VM_LOCKED/input', 'PLAN_INVALID/input',
      'AUDIT_STATE_UNWRITABLE/input', `${TLOG_CODES.UNSAFE}/input`, 'FILE_UNSAFE/input', `${TLOG_CODES.WITNESS_CONFLICT}/verify`,
    ].sort());
    expect(unknown).toEqual(['t.ts:7: FancyError']);
    expect(inconsistent(raised)).toEqual(['BPFFS_NOT_MOUNTED: exit 3 at t.ts:1; exit 2 at t.ts:2']);
  });

  it("reads a class's super() code within that class only, never the next class's", () => {
    const text = "class A extends InputError {\n  constructor(c: ErrorCode, m: string) {\n    super(c, m);\n  }\n}\nclass B extends BpfsealError {\n  constructor(m: string) {\n    super('verify', 'B_FAILED', m);\n  }\n}";
    expect(raises('t.ts', text).raised.map((r) => `${r.code}/${r.kind}`)).toEqual(['B_FAILED/verify']);
  });

  it('a code the scan misses cannot be raised: constructors and code-taking helpers take ErrorCode (tsc refuses others)', () => {
    // The union is the table's keys plus the two run-time families: a literal outside it does not compile.
    const src = readFileSync(join(SRC, 'errors.ts'), 'utf8');
    expect(src).toMatch(/constructor\(kind: ErrorKind, code: ErrorCode,/);
    expect(src).toMatch(/readonly code: ErrorCode;/);
  });
});

describe('error codes raised in src/', () => {
  // The scan the table is made from, over src/ once.
  const { raised, unknown } = scan();
  const all: Raise[] = raised.map((x) => ({ code: x.code, kind: x.kind as ErrorKind, where: `${x.file}:${x.line}` }));

  it('are all raised through error classes the scan knows', () => {
    expect(all.length).toBeGreaterThan(150);
    expect(unknown).toEqual([]);
  });

  it('each have one exit status', () => {
    expect(inconsistent(all)).toEqual([]);
  });

  it('USAGE_* are usage errors', () => {
    expect(all.filter((r) => r.code.startsWith('USAGE_') && r.kind !== 'usage').map((r) => `${r.where}: ${r.code} as ${r.kind}`)).toEqual([]);
  });
});

describe('the error-code table (docs/errors.md, src/errors.gen.ts)', () => {
  const rows = table();
  it('is current: regenerated from src/ it is the committed text (run `npm run errors`)', () => {
    expect(readFileSync(join(ROOT, 'docs/errors.md'), 'utf8')).toBe(renderDoc(rows));
    expect(readFileSync(join(ROOT, 'src/errors.gen.ts'), 'utf8')).toBe(renderTs(rows));
  });

  // That every raised code is in it is the compiler's to check: constructors take only ErrorCode.
  it('gives each code one exit status and how it is raised', () => {
    expect(rows.filter((r) => r.exits.size !== 1).map((r) => r.code)).toEqual([]);
    // Nearly every code is raised with a literal message the table can show.
    expect(rows.filter((r) => r.messages.length === 0).length).toBeLessThan(rows.length / 20);
  });

  it('ErrorCode knows the table and the run-time families, and nothing else', async () => {
    const { isErrorCode, ERROR_CODES } = await import('../src/errors.gen.js');
    expect(isErrorCode('POLICY_INVALID')).toBe(true);
    expect(isErrorCode('KERNEL_EKEYREJECTED')).toBe(true);
    expect(isErrorCode('USAGE_UNKNOWN_OPTION')).toBe(true);
    expect(isErrorCode('NOT_A_CODE')).toBe(false);
    expect(isErrorCode('toString')).toBe(false);
    expect(ERROR_CODES.POLICY_INVALID).toBe(2);
  });
});

describe('at(): an index the caller guarantees', () => {
  it('returns the element in range, and a broken guarantee is an internal error (exit 70), never undefined', () => {
    const xs = ['a', undefined, 'c'];
    expect(at(xs, 0)).toBe('a');
    expect(at(xs, 1)).toBeUndefined(); // an element that is undefined is still in range
    expect(at(Buffer.from([7, 9]), 1)).toBe(9);
    for (const i of [-1, 3, 1.5, Number.NaN]) {
      let caught: unknown;
      try {
        at(xs, i, 'test slot');
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(Error);
      expect(caught).not.toBeInstanceOf(BpfsealError);
      expect(failure(caught)).toMatchObject({ code: 'INTERNAL', exit: 70, message: expect.stringContaining(`test slot ${i} out of range 0..2`) });
    }
  });
});
