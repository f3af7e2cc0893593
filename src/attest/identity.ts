/**
 * Who a Fulcio certificate names: its subject alternative name and the OIDC issuer from Fulcio's
 * issuer extension (OID 1.3.6.1.4.1.57264.1.8, else the v1 1.3.6.1.4.1.57264.1.1). Kept apart from
 * keyless.ts so that reading an identity (audit) does not load @sigstore/sign's signing and HTTP stack.
 */
import { X509Certificate } from '@sigstore/core';

const OID_FULCIO_ISSUER_V1 = '1.3.6.1.4.1.57264.1.1';
const OID_FULCIO_ISSUER_V2 = '1.3.6.1.4.1.57264.1.8';

export interface SignerIdentity {
  /** The certificate's subject alternative name (workflow URI, e-mail, ...). */
  san: string;
  /** The OIDC issuer from Fulcio's issuer extension. */
  issuer: string;
}

/** SAN and OIDC issuer (Fulcio extension v2, else v1) of a Fulcio certificate (DER or PEM). */
export function certificateIdentity(cert: Buffer | string): SignerIdentity {
  const parsed = X509Certificate.parse(typeof cert === 'string' ? cert : Buffer.from(cert));
  let issuer = '';
  const v2 = parsed.extension(OID_FULCIO_ISSUER_V2);
  if (v2) issuer = v2.valueObj.subs?.[0]?.value.toString('utf8') ?? '';
  else issuer = parsed.extension(OID_FULCIO_ISSUER_V1)?.value.toString('utf8') ?? '';
  return { san: parsed.subjectAltName ?? '', issuer };
}
