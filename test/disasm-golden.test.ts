/**
 * `inspect --disasm` against an independent disassembler: for every little-endian fixture and every
 * program, each instruction of the program's own function is what llvm-objdump prints for the object,
 * after normalizing notation (hex vs decimal, `pc+N` vs `+N <sym>`, helper names). Only what the plan
 * changes on purpose is compared loosely: map loads (the plan references maps by index, the object
 * by relocation), calls the object leaves to relocations (kfuncs, `call -1`), and bpf-to-bpf call
 * offsets (the plan links subprograms after the program).
 * Skips with a message where llvm-objdump is not installed (.ci/run installs llvm).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';
import { FIXTURES } from './helpers/paths.js';

const OBJDUMP = ['llvm-objdump', 'llvm-objdump-19'].find((c) => spawnSync(c, ['--version']).status === 0);
if (!OBJDUMP) console.warn('disasm-golden.test.ts: skipped: llvm-objdump is not installed (apt-get install llvm)');

const fixtures = readdirSync(FIXTURES).filter((f) => f.endsWith('.o') && !f.endsWith('_be.o')).sort();

/** llvm-objdump's instructions per function symbol: index within the function -> text. */
function llvmFunctions(obj: string): Map<string, Map<number, string>> {
  const r = spawnSync(OBJDUMP!, ['-d', '--no-show-raw-insn', obj], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const out = new Map<string, Map<number, string>>();
  let cur: Map<number, string> | undefined;
  let base = 0;
  for (const line of r.stdout.split('\n')) {
    const sym = /^([0-9a-f]{16}) <([^>]+)>:$/.exec(line);
    if (sym) {
      base = Number.parseInt(sym[1], 16) / 8;
      cur = new Map();
      out.set(sym[2], cur);
      continue;
    }
    const ins = /^\s+(\d+):\t(.*)$/.exec(line);
    if (ins && cur) cur.set(Number(ins[1]) - base, ins[2].trim());
    if (/^Disassembly of section/.test(line)) cur = undefined;
  }
  return out;
}

/** Our disassembly per program: index -> text (the program's own function comes first). */
async function ours(obj: string): Promise<Map<string, Map<number, string>>> {
  const r = await runCli(['inspect', obj, '--disasm']);
  expect(r.code, r.stderr).toBe(0);
  const out = new Map<string, Map<number, string>>();
  let cur: Map<number, string> | undefined;
  for (const line of r.stdout.split('\n')) {
    const head = /^(\S+) \((?!\d+\))[^()\s]+\):$/.exec(line); // '<program> (<type or section>):', not 'maps (1):'
    if (head) {
      cur = new Map();
      out.set(head[1], cur);
      continue;
    }
    const ins = /^\s+(\d+): (.*)$/.exec(line);
    if (ins && cur) cur.set(Number(ins[1]), ins[2].trim());
  }
  return out;
}

/** One notation for both: decimal numbers, `+N` jumps, `(rN + N)` operands, no annotations. */
function normal(s: string): string {
  return s
    .replace(/\s+<[^>]*>$/, '')
    .replace(/\bgoto pc([+-])/, 'goto $1')
    .replace(/\bcall pc\+(\d+)/, 'call $1')
    .replace(/\bcall pc-(\d+)/, 'call -$1')
    .replace(/-0x([0-9a-f]+)\b/g, (_m, h: string) => `-${Number.parseInt(h, 16)}`)
    .replace(/\b0x([0-9a-f]+)\b/g, (_m, h: string) => String(BigInt(`0x${h}`)))
    .replace(/\((r\d+) ([+-])(\d+)\)/g, '($1 $2 $3)')
    .replace(/\bcall [A-Za-z_][\w]*#(\d+)$/, 'call $1')
    .replace(/\s+/g, ' ');
}

describe.skipIf(!OBJDUMP)('inspect --disasm matches llvm-objdump, instruction by instruction', () => {
  it.each(fixtures)('%s', async (f) => {
    const obj = join(FIXTURES, f);
    const theirs = llvmFunctions(obj);
    const mine = await ours(obj);
    expect(mine.size).toBeGreaterThan(0);
    let compared = 0;
    for (const [prog, insns] of mine) {
      const ref = theirs.get(prog);
      expect(ref, `llvm-objdump has no function ${prog}`).toBeDefined();
      for (const [i, text] of ref!) {
        const ourText = insns.get(i);
        expect(ourText, `${prog} insn ${i}: llvm-objdump has '${text}', ours has none`).toBeDefined();
        const a = normal(ourText!);
        const b = normal(text);
        if (/^r\d+ = (map\[|ksym |func pc)/.test(a)) {
          // A 64-bit load the plan resolves (map by index, ksym, callback address) and the object leaves
          // to a relocation: the same register.
          expect(b, `${prog} insn ${i}`).toMatch(new RegExp(`^${a.split(' ')[0]} = -?\\d+ ll$`));
        } else if (/^call -1$/.test(b)) {
          expect(a, `${prog} insn ${i}`).toMatch(/^call /); // a relocated call (subprogram, kfunc): still a call
        } else if (/^call pc[+-]\d+/.test(ourText!)) {
          // A bpf-to-bpf call: the plan links subprograms right after the program, so the offset is its own.
          expect(b, `${prog} insn ${i}`).toMatch(/^call -?\d+$/);
        } else {
          expect(a, `${prog} insn ${i} (llvm-objdump: ${text})`).toBe(b);
        }
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(0);
  });
});
