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
  const regs = buf[o + 1];
  return { code: buf[o], dst: regs & 0xf, src: regs >> 4, off: buf.readInt16LE(o + 2), imm: buf.readInt32LE(o + 4) };
}

export function writeInsn(buf: Buffer, i: number, insn: Insn): void {
  const o = i * INSN_SIZE;
  buf[o] = insn.code;
  buf[o + 1] = (insn.dst & 0xf) | ((insn.src & 0xf) << 4);
  buf.writeInt16LE(insn.off, o + 2);
  buf.writeInt32LE(insn.imm | 0, o + 4);
}

export function setSrcReg(buf: Buffer, i: number, src: number): void {
  const o = i * INSN_SIZE + 1;
  buf[o] = (buf[o] & 0x0f) | ((src & 0xf) << 4);
}
export function setImm(buf: Buffer, i: number, imm: number): void {
  buf.writeInt32LE(imm | 0, i * INSN_SIZE + 4);
}
export function setOff(buf: Buffer, i: number, off: number): void {
  buf.writeInt16LE(off, i * INSN_SIZE + 2);
}
export function codeAt(buf: Buffer, i: number): number {
  return buf[i * INSN_SIZE];
}
export function srcRegAt(buf: Buffer, i: number): number {
  return buf[i * INSN_SIZE + 1] >> 4;
}
export function immAt(buf: Buffer, i: number): number {
  return buf.readInt32LE(i * INSN_SIZE + 4);
}
