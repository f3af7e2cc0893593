/**
 * Kernel program signatures: a detached CMS SignedData (RFC 5652) over exactly the instruction bytes
 * (insn_cnt * 8), as BPF_PROG_LOAD's signature/signature_size fields take it. SHA-256, RSA or ECDSA
 * (the kernel's PKCS#7 parser knows no Ed25519), issuerAndSerialNumber signer id, embedded certificate.
 * `openssl cms -verify -binary -inform DER -content insns.bin -certfile cert.pem -noverify` checks the
 * same bytes independently.
 */
import type { ErrorCode } from '../errors.js';
import { createHash, createPublicKey, type KeyObject, sign } from 'node:crypto';
import { signatureVerifies } from '../sig.js';
import { InputError } from '../errors.js';
import { keyAlgorithm, spkiDer } from '../trust/keys.js';
import { certificateDer, OID as X509_OID, parseCertificate, subjectKeyIdentifier } from '../trust/x509.js';
import {
  Asn1Error, children, contextConstructed, type Der, expectTag, nullValue, octetString, oid, parseDer,
  readOid, readSmallInteger, sequence, setOf, smallInteger, TAG,
} from '../der/asn1.js';

/** bpf_attr.signature_size above this is EINVAL (see facts/kernel.md). */
export const KERNEL_MAX_SIGNATURE_SIZE = 8192;

export const CMS_OID = {
  data: '1.2.840.113549.1.7.1', // RFC 5652 §4
  signedData: '1.2.840.113549.1.7.2', // RFC 5652 §5.1
  contentType: '1.2.840.113549.1.9.3', // RFC 5652 §11.1
  messageDigest: '1.2.840.113549.1.9.4', // RFC 5652 §11.2
  sha256: '2.16.840.1.101.3.4.2.1', // RFC 5754 §2.2
} as const;

/** A signature that cannot be made or parsed (exit 2). A well-formed signature that does not verify is `false`, not an error. */
export class Pkcs7Error extends InputError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'Pkcs7Error';
  }
}

// RFC 5754 §2: SHA-2 AlgorithmIdentifiers SHOULD omit parameters.
const sha256AlgId = (): Buffer => sequence(oid(CMS_OID.sha256));

/** SignerInfo.signatureAlgorithm: rsaEncryption + NULL (RFC 3370 §3.2), ecdsa-with-SHA256 (RFC 5753 §2.1.1). */
function cmsSignatureAlgorithm(key: KeyObject): Buffer {
  const alg = keyAlgorithm(key);
  if (alg === 'ecdsa-p256') return sequence(oid(X509_OID.ecdsaWithSHA256));
  if (alg.startsWith('rsa-')) return sequence(oid(X509_OID.rsaEncryption), nullValue());
  throw new Pkcs7Error('SIG_KEY_UNSUPPORTED', `kernel program signatures need an RSA or ECDSA key (got ${alg})`);
}

function checkInstructions(insns: Buffer): void {
  if (insns.length === 0 || insns.length % 8 !== 0) {
    throw new Pkcs7Error('INSNS_INVALID', `instruction bytes: length ${insns.length} is not a positive multiple of 8`);
  }
}

/** The signed attributes (RFC 5652 §5.3): contentType id-data and messageDigest; no signingTime, so RSA output is deterministic. */
function signedAttributes(insns: Buffer): Buffer[] {
  const digest = createHash('sha256').update(insns).digest();
  return [
    sequence(oid(CMS_OID.contentType), setOf(oid(CMS_OID.data))),
    sequence(oid(CMS_OID.messageDigest), setOf(octetString(digest))),
  ];
}

/** Detached DER CMS SignedData over `insns`, signed by `privateKey`, embedding `certPem` (which must hold its public key). */
export function signInstructions(insns: Buffer, privateKey: KeyObject, certPem: string | Buffer): Buffer {
  checkInstructions(insns);
  const sigAlg = cmsSignatureAlgorithm(privateKey);
  const cert = parseCertificate(certificateDer(certPem));
  if (!cert.spki.equals(spkiDer(privateKey))) {
    throw new Pkcs7Error('SIG_CERT_MISMATCH', 'the certificate does not hold the signing key\'s public key');
  }
  const attrs = setOf(...signedAttributes(insns)); // DER SET OF, sorted
  // §5.4: the signature covers the DER of signedAttrs with an EXPLICIT SET OF tag, i.e. tagged 0x31.
  const out = assembleSignedData(cert, attrs, sigAlg, sign('sha256', attrs, privateKey));
  if (out.length > KERNEL_MAX_SIGNATURE_SIZE) {
    throw new Pkcs7Error(
      'SIG_TOO_LARGE',
      `signature is ${out.length} bytes; the kernel takes at most ${KERNEL_MAX_SIGNATURE_SIZE} (use a smaller certificate)`,
    );
  }
  return out;
}

/** The one DER layout bpfseal emits: ContentInfo{SignedData v1, {sha256}, detached id-data, [cert], {SignerInfo v1}}. */
function assembleSignedData(cert: ReturnType<typeof parseCertificate>, attrs: Buffer, sigAlg: Buffer, signature: Buffer): Buffer {
  const signerInfo = sequence(
    smallInteger(1), // version 1: sid is issuerAndSerialNumber (§5.3)
    sequence(cert.issuerTlv, cert.serialTlv),
    sha256AlgId(),
    contextConstructed(0, parseDer(attrs).content), // signedAttrs [0] IMPLICIT
    sigAlg,
    octetString(signature),
  );
  const signedData = sequence(
    smallInteger(1), // §5.1: version 1, no other-format certificates or attribute certificates
    setOf(sha256AlgId()),
    sequence(oid(CMS_OID.data)), // encapContentInfo without eContent: detached
    contextConstructed(0, cert.der), // certificates [0] IMPLICIT
    setOf(signerInfo),
  );
  return sequence(oid(CMS_OID.signedData), contextConstructed(0, signedData));
}

/**
 * Is `sig` exactly what signInstructions emits for `cert` (same layout, that certificate embedded), up
 * to its signature value? Parsing is lenient about fields the kernel and openssl would read
 * differently (version, digestAlgorithms, embedded certificates); this closes that gap, so a release's
 * kernel signature has no bytes that are neither verified nor pinned.
 */
function canonical(sig: Buffer, cert: ReturnType<typeof parseCertificate>, parsed: ParsedSignature): boolean {
  const { signer } = parsed;
  if (!signer.signedAttrsDer) return false;
  const sigAlg = signer.signatureAlgorithm === X509_OID.ecdsaWithSHA256 ? sequence(oid(X509_OID.ecdsaWithSHA256))
    : signer.signatureAlgorithm === X509_OID.rsaEncryption ? sequence(oid(X509_OID.rsaEncryption), nullValue()) : undefined;
  if (!sigAlg) return false;
  return assembleSignedData(cert, signer.signedAttrsDer, sigAlg, signer.signature).equals(sig);
}

// ---------------------------------------------------------------------------------------------------
// Verification

export interface ParsedSignerInfo {
  sid: { issuerTlv: Buffer; serialTlv: Buffer } | { ski: Buffer };
  digestAlgorithm: string;
  /** signedAttrs re-tagged as SET OF (0x31), the bytes the signature covers; undefined without signedAttrs. */
  signedAttrsDer?: Buffer;
  messageDigest?: Buffer;
  signatureAlgorithm: string;
  signature: Buffer;
}

export interface ParsedSignature {
  certificates: Buffer[];
  signer: ParsedSignerInfo;
}

function algOid(d: Der | undefined, what: string): string {
  const [id, params, extra] = children(expectTag(d, TAG.SEQUENCE, what));
  if (extra || (params && params.tag !== TAG.NULL)) throw new Asn1Error(`${what}: unexpected parameters`);
  return readOid(id, `${what}.algorithm`);
}

function parseSignedAttrs(node: Der): { der: Buffer; messageDigest: Buffer } {
  const seen = new Map<string, Der[]>();
  for (const a of children(node)) {
    const [type, values] = children(expectTag(a, TAG.SEQUENCE, 'Attribute'));
    const t = readOid(type, 'attrType');
    if (seen.has(t)) throw new Asn1Error(`signed attribute ${t} appears twice`);
    seen.set(t, children(expectTag(values, TAG.SET, 'attrValues')));
  }
  const ct = seen.get(CMS_OID.contentType);
  const md = seen.get(CMS_OID.messageDigest);
  // §11.1/§11.2: both MUST be present, single-valued, when there are signed attributes.
  if (ct?.length !== 1 || readOid(ct[0], 'contentType') !== CMS_OID.data) throw new Asn1Error('contentType attribute must be id-data');
  if (md?.length !== 1) throw new Asn1Error('messageDigest attribute must have one value');
  return {
    der: Buffer.concat([Buffer.from([TAG.SET]), node.raw.subarray(1)]),
    messageDigest: expectTag(md[0], TAG.OCTET_STRING, 'messageDigest').content,
  };
}

/** Parse a detached SignedData with exactly one SignerInfo. Malformed or unsupported input: Pkcs7Error. */
export function parseInstructionSignature(sig: Buffer): ParsedSignature {
  try {
    const [ct, wrapped, extra] = children(expectTag(parseDer(sig), TAG.SEQUENCE, 'ContentInfo'));
    if (extra || readOid(ct, 'contentType') !== CMS_OID.signedData) throw new Asn1Error('not a CMS SignedData');
    const [sdNode] = children(expectTag(wrapped, 0xa0, 'ContentInfo.content'));
    const sd = children(expectTag(sdNode, TAG.SEQUENCE, 'SignedData'));
    readSmallInteger(sd[0], 'SignedData.version');
    const encap = children(expectTag(sd[2], TAG.SEQUENCE, 'encapContentInfo'));
    if (readOid(encap[0], 'eContentType') !== CMS_OID.data) throw new Asn1Error('eContentType must be id-data');
    if (encap.length > 1) throw new Pkcs7Error('PKCS7_NOT_DETACHED', 'signature embeds its content; a detached signature is required');
    let i = 3;
    const certificates = sd[i]?.tag === 0xa0 ? children(sd[i++]!).map((c) => c.raw) : [];
    if (sd[i]?.tag === 0xa1) i++; // crls: not used
    const signers = children(expectTag(sd[i], TAG.SET, 'signerInfos'));
    if (signers.length !== 1) throw new Pkcs7Error('PKCS7_UNSUPPORTED', `expected one SignerInfo, found ${signers.length}`);
    const si = children(expectTag(signers[0], TAG.SEQUENCE, 'SignerInfo'));
    readSmallInteger(si[0], 'SignerInfo.version');
    let sid: ParsedSignerInfo['sid'];
    if (si[1]?.tag === 0x80) sid = { ski: si[1].content }; // [0] SubjectKeyIdentifier (§5.3, version 3)
    else {
      const [issuer, serial] = children(expectTag(si[1], TAG.SEQUENCE, 'SignerInfo.sid'));
      sid = { issuerTlv: expectTag(issuer, TAG.SEQUENCE, 'sid.issuer').raw, serialTlv: expectTag(serial, TAG.INTEGER, 'sid.serial').raw };
    }
    const digestAlgorithm = algOid(si[2], 'digestAlgorithm');
    let j = 3;
    const attrs = si[j]?.tag === 0xa0 ? parseSignedAttrs(si[j++]!) : undefined;
    const signatureAlgorithm = algOid(si[j++], 'signatureAlgorithm');
    const signature = expectTag(si[j], TAG.OCTET_STRING, 'signature').content;
    return {
      certificates,
      signer: {
        sid, digestAlgorithm, signatureAlgorithm, signature,
        ...(attrs ? { signedAttrsDer: attrs.der, messageDigest: attrs.messageDigest } : {}),
      },
    };
  } catch (e) {
    if (e instanceof Asn1Error) throw new Pkcs7Error('PKCS7_MALFORMED', `signature: ${e.message}`, { cause: e });
    throw e;
  }
}

/** Does the SignerInfo name this certificate (issuer+serial, or subjectKeyIdentifier)? */
function sidMatches(sid: ParsedSignerInfo['sid'], cert: ReturnType<typeof parseCertificate>): boolean {
  if ('ski' in sid) {
    const ext = cert.extensions.get(X509_OID.subjectKeyIdentifier);
    const ski = ext ? expectTag(parseDer(ext.value), TAG.OCTET_STRING, 'subjectKeyIdentifier').content : subjectKeyIdentifier(cert.spki);
    return sid.ski.equals(ski);
  }
  return sid.issuerTlv.equals(cert.issuerTlv) && sid.serialTlv.equals(cert.serialTlv);
}

/** A certificate parsed once, for checking many signatures against it. */
export interface PreparedCertificate {
  der: Buffer;
  key: KeyObject;
  parsed: ReturnType<typeof parseCertificate>;
}

/**
 * Parse a certificate once. With `expectedKey`, the certificate must hold exactly that key (compared as
 * DER SPKI) and that KeyObject is reused: creating a key from DER costs as much as a signature check.
 * Returns undefined when the certificate holds another key.
 */
export function prepareCertificate(cert: string | Buffer): PreparedCertificate;
export function prepareCertificate(cert: string | Buffer, expectedKey: KeyObject): PreparedCertificate | undefined;
export function prepareCertificate(cert: string | Buffer, expectedKey?: KeyObject): PreparedCertificate | undefined {
  const der = certificateDer(cert);
  const parsed = parseCertificate(der);
  if (expectedKey) return spkiDer(expectedKey).equals(parsed.spki) ? { der, parsed, key: expectedKey } : undefined;
  return { der, parsed, key: createPublicKey({ key: parsed.spki, format: 'der', type: 'spki' }) };
}

/**
 * The release-verification check of one kernel signature, parsing it once: it must be exactly what
 * signInstructions emits for this certificate (isCanonicalSignature) and verify over `insns`.
 */
export function checkKernelSignature(sig: Buffer, insns: Buffer, cert: PreparedCertificate, insnSha256?: Buffer): 'ok' | 'not-canonical' | 'invalid' {
  let parsed: ParsedSignature;
  try {
    parsed = parseInstructionSignature(sig);
  } catch {
    return 'not-canonical';
  }
  if (!canonical(sig, cert.parsed, parsed)) return 'not-canonical';
  return verifyParsed(parsed, insns, cert, insnSha256) ? 'ok' : 'invalid';
}

/**
 * Verify a kernel program signature over `insns` against a certificate (PEM or DER; the signer id must
 * name it, as the kernel's keyring lookup requires) or a bare public key. True only if the messageDigest
 * attribute equals SHA-256(insns) and the signature over the signed attributes verifies. Throws
 * Pkcs7Error for signatures that cannot be parsed or use something other than SHA-256 with RSA/ECDSA.
 */
export function verifyInstructionSignature(sig: Buffer, insns: Buffer, trust: string | Buffer | KeyObject | PreparedCertificate): boolean {
  return verifyParsed(parseInstructionSignature(sig), insns, trust);
}

function verifyParsed({ signer }: ParsedSignature, insns: Buffer, trust: string | Buffer | KeyObject | PreparedCertificate, insnSha256?: Buffer): boolean {
  if (signer.digestAlgorithm !== CMS_OID.sha256) throw new Pkcs7Error('PKCS7_UNSUPPORTED', `digest ${signer.digestAlgorithm} is not SHA-256`);
  const rsa = signer.signatureAlgorithm === X509_OID.rsaEncryption || signer.signatureAlgorithm === X509_OID.sha256WithRSAEncryption;
  if (!rsa && signer.signatureAlgorithm !== X509_OID.ecdsaWithSHA256) {
    throw new Pkcs7Error('PKCS7_UNSUPPORTED', `signature algorithm ${signer.signatureAlgorithm} is not RSA or ECDSA with SHA-256`);
  }
  let key: KeyObject;
  if (typeof trust === 'string' || Buffer.isBuffer(trust)) trust = prepareCertificate(trust);
  if ('der' in trust) {
    if (!sidMatches(signer.sid, trust.parsed)) return false;
    key = trust.key;
  } else key = trust;
  if (key.asymmetricKeyType !== (rsa ? 'rsa' : 'ec')) return false;
  const digest = insnSha256 ?? createHash('sha256').update(insns).digest();
  let signed: Buffer;
  if (signer.signedAttrsDer && signer.messageDigest) {
    if (!signer.messageDigest.equals(digest)) return false;
    signed = signer.signedAttrsDer;
  } else signed = insns; // §5.4: without signed attributes the signature covers the content itself
  return signatureVerifies('sha256', signed, key, signer.signature);
}
