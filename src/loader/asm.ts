/**
 * A small BPF assembler for the loader program: the instructions libbpf's gen_loader emits with C
 * macros (BPF_MOV64_IMM, BPF_LD_IMM64_RAW_FULL, BPF_LDX_MEM, ...), plus labels. Encodings from
 * Documentation/bpf/standardization/instruction-set.rst. Branches to a label are 16-bit conditional
 * jumps when the target is in range, and otherwise an inverted conditional over a 32-bit `gotol`
 * (BPF_JMP32 | BPF_JA, kernel 6.4+), chosen by relaxation so the output is deterministic.
 */
import { InputError } from '../errors.js';
import { PSEUDO } from '../bpf/insn.js';

export const R = { R0: 0, R1: 1, R2: 2, R3: 3, R4: 4, R5: 5, R6: 6, R7: 7, R8: 8, R9: 9, R10: 10 } as const;

const SIZE = { 1: 0x10, 2: 0x08, 4: 0x00, 8: 0x18 } as const; // BPF_B, BPF_H, BPF_W, BPF_DW
export type Width = keyof typeof SIZE;

// Jump opcodes (BPF_JMP class, op << 4): JEQ 1, JGT 2, JGE 3, JSET 4, JNE 5, JSGT 6, JSGE 7, JLT a, JLE b, JSLT c, JSLE d
export const JOP = { JEQ: 0x10, JNE: 0x50, JSGT: 0x60, JSGE: 0x70, JSLT: 0xc0, JSLE: 0xd0 } as const;
export type Jop = keyof typeof JOP;
const INVERT: Record<Jop, Jop> = { JEQ: 'JNE', JNE: 'JEQ', JSGT: 'JSLE', JSGE: 'JSLT', JSLT: 'JSGE', JSLE: 'JSGT' };

interface Plain { kind: 'insn'; bytes: Buffer }
interface Branch { kind: 'branch'; op: Jop | 'JA'; reg: number; imm: number; label: string; long: boolean }
interface Mark { kind: 'label'; name: string }
type Item = Plain | Branch | Mark;

function insn(code: number, dst: number, src: number, off: number, imm: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = code;
  b[1] = (src << 4) | dst;
  b.writeInt16LE(off, 2);
  b.writeInt32LE(imm, 4);
  return b;
}

export class Asm {
  private readonly items: Item[] = [];
  private labels = 0;

  private put(...bs: Buffer[]): void {
    for (const bytes of bs) this.items.push({ kind: 'insn', bytes });
  }

  /** A fresh, unique label name. */
  newLabel(hint: string): string {
    return `${hint}#${this.labels++}`;
  }

  label(name: string): void {
    this.items.push({ kind: 'label', name });
  }

  /** dst = imm (64-bit move of a sign-extended 32-bit immediate). */
  movImm(dst: number, imm: number): void {
    this.put(insn(0xb7, dst, 0, 0, imm));
  }

  movReg(dst: number, src: number): void {
    this.put(insn(0xbf, dst, src, 0, 0));
  }

  /** dst >>= imm (64-bit logical). */
  rshImm(dst: number, imm: number): void {
    this.put(insn(0x77, dst, 0, 0, imm));
  }

  /** dst &= imm (32-bit ALU: the result is zero-extended). */
  and32Imm(dst: number, imm: number): void {
    this.put(insn(0x54, dst, 0, 0, imm));
  }

  /** dst = &map_value(fd_array[0]) + off: the blob, by index (BPF_PSEUDO_MAP_IDX_VALUE), never by fd. */
  blobAddr(dst: number, off: number): void {
    if (!Number.isSafeInteger(off) || off < 0 || off > 0x7fffffff) throw new InputError('LOADER_TOO_LARGE', `loader blob offset ${off} out of range`);
    this.put(insn(0x18, dst, PSEUDO.MAP_IDX_VALUE, 0, 0), insn(0, 0, 0, 0, off));
  }

  /** dst = *(size *)(src + off)  (BPF_LDX | BPF_MEM | size) */
  ldx(w: Width, dst: number, src: number, off: number): void {
    this.put(insn(0x61 | SIZE[w], dst, src, off16(off), 0));
  }

  /** *(size *)(dst + off) = src  (BPF_STX | BPF_MEM | size) */
  stx(w: Width, dst: number, off: number, src: number): void {
    this.put(insn(0x63 | SIZE[w], dst, src, off16(off), 0));
  }

  /** *(size *)(dst + off) = imm  (BPF_ST | BPF_MEM | size) */
  st(w: Width, dst: number, off: number, imm: number): void {
    this.put(insn(0x62 | SIZE[w], dst, 0, off16(off), imm));
  }

  call(helper: number): void {
    this.put(insn(0x85, 0, 0, 0, helper));
  }

  exit(): void {
    this.put(insn(0x95, 0, 0, 0, 0));
  }

  /** if (reg op imm) goto label */
  jmpImm(op: Jop, reg: number, imm: number, label: string): void {
    this.items.push({ kind: 'branch', op, reg, imm, label, long: false });
  }

  /** goto label */
  ja(label: string): void {
    this.items.push({ kind: 'branch', op: 'JA', reg: 0, imm: 0, label, long: false });
  }

  private size(it: Item): number {
    if (it.kind === 'label') return 0;
    if (it.kind === 'insn') return 1;
    return it.long ? (it.op === 'JA' ? 1 : 2) : 1;
  }

  /** Lay out, relax out-of-range branches, and encode. Deterministic for the same sequence of calls. */
  assemble(): Buffer {
    for (;;) {
      const at = new Map<string, number>();
      let pc = 0;
      for (const it of this.items) {
        if (it.kind === 'label') {
          if (at.has(it.name)) throw new Error(`internal: label ${it.name} defined twice`);
          at.set(it.name, pc);
        }
        pc += this.size(it);
      }
      let changed = false;
      pc = 0;
      for (const it of this.items) {
        if (it.kind === 'branch' && !it.long) {
          const to = at.get(it.label);
          if (to === undefined) throw new Error(`internal: undefined label ${it.label}`);
          const off = to - pc - 1;
          if (off < -32768 || off > 32767) { it.long = true; changed = true; }
        }
        pc += this.size(it);
      }
      if (changed) continue;
      const out: Buffer[] = [];
      pc = 0;
      for (const it of this.items) {
        if (it.kind === 'insn') out.push(it.bytes);
        else if (it.kind === 'branch') {
          const to = at.get(it.label)!;
          if (it.op === 'JA') {
            // gotol (BPF_JMP32 | BPF_JA, offset in imm) when long, BPF_JA with a 16-bit offset otherwise.
            out.push(it.long ? insn(0x06, 0, 0, 0, to - pc - 1) : insn(0x05, 0, 0, to - pc - 1, 0));
          } else if (!it.long) {
            out.push(insn(0x05 | JOP[it.op], it.reg, 0, to - pc - 1, it.imm));
          } else {
            // if (!cond) skip the gotol; gotol target
            out.push(insn(0x05 | JOP[INVERT[it.op]], it.reg, 0, 1, it.imm), insn(0x06, 0, 0, 0, to - (pc + 1) - 1));
          }
        }
        pc += this.size(it);
      }
      return Buffer.concat(out);
    }
  }
}

function off16(off: number): number {
  if (!Number.isInteger(off) || off < -32768 || off > 32767) throw new InputError('LOADER_TOO_LARGE', `loader instruction offset ${off} does not fit 16 bits`);
  return off;
}
