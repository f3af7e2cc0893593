/** Trust options shared by verify and load: --key | --policy, --state. */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { BpfsealError } from '../errors.js';
import { loadPolicy, singleKeyPolicy, type TrustedLog, type TrustPolicy } from '../trust/policy.js';
import { readConfig, readPublicKey } from '../tlog/keys.js';
import { DEFAULT_STATE } from '../trust/state.js';

export interface TrustOpts {
  key?: string;
  policy?: string;
  state?: string;
  /** Local attestation logs to trust for log-entry checks (repeatable). */
  log?: string[];
}

export function addTrustOptions(c: Command): Command {
  return c
    .option('--key <pub>', 'trust exactly this public key or certificate (any plan, any program type)')
    .option('--policy <file>', 'trust policy file (default: $BPFSEAL_POLICY, else ./keys/policy.json)')
    .option('--state <file>', `anti-rollback state file (default: policy "state", $BPFSEAL_STATE, else ${DEFAULT_STATE})`)
    .option('--log <dir>', 'trust this local attestation log (its key and origin) for log entries (repeatable)', (v: string, prev: string[] = []) => [...prev, v]);
}

export function resolvePolicy(o: TrustOpts): TrustPolicy {
  if (o.key && o.policy) throw new BpfsealError('usage', 'USAGE_TRUST', 'give --key or --policy, not both');
  let policy: TrustPolicy;
  if (o.key) policy = singleKeyPolicy(o.key);
  else {
    const path = o.policy ?? defaultPolicyPath();
    if (!path) throw new BpfsealError('usage', 'USAGE_TRUST', 'no trust policy: give --key <pub> or --policy <file> (or create keys/policy.json)');
    policy = loadPolicy(path);
  }
  for (const dir of o.log ?? []) policy.logs.push(localLogTrust(dir));
  return policy;
}

/** $BPFSEAL_POLICY, else ./keys/policy.json when it exists. */
export function defaultPolicyPath(): string | undefined {
  return process.env.BPFSEAL_POLICY ?? (existsSync('keys/policy.json') ? 'keys/policy.json' : undefined);
}

/** A local log directory as a trusted log: its public key and checkpoint origin. */
export function localLogTrust(dir: string): TrustedLog {
  const pub = readPublicKey(dir);
  const { origin } = readConfig(dir);
  return { key: pub.key, keyId: pub.logId.toString('hex'), origin, baseUrl: `https://${origin}` };
}

export function statePath(o: TrustOpts, policy: TrustPolicy): string {
  return o.state ?? policy.statePath ?? process.env.BPFSEAL_STATE ?? DEFAULT_STATE;
}
