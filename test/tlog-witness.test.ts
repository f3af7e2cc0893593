/**
 * Witnesses (src/tlog/witness): C2SP tlog-cosignature v1 signatures (byte layout checked by hand),
 * verifyCosignatures with thresholds, the tlog-witness add-checkpoint rules (400/403/409/422), a
 * witness following a log over HTTP, cosignatures added to the log and found again by
 * witnessedCheckpoint, and followLog catching a log that shows a different history (split view).
 */
import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto';
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BpfsealError } from '../src/errors.js';
import { followLog } from '../src/tlog/monitor.js';
import { noteKeyId, parseSignerKey, SIG_COSIGNATURE_V1 } from '../src/tlog/note-keys.js';
import { parseSignedNote } from '../src/tlog/note.js';
import { openLogReader } from '../src/tlog/open-reader.js';
import { serveLog } from '../src/tlog/serve.js';
import { openLog, type TransparencyLog } from '../src/tlog/store.js';
import { cosign, generateWitnessKey, parseWitnessSigner, parseWitnessVkey, verifyCosignatures, type WitnessKey } from '../src/tlog/witness/cosign.js';
import { addCosignatures, witnessedCheckpoint } from '../src/tlog/witness/publish.js';
import { addCheckpoint, formatAddCheckpoint, parseAddCheckpoint, WitnessError, WitnessState, witnessLog } from '../src/tlog/witness/witness.js';
import { cleanupTmpDirs, makeTmpDir } from './helpers/paths.js';

afterAll(cleanupTmpDirs);

const witnessNamed = (name: string) => {
  const k = generateWitnessKey(name);
  return { signer: parseWitnessSigner(k.signer), vkey: k.vkey, policy: { name, key: k.vkey } as WitnessKey };
};

async function logOf(n: number, origin = 'bpfseal.test/witnessed'): Promise<TransparencyLog> {
  const log = openLog(makeTmpDir('bpfseal-tlog-w-'), { origin });
  if (n) await log.appendMany(Array.from({ length: n }, (_, i) => Buffer.from(`entry ${i}`)));
  return log;
}

const codeOf = async (p: Promise<unknown>): Promise<string> => p.then(() => 'ok', (e: unknown) => (e instanceof BpfsealError ? e.code : String(e)));

describe('cosignature/v1', () => {
  it('signs "cosignature/v1\\ntime <t>\\n" + the note text, key ID over 0x04 || key, u64 time first', async () => {
    const log = await logOf(3);
    const w = witnessNamed('witness.test/w1');
    const c = cosign(log.checkpoint().note, w.signer, log.origin, 1_700_000_000);
    const [name, b64] = c.line.trimEnd().split(' ').slice(1);
    expect(name).toBe('witness.test/w1');
    const raw = Buffer.from(b64, 'base64');
    const pubRaw = Buffer.from(w.vkey.slice(w.vkey.indexOf('+', w.vkey.indexOf('+') + 1) + 1), 'base64'); // base64 may hold '+'
    expect(pubRaw[0]).toBe(0x04);
    expect(raw.subarray(0, 4)).toEqual(createHash('sha256').update('witness.test/w1\n').update(pubRaw).digest().subarray(0, 4));
    expect(raw.readBigUInt64BE(4)).toBe(1_700_000_000n);
    const text = parseSignedNote(log.checkpoint().note).text;
    expect(verify(null, Buffer.from(`cosignature/v1\ntime 1700000000\n${text}`), parseWitnessVkey(w.vkey).key, raw.subarray(12))).toBe(true);
    expect(c.note.startsWith(log.checkpoint().note)).toBe(true);
    expect(() => cosign(log.checkpoint().note, w.signer, 'other.origin')).toThrow(/origin/);
    // The spec's key ID rule, computed independently.
    expect(noteKeyId('witness.test/w1', SIG_COSIGNATURE_V1, pubRaw.subarray(1))).toEqual(raw.subarray(0, 4));
    log.close();
  });

  it('counts valid cosignatures against a threshold, ignores unknown ones, reports bad ones', async () => {
    const log = await logOf(5);
    const [a, b, c] = ['w.test/a', 'w.test/b', 'w.test/c'].map(witnessNamed);
    let note = log.checkpoint().note;
    note = cosign(note, a.signer, log.origin).note;
    note = cosign(note, b.signer, log.origin).note;
    const stranger = witnessNamed('w.test/stranger');
    note = cosign(note, stranger.signer, log.origin).note;
    const policy = [a.policy, b.policy, c.policy];
    expect(verifyCosignatures(note, policy, 2)).toMatchObject({ valid: ['w.test/a', 'w.test/b'], missing: ['w.test/c'], invalid: [], ok: true });
    expect(verifyCosignatures(note, policy, 3).ok).toBe(false);
    // The same key listed twice counts once; a PEM key works like the vkey.
    const pem = parseWitnessVkey(a.vkey).key.export({ type: 'spki', format: 'pem' }).toString();
    expect(verifyCosignatures(note, [a.policy, { name: 'w.test/a', key: pem }], 2).valid).toEqual(['w.test/a']);
    // A tampered cosignature by a known witness, and one dated far in the future, are invalid.
    const lines = note.split('\n');
    const i = lines.findIndex((l) => l.startsWith('— w.test/b '));
    const raw = Buffer.from(lines[i].split(' ')[2], 'base64');
    raw[raw.length - 1] ^= 1;
    lines[i] = `— w.test/b ${raw.toString('base64')}`;
    expect(verifyCosignatures(lines.join('\n'), policy, 1)).toMatchObject({ valid: ['w.test/a'], invalid: ['w.test/b'], ok: false });
    const future = cosign(log.checkpoint().note, c.signer, log.origin, Math.floor(Date.now() / 1000) + 3600).note;
    expect(verifyCosignatures(future, policy, 1)).toMatchObject({ invalid: ['w.test/c'], ok: false });
    // Cosigning a different checkpoint text does not carry over.
    expect(verifyCosignatures(note.replace('\n5\n', '\n6\n'), policy, 1).invalid.sort()).toEqual(['w.test/a', 'w.test/b']);
    log.close();
  });

  it('uses Go-compatible signer keys (PRIVATE+KEY+name+id+base64(0x04||seed))', () => {
    const k = generateWitnessKey('w.test/go');
    expect(k.signer).toMatch(/^PRIVATE\+KEY\+w\.test\/go\+[0-9a-f]{8}\+B[A-P]/); // base64 of 0x04 || seed
    expect(parseSignerKey(k.signer).type).toBe(SIG_COSIGNATURE_V1);
    const ed = generateKeyPairSync('ed25519');
    expect(() => parseWitnessSigner(`PRIVATE+KEY+x+00000000+${Buffer.concat([Buffer.from([1]), Buffer.alloc(32)]).toString('base64')}`)).toThrow();
    expect(sign(null, Buffer.from('x'), ed.privateKey)).toHaveLength(64);
  });
});

describe('tlog-witness add-checkpoint', () => {
  it('cosigns only what is signed by the log and consistent with what it cosigned before', async () => {
    const log = await logOf(10);
    const w = witnessNamed('w.test/state');
    const state = new WitnessState(makeTmpDir('bpfseal-witness-'));
    const c10 = log.checkpoint();
    const add = (oldSize: number, proof: Buffer[], checkpoint: string) => {
      try {
        addCheckpoint(state, log.verifiers, w.signer, { oldSize, proof, checkpoint });
        return 200;
      } catch (e) {
        if (e instanceof WitnessError) return e.status;
        throw e;
      }
    };
    expect(add(0, [], c10.note)).toBe(200);
    await log.appendMany([Buffer.from('x'), Buffer.from('y')]);
    const c12 = log.checkpoint();
    const proof = log.proveConsistency(10, 12).hashes;
    expect(add(0, [], c12.note)).toBe(409); // the witness is at 10
    expect(add(13, [], c12.note)).toBe(400);
    expect(add(10, [Buffer.alloc(32)], c12.note)).toBe(422);
    // A log signature line whose key ID is the log's but whose signature is not: the note is rejected.
    const line = c12.note.split('\n')[4];
    const sig = Buffer.from(line.split(' ')[2], 'base64');
    sig[sig.length - 2] ^= 1;
    expect(add(10, proof, c12.note.replace(line, `— ${log.origin} ${sig.toString('base64')}`))).toBe(403);
    const other = await logOf(0, 'bpfseal.test/witnessed');
    expect(add(10, proof, other.checkpoint().note)).toBe(403); // signed by another key
    expect(add(10, proof, c12.note)).toBe(200);
    expect(state.last(log.origin, log.verifiers)?.size).toBe(12);
    // The HTTP request body round-trips.
    expect(parseAddCheckpoint(formatAddCheckpoint({ oldSize: 10, proof, checkpoint: c12.note }))).toEqual({ oldSize: 10, proof, checkpoint: c12.note });
    // A malformed request is input (exit 2), as TLOG_BAD_ARGUMENT is everywhere; a refused check is verify (exit 1).
    let bad: unknown;
    try {
      parseAddCheckpoint('junk');
    } catch (e) {
      bad = e;
    }
    expect(bad).toBeInstanceOf(WitnessError);
    expect(bad).toMatchObject({ status: 400, code: 'TLOG_BAD_ARGUMENT', kind: 'input', exitCode: 2 });
    expect(new WitnessError(409, 'TLOG_WITNESS_CONFLICT', 'x', 3)).toMatchObject({ kind: 'verify', exitCode: 1 });
    other.close();
    log.close();
  });
});

describe('witnessing a served log, and following it', () => {
  it('a witness follows a log over HTTP; its cosignatures are published and required by followLog', async () => {
    const log = await logOf(300);
    const server = await serveLog(log.dir);
    try {
      const [a, b] = ['w.test/a', 'w.test/b'].map(witnessNamed);
      const states = [a, b].map(() => new WitnessState(makeTmpDir('bpfseal-witness-')));
      const reader = await openLogReader(server.url, { keys: [log.vkey!], cacheDir: false });
      const runA = await witnessLog(reader, a.signer, states[0]);
      expect([runA.oldSize, runA.checkpoint.size]).toEqual([0, 300]);
      addCosignatures(log.dir, runA.note);
      addCosignatures(log.dir, (await witnessLog(reader, b.signer, states[1])).note);
      const policy = [a.policy, b.policy];
      const first = await followLog(await openLogReader(server.url, { keys: [log.publicKey.pem], cacheDir: false }), undefined, { witnesses: policy, threshold: 2 });
      expect(first.checkpoint.size).toBe(300);
      expect(first.cosignatures?.valid).toEqual(['w.test/a', 'w.test/b']);
      // The log grows; only witness a cosigns the new checkpoint, which becomes the published cosigned
      // one: following with threshold 1 moves on; threshold 2 is not met until b cosigns it too.
      await log.appendMany(Array.from({ length: 20 }, (_, i) => Buffer.from(`later ${i}`)));
      const runA2 = await witnessLog(reader, a.signer, states[0]);
      expect([runA2.oldSize, runA2.checkpoint.size]).toEqual([300, 320]);
      expect(addCosignatures(log.dir, runA2.note)).toMatchObject({ current: true, cosigned: true });
      const r2 = await openLogReader(server.url, { keys: [log.publicKey.pem], cacheDir: false });
      const one = await followLog(r2, first.checkpoint.note, { witnesses: policy, threshold: 1 });
      expect(one.consistency).toMatchObject({ oldSize: 300, newSize: 320 });
      const fresh: number[] = [];
      for await (const e of one.newEntries) fresh.push(e.index);
      expect(fresh).toEqual(Array.from({ length: 20 }, (_, i) => 300 + i));
      await expect(followLog(r2, first.checkpoint.note, { witnesses: policy, threshold: 2 })).rejects.toMatchObject({ code: 'TLOG_WITNESS_THRESHOLD' });
      expect((await witnessedCheckpoint(r2, policy, 1))?.checkpoint.size).toBe(320);
      addCosignatures(log.dir, (await witnessLog(reader, b.signer, states[1])).note);
      expect((await followLog(r2, first.checkpoint.note, { witnesses: policy, threshold: 2 })).cosignatures?.valid).toEqual(['w.test/a', 'w.test/b']);
    } finally {
      await server.close();
      log.close();
    }
  });

  it('catches a split view: the log rewrites its history for a host that audited before', async () => {
    const log = await logOf(50);
    const w = witnessNamed('w.test/split');
    const state = new WitnessState(makeTmpDir('bpfseal-witness-'));
    const seen = (await followLog(log)).checkpoint.note;
    await witnessLog(log, w.signer, state);
    // Another view with the same key: the first 40 entries, then different ones.
    const fork = makeTmpDir('bpfseal-tlog-fork-');
    cpSync(log.dir, fork, { recursive: true });
    for (const x of ['tile', 'checkpoint', 'pending', 'integrated-times']) rmSync(join(fork, x), { recursive: true, force: true });
    const f = openLog(fork);
    await f.appendMany([...Array.from({ length: 40 }, (_, i) => Buffer.from(`entry ${i}`)), ...Array.from({ length: 20 }, (_, i) => Buffer.from(`forged ${i}`))]);
    expect(await codeOf(followLog(f, seen))).toBe('TLOG_CONSISTENCY_INVALID');
    expect(await codeOf(witnessLog(f, w.signer, state))).toBe('TLOG_CONSISTENCY_INVALID');
    f.close();
    log.close();
  });
});
