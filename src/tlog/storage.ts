/**
 * Reading the on-disk log: the three data files as open descriptors, the stored hashes as a HashReader
 * (merkle.ts), entries by index, and the checkpoint file. Everything below the checkpoint's tree size
 * is immutable once committed, so readers need no lock: they read the checkpoint (replaced atomically)
 * and then only bytes that checkpoint covers.
 */
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { readInput } from '../fsx/read.js';
import { join } from 'node:path';
import { HASH_SIZE, leafHash, type Hash } from './hash.js';
import { TLOG_CODES, TlogVerifyError } from './errors.js';
import { ChunkReader, FILES, ioError, preadUpTo } from './files.js';
import { storedHashIndex, type HashReader } from './merkle.js';
import { parseCheckpoint, parseSignedNote, type SignedCheckpoint } from './note.js';
import { INDEX_SLOT, RECORD_OVERHEAD, decodeIndexSlot, decodeRecord } from './records.js';

const { O_RDWR, O_RDONLY, O_NOFOLLOW } = constants;

/** The data files are never opened through a symlink. */
function openData(path: string): number {
  try {
    return openSync(path, O_RDWR | O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM') {
      try {
        return openSync(path, O_RDONLY | O_NOFOLLOW); // read-only log: proofs and verification still work
      } catch (e2) {
        throw ioError(path, 'open', e2);
      }
    }
    throw ioError(path, 'open', e);
  }
}

export class LogStorage implements HashReader {
  readonly entriesFd: number;
  readonly indexFd: number;
  readonly hashesFd: number;

  constructor(readonly dir: string) {
    this.entriesFd = openData(join(dir, FILES.entries));
    this.indexFd = openData(join(dir, FILES.index));
    this.hashesFd = openData(join(dir, FILES.hashes));
  }

  close(): void {
    for (const fd of [this.entriesFd, this.indexFd, this.hashesFd]) closeSync(fd);
  }

  corrupt(what: string): TlogVerifyError {
    return new TlogVerifyError(TLOG_CODES.CORRUPT, `${this.dir}: ${what}`, { file: this.dir });
  }

  readHashes(indexes: readonly number[]): Hash[] {
    return indexes.map((i) => {
      const h = preadUpTo(this.hashesFd, HASH_SIZE, i * HASH_SIZE);
      if (h.length !== HASH_SIZE) throw this.corrupt(`stored hash ${i} is missing (${FILES.hashes} is truncated)`);
      return h;
    });
  }

  /** The leaf hash stored for entry i. */
  leafHash(i: number): Hash {
    return this.readHashes([storedHashIndex(0, i)])[0];
  }

  /** End offset of entry i's record in the entries file, and its integrated time. */
  slot(i: number): { end: number; time: number } {
    const b = preadUpTo(this.indexFd, INDEX_SLOT, i * INDEX_SLOT);
    if (b.length !== INDEX_SLOT) throw this.corrupt(`index slot ${i} is missing (${FILES.index} is truncated)`);
    return decodeIndexSlot(b);
  }

  /** Offset in the entries file where the record of entry n starts (= where the first n end). */
  endOf(n: number): number {
    return n === 0 ? 0 : this.slot(n - 1).end;
  }

  /** Entry i's bytes and the leaf hash recorded beside them. */
  record(i: number): { entry: Buffer; leaf: Buffer } {
    const start = this.endOf(i);
    const end = this.slot(i).end;
    const rec = end > start ? decodeRecord(preadUpTo(this.entriesFd, end - start, start)) : undefined;
    if (!rec) throw this.corrupt(`record ${i} at bytes ${start}..${end} of ${FILES.entries} is damaged`);
    return rec;
  }

  fileSize(fd: number): number {
    return fstatSync(fd).size;
  }

  checkpointText(): string {
    return readInput(join(this.dir, FILES.checkpoint), { kind: 'checkpoint', noFollow: true }).toString('utf8');
  }

  /**
   * The checkpoint as this log wrote it, parsed but with the signature unchecked: the hot append path
   * trusts its own file (written under the commit lock); openLog, checkpoint() and verifyAll verify it.
   */
  checkpointUnverified(): SignedCheckpoint {
    const note = this.checkpointText();
    return { ...parseCheckpoint(parseSignedNote(note).text), note };
  }

  /**
   * Entries [from, to) read front to back in chunks (bounded memory); each entry's bytes must hash to
   * the leaf hash recorded beside them.
   */
  *entries(from: number, to: number): Generator<{ index: number; entry: Buffer; leafHash: Hash }> {
    if (from >= to) return;
    const reader = new ChunkReader(this.entriesFd, this.endOf(from), this.endOf(to), FILES.entries);
    for (let index = from; index < to; index++) {
      const length = reader.take(4).readUInt32BE(0);
      const entry = Buffer.from(reader.take(length)); // a copy: the reader's buffer is reused
      const leaf = leafHash(entry);
      if (!leaf.equals(reader.take(RECORD_OVERHEAD - 4))) throw this.corrupt(`entry ${index}: bytes do not hash to the recorded leaf hash`);
      yield { index, entry, leafHash: leaf };
    }
  }
}
