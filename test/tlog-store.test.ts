/**
 * The on-disk log (src/tlog/store.ts): tiled layout (c2sp.org/tlog-tiles), keys, signed checkpoints,
 * proofs from tiles, full verification, tamper detection and torn-tail recovery, in one process.
 * Multi-process appends and crashes are in tlog-concurrency.test.ts.
 */
import { createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfsealError } from '../src/errors.js';
import { FILES } from '../src/tlog/files.js';
import { ensureIdentity } from '../src/tlog/keys.js';
import { leafHash, rootFromLeaves, verifyConsistency, verifyInclusion } from '../src/tlog/merkle.js';
import { ecdsaNoteVerifier, parseCheckpoint, parseSignedNote, signNoteEcdsa, verifyNote } from '../src/tlog/note.js';
import { noteVerifierFromVkey } from '../src/tlog/note-keys.js';
import { encodePending } from '../src/tlog/pending.js';
import { openLog, type TransparencyLog } from '../src/tlog/store.js';
import { cleanupTmpDirs, makeTmpDir } from './helpers/paths.js';

afterAll(cleanupTmpDirs);

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof BpfsealError) return `${e.kind}:${e.code}`;
    throw e;
  }
  return 'ok';
}

const entry = (i: number) => Buffer.from(JSON.stringify({ i, subjectDigest: `sha256:${createHash('sha256').update(String(i)).digest('hex')}` }));

async function logWith(n: number, dir = makeTmpDir('bpfseal-tlog-')): Promise<TransparencyLog> {
  const log = openLog(dir);
  for (let i = 0; i < n; i += 5) await log.appendMany(Array.from({ length: Math.min(5, n - i) }, (_, k) => entry(i + k)));
  return log;
}

/** A copy of a log directory, to damage. */
function copyLog(log: TransparencyLog): string {
  const d = makeTmpDir('bpfseal-tlog-copy-');
  cpSync(log.dir, d, { recursive: true });
  return d;
}

function flipByte(path: string, at: number): void {
  const b = readFileSync(path);
  b[at] ^= 0x01;
  writeFileSync(path, b);
}

describe('creating and opening', () => {
  it('creates key, configuration and an empty signed checkpoint on first use', () => {
    const dir = makeTmpDir('bpfseal-tlog-');
    const log = openLog(join(dir, 'attestations'));
    expect(log.size).toBe(0);
    expect(statSync(join(log.dir, FILES.privateKey)).mode & 0o777).toBe(0o600);
    expect(log.origin).toMatch(/^bpfseal\.local\/log\/[0-9a-f]{16}$/);
    const c = log.checkpoint();
    expect(c.rootHash.equals(createHash('sha256').digest())).toBe(true); // MTH({}) = SHA-256()
    const [ecdsaLine, edLine] = c.note.split('\n').slice(4, 6);
    expect(c.note).toBe(`${log.origin}\n0\n${c.rootHash.toString('base64')}\n\n${ecdsaLine}\n${edLine}\n`);
    // Signed-note key ID for ECDSA: SHA-256(DER SPKI)[:4], then a DER ECDSA signature over the text.
    const pub = createPublicKey(readFileSync(join(log.dir, FILES.publicKey), 'utf8'));
    const raw = Buffer.from(ecdsaLine.split(' ').pop()!, 'base64');
    expect(raw.subarray(0, 4).equals(createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest().subarray(0, 4))).toBe(true);
    expect(verify('sha256', Buffer.from(`${log.origin}\n0\n${c.rootHash.toString('base64')}\n`), pub, raw.subarray(4))).toBe(true);
    // And an Ed25519 signature (type 0x01) by the key in log.vkey, which tlog-tiles clients check.
    const vkey = readFileSync(join(log.dir, FILES.vkey), 'utf8').trim();
    expect(vkey).toMatch(new RegExp(`^${log.origin}\\+[0-9a-f]{8}\\+A[A-Za-z0-9+/]{43}=?$`));
    verifyNote(parseSignedNote(c.note), [noteVerifierFromVkey(vkey)]);
    expect(edLine.startsWith(`— ${log.origin} ${Buffer.from(vkey.split('+')[1], 'hex').toString('base64').slice(0, 5)}`)).toBe(true);
    expect(statSync(join(log.dir, FILES.noteKey)).mode & 0o777).toBe(0o600);
    log.close();
  });

  it('never replaces an existing key, and checks the origin', () => {
    const dir = makeTmpDir('bpfseal-tlog-');
    openLog(dir, { origin: 'example.com/log42' }).close();
    const key = readFileSync(join(dir, FILES.privateKey));
    ensureIdentity(dir, 'other.example/x');
    expect(readFileSync(join(dir, FILES.privateKey)).equals(key)).toBe(true);
    const log = openLog(dir);
    expect(log.origin).toBe('example.com/log42');
    log.close();
    expect(codeOf(() => openLog(dir, { origin: 'example.com/other' }))).toBe('input:TLOG_ORIGIN_MISMATCH');
    expect(codeOf(() => openLog(makeTmpDir(), { origin: 'has space' }))).toBe('input:TLOG_BAD_ARGUMENT');
    expect(codeOf(() => openLog(join(makeTmpDir(), 'none'), { create: false }))).toBe('input:TLOG_NOT_FOUND');
  });
});

describe('appending and proving', () => {
  it('assigns contiguous indexes and RFC 6962 leaf hashes', async () => {
    const log = await logWith(0);
    const a = await log.append(entry(0));
    expect(a.index).toBe(0);
    expect(a.leafHash.equals(createHash('sha256').update(Buffer.concat([Buffer.from([0]), entry(0)])).digest())).toBe(true);
    const b = await log.appendMany([entry(1), entry(2), entry(3)]);
    expect([b.first, b.count, b.checkpoint.size]).toEqual([1, 3, 4]);
    expect(log.entry(2).equals(entry(2))).toBe(true);
    expect((await log.appendMany([])).count).toBe(0);
    expect(codeOf(() => log.entry(4))).toBe('input:TLOG_INDEX_OUT_OF_RANGE');
    await expect(log.append(Buffer.alloc(0x10000))).rejects.toMatchObject({ code: 'TLOG_ENTRY_TOO_LARGE' });
    expect((await log.append(Buffer.alloc(0xffff, 1))).index).toBe(4); // the largest a bundle holds
    log.close();
  });

  it('proves inclusion for every (index, size) and consistency for every (m, n) up to 64', async () => {
    const N = 64;
    const log = await logWith(N);
    const leaves = Array.from({ length: N }, (_, i) => leafHash(entry(i)));
    const roots = Array.from({ length: N + 1 }, (_, n) => log.rootHash(n));
    roots.forEach((r, n) => expect(r.equals(rootFromLeaves(leaves.slice(0, n)))).toBe(true));
    for (let n = 1; n <= N; n++) {
      for (let i = 0; i < n; i++) {
        const p = log.proveInclusion(i, n);
        expect(p.leafHash.equals(leaves[i])).toBe(true);
        verifyInclusion(leaves[i], i, n, p.hashes, roots[n]);
      }
      for (let m = 0; m <= n; m++) verifyConsistency(m, n, roots[m], roots[n], log.proveConsistency(m, n).hashes);
    }
    expect(log.checkpoint().rootHash.equals(roots[N])).toBe(true);
    expect([...log.entries()].map((e) => e.entry.toString())).toEqual(Array.from({ length: N }, (_, i) => entry(i).toString()));
    log.close();
  });

  it('batches concurrent appends of one process into few commits', async () => {
    const log = await logWith(0);
    const other = openLog(log.dir);
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? other : log).append(entry(i))));
    expect(new Set(results.map((r) => r.index)).size).toBe(100);
    expect(new Set(results.map((r) => r.checkpoint.size)).size).toBeLessThan(100);
    results.forEach((r) => expect(log.entry(r.index).equals(entry(results.indexOf(r)))).toBe(true));
    expect(log.verifyAll().size).toBe(100);
    other.close();
    log.close();
  });
});

describe('verification and damage', () => {
  it('lays the log out as tlog-tiles: full and partial tiles, entry bundles, a checkpoint', async () => {
    const log = await logWith(600);
    // Partials of tiles that became full are removed in the background.
    for (let i = 0; i < 100 && existsSync(join(log.dir, 'tile/entries/001.p')); i++) await new Promise((r) => setTimeout(r, 20));
    const files = (sub: string) => readdirSync(join(log.dir, sub), { recursive: true }).map(String).sort();
    // Appended 5 at a time: a partial tile per checkpoint size (515, 520, ... 600), until the tile is
    // full; then its partials are gone.
    const partials = Array.from({ length: 18 }, (_, k) => `002.p/${3 + 5 * k}`).sort();
    expect(files('tile/0')).toEqual(['000', '001', '002.p', ...partials].sort());
    expect(files('tile/entries')).toEqual(['000', '001', '002.p', ...partials].sort());
    expect(files('tile/1')).toEqual(['000.p', '000.p/1', '000.p/2']);
    expect(readFileSync(join(log.dir, 'tile/0/001')).subarray(0, 32).equals(leafHash(entry(256)))).toBe(true);
    expect(readFileSync(join(log.dir, 'tile/entries/002.p/88')).readUInt16BE(0)).toBe(entry(512).length);
    expect(statSync(join(log.dir, 'tile/1/000.p/2')).size).toBe(64);
    log.close();
  });

  it('verifyAll recomputes the tree and finds a changed byte anywhere', async () => {
    const log = await logWith(300);
    expect(log.verifyAll()).toMatchObject({ size: 300, pendingBytes: 0 });
    const damage = (file: string, at: (size: number) => number) => {
      const d = copyLog(log);
      const p = join(d, file);
      flipByte(p, at(statSync(p).size));
      return () => openLog(d).verifyAll();
    };
    expect(codeOf(damage('tile/entries/000', () => 10))).toBe('verify:TLOG_CORRUPT'); // an entry's bytes
    expect(codeOf(damage('tile/entries/001.p/44', (s) => s - 1))).toBe('verify:TLOG_CORRUPT'); // the last entry
    expect(codeOf(damage('tile/0/000', () => 32 * 7 + 5))).toBe('verify:TLOG_CORRUPT'); // a leaf hash in a full tile
    expect(codeOf(damage('tile/0/001.p/44', () => 3))).toBe('verify:TLOG_CORRUPT'); // an edge tile (fails at open)
    expect(codeOf(damage('tile/1/000.p/1', () => 0))).toBe('verify:TLOG_CORRUPT'); // the level-1 tile
    expect(codeOf(damage(FILES.checkpoint, () => 3))).toBe('verify:TLOG_NOTE_SIGNATURE_INVALID'); // origin line
    log.close();
  });

  it('rejects a checkpoint re-signed by another key, and missing or truncated tiles', async () => {
    const log = await logWith(9);
    const d = copyLog(log);
    const c = log.checkpoint();
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyId = createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest().subarray(0, 4);
    writeFileSync(join(d, FILES.checkpoint), signNoteEcdsa(parseSignedNote(c.note).text, log.origin, privateKey, keyId));
    expect(codeOf(() => openLog(d))).toBe('verify:TLOG_NOTE_SIGNATURE_INVALID');
    const t = copyLog(log);
    truncateSync(join(t, 'tile/0/000.p/9'), 32 * 3);
    expect(codeOf(() => openLog(t))).toBe('verify:TLOG_CORRUPT');
    const m = copyLog(log);
    truncateSync(join(m, 'tile/entries/000.p/9'), 0);
    expect(codeOf(() => openLog(m).entry(2))).toBe('verify:TLOG_CORRUPT');
    log.close();
  });

  it('ignores and then cuts off a torn tail; commits complete records left by a dead writer', async () => {
    const log = await logWith(10);
    const d = copyLog(log);
    const pending = join(d, FILES.pending);
    // A dead writer's complete record, then a torn one; a dead leader's stale tile and temp files.
    appendFileSync(pending, encodePending(10, [entry(100)], [leafHash(entry(100))]));
    appendFileSync(pending, encodePending(11, [entry(101)], [leafHash(entry(101))]).subarray(0, 20));
    mkdirSync(join(d, 'tile/0/000.p'), { recursive: true });
    writeFileSync(join(d, 'tile/0/000.p/11'), Buffer.alloc(32 * 11, 0xee));
    writeFileSync(join(d, 'tile/0/000.p/.12.00c0ffee00c0ffee.tmp'), 'half a tile');
    writeFileSync(join(d, '.checkpoint.00c0ffee00c0ffee.tmp'), 'half a checkpoint');
    const copy = openLog(d);
    expect(copy.size).toBe(10);
    expect(copy.verifyAll().pendingBytes).toBeGreaterThan(0);
    const r = await copy.append(entry(11));
    expect(r.index).toBe(11); // the dead writer's complete record became entry 10
    expect(copy.entry(10).equals(entry(100))).toBe(true);
    expect(existsSync(join(d, '.checkpoint.00c0ffee00c0ffee.tmp'))).toBe(false);
    expect(existsSync(join(d, 'tile/0/000.p/.12.00c0ffee00c0ffee.tmp'))).toBe(false);
    expect(copy.verifyAll()).toMatchObject({ size: 12, pendingBytes: 0 });
    // Garbage that looks like a record but does not hash to its leaf hash is cut off too.
    appendFileSync(pending, encodePending(12, [entry(200)], [leafHash(entry(201))]));
    expect((await copy.append(entry(12))).index).toBe(12);
    expect(copy.verifyAll()).toMatchObject({ size: 13, pendingBytes: 0 });
    expect(copy.entry(12).equals(entry(12))).toBe(true);
    // Committed records are dropped from the pending file once they take 64 KiB.
    for (let i = 0; i < 20; i++) await copy.appendMany(Array.from({ length: 100 }, (_, k) => Buffer.from(`${'x'.repeat(40)} ${i} ${k}`)));
    expect(statSync(pending).size).toBeLessThan(64 << 10);
    expect(copy.verifyAll()).toMatchObject({ size: 2013, pendingBytes: 0 });
    copy.close();
    log.close();
  });

  it('keeps integrated times outside the tiles, per commit', async () => {
    const log = await logWith(7);
    const now = Math.floor(Date.now() / 1000);
    for (let i = 0; i < 7; i++) expect(Math.abs(log.integratedTime(i) - now)).toBeLessThan(60);
    expect(statSync(join(log.dir, FILES.times)).size).toBe(16 * 2); // two appendMany commits
    log.close();
  });
});

describe('signed notes', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const v = ecdsaNoteVerifier('example.com/log', publicKey);
  const note = signNoteEcdsa('example.com/log\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n', 'example.com/log', privateKey, v.keyId);

  it('verifies, ignores unknown keys, rejects bad signatures from known keys', () => {
    expect(verifyNote(parseSignedNote(note), [v]).name).toBe('example.com/log');
    const withUnknown = `${note}— other.example/k ${Buffer.alloc(70, 7).toString('base64')}\n`;
    expect(verifyNote(parseSignedNote(withUnknown), [v]).name).toBe('example.com/log');
    const sigLine = note.split('\n')[4];
    const raw = Buffer.from(sigLine.split(' ')[2], 'base64');
    raw[raw.length - 3] ^= 1;
    const bad = note.replace(sigLine, `— example.com/log ${raw.toString('base64')}`);
    expect(codeOf(() => verifyNote(parseSignedNote(bad), [v]))).toBe('verify:TLOG_NOTE_SIGNATURE_INVALID');
    expect(codeOf(() => verifyNote(parseSignedNote(note.replace('\n5\n', '\n6\n')), [v]))).toBe('verify:TLOG_NOTE_SIGNATURE_INVALID');
    expect(codeOf(() => verifyNote(parseSignedNote(withUnknown), [ecdsaNoteVerifier('other.example/k', publicKey)]))).toBe('verify:TLOG_NOTE_SIGNATURE_INVALID');
  });

  it('rejects malformed notes and checkpoints as input errors', () => {
    for (const s of ['', 'no newline', 'text\n— a b\n', 'text\n\n— a\n', 'text\n\n- a AAAAAAA=\n', 'te\u0001xt\n\n— a AAAAAAA=\n', 'text\n\n— a+b AAAAAAA=\n']) {
      expect(codeOf(() => parseSignedNote(s))).toBe('input:TLOG_BAD_NOTE');
    }
    for (const t of ['o\n5\n', 'o\n05\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n', 'o\n5\nAAAA\n', 'o\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n', 'o\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nx\n']) {
      expect(codeOf(() => parseCheckpoint(t))).toBe('input:TLOG_BAD_CHECKPOINT');
    }
    expect(parseCheckpoint('o\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next\n').extensions).toEqual(['ext']);
  });
});
