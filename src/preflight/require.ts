/**
 * requirePreflight on the host (verify and load): find preflight attestations of a plan in the local
 * attestation logs, check each cryptographically, then let the one judge decide (trust/judge.ts).
 *
 * Where: the logs given with --log (repeatable), else $BPFSEAL_LOG or ./attestations. A log counts only
 * when its key and origin are a trusted log of the policy (a --log directory is, as for release log
 * entries). Per entry: a Rekor "dsse" body -> the envelope kept beside the log (its hash is what the
 * entry commits to) -> a preflight statement for this plan digest -> the DSSE signature checked with
 * the policy's key of that key id (keyless preflight attestations are not accepted) -> the entry's
 * inclusion in the log's signed checkpoint. The host's kernel: os.release() and SHA-256 of
 * /boot/config-<release> when that file exists.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { envelopeFromJSON, type SerializedEnvelope } from '@sigstore/bundle';
import { loadEnvelope } from '../attest/envelopes.js';
import { at } from '../errors.js';
import { readInput } from '../fsx/read.js';
import { preAuthEncoding } from '../attest/rekor-body.js';
import { checkEntryAgainstLog, tlogEntry } from '../attest/rekor.js';
import { defaultLogDir, logExists, openLog, type TransparencyLog } from '../tlog/store.js';
import { judgePreflight, type PreflightFacts } from '../trust/judge.js';
import { keyId, verifyData } from '../trust/keys.js';
import type { TrustPolicy } from '../trust/policy.js';
import { isPreflightPayload, parsePreflightStatement } from './statement.js';

export interface HostKernel {
  release: string;
  /** "sha256:<hex>" of /boot/config-<release>, when present. */
  configSha256?: string;
}

export function hostKernel(): HostKernel {
  const rel = release();
  const path = `/boot/config-${rel}`;
  if (!existsSync(path)) return { release: rel };
  return { release: rel, configSha256: `sha256:${createHash('sha256').update(readInput(path, { kind: 'object' })).digest('hex')}` };
}

export interface PreflightAccepted {
  where: string;
  kernelRelease: string;
  signer: string;
  configMatched: boolean;
}

interface Body { kind?: string; spec?: { envelopeHash?: { value?: string }; signatures?: { verifier?: string }[] } }

/** One log entry as preflight facts about `digest`, or undefined when it is none (or does not check out). */
function entryFacts(log: TransparencyLog, index: number, digest: string, policy: TrustPolicy, problems: string[]): PreflightFacts | undefined {
  let body: Body;
  try {
    body = JSON.parse(log.entry(index).toString('utf8')) as Body;
  } catch {
    return undefined;
  }
  if (body?.kind !== 'dsse') return undefined;
  const envJson = loadEnvelope(log.dir, String(body.spec?.envelopeHash?.value ?? ''));
  if (!envJson) return undefined;
  const env = envelopeFromJSON(JSON.parse(envJson) as SerializedEnvelope);
  if (!isPreflightPayload(env.payload)) return undefined;
  const where = `${log.dir} entry ${index}`;
  try {
    const st = parsePreflightStatement(env.payload);
    if (`sha256:${at(st.subject, 0, 'subject').digest.sha256}` !== digest) return undefined; // the parser requires exactly one
    const pem = Buffer.from(String(body.spec?.signatures?.[0]?.verifier ?? ''), 'base64').toString('utf8');
    if (pem.includes('BEGIN CERTIFICATE')) throw new Error('signed keyless; preflight attestations are accepted from key-based signers only');
    const id = keyId(createPublicKey(pem));
    const key = policy.signers.find((s) => s.keyId === id)?.key;
    // The policy's own key checks the signature: the logged verifier only says which key to use.
    if (key && !verifyData(key, preAuthEncoding(env.payloadType, env.payload), env.signatures[0]?.sig ?? Buffer.alloc(0))) throw new Error('its signature does not verify');
    checkEntryAgainstLog(tlogEntry(log, index, { inclusionPromise: false }), log.publicKey.key, log.origin);
    const k = st.predicate.kernel;
    return { where, signer: { keyId: id }, digest, kernelRelease: k.release, ...(k.config ? { configSha256: `sha256:${k.config.sha256}` } : {}), result: st.predicate.result };
  } catch (e) {
    problems.push(`${where}: ${(e as Error).message}`);
    return undefined;
  }
}

/** Preflight facts about plan `digest` ("sha256:<hex>") from every usable log; problems say what was skipped. */
export function findPreflights(dirs: string[], digest: string, policy: TrustPolicy): { found: PreflightFacts[]; problems: string[] } {
  const found: PreflightFacts[] = [];
  const problems: string[] = [];
  for (const dir of dirs) {
    if (!logExists(dir)) {
      problems.push(`${dir}: no attestation log`);
      continue;
    }
    const log = openLog(dir, { create: false });
    try {
      const id = log.publicKey.logId.toString('hex');
      if (!policy.logs.some((l) => l.keyId === id && l.origin === log.origin)) {
        problems.push(`${log.dir}: not a trusted log of ${policy.source} (give it with --log, or list its key and origin in "logs")`);
        continue;
      }
      for (let i = 0; i < log.size; i++) {
        const f = entryFacts(log, i, digest, policy, problems);
        if (f) found.push(f);
      }
    } finally {
      log.close();
    }
  }
  return { found, problems };
}

/** Throws PREFLIGHT_REQUIRED unless a trusted, passing preflight for this host's kernel is logged. */
export function requirePreflight(plan: string, digest: string, policy: TrustPolicy, o: { logs?: string[]; host?: HostKernel } = {}): { accepted: PreflightAccepted; notes: string[] } {
  const host = o.host ?? hostKernel();
  const dirs = o.logs?.length ? o.logs : [defaultLogDir()];
  const { found, problems } = findPreflights(dirs, `sha256:${digest}`, policy);
  try {
    const v = judgePreflight(policy, { plan, digest: `sha256:${digest}`, kernelRelease: host.release, configSha256: host.configSha256 }, found);
    return { accepted: { where: v.accepted.where, kernelRelease: v.accepted.kernelRelease, signer: v.signer.name, configMatched: !!host.configSha256 }, notes: v.notes };
  } catch (e) {
    if (problems.length && e instanceof Error) e.message += ` [skipped: ${problems.slice(0, 4).join('; ')}${problems.length > 4 ? '; ...' : ''}]`;
    throw e;
  }
}
