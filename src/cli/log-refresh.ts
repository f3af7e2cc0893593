/**
 * `bpfseal log refresh <release...> --log <dir|url> [--policy p] [-o file|dir]`: prove each release's
 * entry in this log against the newest checkpoint the policy's witnesses cosigned (or, without
 * witnesses, the log's newest checkpoint), and write the release with that proof. Sign happens before
 * any witness can cosign the checkpoint of its own append; this is how a release comes to carry a
 * witnessed checkpoint. Nothing signed changes: the DSSE envelope, the signed entry timestamp and the
 * entry body stay; only the inclusion proof and its checkpoint are replaced.
 */
import { basename, join } from 'node:path';
import type { TransparencyLogEntry } from '@sigstore/bundle';
import { decodeRelease, encodeRelease } from '../attest/release.js';
import { BpfsealError, InputError } from '../errors.js';
import { isDirectory } from '../fsx/dirs.js';
import { writeFileDurable } from '../fsx/durable.js';
import { leafHash } from '../tlog/hash.js';
import type { SignedCheckpoint } from '../tlog/note.js';
import type { LogReader } from '../tlog/log-reader.js';
import { witnessedCheckpoint } from '../tlog/witness/publish.js';
import { failure, failureLine, printJson, type Failure } from './output.js';
import { readInput } from './io.js';
import { openReader, type LogOpts } from './log-commands.js';
import { resolvePolicy } from './trust.js';

export interface RefreshOpts extends LogOpts {
  policy?: string;
  output?: string;
}

/** The checkpoint to prove against: the newest the witnesses cosigned, else the log's newest. */
async function target(log: LogReader, witnesses: Awaited<ReturnType<typeof resolvePolicy>>): Promise<{ checkpoint: SignedCheckpoint; witnessed: boolean }> {
  if (witnesses && witnesses.witnesses.length) {
    const w = await witnessedCheckpoint(log, witnesses.witnesses, witnesses.witnessThreshold);
    if (!w) throw new BpfsealError('verify', 'WITNESS_THRESHOLD', `${log.location}: no checkpoint of the log is cosigned by ${witnesses.witnessThreshold} of the ${witnesses.witnesses.length} witness(es) of ${witnesses.source}; run the witnesses first (bpfseal log witness)`);
    return { checkpoint: w.checkpoint, witnessed: true };
  }
  return { checkpoint: await log.checkpoint(), witnessed: false };
}

/** This log's entry in the bundle: the same body at the same index of this log. */
async function refreshEntry(log: LogReader, e: TransparencyLogEntry, cp: SignedCheckpoint): Promise<boolean> {
  const index = Number(e.logIndex);
  if (!Number.isSafeInteger(index) || index < 0 || index >= cp.size) return false;
  const origin = e.inclusionProof?.checkpoint?.envelope.split('\n', 1)[0];
  if (origin !== log.origin) return false;
  if (!leafHash(e.canonicalizedBody).equals(await log.leafHash(index))) return false;
  const proof = await log.proveInclusion(index, cp.size);
  if (!proof.rootHash.equals(cp.rootHash)) throw new BpfsealError('verify', 'TLOG_CONSISTENCY_INVALID', `${log.location}: the log's hashes disagree with its checkpoint of size ${cp.size}`);
  e.inclusionProof = { logIndex: String(index), rootHash: proof.rootHash, treeSize: String(cp.size), hashes: proof.hashes, checkpoint: { envelope: cp.note } };
  return true;
}

export async function refreshCmd(releases: string[], opts: RefreshOpts): Promise<void> {
  // The policy names the witnesses (default policy: $BPFSEAL_POLICY or keys/policy.json, if any).
  const policy = await resolvePolicy({ policy: opts.policy }, { optional: true });
  if (releases.length > 1 && opts.output && !isDirectory(opts.output)) throw new BpfsealError('usage', 'USAGE_OUTPUT', `-o ${opts.output}: with several releases, -o names an existing directory`);
  const log = await openReader(opts);
  const results: ({ release: string; ok: true; output: string; index: number; treeSize: number; witnessed: boolean } | { release: string; ok: false; error: Failure })[] = [];
  try {
    const { checkpoint, witnessed } = await target(log, policy);
    for (const r of releases) {
      try {
        const rel = decodeRelease(readInput(r, { kind: 'release' }));
        const entries = (rel.bundle.verificationMaterial.tlogEntries ?? []) as TransparencyLogEntry[];
        let index = -1;
        for (const e of entries) if (await refreshEntry(log, e, checkpoint)) index = Number(e.logIndex);
        if (index < 0) throw new InputError('LOG_ENTRY_NOT_FOUND', `${r}: carries no entry of ${log.location} (${log.origin}) within its checkpoint of size ${checkpoint.size}`, { file: r });
        const out = opts.output ? (isDirectory(opts.output) ? join(opts.output, basename(r)) : opts.output) : r;
        writeFileDurable(out, encodeRelease(rel));
        results.push({ release: r, ok: true, output: out, index, treeSize: checkpoint.size, witnessed });
      } catch (e) {
        results.push({ release: r, ok: false, error: failure(e) });
      }
    }
  } finally {
    log.close();
  }
  if (opts.json) printJson(results);
  for (const x of results) {
    if (!x.ok) process.stderr.write(failureLine(x.release, x.error, true));
    else if (!opts.json) process.stdout.write(`refreshed ${x.output}: entry ${x.index} proved against the ${x.witnessed ? 'witnessed ' : ''}checkpoint of size ${x.treeSize}\n`);
  }
  process.exitCode = Math.max(0, ...results.map((x) => (x.ok ? 0 : x.error.exit)));
}
