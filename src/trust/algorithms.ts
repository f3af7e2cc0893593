/** The key algorithms `keygen` creates (kept apart from keys.ts so --help needs no crypto modules). */
export const KEY_ALGORITHMS = ['ecdsa-p256', 'ed25519', 'rsa-3072'] as const;
export type GeneratedAlgorithm = (typeof KEY_ALGORITHMS)[number];

export function isGeneratedAlgorithm(s: string): s is GeneratedAlgorithm {
  return (KEY_ALGORITHMS as readonly string[]).includes(s);
}
