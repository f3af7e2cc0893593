/**
 * The release file (<name>.bpfseal): one JSON document that carries everything a host needs.
 *   mediaType         RELEASE_MEDIA_TYPE (checked)
 *   plan              base64 of the canonical plan bytes (covered: its SHA-256 is the signed subject)
 *   bundle            Sigstore bundle v0.3 with the DSSE-signed in-toto statement and any log entries
 *   kernelSignatures  program name -> base64 DER PKCS#7 over that program's instruction bytes (optional)
 *   loaderSignature   base64 DER PKCS#7 over the plan's kernel loader, insns || blob (optional)
 *   certificate       PEM of the signing certificate, for kernel keyrings (optional; must match the signer)
 * Every field is signed, verified against signed content, or checked for an exact value; an unknown
 * field is rejected and the file must be in canonical form. One exception by design: log entries from
 * logs the verifier's policy does not trust are carried but not checked (and do not count).
 */
import { bundleFromJSON, bundleToJSON, type Bundle, type SerializedBundle } from '@sigstore/bundle';
import { InputError } from '../errors.js';
import { parseStrictJson } from '../json/strict.js';
import { certificateDer, derToPem } from '../trust/x509.js';

export const RELEASE_MEDIA_TYPE = 'application/vnd.bpfseal.release.v1+json';

export interface Release {
  plan: Buffer;
  bundle: Bundle;
  /** Program name -> DER PKCS#7 (a Map: names come from the object file and may be any string). */
  kernelSignatures: Map<string, Buffer>;
  /** DER PKCS#7 over the plan's kernel loader, `insns || blob` (kernels from 7.3 verify it). */
  loaderSignature?: Buffer;
  certificate?: string;
}

function b64(s: unknown, what: string): Buffer {
  if (typeof s !== 'string' || s.length % 4 !== 0) throw new InputError('RELEASE_INVALID', `release: ${what} is not canonical base64`);
  // Node's decoder skips characters outside the alphabet; the round trip below rejects any such input.
  const b = Buffer.from(s, 'base64');
  if (b.toString('base64') !== s) throw new InputError('RELEASE_INVALID', `release: ${what} is not canonical base64`);
  return b;
}

export function encodeRelease(r: Release, planBase64 = r.plan.toString('base64')): string {
  const doc: Record<string, unknown> = {
    mediaType: RELEASE_MEDIA_TYPE,
    plan: planBase64,
    // One form only: an absent timestampVerificationData is written as the empty one builders emit.
    bundle: bundleToJSON(r.bundle.verificationMaterial.timestampVerificationData ? r.bundle
      : { ...r.bundle, verificationMaterial: { ...r.bundle.verificationMaterial, timestampVerificationData: { rfc3161Timestamps: [] } } }),
  };
  const names = [...r.kernelSignatures.keys()].sort();
  if (names.length) {
    const sigs = Object.create(null) as Record<string, string>;
    for (const n of names) sigs[n] = r.kernelSignatures.get(n)!.toString('base64');
    doc.kernelSignatures = sigs;
  }
  if (r.loaderSignature) doc.loaderSignature = r.loaderSignature.toString('base64');
  if (r.certificate) doc.certificate = r.certificate;
  return JSON.stringify(doc, null, 2) + '\n';
}

/**
 * A Sigstore bundle from its JSON form (for callers that load this module on use: a dynamic import of
 * @sigstore/bundle itself loses its named exports through the CLI bundle's CommonJS interop).
 */
export function parseBundleJson(json: unknown): Bundle {
  return bundleFromJSON(json as SerializedBundle);
}

export function decodeRelease(bytes: Buffer): Release {
  let doc: Record<string, unknown>;
  const text = bytes.toString('utf8');
  try {
    doc = parseStrictJson(text) as Record<string, unknown>;
  } catch (e) {
    throw new InputError('RELEASE_INVALID', `not a bpfseal release: not JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new InputError('RELEASE_INVALID', 'not a bpfseal release: not a JSON object');
  if (doc.mediaType !== RELEASE_MEDIA_TYPE) throw new InputError('RELEASE_INVALID', `not a bpfseal release (mediaType ${JSON.stringify(doc.mediaType)})`);
  for (const k of Object.keys(doc)) {
    if (!['mediaType', 'plan', 'bundle', 'kernelSignatures', 'loaderSignature', 'certificate'].includes(k)) throw new InputError('RELEASE_INVALID', `release: unknown field '${k}'`);
  }
  let bundle: Bundle;
  try {
    // @sigstore/bundle's parser wants plain objects (it reads through prototypes).
    bundle = bundleFromJSON(JSON.parse(JSON.stringify(doc.bundle)) as SerializedBundle);
  } catch (e) {
    throw new InputError('RELEASE_INVALID', `release: bundle is not a valid Sigstore bundle (${(e as Error).message})`);
  }
  const kernelSignatures = new Map<string, Buffer>();
  if (doc.kernelSignatures !== undefined) {
    if (typeof doc.kernelSignatures !== 'object' || doc.kernelSignatures === null || Array.isArray(doc.kernelSignatures)) {
      throw new InputError('RELEASE_INVALID', 'release: kernelSignatures must be an object');
    }
    for (const [n, s] of Object.entries(doc.kernelSignatures as Record<string, unknown>)) kernelSignatures.set(n, b64(s, `kernel signature of '${n}'`));
  }
  if (doc.certificate !== undefined && typeof doc.certificate !== 'string') throw new InputError('RELEASE_INVALID', 'release: certificate must be a PEM string');
  if (typeof doc.certificate === 'string') {
    // One PEM form only (the one bpfseal writes): no text around it for a parser to skip.
    let canonical: string | undefined;
    try {
      canonical = derToPem(certificateDer(doc.certificate), 'CERTIFICATE');
    } catch {
      canonical = undefined;
    }
    if (canonical !== doc.certificate) throw new InputError('RELEASE_INVALID', 'release: certificate is not one canonical PEM certificate');
  }
  const release: Release = {
    plan: b64(doc.plan, 'plan'), bundle, kernelSignatures, certificate: doc.certificate as string | undefined,
    ...(doc.loaderSignature !== undefined ? { loaderSignature: b64(doc.loaderSignature, 'loader signature') } : {}),
  };
  // One encoding only, as for plans: any byte that is not signed is at least pinned by re-encoding.
  // (The plan's base64 was just checked to be canonical, so it is reused rather than encoded again.)
  if (encodeRelease(release, doc.plan as string) !== text) throw new InputError('RELEASE_INVALID', 'release is not in canonical form (re-encoding differs); was it edited?');
  return release;
}
