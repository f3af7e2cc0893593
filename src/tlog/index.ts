/** The transparency log module: Merkle math, on-disk log, signed checkpoints, Sigstore integration. */
export * from './merkle.js';
export { TlogVerifyError, TLOG_CODES } from './errors.js';
export { openLog, defaultLogDir, TransparencyLog, type OpenOptions, type AppendResult, type AppendManyResult, type InclusionProof, type ConsistencyProof, type VerifyAllResult } from './store.js';
export { parseSignedNote, verifyNote, signNoteEcdsa, ecdsaNoteVerifier, ecdsaKeyId, parseCheckpoint, formatCheckpoint, openSignedCheckpoint, type Checkpoint, type SignedCheckpoint, type NoteVerifier } from './note.js';
export { LocalLogWitness, tlogEntry, trustedRootTlog, checkEntryAgainstLog, canonicalJson, dsseEntryBody, type TrustedRootTlog, type CheckedEntry, type SerializedTlogEntry, type TlogEntryOptions } from './rekor.js';
export { MAX_ENTRY_BYTES, MAX_BATCH_BYTES } from './records.js';
