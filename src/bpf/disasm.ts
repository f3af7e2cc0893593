/**
 * Disassembler in the syntax of the kernel verifier log and `bpftool prog dump xlated`
 * (kernel/bpf/disasm.c): `r1 = *(u32 *)(r2 +4)`, `if r1 > 0x5 goto pc+3`, `call bpf_map_lookup_elem#1`.
 * Map references print by name: `r1 = map[name]`, `r1 = map[name][0]+16`.
 */
import { at } from '../errors.js';
import { helperName } from './constants.js';
import { CLS, INSN_SIZE, LD_IMM64, PSEUDO, PSEUDO_CALL, PSEUDO_KFUNC_CALL, readInsn, type Insn } from './insn.js';

const ALU_OPS = ['+=', '-=', '*=', '/=', '|=', '&=', '<<=', '>>=', 'neg', '%=', '^=', '=', 's>>=', 'end'];
const JMP_OPS = ['goto', '==', '>', '>=', '&', '!=', 's>', 's>=', 'call', 'exit', '<', '<=', 's<', 's<='];
const SIZES = ['u32', 'u16', 'u8', 'u64'];
const SSIZES = ['s32', 's16', 's8', 's64'];

/** The access size of a load or store, from the opcode's two size bits. */
function sizeOf(code: number, signed = false): string {
  return at(signed ? SSIZES : SIZES, (code >> 3) & 3, 'size');
}

export interface DisasmContext {
  /** Name for an fd_array index (src_reg 5/6) or a map reference. */
  mapName?: (index: number) => string;
  /** Name for a bpf-to-bpf call / function reference target (absolute instruction index). */
  funcName?: (target: number) => string | undefined;
  /** Name of a declared kfunc/ksym fix-up at an instruction index. */
  fixupName?: (insnIndex: number) => string | undefined;
}

function hex(n: number | bigint): string {
  if (typeof n === 'bigint') return n < 0n ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`;
  return n < 0 ? `-0x${(-n).toString(16)}` : `0x${n.toString(16)}`;
}
function memRef(size: string, reg: number, off: number): string {
  return `*(${size} *)(r${reg} ${off >= 0 ? '+' : ''}${off})`;
}

function alu(insn: Insn, is64: boolean): string {
  const r = is64 ? 'r' : 'w';
  const op = insn.code >> 4;
  const useReg = (insn.code & 0x08) !== 0;
  const src = useReg ? `${r}${insn.src}` : hex(insn.imm);
  const dst = `${r}${insn.dst}`;
  if (op === 8) return `${dst} = -${dst}`;
  if (op === 13) {
    const kind = is64 ? 'bswap' : useReg ? 'be' : 'le';
    return `${dst} = ${kind}${insn.imm} ${dst}`;
  }
  if (op === 11 && insn.off !== 0 && useReg) return `${dst} = (s${insn.off})${r}${insn.src}`;
  if ((op === 3 || op === 9) && insn.off === 1) return `${dst} s${ALU_OPS[op]} ${src}`;
  return `${dst} ${ALU_OPS[op] ?? `alu_op_${op}`} ${src}`;
}

function jmp(insn: Insn, pc: number, is32: boolean, ctx: DisasmContext): string {
  const op = insn.code >> 4;
  const r = is32 ? 'w' : 'r';
  if (insn.code === 0x95) return 'exit';
  if (op === 8) {
    if (insn.src === PSEUDO_CALL) {
      const target = pc + insn.imm + 1;
      const name = ctx.funcName?.(target);
      return `call pc${insn.imm >= 0 ? '+' : ''}${insn.imm}${name ? ` <${name}>` : ''}`;
    }
    if (insn.src === PSEUDO_KFUNC_CALL) return `call kernel-function ${ctx.fixupName?.(pc) ?? `#${insn.imm}`}`;
    return `call ${helperName(insn.imm)}#${insn.imm}`;
  }
  if (op === 0) {
    const d = is32 ? insn.imm : insn.off;
    return `goto${is32 ? 'l' : ''} pc${d >= 0 ? '+' : ''}${d}`;
  }
  const useReg = (insn.code & 0x08) !== 0;
  const src = useReg ? `${r}${insn.src}` : hex(insn.imm);
  return `if ${r}${insn.dst} ${JMP_OPS[op] ?? `jmp_op_${op}`} ${src} goto pc${insn.off >= 0 ? '+' : ''}${insn.off}`;
}

const ATOMIC: Record<number, string> = { 0x00: '+=', 0x40: '|=', 0x50: '&=', 0xa0: '^=' };

function stx(insn: Insn): string {
  const mode = insn.code & 0xe0;
  const size = sizeOf(insn.code);
  const ref = memRef(size, insn.dst, insn.off);
  if (mode === 0xc0) {
    const r = size === 'u64' ? 'r' : 'w';
    const fetch = (insn.imm & 1) !== 0;
    const op = insn.imm & ~1;
    if (op in ATOMIC) {
      return fetch ? `${r}${insn.src} = atomic${size === 'u64' ? '64' : ''}_fetch_${ATOMIC[op]}(${ref}, ${r}${insn.src})` : `lock ${ref} ${ATOMIC[op]} ${r}${insn.src}`;
    }
    if (insn.imm === 0xe1) return `${r}${insn.src} = atomic${size === 'u64' ? '64' : ''}_xchg(${ref}, ${r}${insn.src})`;
    if (insn.imm === 0xf1) return `r0 = atomic${size === 'u64' ? '64' : ''}_cmpxchg(${ref}, r0, ${r}${insn.src})`;
    if (insn.imm === 0x100) return `${r}${insn.src} = load_acquire(${ref})`;
    if (insn.imm === 0x110) return `store_release(${ref}, ${r}${insn.src})`;
    return `atomic op ${hex(insn.imm)} on ${ref}`;
  }
  return `${ref} = r${insn.src}`;
}

/** One line per instruction slot that starts an instruction; ld_imm64 consumes two slots. */
export function disassemble(insns: Buffer, ctx: DisasmContext = {}): string[] {
  const out: string[] = [];
  const n = insns.length / INSN_SIZE;
  for (let pc = 0; pc < n; pc++) {
    const insn = readInsn(insns, pc);
    const cls = insn.code & 7;
    let text: string;
    if (insn.code === LD_IMM64 && pc + 1 < n) {
      const hi = readInsn(insns, pc + 1);
      text = ldImm64(insn, hi, pc, ctx);
      out.push(`${String(pc).padStart(5)}: ${text}`);
      pc++;
      continue;
    }
    switch (cls) {
      case CLS.ALU64: text = alu(insn, true); break;
      case CLS.ALU: text = alu(insn, false); break;
      case CLS.JMP: text = jmp(insn, pc, false, ctx); break;
      case CLS.JMP32: text = jmp(insn, pc, true, ctx); break;
      case CLS.LDX: {
        const sx = (insn.code & 0xe0) === 0x80;
        text = `r${insn.dst} = ${memRef(sizeOf(insn.code, sx), insn.src, insn.off)}`;
        break;
      }
      case CLS.ST: text = `${memRef(sizeOf(insn.code), insn.dst, insn.off)} = ${insn.imm}`; break;
      case CLS.STX: text = stx(insn); break;
      default: text = `(${insn.code.toString(16).padStart(2, '0')}) legacy/unknown opcode`;
    }
    out.push(`${String(pc).padStart(5)}: ${text}`);
  }
  return out;
}

function ldImm64(lo: Insn, hi: Insn, pc: number, ctx: DisasmContext): string {
  const d = `r${lo.dst}`;
  const name = (i: number) => ctx.mapName?.(i) ?? `idx:${i}`;
  switch (lo.src) {
    case PSEUDO.MAP_IDX: return `${d} = map[${name(lo.imm)}]`;
    case PSEUDO.MAP_IDX_VALUE: return `${d} = map[${name(lo.imm)}][0]+${hi.imm}`;
    case PSEUDO.MAP_FD: return `${d} = map[fd:${lo.imm}]`;
    case PSEUDO.MAP_VALUE: return `${d} = map[fd:${lo.imm}][0]+${hi.imm}`;
    case PSEUDO.FUNC: {
      const target = pc + lo.imm + 1;
      const fname = ctx.funcName?.(target);
      return `${d} = func pc${lo.imm >= 0 ? '+' : ''}${lo.imm}${fname ? ` <${fname}>` : ''}`;
    }
    case PSEUDO.BTF_ID: return `${d} = ksym ${ctx.fixupName?.(pc) ?? `btf_id:${lo.imm}`}`;
    default: {
      const fix = ctx.fixupName?.(pc);
      if (fix) return `${d} = ksym ${fix}`;
      const v = (BigInt(hi.imm >>> 0) << 32n) | BigInt(lo.imm >>> 0);
      return `${d} = ${hex(v)} ll`;
    }
  }
}
