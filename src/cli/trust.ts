/** Trust options shared by verify and load: --key | --policy, --state. */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { BpfsealError } from '../errors.js';
import { loadPolicy, singleKeyPolicy, type TrustPolicy } from '../trust/policy.js';
import { DEFAULT_STATE } from '../trust/state.js';

export interface TrustOpts {
  key?: string;
  policy?: string;
  state?: string;
}

export function addTrustOptions(c: Command): Command {
  return c
    .option('--key <pub>', 'trust exactly this public key or certificate (any plan, any program type)')
    .option('--policy <file>', 'trust policy file (default: $BPFSEAL_POLICY, else ./keys/policy.json)')
    .option('--state <file>', `anti-rollback state file (default: policy "state", $BPFSEAL_STATE, else ${DEFAULT_STATE})`);
}

export function resolvePolicy(o: TrustOpts): TrustPolicy {
  if (o.key && o.policy) throw new BpfsealError('usage', 'USAGE_TRUST', 'give --key or --policy, not both');
  if (o.key) return singleKeyPolicy(o.key);
  const path = o.policy ?? process.env.BPFSEAL_POLICY ?? (existsSync('keys/policy.json') ? 'keys/policy.json' : undefined);
  if (!path) throw new BpfsealError('usage', 'USAGE_TRUST', 'no trust policy: give --key <pub> or --policy <file> (or create keys/policy.json)');
  return loadPolicy(path);
}

export function statePath(o: TrustOpts, policy: TrustPolicy): string {
  return o.state ?? policy.statePath ?? process.env.BPFSEAL_STATE ?? DEFAULT_STATE;
}
