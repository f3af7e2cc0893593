/**
 * The loader's blob: one array-map value holding every attr, string, instruction array and initial
 * value the loader passes to bpf_sys_bpf, each at an 8-byte-aligned offset (as gen_loader's add_data),
 * so the value's size is a multiple of 8 and every u64 pointer field the loader writes is aligned.
 */
export class BlobBuilder {
  private readonly parts: Buffer[] = [];
  private size = 0;

  /** Append `data` (zero-padded to 8 bytes); returns its offset. */
  add(data: Buffer): number {
    const off = this.size;
    const padded = Math.ceil(data.length / 8) * 8 || 8;
    const b = Buffer.alloc(padded);
    data.copy(b);
    this.parts.push(b);
    this.size += padded;
    return off;
  }

  zeros(n: number): number {
    return this.add(Buffer.alloc(n));
  }

  /** A NUL-terminated string; `len` includes the NUL (what bpf_btf_find_by_name_kind and kallsyms take). */
  cstring(s: string): { off: number; len: number } {
    const bytes = Buffer.from(`${s}\0`, 'utf8');
    return { off: this.add(bytes), len: bytes.length };
  }

  finish(): Buffer {
    return Buffer.concat(this.parts, this.size);
  }
}
