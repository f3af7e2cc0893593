/**
 * Implementation of `bpfseal log verify|prove|consistency|show` (registered in log.ts): audit a
 * transparency log given as a directory (default $BPFSEAL_LOG, else ./attestations) or as the URL of a
 * tiled log (https://, file://; http:// to loopback), read through src/tlog/open-reader.ts.
 * Exit codes: 0 ok; 1 a proof, signature or consistency check failed; 2 usage or malformed input.
 */
import { existsSync } from 'node:fs';
import { BpfsealError, InputError } from '../errors.js';
import { TLOG_CODES, TlogVerifyError } from '../tlog/errors.js';
import { verifyConsistency, verifyInclusion } from '../tlog/merkle.js';
import { openSignedCheckpoint } from '../tlog/note.js';
import { rekorKind } from '../attest/rekor-body.js';
import { defaultLogDir } from '../tlog/store.js';
import { openLogReader } from '../tlog/open-reader.js';
import type { LogReader } from '../tlog/log-reader.js';
import { TiledLogClient } from '../tlog/remote/client.js';
import { readInput } from './io.js';
import { entriesWithSubject, subjectDigests } from '../attest/subjects.js';
import { printJson } from './output.js';
import { signerText, summarizeEntry, type EntrySummary } from '../audit/entry-summary.js';

export interface LogOpts {
  log?: string;
  json?: boolean;
  /** Keys to pin a remote log to: files (PEM or vkey) or vkeys. */
  logKey?: string[];
  /** Tile cache directory; false for --no-cache (commander sets true when neither is given). */
  cache?: string | boolean;
}

const hex = (b: Buffer) => b.toString('hex');

/** A --log-key value: a file holding a PEM key or a vkey, or a vkey itself. */
export function readLogKey(v: string): string {
  if (existsSync(v)) return readInput(v, { kind: 'key', trusted: 'a log key' }).toString('utf8').trim();
  if (/^[^+\s]+\+[0-9a-f]{8}\+/.test(v)) return v;
  throw new InputError(TLOG_CODES.BAD_KEY, `--log-key ${v}: no such file, and not a verifier key`);
}

export async function openReader(opts: LogOpts): Promise<LogReader> {
  const keys = (opts.logKey ?? []).map(readLogKey);
  const cacheDir = typeof opts.cache === 'string' ? opts.cache : opts.cache === false ? false : undefined;
  const reader = await openLogReader(opts.log ?? defaultLogDir(), { keys, cacheDir });
  if (reader instanceof TiledLogClient && !reader.keyPinned && !opts.json) {
    process.stderr.write(`bpfseal: note: ${reader.location}: checked with the key the log publishes; give --log-key to check whose log it is\n`);
  }
  return reader;
}

/** Run a command; with --json a verification failure is also reported on stdout as {ok:false,...}. */
export async function run(opts: LogOpts, fn: (log: LogReader) => void | Promise<void>): Promise<void> {
  let log: LogReader | undefined;
  try {
    log = await openReader(opts);
    await fn(log);
  } catch (e) {
    if (opts.json && e instanceof BpfsealError && e.kind === 'verify') {
      // `code`/`message` as before; `error` as every --json failure gives it (cli/main.ts).
      printJson({ ok: false, code: e.code, message: e.message, error: { code: e.code, message: e.message, exit: e.exitCode } });
      process.exitCode = e.exitCode;
      return;
    }
    throw e;
  } finally {
    log?.close();
  }
}

export function verifyCmd(opts: LogOpts): Promise<void> {
  return run(opts, async (log) => {
    const r = await log.verifyAll();
    if (opts.json) {
      printJson({ ok: true, log: log.location, origin: log.origin, size: r.size, rootHash: hex(r.rootHash), entriesBytes: r.entriesBytes, pendingBytes: r.pendingBytes });
      return;
    }
    const tail = r.pendingBytes ? ` (${r.pendingBytes} bytes beyond the checkpoint ignored)` : '';
    process.stdout.write(`ok  ${log.location}: ${r.size} entries, root ${hex(r.rootHash)}, checkpoint signed by ${log.origin}${tail}\n`);
  });
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * The indexes to prove: one index, or every entry that records that subject digest
 * (attest/subjects.ts).
 */
async function targets(log: LogReader, what: string): Promise<number[]> {
  if (/^(0|[1-9][0-9]*)$/.test(what)) return [Number(what)];
  if (!DIGEST.test(what)) throw new InputError(TLOG_CODES.BAD_ARGUMENT, `${what}: expected an entry index or sha256:<64 hex digits>`);
  const found = await entriesWithSubject(log, what);
  if (!found.length) throw new TlogVerifyError(TLOG_CODES.DIGEST_NOT_FOUND, `no entry of ${log.location} records subject ${what}`);
  return found;
}

export function proveCmd(what: string, opts: LogOpts): Promise<void> {
  return run(opts, async (log) => {
    const checkpoint = await log.checkpoint();
    const proofs = [];
    for (const index of await targets(log, what)) {
      const p = await log.proveInclusion(index, checkpoint.size);
      verifyInclusion(p.leafHash, index, p.treeSize, p.hashes, checkpoint.rootHash); // against the signed root
      proofs.push(p);
    }
    if (opts.json) {
      const out = proofs.map((p) => ({ index: p.index, treeSize: p.treeSize, leafHash: hex(p.leafHash), rootHash: hex(p.rootHash), hashes: p.hashes.map(hex), checkpoint: checkpoint.note }));
      printJson({ ok: true, proofs: out });
      return;
    }
    for (const p of proofs) {
      process.stdout.write(`entry ${p.index} of ${p.treeSize}  leaf ${hex(p.leafHash)}\n`);
      p.hashes.forEach((h, i) => process.stdout.write(`  ${String(i).padStart(2)} ${hex(h)}\n`));
      process.stdout.write(`  root ${hex(p.rootHash)} (checkpoint verified)\n`);
    }
    process.stdout.write(`\n${checkpoint.note}`);
  });
}

export function consistencyCmd(file: string, opts: LogOpts): Promise<void> {
  return run(opts, async (log) => {
    const text = readInput(file, { kind: 'checkpoint' }).toString('utf8');
    let old;
    try {
      old = openSignedCheckpoint(text, log.verifiers, log.origin);
    } catch (e) {
      if (e instanceof BpfsealError) e.file = file;
      throw e;
    }
    const now = await log.checkpoint();
    if (old.size > now.size) throw new TlogVerifyError(TLOG_CODES.SHRUNK, `${file}: the log had ${old.size} entries then and has ${now.size} now`);
    const proof = await log.proveConsistency(old.size, now.size);
    verifyConsistency(old.size, now.size, old.rootHash, now.rootHash, proof.hashes);
    if (opts.json) {
      printJson({ ok: true, old: { size: old.size, rootHash: hex(old.rootHash) }, new: { size: now.size, rootHash: hex(now.rootHash) }, hashes: proof.hashes.map(hex), checkpoint: now.note });
      return;
    }
    process.stdout.write(`ok  ${log.location} grew from ${old.size} to ${now.size} entries without rewriting (consistency proof of ${proof.hashes.length} hashes)\n`);
  });
}

function summary(entry: Buffer): { json: unknown; text: string } {
  let json: unknown = null;
  try {
    json = JSON.parse(entry.toString('utf8'));
  } catch {
    return { json: null, text: `${entry.length} bytes (not JSON)` };
  }
  const kv = rekorKind(entry);
  const subjects = subjectDigests(entry);
  const head = kv ? `${kv.kind} ${kv.version}` : subjects.length ? `subject ${subjects.join(',')}` : '';
  const compact = JSON.stringify(json);
  return { json, text: `${head}${head ? '  ' : ''}${compact.length > 100 ? `${compact.slice(0, 97)}...` : compact}` };
}

const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString().replace(/\.000Z$/, 'Z');

/** Terminal line of a summarised entry: what it records, plan and version, signer, short digest. */
function entryLine(s: EntrySummary, fallback: string): string {
  if (s.kind === 'bytes' || s.kind === 'json' || s.kind === 'rekor' || (s.kind === 'dsse' && !s.plan)) {
    return s.kind === 'dsse' ? `dsse  signer ${signerText(s.signer)}  ${s.envelope === 'missing' ? '(envelope not beside the log)' : s.predicateType ?? ''}` : fallback;
  }
  const what = s.kind === 'load' ? `load ${s.decision ?? '?'}` : s.kind;
  const plan = s.plan ? `${s.plan}${s.version !== undefined ? ` v${s.version}` : ''}` : '-';
  const digest = s.digest ? s.digest.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]*$/, '$1') : '-';
  return `${what.padEnd(12)}  ${plan.padEnd(20)}  ${signerText(s.signer).padEnd(24)}  ${digest}`;
}

/**
 * `log show`: one line per entry (index, time, what it records, plan and version, signer, short
 * digest); --json one array, each entry with index, leafHash, bytes, entry (as before) and the summary
 * fields (time, kind, plan, version, digest, signer, decision, predicateType, envelope). Display only:
 * `log verify` checks the tree, `audit` the attestations.
 */
export function showCmd(opts: LogOpts): Promise<void> {
  return run(opts, async (log) => {
    if (opts.json) process.stdout.write('[');
    let first = true;
    const published = log.readPublished?.bind(log);
    for await (const { index, entry, leafHash } of log.entries()) {
      const s = summary(entry);
      const e = await summarizeEntry(entry, published);
      const logged = log.integratedTime?.(index);
      const time = logged ? iso(logged) : e.recordTime ?? null;
      if (opts.json) {
        const { recordTime: _recordTime, ...fields } = e;
        process.stdout.write(`${first ? '\n' : ',\n'}${JSON.stringify({ index, leafHash: hex(leafHash), bytes: entry.length, entry: s.json, time, ...fields })}`);
      } else {
        process.stdout.write(`${String(index).padStart(6)}  ${(time ?? '-').padEnd(20)}  ${entryLine(e, s.text)}\n`);
      }
      first = false;
    }
    if (opts.json) process.stdout.write(first ? ']\n' : '\n]\n');
  });
}
