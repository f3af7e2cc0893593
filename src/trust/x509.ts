/**
 * Self-signed X.509 v3 certificates (RFC 5280) for bpfseal signing keys, built as DER and signed with
 * node:crypto, so RSA, ECDSA P-256 and Ed25519 all take the same path. The profile follows the kernel's
 * own module-signing key (certs/default_x509.genkey): a CA:FALSE leaf with digitalSignature.
 */
import type { ErrorCode } from '../errors.js';
import { createHash, type KeyObject, randomBytes, sign, X509Certificate } from 'node:crypto';
import { pem as pemCodec } from '@sigstore/core';
import { InputError } from '../errors.js';
import {
  Asn1Error, bitString, boolean, children, contextConstructed, contextPrimitive, type Der, expectTag, nullValue,
  octetString, oid, parseDer, readOid, readTime, sequence, setOf, smallInteger, TAG, time, unsignedInteger, utf8String,
} from '../der/asn1.js';

export const OID = {
  // RFC 4055 §5 / RFC 8017 App. C
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  // RFC 5758 §3.2
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  // RFC 8410 §3
  ed25519: '1.3.101.112',
  // RFC 5280 §4.1.2.4 (X.520 commonName) and §4.2.1.x extensions
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  extKeyUsage: '2.5.29.37',
  authorityKeyIdentifier: '2.5.29.35',
  // RFC 5280 §4.2.1.12
  codeSigning: '1.3.6.1.5.5.7.3.3',
} as const;

/** Invalid or unsupported certificate input; exit 2. */
export class CertificateError extends InputError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; file?: string }) {
    super(code, message, options);
    this.name = 'CertificateError';
  }
}

/**
 * The X.509 signature AlgorithmIdentifier for a key: sha256WithRSAEncryption with NULL parameters
 * (RFC 4055 §5), ecdsa-with-SHA256 without parameters (RFC 5758 §3.2), id-Ed25519 without (RFC 8410 §3).
 */
export function signatureAlgorithmIdentifier(key: KeyObject): Buffer {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return sequence(oid(OID.sha256WithRSAEncryption), nullValue());
    case 'ec':
      return sequence(oid(OID.ecdsaWithSHA256));
    case 'ed25519':
      return sequence(oid(OID.ed25519));
    default:
      throw new CertificateError('KEY_UNSUPPORTED', `cannot sign certificates with a ${key.asymmetricKeyType ?? '?'} key`);
  }
}

/** The subjectPublicKey BIT STRING contents, without the unused-bits octet (RFC 5280 §4.1.2.7). */
function subjectPublicKeyBits(spki: Buffer): Buffer {
  const [alg, bits] = children(expectTag(parseDer(spki), TAG.SEQUENCE, 'SubjectPublicKeyInfo'));
  expectTag(alg, TAG.SEQUENCE, 'SubjectPublicKeyInfo.algorithm');
  const c = expectTag(bits, TAG.BIT_STRING, 'SubjectPublicKeyInfo.subjectPublicKey').content;
  if (c.length < 1 || c[0] !== 0) throw new Asn1Error('subjectPublicKey has unused bits');
  return c.subarray(1);
}

/** Key identifier, RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING value. */
export function subjectKeyIdentifier(spki: Buffer): Buffer {
  return createHash('sha1').update(subjectPublicKeyBits(spki)).digest();
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return sequence(oid(id), ...(critical ? [boolean(true)] : []), octetString(value));
}

export interface CertificateOptions {
  commonName: string;
  /** Validity in days from notBefore; default 3650. */
  days?: number;
  /** Start of validity; default a minute ago (clock skew on the machine that loads it). */
  notBefore?: Date;
}

/** A self-signed X.509 v3 certificate (PEM) for the key pair. */
export function selfSignedCertificate(privateKey: KeyObject, publicKey: KeyObject, opts: CertificateOptions): string {
  const days = opts.days ?? 3650;
  if (!Number.isInteger(days) || days < 1 || days > 36500) {
    throw new CertificateError('CERT_DAYS_INVALID', `certificate validity ${days} days: use 1..36500`);
  }
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const ski = subjectKeyIdentifier(spki);
  // RFC 5280 §4.1.2.2: positive, at most 20 octets. Setting 0x40 and clearing 0x80 keeps all 16 octets
  // and makes the DER INTEGER minimal without a leading zero.
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  const name = sequence(setOf(sequence(oid(OID.commonName), utf8String(opts.commonName))));
  const notBefore = opts.notBefore ?? new Date(Date.now() - 60_000); // tolerate small clock skew on the machine that loads it
  const notAfter = new Date(notBefore.getTime() + 60_000 + days * 86_400_000);
  const algId = signatureAlgorithmIdentifier(privateKey);
  const extensions = sequence(
    // §4.2.1.9: MAY be critical in an end-entity certificate; the kernel's genkey marks it so.
    extension(OID.basicConstraints, true, sequence()),
    // §4.2.1.3: digitalSignature (bit 0) only; DER drops trailing zero bits, so 7 unused bits.
    extension(OID.keyUsage, true, Buffer.from([TAG.BIT_STRING, 2, 7, 0x80])),
    extension(OID.extKeyUsage, false, sequence(oid(OID.codeSigning))),
    extension(OID.subjectKeyIdentifier, false, octetString(ski)),
    // §4.2.1.1: keyIdentifier is [0] IMPLICIT OCTET STRING.
    extension(OID.authorityKeyIdentifier, false, sequence(contextPrimitive(0, ski))),
  );
  const tbs = sequence(
    contextConstructed(0, smallInteger(2)), // version v3 (§4.1.2.1)
    unsignedInteger(serial),
    algId,
    name,
    sequence(time(notBefore), time(notAfter)),
    name,
    spki,
    contextConstructed(3, extensions),
  );
  const digest = privateKey.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  const signature = sign(digest, tbs, privateKey);
  return derToPem(sequence(tbs, algId, bitString(signature)), 'CERTIFICATE');
}

/** PEM of DER bytes, 64-column base64 (@sigstore/core's encoder). */
export function derToPem(der: Buffer, label: string): string {
  return pemCodec.fromDER(der, label);
}

/** DER of the first CERTIFICATE block in a PEM text; a buffer that is not PEM is taken as DER. */
export function certificateDer(pem: string | Buffer): Buffer {
  const text = typeof pem === 'string' ? pem : pem.toString('latin1');
  const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(text);
  if (m) return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
  if (typeof pem !== 'string' && !text.includes('-----BEGIN')) return pem;
  throw new CertificateError('CERT_INVALID', 'no PEM CERTIFICATE block found');
}

/** The raw pieces of a certificate that CMS and bpfseal need (RFC 5280 §4.1). */
export interface CertificateFields {
  der: Buffer;
  /** Full INTEGER TLV of serialNumber, for IssuerAndSerialNumber (RFC 5652 §10.2.4). */
  serialTlv: Buffer;
  /** Full Name TLVs, as encoded in the certificate. */
  issuerTlv: Buffer;
  subjectTlv: Buffer;
  spki: Buffer;
  notBefore: Date;
  notAfter: Date;
  extensions: Map<string, { critical: boolean; value: Buffer }>;
}

export function parseCertificate(der: Buffer): CertificateFields {
  try {
    const [tbsNode] = children(expectTag(parseDer(der), TAG.SEQUENCE, 'Certificate'));
    const tbs = children(expectTag(tbsNode, TAG.SEQUENCE, 'TBSCertificate'));
    let i = tbs[0]?.tag === 0xa0 ? 1 : 0; // [0] EXPLICIT version, absent for v1
    const serial = expectTag(tbs[i++], TAG.INTEGER, 'serialNumber');
    expectTag(tbs[i++], TAG.SEQUENCE, 'signature');
    const issuer = expectTag(tbs[i++], TAG.SEQUENCE, 'issuer');
    const [nb, na] = children(expectTag(tbs[i++], TAG.SEQUENCE, 'validity'));
    const subject = expectTag(tbs[i++], TAG.SEQUENCE, 'subject');
    const spki = expectTag(tbs[i++], TAG.SEQUENCE, 'subjectPublicKeyInfo');
    const extensions = new Map<string, { critical: boolean; value: Buffer }>();
    const extsNode = tbs.slice(i).find((d) => d.tag === 0xa3);
    if (extsNode) {
      const [seq] = children(extsNode);
      for (const ext of children(expectTag(seq, TAG.SEQUENCE, 'extensions'))) {
        const parts: Der[] = children(expectTag(ext, TAG.SEQUENCE, 'Extension'));
        const critical = parts.length === 3 && parts[1]!.tag === TAG.BOOLEAN && parts[1]!.content[0] !== 0;
        const value = expectTag(parts[parts.length - 1], TAG.OCTET_STRING, 'extnValue').content;
        extensions.set(readOid(parts[0], 'extnID'), { critical, value });
      }
    }
    return {
      der, serialTlv: serial.raw, issuerTlv: issuer.raw, subjectTlv: subject.raw, spki: spki.raw,
      notBefore: readTime(nb, 'notBefore'), notAfter: readTime(na, 'notAfter'), extensions,
    };
  } catch (e) {
    if (e instanceof Asn1Error) throw new CertificateError('CERT_INVALID', `certificate: ${e.message}`, { cause: e });
    throw e;
  }
}

export interface CertificateInfo {
  /** As node prints it, e.g. "CN=bpfseal". */
  subject: string;
  /** subjectKeyIdentifier extension, lowercase hex; undefined if the certificate has none. */
  ski?: string;
  /** Serial number, uppercase hex as node and openssl print it. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  publicKey: KeyObject;
}

export function certificateInfo(pem: string | Buffer): CertificateInfo {
  const der = certificateDer(pem);
  let x: X509Certificate;
  try {
    x = new X509Certificate(der);
  } catch (e) {
    throw new CertificateError('CERT_INVALID', 'not a parsable X.509 certificate', { cause: e });
  }
  const f = parseCertificate(der);
  const skiExt = f.extensions.get(OID.subjectKeyIdentifier);
  const ski = skiExt ? expectTag(parseDer(skiExt.value), TAG.OCTET_STRING, 'subjectKeyIdentifier').content : undefined;
  return {
    subject: x.subject,
    ...(ski ? { ski: ski.toString('hex') } : {}),
    serial: x.serialNumber,
    notBefore: f.notBefore,
    notAfter: f.notAfter,
    publicKey: x.publicKey,
  };
}
