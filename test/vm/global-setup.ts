/**
 * Once per `npm run test:vm`: check qemu, fetch the kernels (network, else the cache), and build the
 * base initramfs, timing each, so the test files only boot. What cannot be had becomes a skip reason
 * (no qemu; no network and not cached), never a failure; anything else fails the run.
 */
import type { TestProject } from 'vitest/node';
import { VmError } from '../../src/vm/errors.js';
import { baseInitramfs } from '../../src/vm/initramfs.js';
import { resolveKernel, type Kernel } from '../../src/vm/kernels.js';
import { findQemu } from '../../src/vm/qemu.js';

export interface VmKernel {
  spec: string;
  kernel?: Kernel;
  fetchMs: number;
  /** Why this kernel is skipped. */
  skip?: string;
}

export interface VmSetup {
  /** Why every VM test is skipped (no qemu). */
  skip?: string;
  kernels: VmKernel[];
  base?: { path: string; bytes: number; built: boolean; ms: number };
}

declare module 'vitest' {
  export interface ProvidedContext {
    vm: VmSetup;
  }
}

/** Kernels under test: $BPFSEAL_VM_KERNELS (comma-separated specs) or these four. */
export const DEFAULT_KERNELS = ['6.18.15', '7.3.4', '7.2.12', '6.12'];

async function fetchOne(spec: string): Promise<VmKernel> {
  const t0 = Date.now();
  try {
    const kernel = await resolveKernel(spec, { log: (m) => console.log(`[vm] ${m}`) });
    return { spec, kernel, fetchMs: Date.now() - t0 };
  } catch (e) {
    if (!(e instanceof VmError) || (e.step !== 'apt' && e.step !== 'cache')) throw e;
    try {
      const kernel = await resolveKernel(spec, { offline: true });
      console.log(`[vm] ${spec}: archive unreachable, using the cached ${kernel.package}`);
      return { spec, kernel, fetchMs: Date.now() - t0 };
    } catch (e2) {
      const online = e.message.split('\n')[0].replace(/:$/, '');
      const offline = (e2 as Error).message.split(' (offline')[0];
      return { spec, fetchMs: Date.now() - t0, skip: `${spec}: cannot be fetched (${e.code}: ${online}) and ${offline}` };
    }
  }
}

export default async function setup(project: TestProject): Promise<void> {
  const specs = (process.env.BPFSEAL_VM_KERNELS ?? DEFAULT_KERNELS.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
  const out: VmSetup = { kernels: [] };
  try {
    findQemu();
  } catch (e) {
    out.skip = (e as Error).message;
    project.provide('vm', out);
    return;
  }
  for (const s of specs) {
    const k = await fetchOne(s);
    console.log(`[vm] ${s}: ${k.kernel ? `${k.kernel.package ?? k.kernel.vmlinuz} (${k.kernel.source}) in ${k.fetchMs} ms` : k.skip}`);
    out.kernels.push(k);
  }
  if (!out.kernels.some((k) => k.kernel)) {
    project.provide('vm', out);
    return;
  }
  const base = await baseInitramfs({ log: (m) => console.log(`[vm] ${m}`) });
  console.log(`[vm] base initramfs ${(base.bytes / 1e6).toFixed(1)} MB, ${base.built ? 'built' : 'cached'} in ${base.ms} ms`);
  out.base = { path: base.path, bytes: base.bytes, built: base.built, ms: base.ms };
  project.provide('vm', out);
}
