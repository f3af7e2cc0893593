/**
 * The `pending` file: appends that no checkpoint covers yet (README.md, "Appends, locks and crashes").
 *
 *   record = u64 BE index || u32 BE length || entry bytes || leaf hash (32 bytes)
 *
 * Records are consecutive: each carries the index it will have in the tree, one more than the record
 * before it. The trailing leaf hash (RFC 6962 §2.1) makes each self-checking, so a record cut short by
 * a crash, or garbage left by a power loss, ends the valid part of the file. Records whose index the
 * checkpoint already covers are committed (they are in the tiles) and are skipped; the file is emptied
 * or compacted by the leader after a commit.
 */
import { at } from '../errors.js';
import { HASH_SIZE, leafHash, type Hash } from './hash.js';
import { MAX_BUNDLE_ENTRY } from './tiles/bundle.js';

/** Largest entry accepted: an entry bundle's uint16 length prefix (c2sp.org/tlog-tiles). */
export const MAX_ENTRY_BYTES = MAX_BUNDLE_ENTRY;
/** Largest appendMany batch (sum of entry bytes). */
export const MAX_BATCH_BYTES = 64 << 20;
export const PENDING_HEADER = 8 + 4;
export const PENDING_OVERHEAD = PENDING_HEADER + HASH_SIZE;

export function encodePending(first: number, entries: readonly Uint8Array[], leaves: readonly Hash[]): Buffer {
  let total = 0;
  for (const e of entries) total += PENDING_OVERHEAD + e.length;
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  entries.forEach((e, i) => {
    out.writeBigUInt64BE(BigInt(first + i), pos);
    out.writeUInt32BE(e.length, pos + 8);
    out.set(e, pos + PENDING_HEADER);
    at(leaves, i, 'leaf hash').copy(out, pos + PENDING_HEADER + e.length); // one leaf hash per entry
    pos += PENDING_OVERHEAD + e.length;
  });
  return out;
}

export interface PendingRecord {
  index: number;
  /** Offset of the record in the file. */
  offset: number;
  entry: Buffer;
  leaf: Hash;
}

/** Records this process wrote itself, from index `first`: their leaf hashes are known (no re-hashing). */
export interface OwnRecords {
  first: number;
  leaves: readonly Hash[];
}

export interface PendingScan {
  /** Uncommitted records (index >= the checkpoint size), in order. */
  records: PendingRecord[];
  /** File offset just past the last good record: everything after it is a torn tail. */
  validEnd: number;
  /** Offset of the first uncommitted record (= validEnd when there is none). */
  uncommittedStart: number;
  /** Index the next appended record gets. */
  nextIndex: number;
  /** Index of the last valid record in the file (-1 when there is none). */
  lastIndex: number;
}

function ownLeaf(own: OwnRecords | undefined, index: number): Hash | undefined {
  if (!own || index < own.first || index >= own.first + own.leaves.length) return undefined;
  return own.leaves[index - own.first];
}

/**
 * Walk the records of the pending file (`data`, its whole content) against a checkpoint of `size`.
 * With `check`, every uncommitted record's bytes must hash to its leaf hash (records in `own` need only
 * carry the leaf hash this process wrote); without, only lengths and indexes must fit. Stops at the
 * first record that fails, at an index gap, or when the first record starts beyond `size`.
 */
export function scanPending(data: Buffer, size: number, check: boolean, own?: OwnRecords): PendingScan {
  const records: PendingRecord[] = [];
  let pos = 0;
  let expected = -1;
  let uncommittedStart = -1;
  while (pos + PENDING_OVERHEAD <= data.length) {
    const index = Number(data.readBigUInt64BE(pos));
    const length = data.readUInt32BE(pos + 8);
    if (length > MAX_ENTRY_BYTES || pos + PENDING_OVERHEAD + length > data.length) break;
    if (expected < 0 ? index > size : index !== expected) break;
    const entry = data.subarray(pos + PENDING_HEADER, pos + PENDING_HEADER + length);
    const leaf = data.subarray(pos + PENDING_HEADER + length, pos + PENDING_OVERHEAD + length);
    if (index >= size) {
      if (check && !ownLeaf(own, index)?.equals(leaf) && !leafHash(entry).equals(leaf)) break;
      if (uncommittedStart < 0) uncommittedStart = pos;
      records.push({ index, offset: pos, entry, leaf });
    }
    expected = index + 1;
    pos += PENDING_OVERHEAD + length;
  }
  return { records, validEnd: pos, uncommittedStart: uncommittedStart < 0 ? pos : uncommittedStart, nextIndex: Math.max(size, expected), lastIndex: expected - 1 };
}
