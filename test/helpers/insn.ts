/** An independent BPF instruction decoder for the tests (struct bpf_insn, little-endian). */
export interface TInsn { pc: number; code: number; dst: number; src: number; off: number; imm: number; /** ld_imm64 second half's imm */ imm2?: number }

export const OP = { LD_IMM64: 0x18, CALL: 0x85, EXIT: 0x95 } as const;

/** One entry per instruction; ld_imm64 consumes two slots (its second slot is not listed). */
export function decodeInsns(b: Buffer): TInsn[] {
  if (b.length % 8) throw new Error(`instruction bytes ${b.length} not a multiple of 8`);
  const out: TInsn[] = [];
  for (let pc = 0; pc < b.length / 8; pc++) {
    const o = pc * 8;
    const i: TInsn = { pc, code: b[o], dst: b[o + 1] & 0xf, src: b[o + 1] >> 4, off: b.readInt16LE(o + 2), imm: b.readInt32LE(o + 4) };
    if (i.code === OP.LD_IMM64) {
      if (o + 16 > b.length) throw new Error(`ld_imm64 at ${pc} is missing its second half`);
      i.imm2 = b.readInt32LE(o + 12);
      pc++;
    }
    out.push(i);
  }
  return out;
}
