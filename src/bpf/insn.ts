/**
 * BPF instructions (Documentation/bpf/standardization/instruction-set.rst; struct bpf_insn in
 * include/uapi/linux/bpf.h): 8 bytes, code u8, dst_reg:4 | src_reg:4 (little-endian bit order),
 * off s16, imm s32. ld_imm64 (code 0x18) takes two slots; the second holds the upper 32 bits in imm.
 */
export const INSN_SIZE = 8;

export const CLS = { LD: 0, LDX: 1, ST: 2, STX: 3, ALU: 4, JMP: 5, JMP32: 6, ALU64: 7 } as const;
export const LD_IMM64 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
export const CALL = 0x85; // BPF_JMP | BPF_CALL
export const EXIT = 0x95; // BPF_JMP | BPF_EXIT

/** src_reg values of ld_imm64 (uapi: BPF_PSEUDO_*). */
export const PSEUDO = {
  MAP_FD: 1,
  MAP_VALUE: 2,
  BTF_ID: 3,
  FUNC: 4,
  MAP_IDX: 5,
  MAP_IDX_VALUE: 6,
} as const;
/** src_reg values of call: 0 helper, 1 bpf-to-bpf, 2 kfunc. */
export const PSEUDO_CALL = 1;
export const PSEUDO_KFUNC_CALL = 2;

export interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

export function readInsn(buf: Buffer, i: number): Insn {
  const o = i * INSN_SIZE;
  // code, regs and off in one bounds-checked read (a slot past the end is a RangeError, never undefined
  // fields): byte 0 the opcode, byte 1 dst (low nibble) and src (high), bytes 2-3 off (signed: >> 16).
  const lo = buf.readInt32LE(o);
  return { code: lo & 0xff, dst: (lo >> 8) & 0xf, src: (lo >> 12) & 0xf, off: lo >> 16, imm: buf.readInt32LE(o + 4) };
}
