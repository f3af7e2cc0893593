/**
 * The online check of `verify --log <url>`: a release carries its log entry with an inclusion proof
 * against the checkpoint of its day. Against the log as it is served now, each such entry must still
 * be there (the same body at the same index) and the release's checkpoint must be an ancestor of the
 * log's current one (a consistency proof). A log that showed the release's signer one history and
 * shows this host another is caught here: split view, or a rewrite since the release was made.
 */
import type { TransparencyLogEntry } from '@sigstore/bundle';
import { VerifyError } from '../errors.js';
import { leafHash } from './hash.js';
import type { LogReader } from './log-reader.js';
import { openSignedCheckpoint } from './note.js';
import { verifyConsistency } from './verify-proof.js';

export interface OnlineCheck {
  location: string;
  origin: string;
  /** The log's current tree size, and how many of the release's entries were checked against it. */
  size: number;
  checked: number;
}

export async function checkOnline(reader: LogReader, entries: readonly TransparencyLogEntry[]): Promise<OnlineCheck> {
  const now = await reader.checkpoint();
  let checked = 0;
  for (const e of entries) {
    const note = e.inclusionProof?.checkpoint?.envelope;
    if (!note || note.split('\n', 1)[0] !== reader.origin) continue; // another log's entry
    const then = openSignedCheckpoint(note, reader.verifiers, reader.origin);
    const index = Number(e.logIndex);
    if (then.size > now.size) {
      throw new VerifyError('LOG_SPLIT_VIEW', `${reader.location}: the release's checkpoint has ${then.size} entries, the log serves ${now.size}: it shrank, or showed the signer another history`);
    }
    try {
      verifyConsistency(then.size, now.size, then.rootHash, now.rootHash, (await reader.proveConsistency(then.size, now.size)).hashes);
    } catch (err) {
      throw new VerifyError('LOG_SPLIT_VIEW', `${reader.location}: the log's current tree (size ${now.size}) does not extend the release's checkpoint (size ${then.size}): a split view or a rewritten log (${(err as Error).message})`);
    }
    if (!leafHash(e.canonicalizedBody).equals(await reader.leafHash(index))) {
      throw new VerifyError('LOG_SPLIT_VIEW', `${reader.location}: entry ${index} of the log is not the release's entry`);
    }
    checked++;
  }
  return { location: reader.location, origin: reader.origin, size: now.size, checked };
}
