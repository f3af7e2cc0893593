/** Trust options shared by verify and load: --key | --policy, --state. */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { BpfsealError } from '../errors.js';
import type { TrustPolicy } from '../trust/policy.js';
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

/** The policy of --key / --policy / the defaults; with `optional`, undefined when none is configured. */
export async function resolvePolicy(o: TrustOpts): Promise<TrustPolicy>;
export async function resolvePolicy(o: TrustOpts, mode: { optional: true }): Promise<TrustPolicy | undefined>;
export async function resolvePolicy(o: TrustOpts, mode?: { optional: true }): Promise<TrustPolicy | undefined> {
  if (o.key && o.policy) throw new BpfsealError('usage', 'USAGE_TRUST', 'give --key or --policy, not both');
  const { loadPolicy, singleKeyPolicy, trustedLog } = await import('../trust/policy.js');
  let policy: TrustPolicy;
  if (o.key) policy = singleKeyPolicy(o.key);
  else {
    const path = o.policy ?? defaultPolicyPath();
    if (!path) {
      if (mode?.optional) return undefined;
      throw new BpfsealError('usage', 'USAGE_TRUST', 'no trust policy: give --key <pub> or --policy <file> (or create keys/policy.json)');
    }
    policy = loadPolicy(path);
  }
  if (o.log?.length) {
    const { logIdentity } = await import('../tlog/keys.js');
    for (const dir of o.log) {
      const id = logIdentity(dir);
      policy.logs.push(trustedLog(id.key, id.origin));
    }
  }
  return policy;
}

/** $BPFSEAL_POLICY, else ./keys/policy.json when it exists. */
export function defaultPolicyPath(): string | undefined {
  return process.env.BPFSEAL_POLICY ?? (existsSync('keys/policy.json') ? 'keys/policy.json' : undefined);
}

export function statePath(o: TrustOpts, policy: TrustPolicy): string {
  return o.state ?? policy.statePath ?? process.env.BPFSEAL_STATE ?? DEFAULT_STATE;
}
