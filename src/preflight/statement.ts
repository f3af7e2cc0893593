/**
 * The preflight attestation: an in-toto Statement v1 whose subject is the plan (as in the release's
 * own attestation, so both sit side by side in the log under the same digest) and whose predicate,
 * of its own type, says which kernel judged it and how: "this exact plan passed (or failed) the
 * verifier of this exact kernel". One statement per plan and kernel. Parsed strictly, like the
 * release statement (attest/statement.ts): exact field sets, no duplicate keys.
 */
import { shapeChecker } from '../json/shape.js';
import { STATEMENT_TYPE } from '../attest/statement.js';
import type { SignatureSupport } from '../kernel/probe.js';
import type { PreparedInput } from './inputs.js';
import type { KernelIdentity } from './run.js';
import type { InputOutcome, ProgramVerdict } from './types.js';

export const PREFLIGHT_PREDICATE_TYPE = 'https://bpfseal.dev/preflight/v1';

export interface PreflightProgram {
  name: string;
  type: string;
  kernelLoader: ProgramVerdict;
  replay: ProgramVerdict;
  /** The kernel's program tag (replay's; the kernel loader's when replay did not load it), or null. */
  tag: string | null;
  /** The refusal's stable code, when a loader refused this program. */
  code?: string;
}

export interface PreflightPredicate {
  plan: { name: string };
  input: { kind: 'object' | 'plan' | 'release'; digest: { sha256: string }; releaseVersion?: number };
  kernel: { package?: string; version?: string; release: string; vmlinuz: { sha256: string }; config?: { sha256: string } };
  /** What the kernel verifies of signed loads: none, per-program (6.18-7.2), loader (7.3+). */
  enforcement: 'none' | 'per-program' | 'loader';
  result: 'pass' | 'fail';
  kernelLoader: { verdict: 'loaded' | 'refused' | 'unsupported'; signed: boolean; code?: string };
  replay: { verdict: 'loaded' | 'refused' | 'unsupported'; signed: boolean; code?: string };
  programs: PreflightProgram[];
  tool: { name: 'bpfseal'; version: string };
  time: string;
}

export interface PreflightStatement {
  _type: typeof STATEMENT_TYPE;
  subject: { name: string; digest: { sha256: string } }[];
  predicateType: typeof PREFLIGHT_PREDICATE_TYPE;
  predicate: PreflightPredicate;
}

const hex = (d: string): string => d.replace(/^sha256:/, '');
const code = (c: string | undefined): { code?: string } => (c ? { code: c } : {});

export function buildPreflightStatement(input: PreparedInput, kernel: KernelIdentity, guestRelease: string, enforcement: SignatureSupport, o: InputOutcome, opts: { toolVersion: string; time?: Date }): PreflightStatement {
  const predicate: PreflightPredicate = {
    plan: { name: input.plan.name },
    input: { kind: input.kind, digest: { sha256: input.fileSha256 }, ...(input.release ? { releaseVersion: input.release.version } : {}) },
    kernel: {
      ...(kernel.package ? { package: kernel.package } : {}), ...(kernel.version ? { version: kernel.version } : {}),
      release: guestRelease, vmlinuz: { sha256: hex(kernel.vmlinuzSha256) }, ...(kernel.configSha256 ? { config: { sha256: hex(kernel.configSha256) } } : {}),
    },
    enforcement: enforcement === 'program' ? 'per-program' : enforcement,
    result: o.passed ? 'pass' : 'fail',
    kernelLoader: { verdict: o.kernelLoader.verdict, signed: o.kernelLoader.signed, ...code(o.kernelLoader.refusal?.code) },
    replay: { verdict: o.replay.verdict, signed: o.replay.signed, ...code(o.replay.refusal?.code) },
    programs: o.programs.map((p) => ({
      name: p.name, type: p.type, kernelLoader: p.kernelLoader.verdict, replay: p.replay.verdict,
      tag: p.replay.tag ?? p.kernelLoader.tag ?? null, ...code(p.replay.refusal?.code ?? p.kernelLoader.refusal?.code),
    })),
    tool: { name: 'bpfseal', version: opts.toolVersion },
    time: (opts.time ?? new Date()).toISOString(),
  };
  return { _type: STATEMENT_TYPE, subject: [{ name: `${input.plan.name}.plan`, digest: { sha256: o.digest } }], predicateType: PREFLIGHT_PREDICATE_TYPE, predicate };
}

/** Is this DSSE payload a preflight statement (by its predicate type), without judging the rest? */
export function isPreflightPayload(payload: Buffer): boolean {
  try {
    return (JSON.parse(payload.toString('utf8')) as { predicateType?: unknown }).predicateType === PREFLIGHT_PREDICATE_TYPE;
  } catch {
    return false;
  }
}

const VERDICTS = ['loaded', 'refused', 'not-loaded', 'unsupported'];
const HEX64 = /^[0-9a-f]{64}$/;

/** Parse and shape-check a preflight statement: strict JSON, exact field sets, known values. */
export function parsePreflightStatement(payload: Buffer): PreflightStatement {
  const { value: v, bad, obj } = shapeChecker(payload, 'the preflight statement');
  const str = (x: unknown, what: string): string => {
    if (typeof x !== 'string') throw bad(`${what} is not a string`);
    return x;
  };
  const digest = (x: unknown, what: string): void => {
    if (!HEX64.test(str(obj(x, what, ['sha256']).sha256, `${what}.sha256`))) throw bad(`${what}.sha256 is not 64 lowercase hex digits`);
  };
  const s = obj(v, 'statement', ['_type', 'subject', 'predicateType', 'predicate']);
  if (s._type !== STATEMENT_TYPE) throw bad('is not an in-toto Statement v1');
  if (s.predicateType !== PREFLIGHT_PREDICATE_TYPE) throw bad(`has predicate type ${JSON.stringify(s.predicateType)}, not ${PREFLIGHT_PREDICATE_TYPE}`);
  if (!Array.isArray(s.subject) || s.subject.length !== 1) throw bad('must have exactly one subject (the plan)');
  const subj = obj(s.subject[0], 'subject', ['name', 'digest']);
  str(subj.name, 'subject.name');
  digest(subj.digest, 'subject.digest');
  const p = obj(s.predicate, 'predicate', ['plan', 'input', 'kernel', 'enforcement', 'result', 'kernelLoader', 'replay', 'programs', 'tool', 'time']);
  str(obj(p.plan, 'predicate.plan', ['name']).name, 'predicate.plan.name');
  const input = obj(p.input, 'predicate.input', ['kind', 'digest'], ['releaseVersion']);
  if (!['object', 'plan', 'release'].includes(input.kind as string)) throw bad('predicate.input.kind is not object, plan or release');
  digest(input.digest, 'predicate.input.digest');
  if (input.releaseVersion !== undefined && !Number.isSafeInteger(input.releaseVersion)) throw bad('predicate.input.releaseVersion is not an integer');
  const k = obj(p.kernel, 'predicate.kernel', ['release', 'vmlinuz'], ['package', 'version', 'config']);
  for (const f of ['release', 'package', 'version'] as const) if (k[f] !== undefined) str(k[f], `predicate.kernel.${f}`);
  digest(k.vmlinuz, 'predicate.kernel.vmlinuz');
  if (k.config !== undefined) digest(k.config, 'predicate.kernel.config');
  if (!['none', 'per-program', 'loader'].includes(p.enforcement as string)) throw bad('predicate.enforcement is not none, per-program or loader');
  if (p.result !== 'pass' && p.result !== 'fail') throw bad('predicate.result is not pass or fail');
  for (const l of ['kernelLoader', 'replay'] as const) {
    const o = obj(p[l], `predicate.${l}`, ['verdict', 'signed'], ['code']);
    if (!['loaded', 'refused', 'unsupported'].includes(o.verdict as string) || typeof o.signed !== 'boolean') throw bad(`predicate.${l} is malformed`);
    if (o.code !== undefined) str(o.code, `predicate.${l}.code`);
  }
  if (!Array.isArray(p.programs)) throw bad('predicate.programs is not an array');
  for (const [i, x] of p.programs.entries()) {
    const pr = obj(x, `predicate.programs[${i}]`, ['name', 'type', 'kernelLoader', 'replay', 'tag'], ['code']);
    str(pr.name, 'program name');
    str(pr.type, 'program type');
    if (!VERDICTS.includes(pr.kernelLoader as string) || !VERDICTS.includes(pr.replay as string)) throw bad(`predicate.programs[${i}] has an unknown verdict`);
    if (pr.tag !== null && !/^[0-9a-f]{16}$/.test(str(pr.tag, 'program tag'))) throw bad(`predicate.programs[${i}].tag is not 16 hex digits or null`);
    if (pr.code !== undefined) str(pr.code, 'program code');
  }
  const tool = obj(p.tool, 'predicate.tool', ['name', 'version']);
  if (tool.name !== 'bpfseal') throw bad('predicate.tool.name is not bpfseal');
  str(tool.version, 'predicate.tool.version');
  if (Number.isNaN(Date.parse(str(p.time, 'predicate.time')))) throw bad('predicate.time is not a time');
  return s as unknown as PreflightStatement;
}
