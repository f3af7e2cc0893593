/** Shared pieces of the VM tests: what global-setup provided, a skip line, a small run pool. */
import { inject, it } from 'vitest';
import type { Kernel } from '../../src/vm/kernels.js';
import type { VmSetup } from './global-setup.js';

/** The setup, or why VM tests are skipped here (plain `npm test` has no VM setup). */
export function vmSetup(): { setup?: VmSetup; why?: string } {
  if (process.env.BPFSEAL_VM_TESTS !== '1') return { why: 'VM tests run with `npm run test:vm`' };
  const setup = inject('vm');
  if (!setup) return { why: 'no VM setup (run through vitest.vm.config.ts)' };
  if (setup.skip) return { why: setup.skip };
  return { setup };
}

/** The kernels that could be had; each missing one gets a visible skipped test naming why. */
export function availableKernels(setup: VmSetup | undefined, why: string | undefined): Kernel[] {
  if (!setup) {
    if (process.env.BPFSEAL_VM_TESTS === '1') console.warn(`VM tests skipped: ${why}`);
    it.skip(`VM tests skipped: ${why}`, () => {});
    return [];
  }
  for (const k of setup.kernels) {
    if (!k.skip) continue;
    console.warn(`kernel skipped: ${k.skip}`);
    it.skip(`kernel skipped: ${k.skip}`, () => {});
  }
  return setup.kernels.flatMap((k) => (k.kernel ? [k.kernel] : []));
}

/** Run `fn` over `items`, at most `limit` at a time (two VMs is what two cores carry). */
export async function pool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** "6.18.15+deb13-cloud-amd64" → [6, 18]. */
export function majorMinor(release: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

export const atLeast = (release: string, major: number, minor: number): boolean => {
  const [a, b] = majorMinor(release);
  return a > major || (a === major && b >= minor);
};
