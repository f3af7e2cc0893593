/**
 * Offline Sigstore for tests: @sigstore/mock's Fulcio (CA + CT log) and Rekor v1 behind nock at
 * made-up base URLs, with key pairs we hold, so that a Sigstore trusted_root.json for a policy can be
 * written from them. nock intercepts only in this process: sign in-process, never via a child CLI.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import nock from 'nock';
import { fulcioHandler, initializeCA, initializeCTLog, initializeTLog, rekorHandler, type HandlerFn } from '@sigstore/mock';

export const FULCIO_URL = 'https://fulcio.test';
export const REKOR_URL = 'https://rekor.test';
export const ISSUER = 'https://token.actions.githubusercontent.com';
export const SUBJECT = 'https://github.com/acme/bpf-progs/.github/workflows/release.yml@refs/heads/main';

interface KeyPair { publicKey: KeyObject; privateKey: KeyObject }
const p256 = (): KeyPair => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });

export interface MockSigstore {
  fulcioURL: string;
  rekorURL: string;
  /** Sigstore trusted_root.json (JSON form) trusting exactly this CA, CT log and Rekor. */
  trustedRoot: Record<string, unknown>;
  /** The trusted root with only the Rekor (for key-based signing with a Rekor witness). */
  rekorOnlyRoot: Record<string, unknown>;
  rekorKey: KeyObject;
  /** Requests each service answered. */
  calls: { fulcio: number; rekor: number };
  /** Tampering Rekor: edits each proposed entry before the mock logs it (signs SET and checkpoint over the edit). */
  rekorTransform?: (proposed: Record<string, any>) => Record<string, any>;
  stop(): void;
}

/** nock adapter as in @sigstore/mock's own mock(), but persistent and counting. */
function intercept(base: string, handler: { path: string; fn: HandlerFn }, onCall: () => void, transform?: () => ((req: string) => string) | undefined) {
  nock(base).persist().post(handler.path).reply(async (_uri, body) => {
    onCall();
    const req = typeof body === 'string' ? body : JSON.stringify(body);
    const t = transform?.();
    const { statusCode, response, contentType } = await handler.fn(t ? t(req) : req);
    return [statusCode, response as string, { 'Content-Type': contentType || 'text/plain' }];
  });
}

/** An unsigned JWT (alg none): mock Fulcio decodes it without checking a signature. */
export function unsignedJwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
}

/** The identity token a GitHub Actions release job would present: mock Fulcio puts `sub` in the SAN. */
export function ciToken(sub = SUBJECT, iss = ISSUER): string {
  const now = Math.floor(Date.now() / 1000);
  return unsignedJwt({ iss, sub, aud: 'sigstore', iat: now, exp: now + 600 });
}

const VALID_FROM = '2000-01-01T00:00:00Z';

function tlogInstance(baseUrl: string, key: Buffer, logId: Buffer) {
  return {
    baseUrl,
    hashAlgorithm: 'SHA2_256',
    publicKey: { rawBytes: key.toString('base64'), keyDetails: 'PKIX_ECDSA_P256_SHA_256', validFor: { start: VALID_FROM } },
    logId: { keyId: logId.toString('base64') },
  };
}

export async function startMockSigstore(opts: { fulcioURL?: string; rekorURL?: string } = {}): Promise<MockSigstore> {
  const fulcioURL = opts.fulcioURL ?? FULCIO_URL;
  const rekorURL = opts.rekorURL ?? REKOR_URL;
  const caKeys = p256();
  const ctKeys = p256();
  const rekorKeys = p256();
  const ctLog = await initializeCTLog(ctKeys);
  const ca = await initializeCA(caKeys, ctLog);
  const tlog = await initializeTLog(rekorURL, rekorKeys);
  const rekorDer = spki(rekorKeys.publicKey);
  const rekorTlog = tlogInstance(rekorURL, rekorDer, createHash('sha256').update(rekorDer).digest());
  const trustedRoot = {
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    certificateAuthorities: [{
      subject: { organization: 'sigstore.mock', commonName: 'sigstore' },
      uri: fulcioURL,
      certChain: { certificates: [{ rawBytes: Buffer.from(ca.rootCertificate.buffer).toString('base64') }] },
      validFor: { start: VALID_FROM },
    }],
    ctlogs: [tlogInstance('https://ctfe.test', Buffer.from(ctLog.publicKey), Buffer.from(ctLog.logID.buffer))],
    tlogs: [rekorTlog],
    timestampAuthorities: [],
  };
  const rekorOnlyRoot = { mediaType: trustedRoot.mediaType, certificateAuthorities: [], ctlogs: [], tlogs: [rekorTlog], timestampAuthorities: [] };
  const m: MockSigstore = {
    fulcioURL, rekorURL, trustedRoot, rekorOnlyRoot, rekorKey: rekorKeys.publicKey, calls: { fulcio: 0, rekor: 0 },
    stop: () => {
      nock.cleanAll();
    },
  };
  intercept(fulcioURL, fulcioHandler(ca), () => m.calls.fulcio++);
  intercept(rekorURL, rekorHandler(tlog), () => m.calls.rekor++, () => {
    const t = m.rekorTransform;
    if (!t) return undefined;
    return (req: string) => JSON.stringify(t(JSON.parse(req)));
  });
  return m;
}
