/**
 * The guest half of `bpfseal preflight`: inside the booted kernel, probe what it verifies, then load
 * every input twice, with the kernel loader and with user-space replay, nothing attached, nothing
 * pinned, every descriptor closed again (the VM powers off afterwards anyway). Signed loads are what
 * `bpfseal load` would do on this kernel (runtime/load.ts, chooseLoader): the release's signed loader
 * where the kernel verifies loaders (7.3+), its per-program signatures where it verifies programs
 * (6.18-7.2), unsigned otherwise. A release's certificate goes into the session keyring first.
 *
 * Usage (in the guest): node dist/runtime/preflight-guest.js <job.json> <result.json>
 * It also runs on any host with bpf(2) (the host tests use it): it only loads and closes.
 */
import { release } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { progTypeName } from '../bpf/constants.js';
import { at, BpfsealError } from '../errors.js';
import { writeFileDurable } from '../fsx/durable.js';
import { readInput } from '../fsx/read.js';
import { KernelError } from '../kernel/errors.js';
import { signatureSupport, type SignatureSupport } from '../kernel/probe.js';
import { loaderOf } from '../loader/claim.js';
import { decodePlan, planDigest } from '../plan/codec.js';
import type { Plan } from '../plan/types.js';
import { realKernel } from './backend.js';
import { systemHost, type HostFacts } from './host.js';
import { runKernelLoader } from './kernel-loader.js';
import { chooseLoader } from './loader-choice.js';
import { replay, type LoadedCollection } from './replay.js';
import type { GuestInput, GuestJob, GuestResult, InputOutcome, LoaderOutcome, ProgramOutcome, ProgramVerdict, Refusal } from '../preflight/types.js';

const SESSION_KEYRING = -3;
const LOG_LINES = 40;
const LOG_CHARS = 6000;

/** The end of a verifier log: the verifier states the reason last; the start is the program listing. */
export function trimLog(log: string): string {
  const lines = log.trimEnd().split('\n');
  let out = lines.slice(-LOG_LINES).join('\n');
  if (out.length > LOG_CHARS) out = out.slice(-LOG_CHARS);
  return lines.length > LOG_LINES || out.length < log.trimEnd().length ? `... (${lines.length} lines, last ${Math.min(lines.length, LOG_LINES)} shown)\n${out}` : out;
}

export function refusalOf(e: unknown): Refusal {
  if (e instanceof KernelError) {
    const first = at(e.message.split('\n--- kernel log ---'), 0, 'message part'); // split always yields one
    return { code: e.code, message: first, ...(e.step ? { step: e.step } : {}), errno: e.errno, ...(e.log ? { log: trimLog(e.log) } : {}) };
  }
  if (e instanceof BpfsealError) {
    // A host fix-up that this kernel cannot satisfy (an attach target or kfunc missing from its BTF) is
    // reported by replay as "<step>: <reason>": keep the step, so the program it is about is known.
    const message = at(e.message.split('\n'), 0, 'message line');
    const step = /^((?:kernel loader: )?(?:load program|resolve [^:]*program) '[^']*'):/.exec(message)?.[1];
    return { code: e.code, message, ...(step ? { step } : {}) };
  }
  return { code: 'INTERNAL', message: `internal error: ${e instanceof Error ? e.message : String(e)}` };
}

/** The program a refusal is about, from its step ("load program 'x'"), if any. */
function refusedProgram(r: Refusal, plan: Plan): string | undefined {
  const name = /(?:load program|of program|for program) '(.*)'$/.exec(r.step ?? '')?.[1];
  return name !== undefined && plan.programs.some((p) => p.name === name) ? name : undefined;
}

function tagsOf(c: LoadedCollection): Map<string, string> {
  return new Map(c.record.programs.flatMap((p) => (p.tag ? [[p.name, p.tag] as [string, string]] : [])));
}

interface Attempt { outcome: LoaderOutcome; tags?: Map<string, string> }

function attempt(signed: boolean, fn: () => LoadedCollection): Attempt {
  const t0 = performance.now();
  try {
    const c = fn();
    const tags = tagsOf(c);
    c.close();
    return { outcome: { verdict: 'loaded', signed, ms: Math.round(performance.now() - t0) }, tags };
  } catch (e) {
    return { outcome: { verdict: 'refused', signed, ms: Math.round(performance.now() - t0), refusal: refusalOf(e) } };
  }
}

/** Verdicts per program after a whole-plan attempt: loaded (with tag), the refused one, the rest not loaded. */
function perProgram(plan: Plan, a: Attempt): Map<string, ProgramOutcome['replay']> {
  const out = new Map<string, ProgramOutcome['replay']>();
  const refused = a.outcome.refusal && refusedProgram(a.outcome.refusal, plan);
  for (const p of plan.programs) {
    if (a.outcome.verdict === 'loaded') out.set(p.name, { verdict: 'loaded', ...(a.tags?.get(p.name) ? { tag: a.tags.get(p.name) } : {}) });
    else if (a.outcome.verdict === 'unsupported') out.set(p.name, { verdict: 'unsupported' });
    else if (p.name === refused) out.set(p.name, { verdict: 'refused', refusal: a.outcome.refusal });
    else out.set(p.name, { verdict: 'not-loaded' as ProgramVerdict });
  }
  return out;
}

/**
 * After a load refused at one program, each program alone (same maps, same BTF), so every program gets
 * the kernel's own verdict rather than "not reached". Prog-array slots are left out: they name programs
 * of the whole plan. For the kernel loader these are loaders of the one-program plans, unsigned (a
 * signature covers the whole plan's loader): diagnostics, while the whole plan's verdict stands.
 */
function isolate(plan: Plan, signed: boolean, load: (one: Plan) => LoadedCollection): Map<string, ProgramOutcome['replay']> {
  const out = new Map<string, ProgramOutcome['replay']>();
  for (const p of plan.programs) {
    const one: Plan = { ...plan, programs: [p], slots: plan.slots.filter((s) => s.kind === 'map') };
    const a = attempt(signed, () => load(one));
    out.set(p.name, a.outcome.verdict === 'loaded'
      ? { verdict: 'loaded', ...(a.tags?.get(p.name) ? { tag: a.tags.get(p.name) } : {}) }
      : { verdict: a.outcome.refusal && refusedProgram(a.outcome.refusal, one) ? 'refused' : 'not-loaded', refusal: a.outcome.refusal });
  }
  return out;
}

/** Per-program verdicts: isolated loads when the whole plan was refused at one program, else from the whole plan. */
function programVerdicts(plan: Plan, a: Attempt, signed: boolean, load: (one: Plan) => LoadedCollection): Map<string, ProgramOutcome['replay']> {
  const atProgram = a.outcome.verdict === 'refused' && a.outcome.refusal && refusedProgram(a.outcome.refusal, plan);
  return atProgram ? isolate(plan, signed, load) : perProgram(plan, a);
}

/** The kernel loader, or 'unsupported' when no loader can be generated for this plan (its limits, an unnamed attach target). */
function kernelLoaderAttempt(plan: Plan, digest: string, signature: Buffer | undefined, maxEntries: ReadonlyMap<string, number>, host: HostFacts): Attempt {
  let loader;
  try {
    loader = loaderOf(plan);
  } catch (e) {
    return { outcome: { verdict: 'unsupported', signed: false, ms: 0, refusal: refusalOf(e) } };
  }
  return attempt(!!signature, () => runKernelLoader(plan, digest, loader, {
    host, maxEntries, ...(signature ? { signature, keyringId: SESSION_KEYRING, exclusive: true } : {}),
  }));
}

const b64 = (s: string): Buffer => Buffer.from(s, 'base64');

export function runInput(input: GuestInput, support: SignatureSupport, job: GuestJob, host: HostFacts = systemHost()): InputOutcome {
  const bytes = b64(input.plan);
  const plan = decodePlan(bytes);
  const digest = planDigest(bytes);
  const maxEntries = new Map(Object.entries(job.maxEntries));
  // What `load --loader auto` would pass on this kernel: load's own decision (runtime/loader-choice.ts).
  const signed = new Map(Object.entries(input.kernelSignatures ?? {}).map(([k, v]) => [k, b64(v)]));
  const auto = chooseLoader({ name: plan.name, loader: !!input.loaderSignature, programs: plan.programs.map((p) => p.name), signedPrograms: signed }, support, {
    want: 'auto', requireKernelSignatures: false, keyring: SESSION_KEYRING, kernelBackend: true,
  }, []);
  const loaderSig = auto.kernelVerified === 'loader' && input.loaderSignature ? b64(input.loaderSignature) : undefined;
  const progSigs = auto.kernelVerified === 'programs' ? signed : undefined;
  const kl = kernelLoaderAttempt(plan, digest, loaderSig, maxEntries, host);
  const rp = attempt(!!progSigs, () => replay(plan, digest, realKernel(), { host, maxEntries, signatures: progSigs, keyringId: SESSION_KEYRING }));
  const klPrograms = programVerdicts(plan, kl, false, (one) => runKernelLoader(one, digest, loaderOf(one), { host, maxEntries }));
  const rpPrograms = programVerdicts(plan, rp, !!progSigs, (one) => replay(one, digest, realKernel(), { host, maxEntries, signatures: progSigs, keyringId: SESSION_KEYRING }));
  const programs: ProgramOutcome[] = plan.programs.map((p) => ({
    name: p.name, section: p.section, type: progTypeName(p.progType), kernelLoader: klPrograms.get(p.name)!, replay: rpPrograms.get(p.name)!,
  }));
  return {
    name: input.name, plan: plan.name, digest, kernelLoader: kl.outcome, replay: rp.outcome, programs,
    passed: rp.outcome.verdict === 'loaded' && kl.outcome.verdict !== 'refused',
  };
}

/** Put each release certificate into the session keyring once (the kernel checks signatures against -3). */
async function addCertificates(job: GuestJob): Promise<void> {
  const certs = new Set(job.inputs.flatMap((i) => (i.certificate ? [i.certificate] : [])));
  if (!certs.size) return;
  const { addCertificate } = await import('../vm/guest/keyring.js');
  for (const c of certs) addCertificate(c, SESSION_KEYRING);
}

export async function runJob(job: GuestJob, opts: { keyring?: boolean } = {}): Promise<GuestResult> {
  const t0 = performance.now();
  const enforcement = signatureSupport();
  if (opts.keyring !== false && enforcement !== 'none') await addCertificates(job);
  // One view of the kernel for the whole job: its BTF and kallsyms are parsed once (seconds under TCG), not per load.
  const host = systemHost();
  const inputs = job.inputs.map((i) => runInput(i, enforcement, job, host));
  return { release: release(), enforcement, ms: Math.round(performance.now() - t0), inputs };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [jobPath, outPath] = process.argv.slice(2);
  if (jobPath === undefined || outPath === undefined) {
    process.stderr.write('usage: node dist/runtime/preflight-guest.js <job.json> <result.json>\n');
    process.exitCode = 2;
  } else {
    const job = JSON.parse(readInput(jobPath, { kind: 'release' }).toString('utf8')) as GuestJob;
    writeFileDurable(outPath, JSON.stringify(await runJob(job)));
  }
}
