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
  if (!signers.length) throw new VerifyError('UNTRUSTED_SIGNER', `signed by ${who(f.signer)}, which ${src} does not trust`);
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
  if (!valid.length) {
    const v = signers[0].certificateValidity!;
    throw new VerifyError('CERTIFICATE_EXPIRED', `signer '${signers[0].name}': its certificate ${now < v.notBefore ? `is not valid before ${v.notBefore.toISOString()}` : `expired on ${v.notAfter.toISOString()}`} (set "allowExpired": true in ${src} to accept offline key material)`);
  }
  signers = valid;
  const forPlan = signers.filter((s) => s.plans.some((p) => globMatch(p, f.plan)));
  if (!forPlan.length) throw new VerifyError('UNTRUSTED_SIGNER', `signer '${signers[0].name}' may not sign plan '${f.plan}' under ${src}`);
  // One entry must allow the plan and every program type: entries are not added up.
  const allows = (s: TrustedSigner, type: string) => s.programTypes.some((g) => globMatch(g, type));
  const signer = forPlan.find((s) => f.programTypes.every((p) => allows(s, p.type)));
  if (!signer) {
    const best = forPlan[0];
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
