/**
 * Sigstore service URLs and their checking, kept apart from @sigstore/sign so the CLI can show
 * defaults in --help without loading the signing stack.
 */
import { BpfsealError } from '../errors.js';

/** Same values as @sigstore/sign's DEFAULT_FULCIO_URL / DEFAULT_REKOR_URL (checked in test/keyless.test.ts). */
export const FULCIO_URL = 'https://fulcio.sigstore.dev';
export const REKOR_URL = 'https://rekor.sigstore.dev';

export function checkServiceURL(url: string, flag: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new BpfsealError('usage', 'USAGE_URL', `${flag} ${url}: not a URL`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new BpfsealError('usage', 'USAGE_URL', `${flag} ${url}: expected an https:// URL`);
  return url.replace(/\/+$/, '');
}
