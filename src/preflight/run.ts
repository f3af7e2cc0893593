/**
 * The host half of `bpfseal preflight`: resolve each kernel (Debian package, release, version or
 * vmlinuz path; fetched into the harness's cache unless offline), boot it once with every input in
 * the guest (src/vm), and collect the guest's verdicts with the timings. Kernels boot `jobs` at a time.
 * A kernel that cannot be had or does not boot is that kernel's error (exit 3), the others still run.
 */
import { BpfsealError } from '../errors.js';
import { at, failure, type Failure } from '../errors.js';
import { readInput } from '../fsx/read.js';
import { VmError } from '../vm/errors.js';
import { resolveKernel, type Kernel } from '../vm/kernels.js';
import { runInVm } from '../vm/run.js';
import type { PreparedInput } from './inputs.js';
import type { GuestJob, GuestResult } from './types.js';

export interface KernelIdentity {
  spec: string;
  package?: string;
  version?: string;
  release: string;
  vmlinuzSha256: string;
  configSha256?: string;
  source: Kernel['source'];
}

export interface KernelRun {
  spec: string;
  kernel?: KernelIdentity;
  guest?: GuestResult;
  /** Host milliseconds: resolving the kernel (a download when not cached), qemu start to /init, the guest job, the whole run. */
  timings: { resolveMs: number; bootMs?: number; commandMs?: number; loadMs?: number; totalMs: number; boots?: number };
  error?: Failure;
}

export interface RunOptions {
  offline?: boolean;
  cacheDir?: string;
  /** Kernels booted at once (default 2: what two cores carry). */
  jobs?: number;
  /** The guest job's time limit (default 300 s). */
  timeoutMs?: number;
  maxEntries?: Record<string, number>;
  log?: (line: string) => void;
}

const JOB = '/root/preflight-job.json';
const RESULT = '/out/preflight.json';

/** VM errors keep their codes; only a bad spec is the user's input (2), the rest is infrastructure (3). */
function vmFailure(e: unknown): Failure {
  if (e instanceof VmError) return failure(new BpfsealError(e.step === 'spec' ? 'input' : 'kernel', e.code, e.message));
  return failure(e);
}

function identity(spec: string, k: Kernel): KernelIdentity {
  return {
    spec, release: k.release, vmlinuzSha256: k.vmlinuzSha256, source: k.source,
    ...(k.package ? { package: k.package } : {}), ...(k.version ? { version: k.version } : {}), ...(k.configSha256 ? { configSha256: k.configSha256 } : {}),
  };
}

export async function runKernel(spec: string, inputs: PreparedInput[], o: RunOptions = {}): Promise<KernelRun> {
  const t0 = Date.now();
  let k: Kernel;
  try {
    k = await resolveKernel(spec, { offline: o.offline, cacheDir: o.cacheDir, log: o.log });
  } catch (e) {
    return { spec, timings: { resolveMs: Date.now() - t0, totalMs: Date.now() - t0 }, error: vmFailure(e) };
  }
  const resolveMs = Date.now() - t0;
  const job: GuestJob = { inputs: inputs.map((i) => i.guest), maxEntries: o.maxEntries ?? {} };
  const id = identity(spec, k);
  try {
    const r = await runInVm(k, {
      // The kernel's build config where Debian installs it: kconfig externs resolve as on a real host
      // (these kernels have no /proc/config.gz), and requirePreflight in the guest can match it.
      command: ['node', '/opt/bpfseal/dist/runtime/preflight-guest.js', JOB, RESULT],
      files: { [JOB]: JSON.stringify(job), ...(k.config ? { [`/boot/config-${k.release}`]: readInput(k.config, { kind: 'object' }) } : {}) },
      timeoutMs: o.timeoutMs ?? 300_000, kernel: { cacheDir: o.cacheDir, offline: o.offline }, base: { cacheDir: o.cacheDir },
    });
    const timings = { resolveMs, bootMs: r.bootMs, commandMs: r.commandMs, totalMs: Date.now() - t0, boots: r.boots };
    const out = r.files['preflight.json'];
    if (r.exitCode !== 0 || !out) {
      const why = r.timedOut ? `timed out after ${((o.timeoutMs ?? 300_000) / 1000).toFixed(0)} s` : `exited with ${r.exitCode}`;
      const err = new BpfsealError('kernel', 'PREFLIGHT_GUEST_FAILED', `${k.release}: the preflight job in the guest ${why}: ${r.stderr.trim().split('\n').slice(-8).join('\n') || '(no output)'}`);
      return { spec, kernel: id, timings, error: failure(err) };
    }
    const guest = JSON.parse(out.toString('utf8')) as GuestResult;
    return { spec, kernel: id, guest, timings: { ...timings, loadMs: guest.ms } };
  } catch (e) {
    return { spec, kernel: id, timings: { resolveMs, totalMs: Date.now() - t0 }, error: vmFailure(e) };
  }
}

/** Every kernel, `jobs` at a time, results in the order given. */
export async function runKernels(specs: string[], inputs: PreparedInput[], o: RunOptions = {}): Promise<KernelRun[]> {
  const out: KernelRun[] = new Array(specs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < specs.length) {
      const i = next++;
      const spec = at(specs, i, 'kernel spec');
      o.log?.(`preflight: booting ${spec}`);
      const r = await runKernel(spec, inputs, o);
      out[i] = r;
      o.log?.(`preflight: ${spec}: ${r.error ? `${r.error.code}` : `${r.guest!.release}, boot ${r.timings.bootMs} ms, loads ${r.timings.loadMs} ms`}`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.jobs ?? 2, specs.length)) }, worker));
  return out;
}
