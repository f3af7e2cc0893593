/**
 * The host load log: every `bpfseal load` decision (allowed or refused) appended to a transparency log
 * of the host's own (same machinery as the attestation log: RFC 6962 tree, signed checkpoints, crash
 * safety). Default /var/lib/bpfseal/host-log, or $BPFSEAL_HOST_LOG, or --host-log.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { openLog, type TransparencyLog } from '../tlog/store.js';
import type { LoadRecord } from '../runtime/replay.js';

export const HOST_LOG_TYPE = 'bpfseal.load/v1';
export const DEFAULT_HOST_LOG = '/var/lib/bpfseal/host-log';

export function hostLogDir(flag?: string): string {
  return resolve(flag ?? process.env.BPFSEAL_HOST_LOG ?? DEFAULT_HOST_LOG);
}

export interface LoadDecision {
  type: typeof HOST_LOG_TYPE;
  decision: 'allowed' | 'refused';
  time: string;
  host: string;
  release: string;
  plan?: string;
  digest?: string;
  version?: number;
  signer?: { name?: string; keyId?: string; identity?: string; issuer?: string };
  programs?: LoadRecord['programs'];
  maps?: LoadRecord['maps'];
  fixups?: LoadRecord['fixups'];
  pins?: string[];
  /** Refusals: the stable error code and message. */
  code?: string;
  reason?: string;
}

export function decision(d: Omit<LoadDecision, 'type' | 'time' | 'host'>): LoadDecision {
  return { type: HOST_LOG_TYPE, time: new Date().toISOString(), host: hostname(), ...d };
}

/** Append a decision; returns its index. The log is created on first use. */
export async function recordDecision(dir: string, d: LoadDecision): Promise<number> {
  const log = openLog(dir);
  try {
    return (await log.append(Buffer.from(JSON.stringify(d)))).index;
  } finally {
    log.close();
  }
}

/** Every decision in a host log, oldest first (entries that are not decisions are skipped). */
export function readDecisions(log: TransparencyLog): { index: number; decision: LoadDecision }[] {
  const out: { index: number; decision: LoadDecision }[] = [];
  for (const { index, entry } of log.entries()) {
    try {
      const d = JSON.parse(entry.toString('utf8')) as LoadDecision;
      if (d.type === HOST_LOG_TYPE) out.push({ index, decision: d });
    } catch {
      /* not a decision */
    }
  }
  return out;
}
