/**
 * cosign-style keyless trust from the command line (`verify`/`load --certificate-identity[-regexp]
 * --certificate-oidc-issuer --trusted-root`): the in-memory equivalent of a policy file with one
 * keyless signer, `{"keyless": {"issuer", "subject"}, "plans": ["*"], "programTypes": ["*"]}` and
 * `"trustedRoot"`. Like cosign, the identity is the whole of what is checked: any plan, any program
 * type. Every mistake is a usage or policy error (exit 2), never a wider trust: an identity needs an
 * issuer, exactly one identity form, a regular expression that compiles on its own and is matched
 * against the whole SAN, and a trusted root that is a safe file (fsx/trusted.ts).
 */
import type { ErrorCode } from '../errors.js';
import { BpfsealError, InputError } from '../errors.js';
import { TRUST_FILE_UNSAFE } from '../fsx/trusted.js';
import { readInput } from '../fsx/read.js';
import { checkTrustedRoot, type TrustPolicy } from './policy.js';

export interface KeylessFlags {
  certificateIdentity?: string;
  certificateIdentityRegexp?: string;
  certificateOidcIssuer?: string;
  trustedRoot?: string;
}

const usage = (code: ErrorCode, msg: string) => new BpfsealError('usage', code, msg);

/** The anchored form of --certificate-identity-regexp: the expression must match the whole SAN. */
export function anchoredIdentity(re: string): RegExp {
  try {
    // Compiled alone first: "a)|(b" would compile inside the group as "^(?:a)|(b)$", unanchored at the start.
    new RegExp(re);
    return new RegExp(`^(?:${re})$`);
  } catch (e) {
    throw usage('USAGE_KEYLESS_REGEXP', `--certificate-identity-regexp ${JSON.stringify(re)}: not a valid regular expression (${(e as Error).message})`);
  }
}

export function keylessFlagsPolicy(o: KeylessFlags): TrustPolicy {
  const exact = o.certificateIdentity;
  const re = o.certificateIdentityRegexp;
  if (exact !== undefined && re !== undefined) throw usage('USAGE_KEYLESS_IDENTITY', 'give --certificate-identity or --certificate-identity-regexp, not both');
  if (exact === undefined && re === undefined) throw usage('USAGE_KEYLESS_IDENTITY', 'keyless verification needs --certificate-identity <san> or --certificate-identity-regexp <re> (with --certificate-oidc-issuer and --trusted-root)');
  if (exact === '' || re === '') throw usage('USAGE_KEYLESS_IDENTITY', `${exact === '' ? '--certificate-identity' : '--certificate-identity-regexp'}: empty`);
  if (o.certificateOidcIssuer === undefined) throw usage('USAGE_KEYLESS_ISSUER', 'a certificate identity needs --certificate-oidc-issuer <url>: the same subject from another issuer is another signer');
  if (o.certificateOidcIssuer === '') throw usage('USAGE_KEYLESS_ISSUER', '--certificate-oidc-issuer: empty');
  if (o.trustedRoot === undefined) throw usage('USAGE_KEYLESS_TRUSTED_ROOT', 'keyless verification needs --trusted-root <trusted_root.json> (the Sigstore trusted root whose Fulcio CAs, CT logs and Rekor keys to trust; bpfseal verifies offline and fetches none)');
  const subjectRegex = re !== undefined ? anchoredIdentity(re) : undefined;
  const src = `--trusted-root ${o.trustedRoot}`;
  let text: string;
  try {
    text = readInput(o.trustedRoot, { kind: 'trustedRoot', trusted: 'a Sigstore trusted root' }).toString('utf8');
  } catch (e) {
    // Unsafe trust material keeps its own code (the fix is a chmod/chown), as for --key and --policy.
    if (e instanceof BpfsealError && e.code === TRUST_FILE_UNSAFE) throw e;
    throw new InputError('POLICY_UNREADABLE', `${src}: ${(e as Error).message.replace(`${o.trustedRoot}: `, '')}`, { file: o.trustedRoot, cause: e });
  }
  const trustedRoot = checkTrustedRoot(text, 'not usable', src);
  const subject = re !== undefined ? `/${re}/` : exact!;
  const name = `${re !== undefined ? 'identity matching' : 'identity'} ${subject} (${o.certificateOidcIssuer})`;
  return {
    source: `--certificate-identity${re !== undefined ? '-regexp' : ''} ${re ?? exact}`,
    signers: [{ name, keyless: { issuer: o.certificateOidcIssuer, subject, ...(subjectRegex ? { subjectRegex } : {}) }, allowExpired: false, plans: ['*'], programTypes: ['*'] }],
    trustedRoot,
    logs: [], requireLogInclusion: false, requireKernelSignatures: false, requirePreflight: false, revokedKeys: new Set(), revokedDigests: new Set(),
    minVersions: new Map(), allowRollback: false, witnesses: [], witnessThreshold: 0, kernelAccept: [],
  };
}
