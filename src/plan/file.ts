/**
 * Reading plan inputs: an ELF object (planned in memory) or an encoded .plan file, told apart by magic.
 */
import { BpfsealError, InputError } from '../errors.js';
import { planFromObject } from './build.js';
import type { LoadOptions } from '../bpf/collection.js';
import { decodePlan, encodePlan, planDigest } from './codec.js';
import { PLAN_MAGIC, type Plan } from './types.js';

export interface LoadedPlan {
  plan: Plan;
  bytes: Buffer;
  digest: string;
  source: 'object' | 'plan';
}

export function isPlanBytes(b: Buffer): boolean {
  return b.length >= 8 && b.subarray(0, 8).toString('latin1') === PLAN_MAGIC;
}

export function isElfBytes(b: Buffer): boolean {
  return b.length >= 4 && b.readUInt32BE(0) === 0x7f454c46;
}

/** ELF object bytes -> plan, its canonical bytes and digest. */
export function planObject(data: Buffer, fileName: string, opts: LoadOptions = {}): LoadedPlan {
  return naming(fileName, () => {
    const { plan } = planFromObject(data, fileName, opts);
    const bytes = encodePlan(plan);
    return { plan, bytes, digest: planDigest(bytes), source: 'object' };
  });
}

/** Plan or object bytes -> plan. `fileName` names the object (its base name becomes the plan name). */
export function planFromBytes(data: Buffer, fileName: string, opts: LoadOptions = {}): LoadedPlan {
  if (isPlanBytes(data)) return naming(fileName, () => ({ plan: decodePlan(data), bytes: data, digest: planDigest(data), source: 'plan' }));
  if (!isElfBytes(data)) throw new InputError('INPUT_UNKNOWN', 'neither a BPF ELF object nor a bpfseal plan', { file: fileName });
  return planObject(data, fileName, opts);
}

/** Errors about an input name the file they are about (printed once by the CLI). */
function naming<T>(fileName: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof BpfsealError) e.file ??= fileName;
    throw e;
  }
}
