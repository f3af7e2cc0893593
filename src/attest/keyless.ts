/**
 * Keyless signing (Sigstore): an ephemeral P-256 key, certified for ten minutes by Fulcio against an
 * OIDC identity token (the CI's workload identity), and a Rekor entry whose signed timestamp proves
 * the signature was made while that certificate was valid. Verification (verify.ts, keyless branch)
 * needs the policy's trustedRoot: the Fulcio CA, the CT log that signed the certificate's SCT, and the
 * Rekor key.
 *
 * Errors from @sigstore/sign are InternalErrors that the CLI would report as bpfseal bugs (and the
 * token parse error quotes the whole token); they are mapped here to stable codes:
 *   KEYLESS_NO_TOKEN (exit 2)     no identity token: none given, no $SIGSTORE_ID_TOKEN, not in CI
 *   KEYLESS_BAD_TOKEN (exit 2)    the token is not a JWT with an issuer and a subject (or is expired)
 *   KEYLESS_FULCIO_ERROR (exit 2) Fulcio refused or could not be reached
 *   KEYLESS_REKOR_ERROR (exit 2)  Rekor refused or could not be reached
 */
import {
  CIContextProvider, DEFAULT_FULCIO_URL, DEFAULT_REKOR_URL, FulcioSigner, InternalError, RekorWitness,
  type IdentityProvider, type Signature, type SignatureBundle,
} from '@sigstore/sign';
import { certificateIdentity, type SignerIdentity } from './identity.js';
import type { Bundle, TransparencyLogEntry } from '@sigstore/bundle';
import { BpfsealError } from '../errors.js';

export { certificateIdentity, type SignerIdentity } from './identity.js';


/** The audience Fulcio expects in CI-issued tokens. */
const AUDIENCE = 'sigstore';
/** HTTP retries and per-request timeout, as the `sigstore` package uses for Fulcio and Rekor. */
const DEFAULT_RETRY = 2;
const DEFAULT_TIMEOUT_MS = 5000;

export interface KeylessOptions {
  /** Fulcio base URL (self-hosted Fulcio); default https://fulcio.sigstore.dev. */
  fulcioURL?: string;
  /** OIDC identity token; default $SIGSTORE_ID_TOKEN, else the CI's (GitHub Actions OIDC). */
  identityToken?: string;
  /** HTTP retries and per-request timeout (ms) for Fulcio; default 2 and 5000. */
  retry?: number;
  timeout?: number;
}

export interface RekorOptions {
  /** HTTP retries and per-request timeout (ms); default 2 and 5000. */
  retry?: number;
  timeout?: number;
}

const noToken = (why: string) => new BpfsealError('usage', 'KEYLESS_NO_TOKEN',
  `keyless signing needs an OIDC identity token (${why}): pass --identity-token, set SIGSTORE_ID_TOKEN, ` +
  'or run in GitHub Actions with `permissions: id-token: write`');

/** The claims of a JWT, unverified (Fulcio verifies the token; we only check its shape for a clear error). */
export function tokenClaims(token: string): Record<string, unknown> {
  const parts = token.split('.');
  const [, payload] = parts;
  let claims: unknown;
  try {
    if (parts.length !== 3 || payload === undefined) throw new Error('not three parts');
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    throw new BpfsealError('usage', 'KEYLESS_BAD_TOKEN', 'the identity token is not a JWT (header.payload.signature)');
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new BpfsealError('usage', 'KEYLESS_BAD_TOKEN', 'the identity token payload is not a JSON object');
  return claims as Record<string, unknown>;
}

function checkToken(token: string, now = Date.now()): void {
  const c = tokenClaims(token);
  if (typeof c.iss !== 'string') throw new BpfsealError('usage', 'KEYLESS_BAD_TOKEN', 'the identity token has no issuer (iss) claim');
  if (typeof c.sub !== 'string' && typeof c.email !== 'string') throw new BpfsealError('usage', 'KEYLESS_BAD_TOKEN', 'the identity token has neither a sub nor an email claim');
  if (typeof c.email === 'string' && c.email_verified !== true) throw new BpfsealError('usage', 'KEYLESS_BAD_TOKEN', `the identity token's email is not verified by ${c.iss} (Fulcio refuses it)`);
  if (typeof c.exp === 'number' && c.exp * 1000 < now) {
    throw new BpfsealError('usage', 'KEYLESS_BAD_TOKEN', `the identity token from ${c.iss} expired at ${new Date(c.exp * 1000).toISOString()}`);
  }
}

/**
 * Where the identity token comes from: opts.identityToken, else $SIGSTORE_ID_TOKEN, else the CI
 * (CIContextProvider('sigstore'): GitHub Actions' OIDC endpoint). Throws KEYLESS_NO_TOKEN at once when
 * none of these can give one, so nothing is signed half-way.
 */
export function identityProvider(opts: Pick<KeylessOptions, 'identityToken'> = {}, env: NodeJS.ProcessEnv = process.env): IdentityProvider {
  const token = opts.identityToken || env.SIGSTORE_ID_TOKEN;
  if (token) {
    checkToken(token);
    return { getToken: async () => token };
  }
  if (!env.ACTIONS_ID_TOKEN_REQUEST_URL || !env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) {
    throw noToken('no --identity-token, no SIGSTORE_ID_TOKEN, and no GitHub Actions OIDC endpoint');
  }
  const ci = new CIContextProvider(AUDIENCE);
  return {
    getToken: async () => {
      let t: string;
      try {
        t = await ci.getToken();
      } catch (e) {
        throw noToken(`the GitHub Actions OIDC endpoint gave none: ${e instanceof Error ? e.message : String(e)}`);
      }
      checkToken(t);
      return t;
    },
  };
}

function causeText(e: unknown): string {
  const parts: string[] = [];
  for (let c: unknown = e, i = 0; c && i < 4; c = (c as { cause?: unknown }).cause, i++) {
    const m = c instanceof Error ? c.message : typeof c === 'string' ? c : '';
    if (m && !parts.some((p) => p.includes(m))) parts.push(m);
  }
  return parts.join(': ') || String(e);
}

/** @sigstore/sign errors -> BpfsealErrors with stable codes; never echoes the identity token. */
function mapSignError(e: unknown, where: { fulcio?: string; rekor?: string }): unknown {
  if (e instanceof BpfsealError) return e;
  if (e instanceof InternalError) {
    if (e.code === 'IDENTITY_TOKEN_READ_ERROR') {
      return e.cause instanceof BpfsealError ? e.cause : noToken(causeText(e.cause));
    }
    // This one quotes the whole token in its message: do not pass it on.
    if (e.code === 'IDENTITY_TOKEN_PARSE_ERROR') return new BpfsealError('usage', 'KEYLESS_BAD_TOKEN', 'the identity token has no usable subject (sub or verified email)');
    if (e.code.startsWith('CA_')) return new BpfsealError('input', 'KEYLESS_FULCIO_ERROR', `Fulcio ${where.fulcio}: ${causeText(e)}`, { cause: e });
    if (e.code.startsWith('TLOG_')) return new BpfsealError('input', 'KEYLESS_REKOR_ERROR', `Rekor ${where.rekor}: ${causeText(e)}`, { cause: e });
  }
  return e;
}

/** A FulcioSigner with bpfseal's identity sources and error codes. */
export class KeylessSigner extends FulcioSigner {
  readonly fulcioURL: string;
  constructor(opts: KeylessOptions = {}) {
    const fulcioURL = opts.fulcioURL ?? DEFAULT_FULCIO_URL;
    super({ identityProvider: identityProvider(opts), fulcioBaseURL: fulcioURL, retry: opts.retry ?? DEFAULT_RETRY, timeout: opts.timeout ?? DEFAULT_TIMEOUT_MS });
    this.fulcioURL = fulcioURL;
  }

  override async sign(data: Buffer): Promise<Signature> {
    try {
      return await super.sign(data);
    } catch (e) {
      throw mapSignError(e, { fulcio: this.fulcioURL });
    }
  }
}

/**
 * The keyless Signer: each sign() gets an identity token, asks Fulcio for a certificate over an
 * ephemeral key (one per signer), and signs with that key.
 */
export function keylessSigner(opts: KeylessOptions = {}): KeylessSigner {
  return new KeylessSigner(opts);
}

/**
 * Rekor (API v1) witness. Entries are `intoto` 0.0.2, not @sigstore/sign's default `dsse` 0.0.1: Rekor
 * stores a dsse entry in a canonical form (envelope and payload hashes) that @sigstore/verify checks,
 * whereas a Rekor that stores the proposed entry as submitted (as @sigstore/mock's does) leaves a body
 * that fails that check. An intoto entry verifies in both cases: the verifier checks its signatures
 * and hashes, which the proposed and the canonical forms share. The public Rekor accepts both kinds.
 */
export class BpfsealRekorWitness extends RekorWitness {
  readonly rekorURL: string;
  constructor(url: string = DEFAULT_REKOR_URL, opts: RekorOptions = {}) {
    super({
      rekorBaseURL: url, entryType: 'intoto', majorApiVersion: 1, fetchOnConflict: true,
      retry: opts.retry ?? DEFAULT_RETRY, timeout: opts.timeout ?? DEFAULT_TIMEOUT_MS,
    });
    this.rekorURL = url;
  }

  override async testify(content: SignatureBundle, publicKey: string): Promise<{ tlogEntries: TransparencyLogEntry[] }> {
    try {
      return await super.testify(content, publicKey);
    } catch (e) {
      throw mapSignError(e, { rekor: this.rekorURL });
    }
  }
}

export function rekorWitness(url: string = DEFAULT_REKOR_URL, opts: RekorOptions = {}): BpfsealRekorWitness {
  return new BpfsealRekorWitness(url, opts);
}

/**
 * Who signed a keyless bundle, as its Fulcio certificate says (SAN and OIDC issuer), or undefined
 * for a key-based bundle. This reads the certificate without verifying it: for telling the signer who
 * they signed as, not for trust decisions (verifyRelease does those).
 */
export function bundleSignerIdentity(bundle: Bundle): SignerIdentity | undefined {
  const c = bundle.verificationMaterial.content;
  const der = c.$case === 'certificate' ? c.certificate.rawBytes
    : c.$case === 'x509CertificateChain' ? c.x509CertificateChain.certificates[0]?.rawBytes : undefined;
  if (!der) return undefined;
  return certificateIdentity(Buffer.from(der));
}

