/**
 * What a signature over a loader covers, and what its attestation says about it: the bytes the kernel
 * verifies from 7.3 on (signing.rst, "Load-time verification": the loader's instructions followed by
 * the contents of its one exclusive, frozen array map), and the claim the signed predicate makes.
 * Generation is cached per plan object: verify, the predicate check and the runtime share one.
 */
import { createHash } from 'node:crypto';
import type { Plan } from '../plan/types.js';
import { generateLoader, type LoaderProgram } from './generate.js';

/**
 * What the kernel verifies from 7.3 on: the loader's instructions followed by its blob. Both derive
 * from the plan alone (format `format`); `hostInputs` are the bytes the loader takes from its context
 * at run time, which no signature covers.
 */
export interface LoaderClaim {
  format: number;
  /** SHA-256 of `insns || blob`: the exact bytes of the kernel's signature check (also a subject). */
  sha256: string;
  instructions: number;
  blobBytes: number;
  hostInputs: { kind: string; map: string }[];
}

const cache = new WeakMap<Plan, LoaderProgram>();

/** The plan's loader (format LOADER_FORMAT), generated once per plan object. */
export function loaderOf(plan: Plan): LoaderProgram {
  let l = cache.get(plan);
  if (!l) cache.set(plan, (l = generateLoader(plan)));
  return l;
}

/** `insns || blob`: what the loader signature is over. */
export function signedLoaderBytes(l: LoaderProgram): Buffer {
  return Buffer.concat([l.insns, l.blob]);
}

export function loaderClaim(l: LoaderProgram): LoaderClaim {
  return {
    format: l.format,
    sha256: createHash('sha256').update(l.insns).update(l.blob).digest('hex'),
    instructions: l.insns.length / 8,
    blobBytes: l.blob.length,
    hostInputs: l.hostInputs.map((h) => ({ kind: h.kind, map: h.map })),
  };
}
