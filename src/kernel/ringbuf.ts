/**
 * Reading a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) from user space, as libbpf's src/ringbuf.c does,
 * after the layout of kernel/bpf/ringbuf.c: the map fd is mmap'ed as one writable page holding
 * consumer_pos (u64 at 0) and, from offset page_size, a read-only page holding producer_pos (u64 at
 * 0) followed by the data area mapped twice, so that a record wrapping around the end is contiguous.
 * A record is an 8-byte header (u32 len carrying BPF_RINGBUF_BUSY_BIT 1<<31 and
 * BPF_RINGBUF_DISCARD_BIT 1<<30, u32 pg_off) and len bytes, padded to 8. Records become visible in
 * order; a busy header (reserved, not yet submitted) ends a read.
 *
 * read() copies the committed samples without consuming them; consume() then moves consumer_pos past
 * them, so a caller can make the samples durable first (at-least-once). Each sample comes with its
 * position (the consumer position at its header): positions only grow over the buffer's lifetime, so
 * they tell a sample already seen from a new one.
 */
import { ERRNO, KernelError } from './errors.js';
import type { Fd } from './fd.js';
import { libc, PROT, type Mapping } from '../sys/libc.js';

const BUSY = 0x8000_0000;
const DISCARD = 0x4000_0000;
const HDR = 8;

export interface Sample {
  pos: bigint;
  data: Buffer;
}

export class RingBufferReader {
  private pending = -1n;

  private constructor(private readonly consumer: Mapping, private readonly producer: Mapping, private readonly pageSize: number, private readonly size: number) {}

  /** Map `map` (a ring buffer of `size` data bytes: its max_entries, a power of two). */
  static open(map: Fd, size: number): RingBufferReader {
    const c = libc();
    const page = c.pageSize();
    if (size <= 0 || (size & (size - 1)) !== 0) throw new KernelError('mmap', ERRNO.EINVAL, `ring buffer size ${size} is not a power of two`);
    const consumer = c.mmap(page, PROT.read | PROT.write, map.value, 0);
    if (!consumer) throw new KernelError('mmap', c.errno(), `cannot map the ring buffer's consumer page (errno ${c.errno()})`);
    const producer = c.mmap(page + 2 * size, PROT.read, map.value, page);
    if (!producer) {
      const errno = c.errno();
      consumer.unmap();
      throw new KernelError('mmap', errno, `cannot map the ring buffer's data (errno ${errno})`);
    }
    return new RingBufferReader(consumer, producer, page, size);
  }

  private u64(m: Mapping, off: number): bigint {
    return new DataView(m.bytes.buffer, m.bytes.byteOffset).getBigUint64(off, true);
  }

  /** Copies of the submitted samples after consumer_pos, at most `max` of them. */
  read(max = Number.MAX_SAFE_INTEGER): Sample[] {
    let cons = this.u64(this.consumer, 0);
    const prod = this.u64(this.producer, 0);
    const data = this.producer.bytes;
    const mask = BigInt(this.size - 1);
    const out: Sample[] = [];
    while (cons < prod && out.length < max) {
      const at = this.pageSize + Number(cons & mask);
      const hdr = new DataView(data.buffer, data.byteOffset + at, HDR).getUint32(0, true);
      if (hdr & BUSY) break;
      const len = hdr & 0x3fff_ffff; // without BUSY and DISCARD
      if (len > this.size) throw new KernelError('ringbuf', ERRNO.EIO, `ring buffer record of ${len} bytes in a ${this.size}-byte buffer`);
      if (!(hdr & DISCARD)) out.push({ pos: cons, data: Buffer.from(data.subarray(at + HDR, at + HDR + len)) });
      cons += BigInt((len + HDR + 7) & ~7);
    }
    this.pending = cons;
    return out;
  }

  /** Consume what the last read() returned (consumer_pos, written as libbpf does with a release store). */
  consume(): void {
    if (this.pending < 0n) return;
    new DataView(this.consumer.bytes.buffer, this.consumer.bytes.byteOffset).setBigUint64(0, this.pending, true);
    this.pending = -1n;
  }

  close(): void {
    this.producer.unmap();
    this.consumer.unmap();
  }
}
