/**
 * Kernel program tag (bpf_prog_calc_tag in kernel/bpf/core.c): the first 8 bytes of SHA-256 over the
 * instructions as loaded, with the immediates of ld_imm64 map-fd/map-value pairs zeroed. The IDX forms
 * (src_reg 5/6) carry stable indices, so the tag of an FD-index-stable program is predictable offline.
 * Programs with instruction fix-ups or kernel-side CO-RE are not predicted: the host changes their bytes.
 */
import { createHash } from 'node:crypto';
import { INSN_SIZE, LD_IMM64, PSEUDO } from '../bpf/insn.js';
import type { PlanProgram } from './types.js';

/** `insnSha256` (hex SHA-256 of `insns`), when the caller has it, saves hashing the bytes again. */
export function computeTag(insns: Buffer, insnSha256?: string): string {
  // Plans never hold fd-based references (src_reg 1/2), so usually there is nothing to zero and no copy.
  if (!hasFdReference(insns)) return (insnSha256 ?? createHash('sha256').update(insns).digest('hex')).slice(0, 16);
  const copy = Buffer.from(insns);
  const n = copy.length / INSN_SIZE;
  for (let i = 0; i < n; i++) {
    const o = i * INSN_SIZE;
    const code = copy.readUInt8(o);
    const src = copy.readUInt8(o + 1) >> 4;
    if (code === LD_IMM64 && (src === PSEUDO.MAP_FD || src === PSEUDO.MAP_VALUE) && i + 1 < n) {
      copy.writeInt32LE(0, o + 4);
      copy.writeInt32LE(0, o + 12);
      i++;
    } else if (code === LD_IMM64) {
      i++;
    }
  }
  return createHash('sha256').update(copy).digest('hex').slice(0, 16);
}

function hasFdReference(insns: Buffer): boolean {
  for (let o = 0; o + 8 < insns.length; o += 8) {
    if (insns[o] !== LD_IMM64) continue;
    const src = insns.readUInt8(o + 1) >> 4;
    if (src === PSEUDO.MAP_FD || src === PSEUDO.MAP_VALUE) return true;
    o += 8;
  }
  return false;
}

/** The tag the kernel will report for this program, or null when host fix-ups make it unpredictable. */
export function predictTag(p: PlanProgram, insnSha256?: string): string | null {
  if (p.fixups.length > 0 || p.coreRelos.data.length > 0) return null;
  return computeTag(p.insns, insnSha256);
}
