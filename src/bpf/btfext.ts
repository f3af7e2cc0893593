/**
 * .BTF.ext reader (Documentation/bpf/llvm_reloc.rst, libbpf's btf_ext_parse): a header followed by
 * func_info, line_info and (hdr_len >= 32) CO-RE relocation sections. Each section starts with a u32
 * record size, then per ELF section: {u32 sec_name_off, u32 num_info, records...}. The first u32 of every
 * record is insn_off, in bytes from the start of the ELF section.
 */
import { BtfError, type Btf } from './btf.js';

/** The records of one ELF section: contiguous bytes, and each record's insn_off (bytes) for lookup. */
export interface SectionRecords {
  data: Buffer;
  insnOffs: Uint32Array;
  /** insn_off ascending (clang's order), so a function's records are one contiguous run. */
  sorted: boolean;
}

export interface ExtRecords {
  recSize: number;
  bySection: Map<string, SectionRecords>;
}

export interface BtfExt {
  funcInfo: ExtRecords;
  lineInfo: ExtRecords;
  coreRelo: ExtRecords;
}

/** Minimum record sizes the kernel knows (bpf_func_info 8, bpf_line_info 16, bpf_core_relo 16). */
const MIN_REC = { func: 8, line: 16, core: 16 } as const;
const MAX_RECORDS = 1 << 24;

function parseInfo(raw: Buffer, start: number, len: number, minRec: number, what: string, btf: Btf): ExtRecords {
  const out: ExtRecords = { recSize: minRec, bySection: new Map() };
  if (len === 0) return out;
  if (len < 4 || start + len > raw.length) throw new BtfError(`.BTF.ext ${what} section [${start}, +${len}) is out of range`);
  const recSize = raw.readUInt32LE(start);
  if (recSize < minRec || recSize % 4 !== 0 || recSize > 256) throw new BtfError(`.BTF.ext ${what} record size ${recSize} is invalid`);
  out.recSize = recSize;
  let p = start + 4;
  const end = start + len;
  let total = 0;
  const blocks = new Map<string, Buffer[]>();
  while (p < end) {
    if (p + 8 > end) throw new BtfError(`.BTF.ext ${what}: truncated section header`);
    const name = btf.str(raw.readUInt32LE(p));
    const num = raw.readUInt32LE(p + 4);
    p += 8;
    total += num;
    if (num === 0 || total > MAX_RECORDS || p + num * recSize > end) {
      throw new BtfError(`.BTF.ext ${what}: section '${name}' claims ${num} records of ${recSize} bytes, beyond the data`);
    }
    const l = blocks.get(name) ?? [];
    l.push(raw.subarray(p, p + num * recSize));
    blocks.set(name, l);
    p += num * recSize;
  }
  for (const [name, l] of blocks) {
    const [only] = l;
    const data = l.length === 1 && only !== undefined ? only : Buffer.concat(l);
    const n = data.length / recSize;
    const insnOffs = new Uint32Array(n);
    let sorted = true;
    let prev = 0;
    for (let i = 0; i < n; i++) {
      const off = data.readUInt32LE(i * recSize);
      insnOffs[i] = off;
      if (i && off < prev) sorted = false;
      prev = off;
    }
    out.bySection.set(name, { data, insnOffs, sorted });
  }
  return out;
}

export function parseBtfExt(raw: Buffer, btf: Btf): BtfExt {
  if (raw.length < 24) throw new BtfError(`.BTF.ext is ${raw.length} bytes, shorter than its header`);
  if (raw.readUInt16LE(0) !== 0xeb9f) throw new BtfError('.BTF.ext magic is not 0xeb9f');
  const hdrLen = raw.readUInt32LE(4);
  if (hdrLen < 24 || hdrLen > raw.length) throw new BtfError(`.BTF.ext header length ${hdrLen} is out of range`);
  const at = (o: number) => hdrLen + raw.readUInt32LE(o);
  const funcInfo = parseInfo(raw, at(8), raw.readUInt32LE(12), MIN_REC.func, 'func_info', btf);
  const lineInfo = parseInfo(raw, at(16), raw.readUInt32LE(20), MIN_REC.line, 'line_info', btf);
  const coreRelo = hdrLen >= 32
    ? parseInfo(raw, at(24), raw.readUInt32LE(28), MIN_REC.core, 'core_relo', btf)
    : { recSize: MIN_REC.core, bySection: new Map<string, SectionRecords>() };
  return { funcInfo, lineInfo, coreRelo };
}
