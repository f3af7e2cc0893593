/**
 * The one judge: every trust verdict bpfseal gives (verify, load, audit) is made here, from facts the
 * caller has already established cryptographically (attest/verify.ts): who signed (a key id, or a
 * keyless identity whose certificate chained to the policy's trusted root), which plan (name, digest,
 * program types, release version), how many trusted log entries, and the host's anti-rollback floor.
 * Throws VerifyError with a stable code; returns the matching policy signer and notes worth showing.
 */
import { VerifyError } from '../errors.js';
import { globMatch, identityMatches, type TrustPolicy, type TrustedSigner } from './policy.js';

export interface SignerFacts {
  /** Key id of the signing key (for keyless: of the certificate's key). */
  keyId: string;
  /** Present for keyless signatures: the Fulcio certificate's SAN and OIDC issuer. */
  keyless?: { identity?: string; issuer?: string };
}

export interface VerdictFacts {
  plan: string;
  /** Plan digest, "sha256:" + hex. */
  digest: string;
  /** Program type names (bpftool's), one per program. */
  programTypes: { program: string; type: string }[];
  version: number;
  signer: SignerFacts;
  /** Verified entries in trusted logs. */
  trustedLogEntries: number;
  untrustedLogEntries: number;
  /** Highest version of this plan already loaded on this host (anti-rollback), when known. */
  hostFloor?: number;
  /** When the verdict applies (certificate validity); default now. */
  now?: Date;
}

export interface Verdict {
  signer: TrustedSigner;
  notes: string[];
}

/** Policy signers that name this signing key or keyless identity. */
function candidates(policy: TrustPolicy, s: SignerFacts): TrustedSigner[] {
  if (s.keyless) return policy.signers.filter((x) => x.keyless && x.keyless.issuer === s.keyless!.issuer && identityMatches(x.keyless, s.keyless!.identity));
  return policy.signers.filter((x) => x.keyId === s.keyId);
}

function who(s: SignerFacts): string {
  return s.keyless ? `identity ${s.keyless.identity ?? '(none)'} from issuer ${s.keyless.issuer ?? '(none)'}` : `key ${s.keyId}`;
}

export function judge(policy: TrustPolicy, f: VerdictFacts): Verdict {
  const notes: string[] = [];
  const src = policy.source;
  // Revocation first: a revoked key is revoked whether it signed directly or sits in a keyless certificate.
  if (policy.revokedKeys.has(f.signer.keyId)) throw new VerifyError('REVOKED_KEY', `signing key ${f.signer.keyId} is revoked by ${src}`);
  if (policy.revokedDigests.has(f.digest)) throw new VerifyError('REVOKED_DIGEST', `plan digest ${f.digest} is revoked by ${src}`);
  let signers = candidates(policy, f.signer);
  const [firstCandidate] = signers;
  if (firstCandidate === undefined) throw new VerifyError('UNTRUSTED_SIGNER', `signed by ${who(f.signer)}, which ${src} does not trust`);
  // A certificate outside its validity period does not make a trusted signer (unless the policy says so).
  const now = f.now ?? new Date();
  const valid = signers.filter((s) => {
    const v = s.certificateValidity;
    if (!v || (now >= v.notBefore && now <= v.notAfter)) return true;
    const why = now < v.notBefore ? `is not valid before ${v.notBefore.toISOString()}` : `expired on ${v.notAfter.toISOString()}`;
    if (s.allowExpired) {
      notes.push(`signer '${s.name}': certificate ${why}; accepted because ${src} sets allowExpired`);
      return true;
    }
    return false;
  });
  const [firstValid] = valid;
  if (firstValid === undefined) {
    const v = firstCandidate.certificateValidity!;
    throw new VerifyError('CERTIFICATE_EXPIRED', `signer '${firstCandidate.name}': its certificate ${now < v.notBefore ? `is not valid before ${v.notBefore.toISOString()}` : `expired on ${v.notAfter.toISOString()}`} (set "allowExpired": true in ${src} to accept offline key material)`);
  }
  signers = valid;
  const forPlan = signers.filter((s) => s.plans.some((p) => globMatch(p, f.plan)));
  const [best] = forPlan;
  if (best === undefined) throw new VerifyError('UNTRUSTED_SIGNER', `signer '${firstValid.name}' may not sign plan '${f.plan}' under ${src}`);
  // One entry must allow the plan and every program type: entries are not added up.
  const allows = (s: TrustedSigner, type: string) => s.programTypes.some((g) => globMatch(g, type));
  const signer = forPlan.find((s) => f.programTypes.every((p) => allows(s, p.type)));
  if (!signer) {
    const p = f.programTypes.find((x) => !allows(best, x.type))!;
    throw new VerifyError('PROGRAM_TYPE_FORBIDDEN', `program '${p.program}' has type ${p.type}, which signer '${best.name}' may not sign under ${src}${forPlan.length > 1 ? ' (no single signer entry allows this plan and all its program types)' : ''}`);
  }
  const min = policy.minVersions.get(f.plan);
  if (min !== undefined && f.version < min) throw new VerifyError('ROLLBACK', `release version ${f.version} of '${f.plan}' is below the policy minimum ${min}`);
  if (f.hostFloor !== undefined && f.version < f.hostFloor && !policy.allowRollback) {
    throw new VerifyError('ROLLBACK', `release version ${f.version} of '${f.plan}' is older than version ${f.hostFloor} already loaded on this host (anti-rollback)`);
  }
  if (policy.requireLogInclusion && f.trustedLogEntries === 0) {
    throw new VerifyError('LOG_INCLUSION_REQUIRED', `policy requires inclusion in a trusted log; the release has ${f.untrustedLogEntries ? 'entries only from untrusted logs' : 'no log entry'}`);
  }
  return { signer, notes };
}

/** A preflight attestation found in a trusted log, its signature and inclusion already checked (preflight/require.ts). */
export interface PreflightFacts {
  /** Where it is, for messages: "<log dir> entry <index>". */
  where: string;
  signer: SignerFacts;
  digest: string;
  kernelRelease: string;
  /** "sha256:<hex>" of the judged kernel's build config, when it had one. */
  configSha256?: string;
  result: 'pass' | 'fail';
}

/** The host a preflight must match: `uname -r` and the digest of /boot/config-$(uname -r) when present. */
export interface PreflightWant {
  plan: string;
  digest: string;
  kernelRelease: string;
  configSha256?: string;
}

/**
 * requirePreflight: one attestation must say this plan passed on this host's kernel, signed by a
 * signer the policy trusts for this plan (keys only: a preflight is signed where the kernels boot, with
 * a local key). The host's config digest must match when the host has a config; without one, the
 * release string alone decides and a note says so. Throws PREFLIGHT_REQUIRED naming why each
 * candidate was not enough.
 */
export function judgePreflight(policy: TrustPolicy, want: PreflightWant, found: PreflightFacts[]): { accepted: PreflightFacts; signer: TrustedSigner; notes: string[] } {
  const why: string[] = [];
  for (const f of found.filter((x) => x.digest === want.digest)) {
    const signer = policy.revokedKeys.has(f.signer.keyId) ? undefined
      : candidates(policy, f.signer).find((s) => s.plans.some((p) => globMatch(p, want.plan)));
    if (!signer) why.push(`${f.where}: signed by ${who(f.signer)}, not trusted for plan '${want.plan}'`);
    else if (f.kernelRelease !== want.kernelRelease) why.push(`${f.where}: for kernel ${f.kernelRelease}`);
    else if (want.configSha256 && f.configSha256 !== want.configSha256) why.push(`${f.where}: kernel ${f.kernelRelease} built with another config (${f.configSha256 ?? 'none recorded'}, this host ${want.configSha256})`);
    else if (f.result !== 'pass') why.push(`${f.where}: the plan failed on ${f.kernelRelease}`);
    else {
      const notes = want.configSha256 ? [] : [`preflight matched by kernel release only: this host has no /boot/config-${want.kernelRelease} to compare`];
      return { accepted: f, signer, notes };
    }
  }
  const shown = why.slice(0, 6).join('; ') + (why.length > 6 ? `; and ${why.length - 6} more` : '');
  throw new VerifyError('PREFLIGHT_REQUIRED', `policy ${policy.source} requires a passing preflight of plan '${want.plan}' (${want.digest}) on this host's kernel ${want.kernelRelease}; ${why.length ? `none qualifies: ${shown}` : 'the attestation logs hold none for this plan'} (run bpfseal preflight <release> --kernel <this kernel's package> --attest --key <key>)`);
}
