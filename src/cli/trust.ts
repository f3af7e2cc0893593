/** Trust options shared by verify and load: --key | --policy | the keyless flags, --state. */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { BpfsealError } from '../errors.js';
import type { TrustPolicy } from '../trust/policy.js';
import { DEFAULT_STATE } from '../trust/state.js';
import type { KeylessFlags } from '../trust/keyless-flags.js';

/** Were any of the keyless flags given? (Then they are the whole policy; trust/keyless-flags.ts is loaded on use.) */
const hasKeylessFlags = (o: KeylessFlags): boolean =>
  [o.certificateIdentity, o.certificateIdentityRegexp, o.certificateOidcIssuer, o.trustedRoot].some((v) => v !== undefined);

export interface TrustOpts extends KeylessFlags {
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
    // cosign's flags: one keyless signer, trusted (as cosign does) for any plan and any program type.
    .option('--certificate-identity <san>', 'trust the keyless (Fulcio) certificate with exactly this SAN, for any plan and any program type (needs --certificate-oidc-issuer and --trusted-root)')
    .option('--certificate-identity-regexp <re>', 'as --certificate-identity, with a regular expression that must match the whole SAN')
    .option('--certificate-oidc-issuer <url>', 'the OIDC issuer the keyless certificate must name, exactly')
    .option('--trusted-root <file>', 'Sigstore trusted_root.json for --certificate-identity[-regexp]: the Fulcio CAs, CT logs and Rekor keys to trust')
    .option('--state <file>', `anti-rollback state file (default: policy "state", $BPFSEAL_STATE, else ${DEFAULT_STATE})`)
    .option('--log <dir|url>', 'a log directory: trust it (its key and origin) for log entries; an https:// or file:// URL of a tiled log the policy trusts: also check the release against the log as served now (repeatable)', (v: string, prev: string[] = []) => [...prev, v]);
}

/** The policy of --key / --policy / the defaults; with `optional`, undefined when none is configured. */
export async function resolvePolicy(o: TrustOpts): Promise<TrustPolicy>;
export async function resolvePolicy(o: TrustOpts, mode: { optional: true }): Promise<TrustPolicy | undefined>;
export async function resolvePolicy(o: TrustOpts, mode?: { optional: true }): Promise<TrustPolicy | undefined> {
  const keyless = hasKeylessFlags(o);
  if ([o.key !== undefined, o.policy !== undefined, keyless].filter(Boolean).length > 1) {
    throw new BpfsealError('usage', 'USAGE_TRUST', `give one of --key, --policy or the --certificate-* flags, not ${[o.key !== undefined && '--key', o.policy !== undefined && '--policy', keyless && '--certificate-*/--trusted-root'].filter(Boolean).join(' and ')}`);
  }
  const { loadPolicy, singleKeyPolicy, trustedLog } = await import('../trust/policy.js');
  let policy: TrustPolicy;
  if (keyless) policy = (await import('../trust/keyless-flags.js')).keylessFlagsPolicy(o);
  else if (o.key) policy = singleKeyPolicy(o.key);
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
    for (const dir of o.log.filter((l) => !isLogUrl(l))) {
      const id = logIdentity(dir);
      policy.logs.push(trustedLog(id.key, id.origin));
    }
  }
  return policy;
}

export const isLogUrl = (l: string): boolean => /^(https?|file):\/\//i.test(l);

/** The --log values that are local log directories (URLs are checked online, not searched). */
export const localLogs = (o: TrustOpts): string[] | undefined => o.log?.filter((l) => !isLogUrl(l));

/**
 * Readers for the --log URLs, checked with the keys of the policy's trusted logs (a URL is never a
 * source of trust itself): the served log's origin must be one the policy trusts.
 */
export async function onlineLogs(o: TrustOpts, policy: TrustPolicy): Promise<import('../tlog/log-reader.js').LogReader[]> {
  const urls = (o.log ?? []).filter(isLogUrl);
  if (!urls.length) return [];
  const { openLogReader } = await import('../tlog/open-reader.js');
  const keys = policy.logs.map((l) => l.key.export({ type: 'spki', format: 'pem' }).toString());
  if (!keys.length) throw new BpfsealError('usage', 'USAGE_LOG_URL', `--log ${urls[0]}: the trust policy names no trusted log to check it with (add it to the policy's "logs")`);
  const readers = [];
  for (const url of urls) {
    const r = await openLogReader(url, { keys });
    if (!policy.logs.some((l) => l.origin === r.origin)) {
      r.close();
      throw new BpfsealError('usage', 'USAGE_LOG_URL', `--log ${url}: serves the log ${r.origin}, which the trust policy does not list`);
    }
    readers.push(r);
  }
  return readers;
}

/** $BPFSEAL_POLICY, else ./keys/policy.json when it exists. */
export function defaultPolicyPath(): string | undefined {
  return process.env.BPFSEAL_POLICY ?? (existsSync('keys/policy.json') ? 'keys/policy.json' : undefined);
}

export function statePath(o: TrustOpts, policy: TrustPolicy): string {
  return o.state ?? policy.statePath ?? process.env.BPFSEAL_STATE ?? DEFAULT_STATE;
}
