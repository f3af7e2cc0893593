/**
 * Reading the first bpfseal log layout (format bpfseal-tlog/1), only to migrate it (migrate.ts):
 *
 *   entries      record*         record = u32 BE length || entry bytes || leaf hash (32 bytes)
 *   entries.idx  slot per entry  slot   = u64 BE end offset of the record in `entries`
 *                                         || u64 BE integrated time (Unix seconds)
 *   hashes       stored hashes (not read: migration recomputes every hash from the entries)
 *
 * Records beyond the checkpoint are appends that were never acknowledged; complete, correctly hashed
 * ones are carried over as pending records (the old leader would have committed them too).
 */
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { HASH_SIZE, leafHash } from './hash.js';
import { TLOG_CODES, TlogVerifyError } from './errors.js';
import { ChunkReader, LEGACY_FILES, ioError, preadUpTo } from './files.js';

const RECORD_OVERHEAD = 4 + HASH_SIZE;
const INDEX_SLOT = 16;
const MAX_OLD_ENTRY = 16 << 20;

export interface LegacyEntry {
  index: number;
  entry: Buffer;
  time: number;
}

function open(path: string): number {
  try {
    return openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (e) {
    throw ioError(path, 'open', e);
  }
}

/** The committed entries [0, size) of a first-layout log, each checked against its recorded leaf hash. */
export function* legacyEntries(dir: string, size: number): Generator<LegacyEntry> {
  const entriesFd = open(join(dir, LEGACY_FILES.entries));
  const indexFd = open(join(dir, LEGACY_FILES.index));
  const fail = (i: number, why: string) => new TlogVerifyError(TLOG_CODES.CORRUPT, `${dir}: old-layout entry ${i}: ${why}`, { file: dir });
  try {
    if (fstatSync(indexFd).size < size * INDEX_SLOT) throw fail(size - 1, `${LEGACY_FILES.index} is shorter than the checkpoint needs`);
    const index = new ChunkReader(indexFd, 0, size * INDEX_SLOT, LEGACY_FILES.index);
    const entries = new ChunkReader(entriesFd, 0, fstatSync(entriesFd).size, LEGACY_FILES.entries);
    let offset = 0;
    for (let i = 0; i < size; i++) {
      const slot = index.take(INDEX_SLOT);
      const end = Number(slot.readBigUInt64BE(0));
      const time = Number(slot.readBigUInt64BE(8));
      const length = entries.take(4).readUInt32BE(0);
      if (end - offset !== RECORD_OVERHEAD + length) throw fail(i, `record length ${length} disagrees with ${LEGACY_FILES.index}`);
      const entry = Buffer.from(entries.take(length));
      if (!leafHash(entry).equals(entries.take(HASH_SIZE))) throw fail(i, 'entry bytes do not hash to the leaf hash recorded beside them');
      offset = end;
      yield { index: i, entry, time };
    }
  } finally {
    closeSync(entriesFd);
    closeSync(indexFd);
  }
}

/** Complete, correctly hashed records after the first `size` (never acknowledged appends). */
export function legacyPending(dir: string, size: number): Buffer[] {
  const entriesFd = open(join(dir, LEGACY_FILES.entries));
  const indexFd = open(join(dir, LEGACY_FILES.index));
  try {
    const start = size === 0 ? 0 : Number(preadUpTo(indexFd, INDEX_SLOT, (size - 1) * INDEX_SLOT).readBigUInt64BE(0));
    const region = preadUpTo(entriesFd, Math.max(0, fstatSync(entriesFd).size - start), start);
    const out: Buffer[] = [];
    for (let pos = 0; pos + RECORD_OVERHEAD <= region.length; ) {
      const length = region.readUInt32BE(pos);
      if (length > MAX_OLD_ENTRY || pos + RECORD_OVERHEAD + length > region.length) break;
      const entry = region.subarray(pos + 4, pos + 4 + length);
      if (!leafHash(entry).equals(region.subarray(pos + 4 + length, pos + RECORD_OVERHEAD + length))) break;
      out.push(Buffer.from(entry));
      pos += RECORD_OVERHEAD + length;
    }
    return out;
  } finally {
    closeSync(entriesFd);
    closeSync(indexFd);
  }
}
