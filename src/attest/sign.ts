/**
 * Signing a plan: in-toto statement -> DSSE envelope in a Sigstore bundle (@sigstore/sign's
 * DSSEBundleBuilder, a local-key Signer, and any Witnesses such as our local log or a Rekor), plus
 * a PKCS#7 signature per program for kernels that verify program signatures.
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { DSSEBundleBuilder, type Signer, type Witness } from '@sigstore/sign';
import type { Bundle } from '@sigstore/bundle';
import { keyAlgorithm, keyId, loadPrivateKey, signData } from '../trust/keys.js';
import { readInput } from '../fsx/read.js';
import { BpfsealError } from '../errors.js';
import { signInstructions } from './pkcs7.js';
import { derToPem } from '../trust/x509.js';
import { planDigest } from '../plan/codec.js';
import type { Plan } from '../plan/types.js';
import { buildStatement, PAYLOAD_TYPE, type Statement } from './statement.js';
import type { Release } from './release.js';
import { loaderClaim, loaderOf, signedLoaderBytes } from '../loader/claim.js';

/** A @sigstore/sign Signer over a local private key; the key hint is our key id. */
export function localKeySigner(privateKey: KeyObject, publicKey: KeyObject): Signer {
  const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const hint = keyId(publicKey);
  return {
    sign: async (data: Buffer) => ({
      signature: signData(privateKey, data),
      key: { $case: 'publicKey', publicKey: pem, hint },
    }),
  };
}

export interface SignOptions {
  signer: Signer;
  witnesses?: Witness[];
  version: number;
  toolVersion: string;
  builder?: Record<string, string>;
  /** Kernel program signatures: a function that signs instruction bytes (PKCS#7), and the certificate PEM. */
  kernelSigner?: KernelSigner;
  /** SHA-256 of planBytes when the caller has it already. */
  digest?: string;
  /** With a kernel signer: also sign the plan's kernel loader (default true). */
  loader?: boolean;
}

/** Signs a program's instruction bytes for the kernel (PKCS#7), with the certificate it embeds. */
export interface KernelSigner {
  sign(insns: Buffer): Buffer;
  certificate: string;
}

export interface SignedRelease {
  release: Release;
  statement: Statement;
  /** Programs left without a kernel signature because the host changes their bytes (fix-ups). */
  unsignedPrograms: string[];
}

export async function signPlan(plan: Plan, planBytes: Buffer, opts: SignOptions): Promise<SignedRelease> {
  if (!Number.isSafeInteger(opts.version) || opts.version < 0) throw new BpfsealError('usage', 'USAGE_VERSION', `--version must be a non-negative integer, got ${opts.version}`);
  const digest = opts.digest ?? planDigest(planBytes);
  // Which programs will carry a kernel signature is part of the signed claims, so none can be stripped unseen.
  const kernelSigned = opts.kernelSigner ? plan.programs.filter((p) => !p.fixups.length).map((p) => p.name) : undefined;
  // The kernel loader: generated from the plan (a plan beyond its limits is an error here, at sign time).
  const loader = opts.kernelSigner && opts.loader !== false ? loaderOf(plan) : undefined;
  const statement = buildStatement(plan, digest, { version: opts.version, toolVersion: opts.toolVersion, builder: opts.builder, kernelSigned, loader: loader && loaderClaim(loader) });
  const builder = new DSSEBundleBuilder({ signer: opts.signer, witnesses: opts.witnesses ?? [] });
  const bundle: Bundle = await builder.create({ data: Buffer.from(JSON.stringify(statement)), type: PAYLOAD_TYPE });
  const kernelSignatures = new Map<string, Buffer>();
  const unsignedPrograms: string[] = [];
  if (opts.kernelSigner) {
    for (const p of plan.programs) {
      // The kernel checks the bytes it receives; a program the host patches cannot carry a signature.
      if (p.fixups.length) unsignedPrograms.push(p.name);
      else kernelSignatures.set(p.name, opts.kernelSigner.sign(p.insns));
    }
  }
  const loaderSignature = loader ? opts.kernelSigner!.sign(signedLoaderBytes(loader)) : undefined;
  return {
    // The certificate travels only with signatures it vouches for (verify rejects one without any).
    release: {
      plan: planBytes, bundle, kernelSignatures, ...(loaderSignature ? { loaderSignature } : {}),
      certificate: kernelSignatures.size || loaderSignature ? opts.kernelSigner?.certificate : undefined,
    },
    statement,
    unsignedPrograms,
  };
}

/** The signer for a private key file and, with a certificate of that key, a PKCS#7 kernel signer (sign --key/--cert). */
export function keyFileSigner(opts: { key: string; cert?: string }): { signer: Signer; kernelSigner?: KernelSigner } {
  const { key, tooOpen } = loadPrivateKey(opts.key);
  if (tooOpen) process.stderr.write(`warning: ${opts.key} is readable by group or others (chmod 600)\n`);
  const publicKey = createPublicKey(key);
  let kernelSigner: KernelSigner | undefined;
  if (opts.cert) {
    let certificate = readInput(opts.cert, { kind: 'key' }).toString('utf8');
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certificate);
      certificate = derToPem(cert.raw, 'CERTIFICATE'); // the one PEM form a release carries
    } catch {
      throw new BpfsealError('input', 'CERT_INVALID', `${opts.cert}: not a PEM X.509 certificate`);
    }
    if (keyId(cert.publicKey) !== keyId(publicKey)) throw new BpfsealError('input', 'CERT_MISMATCH', `${opts.cert} does not certify the key in ${opts.key}`);
    if (keyAlgorithm(publicKey) === 'ed25519') {
      process.stderr.write('note: Ed25519 keys cannot make kernel program signatures (the kernel takes RSA or ECDSA); signing the attestation only\n');
    } else {
      kernelSigner = { sign: (insns) => signInstructions(insns, key, certificate), certificate };
    }
  }
  return { signer: localKeySigner(key, publicKey), kernelSigner };
}
