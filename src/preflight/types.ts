/**
 * What `bpfseal preflight` sends into a guest and what comes back: one job per boot (every input at
 * once, so a kernel boots once however many objects are checked), one result per input with a verdict
 * per loader and per program. Plain JSON both ways: the guest is another process of this project.
 */
import type { SignatureSupport } from '../kernel/probe.js';

/** One input as the guest loads it: the plan bytes, and for a release what it carries for the kernel. */
export interface GuestInput {
  /** The file name given on the command line (for messages). */
  name: string;
  /** base64 of the canonical plan bytes. */
  plan: string;
  /** Release only: PKCS#7 over the kernel loader (`insns || blob`), base64. */
  loaderSignature?: string;
  /** Release only: per-program PKCS#7 signatures, base64 by program name. */
  kernelSignatures?: Record<string, string>;
  /** Release only: the certificate (PEM) the guest puts into its session keyring. */
  certificate?: string;
}

export interface GuestJob {
  inputs: GuestInput[];
  /** --max-entries overrides (map name -> entries), for maps sized by their owning tool. */
  maxEntries: Record<string, number>;
}

/** How one program fared under one loader. */
export type ProgramVerdict = 'loaded' | 'refused' | 'not-loaded' | 'unsupported';

/** A refusal: the stable code, the runtime step, the kernel's errno and its log (trimmed). */
export interface Refusal {
  code: string;
  message: string;
  step?: string;
  errno?: number;
  /** The verifier (or BTF) log, its last lines: that is where the verifier says why. */
  log?: string;
}

export interface LoaderOutcome {
  verdict: 'loaded' | 'refused' | 'unsupported';
  /** The kernel checked a signature over what it loaded (the release's signed loader or per-program signatures). */
  signed: boolean;
  ms: number;
  refusal?: Refusal;
}

export interface ProgramOutcome {
  name: string;
  section: string;
  type: string;
  kernelLoader: { verdict: ProgramVerdict; tag?: string; refusal?: Refusal };
  replay: { verdict: ProgramVerdict; tag?: string; refusal?: Refusal };
}

export interface InputOutcome {
  name: string;
  plan: string;
  /** Plan digest, hex. */
  digest: string;
  kernelLoader: LoaderOutcome;
  replay: LoaderOutcome;
  programs: ProgramOutcome[];
  /** Every load that could run loaded (the kernel loader may be unsupported for a plan; that is shown, not failed). */
  passed: boolean;
}

export interface GuestResult {
  /** `uname -r` inside the guest: the kernel that actually judged. */
  release: string;
  /** What this kernel verifies of a signed load (the probe of src/kernel/probe.ts, run inside). */
  enforcement: SignatureSupport;
  /** Guest time from the start of the job script to its end, and per input. */
  ms: number;
  inputs: InputOutcome[];
}

/** The enforcement column as README and reports name it. */
export function enforcementName(s: SignatureSupport): 'none' | 'per-program' | 'loader' {
  return s === 'program' ? 'per-program' : s;
}
