/**
 * Migration of a first-layout log (test/tlog/fixtures/v1-log, written by that implementation) to
 * tlog-tiles in place (src/tlog/migrate.ts): same tree, same checkpoint, every entry and time kept,
 * the record beyond the old checkpoint committed with a consistency proof; a damaged old log is left
 * as it was; an interrupted migration is redone.
 */
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { verifyConsistency } from '../src/tlog/merkle.js';
import { migrateLog } from '../src/tlog/migrate.js';
import { openLog } from '../src/tlog/store.js';
import { cleanupTmpDirs, makeTmpDir, ROOT } from './helpers/paths.js';

afterAll(cleanupTmpDirs);

const FIXTURE = join(ROOT, 'test/tlog/fixtures/v1-log');
const entry = (i: number) => JSON.stringify({ i, subjectDigest: `sha256:${createHash('sha256').update(String(i)).digest('hex')}` });

function v1Copy(): string {
  const d = join(makeTmpDir('bpfseal-tlog-v1-'), 'log');
  cpSync(FIXTURE, d, { recursive: true });
  cpSync(`${FIXTURE}-key.pem`, join(d, 'log.key'));
  chmodSync(join(d, 'log.key'), 0o600);
  return d;
}

const oldTimes = (d: string) => {
  const b = readFileSync(join(d, 'entries.idx'));
  return Array.from({ length: b.length / 16 }, (_, i) => Number(b.readBigUInt64BE(i * 16 + 8)));
};

describe('bpfseal-tlog/1 to tlog-tiles', () => {
  it('is refused by openLog with the command that converts it', () => {
    expect(() => openLog(v1Copy(), { create: false })).toThrow(/bpfseal log migrate/);
  });

  it('keeps the tree and its checkpoint, commits the pending record, proves consistency', async () => {
    const d = v1Copy();
    const oldNote = readFileSync(join(d, 'checkpoint'), 'utf8');
    const times = oldTimes(d);
    const r = await migrateLog(d);
    expect(r).toMatchObject({ alreadyMigrated: false, carriedOver: 1 });
    expect(r.old.note).toBe(oldNote);
    expect([r.old.size, r.new.size]).toEqual([300, 301]);
    verifyConsistency(300, 301, r.old.rootHash, r.new.rootHash, r.proof);
    for (const f of ['entries', 'entries.idx', 'hashes']) expect(existsSync(join(d, f)), f).toBe(false);
    expect(JSON.parse(readFileSync(join(d, 'log.json'), 'utf8')).format).toBe('bpfseal-tlog/2');
    const log = openLog(d, { create: false });
    expect(log.verifyAll()).toMatchObject({ size: 301, pendingBytes: 0 });
    expect([...log.entries()].map((e) => e.entry.toString())).toEqual(Array.from({ length: 301 }, (_, i) => entry(i)));
    for (let i = 0; i < 300; i++) expect(log.integratedTime(i)).toBe(times[i]);
    expect((await log.append(Buffer.from('after'))).index).toBe(301);
    log.close();
    expect(await migrateLog(d)).toMatchObject({ alreadyMigrated: true, carriedOver: 0 });
  });

  it('leaves a damaged old log in the old layout', async () => {
    const d = v1Copy();
    const p = join(d, 'entries');
    const b = readFileSync(p);
    b[b.indexOf('"i":7') + 4] ^= 1;
    writeFileSync(p, b);
    await expect(migrateLog(d)).rejects.toMatchObject({ code: 'TLOG_CORRUPT' });
    expect(JSON.parse(readFileSync(join(d, 'log.json'), 'utf8')).format).toBe('bpfseal-tlog/1');
    expect(existsSync(join(d, 'hashes'))).toBe(true);
  });

  it('redoes an interrupted migration (half-written tiles are overwritten)', async () => {
    const d = v1Copy();
    mkdirSync(join(d, 'tile/0'), { recursive: true });
    writeFileSync(join(d, 'tile/0/000'), Buffer.alloc(8192, 0xaa));
    writeFileSync(join(d, 'integrated-times'), 'garbage');
    const r = await migrateLog(d);
    expect(r.new.size).toBe(301);
    const log = openLog(d, { create: false });
    expect(log.verifyAll().size).toBe(301);
    log.close();
  });
});
