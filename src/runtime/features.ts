/**
 * `bpfseal features` / `bpfseal version --json`: what this host gives a signed BPF load, probed as
 * `bpftool feature` probes (by asking the kernel, never by version numbers), with the probes `load`,
 * preflight's guest and `enforce` use (kernel/probe.ts, runtime/bpffs.ts), so every command sees the
 * same answer:
 *   bpf        may this process use bpf(2) (a 1-entry array map is made and closed)
 *   bpffs      is a bpf filesystem mounted at /sys/fs/bpf
 *   signatures what the kernel verifies of a signed load: none / per-program (6.18-7.2) / loader (7.3+)
 *   lsm        the active LSMs, and whether the BPF LSM is one of them
 *   enforce    whether `bpfseal enforce` can refuse unsigned loads here, and why not
 *   load       what `load --loader auto` does here with a release signed with --cert
 * Nothing stays loaded.
 */
import { arch, release } from 'node:os';
import { toolVersion } from '../pkg.js';
import { errnoName, KernelError } from '../kernel/errors.js';
import { canUseBpf, enforcementSupport, lsmProbe, signatureProbe, type SignatureSupport } from '../kernel/probe.js';
import { chooseLoader } from './loader-choice.js';
import { bpffsMounted, DEFAULT_MOUNT } from './bpffs.js';

export type Verification = 'none' | 'per-program' | 'loader' | 'unknown';

export interface HostFeatures {
  bpfseal: string;
  node: string;
  kernel: { release: string; arch: string };
  uid: number | null;
  bpf: { permitted: boolean };
  bpffs: { path: string; mounted: boolean };
  signatures: { verification: Verification; answer: string | null };
  lsm: { readable: boolean; active: string[]; bpf: boolean };
  enforce: { possible: boolean; reasons: string[] };
  load: { loader: 'kernel' | 'user'; kernelVerifies: 'loader' | 'programs' | 'none' } | null;
}

export function hostFeatures(): HostFeatures {
  const permitted = canUseBpf();
  let signatures: HostFeatures['signatures'] = { verification: 'unknown', answer: null };
  if (permitted) {
    try {
      const p = signatureProbe();
      signatures = { verification: p.support === 'program' ? 'per-program' : p.support, answer: p.answer };
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      signatures = { verification: 'unknown', answer: errnoName(e.errno) };
    }
  }
  const lsm = lsmProbe();
  const enforce = permitted && signatures.verification !== 'unknown'
    ? (({ ok, reasons }) => ({ possible: ok, reasons }))(enforcementSupport())
    : { possible: false, reasons: [permitted ? 'the signature probe failed' : 'this process may not use bpf(2)'] };
  const v = signatures.verification;
  return {
    bpfseal: toolVersion(), node: process.version, kernel: { release: release(), arch: arch() }, uid: process.getuid?.() ?? null,
    bpf: { permitted }, bpffs: { path: DEFAULT_MOUNT, mounted: bpffsMounted() }, signatures,
    lsm: { readable: !!lsm.lsms, active: lsm.lsms ?? [], bpf: lsm.bpfLsm ?? false }, enforce,
    load: !permitted || v === 'unknown' ? null : autoLoad(v === 'per-program' ? 'program' : v),
  };
}

/** What load's own decision (loader-choice.ts) is here for a release signed with --cert: a signed loader and every program signed. */
function autoLoad(support: SignatureSupport): NonNullable<HostFeatures['load']> {
  const d = chooseLoader({ name: 'release', loader: true, programs: ['program'], signedPrograms: new Set(['program']) }, support, {
    want: 'auto', requireKernelSignatures: false, keyring: -3, kernelBackend: true,
  }, []);
  return { loader: d.loader, kernelVerifies: d.kernelVerified };
}
