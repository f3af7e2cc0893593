/**
 * Entry bundles (c2sp.org/tlog-tiles, "Log entries"): "sequences of big-endian uint16 length-prefixed
 * log entries. Each entry in a bundle hashes to the corresponding entry in the corresponding level 0
 * Merkle Tree tile." So an entry is at most 65,535 bytes, and a full bundle holds 256 of them.
 */
import { InputError, TLOG_CODES, TlogVerifyError } from '../errors.js';

/** Largest entry a bundle can carry (uint16 length prefix). */
export const MAX_BUNDLE_ENTRY = 0xffff;
/** Largest bundle: 256 entries of the largest size. */
export const MAX_BUNDLE_BYTES = 256 * (2 + MAX_BUNDLE_ENTRY);

export function encodeBundle(entries: readonly Uint8Array[]): Buffer {
  let total = 0;
  for (const e of entries) total += 2 + e.length;
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const e of entries) {
    if (e.length > MAX_BUNDLE_ENTRY) throw new InputError(TLOG_CODES.ENTRY_TOO_LARGE, `entry of ${e.length} bytes does not fit an entry bundle (max ${MAX_BUNDLE_ENTRY})`);
    out.writeUInt16BE(e.length, pos);
    out.set(e, pos + 2);
    pos += 2 + e.length;
  }
  return out;
}

/** The entries of a bundle that must hold exactly `count` of them; `name` is for messages. */
export function decodeBundle(data: Buffer, count: number, name: string): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < data.length) {
    if (pos + 2 > data.length) break;
    const length = data.readUInt16BE(pos);
    if (pos + 2 + length > data.length) break;
    out.push(data.subarray(pos + 2, pos + 2 + length));
    pos += 2 + length;
  }
  if (pos !== data.length || out.length !== count) {
    throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${name}: not an entry bundle of ${count} entries (${out.length} entries, ${data.length - pos} bytes left over)`);
  }
  return out;
}
