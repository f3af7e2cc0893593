/**
 * Creating a log directory (key pairs, log.json, the empty tree's checkpoint, tile/) and signing
 * checkpoints with the log's keys. Used by store.ts (openLog) and the commit path.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { TLOG_CODES } from './errors.js';
import { FILES } from './files.js';
import { fsyncDir, writeFileDurable } from '../fsx/durable.js';
import { checkPrivateDir, ensureDirectory } from '../fsx/dirs.js';
import { FileLock } from '../fsx/lock.js';
import { EMPTY_ROOT } from './hash.js';
import { ensureIdentity, readConfig, readLogVkey, readNoteSigner, readPrivateKey, readPublicKey, type LogPublicKey } from './keys.js';
import { ed25519SignatureLine, parseVerifierKey } from './note-keys.js';
import { formatCheckpoint, signNoteEcdsa } from './note.js';

/**
 * Signs checkpoint text for the log in `dir`: ECDSA (for Sigstore verifiers) and, when the log has an
 * Ed25519 note key, Ed25519 as well (tlog-tiles clients, witnesses). Keys are read on first use.
 */
export function checkpointSigner(dir: string, origin: string, pub: LogPublicKey, ecdsaKey: () => KeyObject): (text: string) => string {
  const vkey = readLogVkey(dir);
  const edKeyId = vkey ? parseVerifierKey(vkey).keyId : undefined;
  let ed: KeyObject | undefined;
  return (text) => {
    const note = signNoteEcdsa(text, origin, ecdsaKey(), pub.keyId);
    if (!vkey) return note;
    ed ??= readNoteSigner(dir, origin, vkey).privateKey;
    return note + ed25519SignatureLine(text, origin, ed, edKeyId);
  };
}

export function initialise(dir: string, origin: string | undefined): void {
  ensureDirectory(dir, 0o755, TLOG_CODES.IO);
  checkPrivateDir(dir, 'the log directory', TLOG_CODES.UNSAFE);
  const lock = new FileLock(join(dir, FILES.commitLock), `the log ${dir}`);
  try {
    lock.hold(() => create(dir, origin));
  } finally {
    lock.close();
  }
}

/** Under the commit lock: keys, configuration, tile/, and the empty tree's checkpoint. */
function create(dir: string, origin: string | undefined): void {
  ensureIdentity(dir, origin);
  ensureDirectory(join(dir, FILES.tiles), 0o755, TLOG_CODES.IO);
  fsyncDir(dir);
  if (existsSync(join(dir, FILES.checkpoint))) return;
  // The empty tree: size 0, root MTH({}) = SHA-256() (RFC 6962 §2.1); it has no tiles.
  const pub = readPublicKey(dir);
  const config = readConfig(dir);
  const sign = checkpointSigner(dir, config.origin, pub, () => readPrivateKey(dir, pub));
  const note = sign(formatCheckpoint({ origin: config.origin, size: 0, rootHash: EMPTY_ROOT }));
  writeFileDurable(join(dir, FILES.checkpoint), note, 0o644, TLOG_CODES.IO);
}
