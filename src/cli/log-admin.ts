/**
 * Implementation of `bpfseal log migrate|witness|witness-key|add-cosignatures|serve` (registered in
 * log.ts): converting a first-layout log, acting as a witness for a log (c2sp.org/tlog-witness, read
 * from a directory or a tiled-log URL), making a witness key, adding witnesses' cosignatures to a log,
 * and serving a log's public files. Exit codes as for the other log commands.
 */
import { join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { TLOG_CODES } from '../tlog/errors.js';
import { createExclusive } from '../fsx/durable.js';
import { migrateLog } from '../tlog/migrate.js';
import { isRemoteLocation } from '../tlog/open-reader.js';
import { serveLog } from '../tlog/serve.js';
import { defaultLogDir, logExists } from '../tlog/store.js';
import { generateWitnessKey, parseWitnessSigner } from '../tlog/witness/cosign.js';
import { addCosignatures } from '../tlog/witness/publish.js';
import { WitnessState, witnessLog } from '../tlog/witness/witness.js';
import { readInput, writeFileDurable } from './io.js';
import { run, type LogOpts } from './log-commands.js';
import { printJson } from './output.js';

const hex = (b: Buffer) => b.toString('hex');

export async function migrateCmd(opts: LogOpts): Promise<void> {
  const r = await migrateLog(opts.log ?? defaultLogDir());
  if (opts.json) {
    printJson({ ok: true, log: r.dir, alreadyMigrated: r.alreadyMigrated, old: { size: r.old.size, rootHash: hex(r.old.rootHash) }, new: { size: r.new.size, rootHash: hex(r.new.rootHash) }, carriedOver: r.carriedOver, consistency: r.proof.map(hex), checkpoint: r.new.note });
    return;
  }
  if (r.alreadyMigrated) {
    process.stdout.write(`ok  ${r.dir} is already a tiled log (${r.new.size} entries)\n`);
    return;
  }
  const carried = r.carriedOver ? `; ${r.carriedOver} uncommitted record(s) committed, ${r.old.size} -> ${r.new.size}, consistency proof of ${r.proof.length} hashes verified` : '';
  process.stdout.write(`ok  ${r.dir}: ${r.old.size} entries moved to tlog-tiles, root ${hex(r.old.rootHash)} unchanged${carried}\n`);
}

export interface WitnessOpts extends LogOpts {
  key: string;
  state?: string;
  out?: string;
  add?: boolean;
}

function witnessStateDir(opts: WitnessOpts): string {
  return resolve(opts.state ?? join(process.env.BPFSEAL_STATE_DIR ?? '/var/lib/bpfseal', 'witness'));
}

/** Witness `location`: cosign its checkpoint if consistent with the last one cosigned. */
export function witnessCmd(location: string, opts: WitnessOpts): Promise<void> {
  const signer = parseWitnessSigner(readInput(opts.key, { kind: 'key', noFollow: true }).toString('utf8'));
  const state = new WitnessState(witnessStateDir(opts));
  return run({ ...opts, log: location }, async (reader) => {
    const w = await witnessLog(reader, signer, state);
    if (opts.out) writeFileDurable(opts.out, w.note);
    // A local log directory gets the cosignature right away (unless --no-add); a remote one's operator
    // adds the cosigned checkpoint with `bpfseal log add-cosignatures`.
    const added = opts.add !== false && !isRemoteLocation(location) && logExists(location) ? addCosignatures(resolve(location), w.note) : undefined;
    if (opts.json) {
      printJson({ ok: true, log: reader.location, witness: signer.name, oldSize: w.oldSize, size: w.checkpoint.size, rootHash: hex(w.checkpoint.rootHash), timestamp: w.timestamp, cosignature: w.line.trimEnd(), added: added ? { current: added.current, cosigned: added.cosigned } : null, checkpoint: w.note });
      return;
    }
    if (!opts.out) process.stdout.write(w.note);
    const where = added ? ` (added to ${reader.location}${added.current ? '/checkpoint and' : ''}/checkpoint.cosigned)` : opts.out ? ` (written to ${opts.out})` : '';
    process.stderr.write(`ok  ${signer.name} cosigned ${reader.origin} at size ${w.checkpoint.size}, consistent with size ${w.oldSize}${where}\n`);
  });
}

export function witnessKeyCmd(file: string, opts: { name: string; json?: boolean }): void {
  const k = generateWitnessKey(opts.name);
  if (!createExclusive(file, `${k.signer}\n`, 0o600)) throw new InputError(TLOG_CODES.BAD_ARGUMENT, `${file} exists; not overwritten`, { file });
  if (opts.json) printJson({ ok: true, key: file, name: opts.name, vkey: k.vkey });
  else process.stdout.write(`${k.vkey}\n`);
}

export function addCosignaturesCmd(files: string[], opts: LogOpts): Promise<void> {
  const dir = resolve(opts.log ?? defaultLogDir());
  return run({ ...opts, log: dir }, () => {
    const results = files.map((f) => ({ file: f, ...addCosignatures(dir, readInput(f, { kind: 'checkpoint' }).toString('utf8')) }));
    if (opts.json) {
      printJson({ ok: true, log: dir, added: results.map((r) => ({ file: r.file, size: r.checkpoint.size, current: r.current, cosigned: r.cosigned })) });
      return;
    }
    for (const r of results) process.stdout.write(`ok  ${r.file}: size ${r.checkpoint.size}${r.current ? ', added to checkpoint' : ''}${r.cosigned ? ', kept in checkpoint.cosigned' : ', older than checkpoint.cosigned: not kept'}\n`);
  });
}

export async function serveCmd(opts: LogOpts & { host?: string; port?: string }): Promise<void> {
  const dir = resolve(opts.log ?? defaultLogDir());
  const s = await serveLog(dir, { host: opts.host, port: opts.port === undefined ? 8080 : Number(opts.port) });
  process.stdout.write(`serving ${dir} (checkpoint, tile/, log.pub, log.vkey) at ${s.url}\n`);
  await new Promise<void>((resolveStop) => {
    const stop = () => void s.close().then(resolveStop);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
