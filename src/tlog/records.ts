/**
 * Byte formats of the entries file and its index (README.md, "Storage layout").
 *
 *   entries      record*         record = u32 BE length || entry bytes || leaf hash (32 bytes)
 *   entries.idx  slot per entry  slot   = u64 BE end offset of the record in `entries`
 *                                         || u64 BE integrated time (Unix seconds, set at commit)
 *
 * The trailing leaf hash (RFC 6962 §2.1, SHA-256(0x00 || entry)) makes every record self-checking:
 * a record cut short by a crash, or garbage left by a power loss, is recognised and cut off.
 */
import { HASH_SIZE, leafHash, type Hash } from './hash.js';

/** Largest entry accepted (bytes). */
export const MAX_ENTRY_BYTES = 16 << 20;
/** Largest appendMany batch (sum of entry bytes). */
export const MAX_BATCH_BYTES = 64 << 20;
export const RECORD_OVERHEAD = 4 + HASH_SIZE;
export const INDEX_SLOT = 16;

export function encodeRecords(entries: readonly Uint8Array[], leaves: readonly Hash[]): Buffer {
  let total = 0;
  for (const e of entries) total += RECORD_OVERHEAD + e.length;
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  entries.forEach((e, i) => {
    out.writeUInt32BE(e.length, pos);
    out.set(e, pos + 4);
    leaves[i].copy(out, pos + 4 + e.length);
    pos += RECORD_OVERHEAD + e.length;
  });
  return out;
}

export interface ScannedRecord {
  /** Offset of the record in the entries file. */
  offset: number;
  /** Length of the entry bytes. */
  length: number;
  leaf: Hash;
}

/** Records this process wrote itself: at `offset`, their leaf hashes are known (no re-hashing). */
export interface OwnRecords {
  offset: number;
  leaves: readonly Hash[];
}

export interface Scan {
  records: ScannedRecord[];
  /** File offset just past the last good record: everything after it is a torn tail. */
  validEnd: number;
}

/**
 * Walk the records in `region` (read from file offset `base`). With `check`, every record's entry
 * bytes must hash to its trailing leaf hash (records in `own` need only carry the leaf hash this
 * process wrote); without, only the lengths must fit. Stops at the first record that fails.
 */
export function scanRecords(region: Buffer, base: number, check: boolean, own?: OwnRecords): Scan {
  const records: ScannedRecord[] = [];
  let pos = 0;
  let ownNext = -1; // index into own.leaves while inside our own records
  while (pos + RECORD_OVERHEAD <= region.length) {
    const length = region.readUInt32BE(pos);
    if (length > MAX_ENTRY_BYTES || pos + RECORD_OVERHEAD + length > region.length) break;
    const leaf = region.subarray(pos + 4 + length, pos + RECORD_OVERHEAD + length);
    if (own && base + pos === own.offset) ownNext = 0;
    if (check) {
      const expected = own && ownNext >= 0 && ownNext < own.leaves.length ? own.leaves[ownNext] : undefined;
      let ok = expected !== undefined && expected.equals(leaf);
      if (!ok) {
        ownNext = -1; // not (or no longer) our bytes: hash them like anyone else's
        ok = leafHash(region.subarray(pos + 4, pos + 4 + length)).equals(leaf);
      }
      if (!ok) break;
    }
    if (ownNext >= 0) ownNext++;
    records.push({ offset: base + pos, length, leaf: Buffer.from(leaf) });
    pos += RECORD_OVERHEAD + length;
  }
  return { records, validEnd: base + pos };
}

/** Split one record read from the entries file into its entry bytes and stored leaf hash. */
export function decodeRecord(b: Buffer): { entry: Buffer; leaf: Buffer } | undefined {
  if (b.length < RECORD_OVERHEAD) return undefined;
  const length = b.readUInt32BE(0);
  if (length + RECORD_OVERHEAD !== b.length) return undefined;
  return { entry: b.subarray(4, 4 + length), leaf: b.subarray(4 + length) };
}

export function encodeIndexSlots(ends: readonly number[], time: number): Buffer {
  const out = Buffer.allocUnsafe(ends.length * INDEX_SLOT);
  ends.forEach((end, i) => {
    out.writeBigUInt64BE(BigInt(end), i * INDEX_SLOT);
    out.writeBigUInt64BE(BigInt(time), i * INDEX_SLOT + 8);
  });
  return out;
}

export function decodeIndexSlot(b: Buffer, at = 0): { end: number; time: number } {
  return { end: Number(b.readBigUInt64BE(at)), time: Number(b.readBigUInt64BE(at + 8)) };
}
