/**
 * Full audit of a log directory: read `entries`, `entries.idx` and `hashes` front to back in fixed-size
 * chunks (memory stays bounded by the chunk size plus one log2(n) stack), recompute every leaf hash
 * and every stored interior hash (RFC 6962 §2.1), and compare each with what is stored; finally the
 * recomputed root must equal the signed checkpoint's root.
 */
import { TLOG_CODES, TlogVerifyError } from './errors.js';
import { ChunkReader, FILES } from './files.js';
import { HASH_SIZE, leafHash, nodeHash, type Hash } from './hash.js';
import { foldStack, storedHashCount } from './merkle.js';
import type { SignedCheckpoint } from './note.js';
import { INDEX_SLOT, RECORD_OVERHEAD, decodeIndexSlot } from './records.js';
import type { LogStorage } from './storage.js';

export interface VerifyAllResult {
  size: number;
  rootHash: Hash;
  /** Bytes of committed records in `entries`. */
  entriesBytes: number;
  /** Bytes beyond the checkpoint (records not yet committed, or a torn tail): ignored. */
  pendingBytes: number;
}

export function verifyLogFiles(storage: LogStorage, c: SignedCheckpoint): VerifyAllResult {
  const n = c.size;
  const fail = (i: number, why: string) => new TlogVerifyError(TLOG_CODES.CORRUPT, `${storage.dir}: entry ${i}: ${why}`, { file: storage.dir });
  const entriesEnd = storage.endOf(n);
  const entries = new ChunkReader(storage.entriesFd, 0, entriesEnd, FILES.entries);
  const index = new ChunkReader(storage.indexFd, 0, n * INDEX_SLOT, FILES.index);
  const hashes = new ChunkReader(storage.hashesFd, 0, storedHashCount(n) * HASH_SIZE, FILES.hashes);
  const stack: Hash[] = [];
  let offset = 0;
  for (let i = 0; i < n; i++) {
    const slot = decodeIndexSlot(index.take(INDEX_SLOT));
    const length = entries.take(4).readUInt32BE(0);
    if (slot.end - offset !== RECORD_OVERHEAD + length) throw fail(i, `record length ${length} disagrees with ${FILES.index} (ends at ${slot.end}, starts at ${offset})`);
    const leaf = leafHash(entries.take(length));
    if (!leaf.equals(entries.take(HASH_SIZE))) throw fail(i, `entry bytes do not hash to the leaf hash recorded beside them`);
    if (!leaf.equals(hashes.take(HASH_SIZE))) throw fail(i, `stored leaf hash differs from the entry's hash`);
    stack.push(leaf);
    // Record i completes one subtree per trailing 1 bit; their roots follow its leaf in `hashes`.
    for (let k = i; k % 2 === 1; k = Math.floor(k / 2)) {
      const right = stack.pop()!;
      const node = nodeHash(stack.pop()!, right);
      if (!node.equals(hashes.take(HASH_SIZE))) throw fail(i, `stored interior hash differs from the recomputed one`);
      stack.push(node);
    }
    offset = slot.end;
  }
  const rootHash = foldStack(stack);
  if (!rootHash.equals(c.rootHash)) {
    throw new TlogVerifyError(TLOG_CODES.CORRUPT, `${storage.dir}: recomputed root ${rootHash.toString('base64')} is not the checkpoint's ${c.rootHash.toString('base64')} (size ${n})`, { file: storage.dir });
  }
  return { size: n, rootHash, entriesBytes: entriesEnd, pendingBytes: storage.fileSize(storage.entriesFd) - entriesEnd };
}
