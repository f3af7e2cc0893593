/**
 * The in-toto Statement v1 (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md)
 * that bpfseal signs. Its subject is the plan (name, sha256 of the canonical plan bytes); its predicate
 * (type PREDICATE_TYPE, versioned) records what the plan will do to a kernel.
 */
import { createHash } from 'node:crypto';
import { at } from '../errors.js';
import { shapeChecker } from '../json/shape.js';
import { attachTypeName, mapTypeName, progTypeName } from '../bpf/constants.js';
import type { Plan, PlanProgram } from '../plan/types.js';
import { predictTag } from '../plan/tag.js';
import type { LoaderClaim } from '../loader/claim.js';

export type { LoaderClaim };

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const PREDICATE_TYPE = 'https://bpfseal.dev/attestation/bpf-loader-plan/v1';
export const PAYLOAD_TYPE = 'application/vnd.in-toto+json';

export interface ProgramClaim {
  name: string;
  section: string;
  type: string;
  attachType: string;
  instructions: number;
  insnDigest: { sha256: string };
  /** Kernel program tag the plan will get (null when host fix-ups change the bytes): lets a host audit match loaded programs. */
  tag: string | null;
  fixups: string[];
}

export interface MapClaim {
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  frozen: boolean;
}

export interface Predicate {
  plan: { name: string; formatVersion: number };
  object: { name: string; digest: { sha256: string } };
  release: { version: number };
  programs: ProgramClaim[];
  maps: MapClaim[];
  tool: { name: 'bpfseal'; version: string };
  builder?: Record<string, string>;
  /**
   * Programs (sorted) whose per-program kernel signature the release carries: the release's set must be
   * exactly this one. Absent in releases signed before it existed (their kernel signatures are unbound).
   */
  kernelSignatures?: string[];
  /** The kernel loader the release carries a signature for (docs/loader-format.md). */
  loader?: LoaderClaim;
}

export function loaderSubjectName(plan: Plan): string {
  return `${plan.name}.loader`;
}

export interface Statement {
  _type: typeof STATEMENT_TYPE;
  subject: { name: string; digest: { sha256: string } }[];
  predicateType: typeof PREDICATE_TYPE;
  predicate: Predicate;
}

/** The plan's subject: parseStatement requires one or two subjects, the plan's first. */
export function planSubject(st: Statement): Statement['subject'][number] {
  return at(st.subject, 0, 'statement subject');
}

export function planSubjectName(plan: Plan): string {
  return `${plan.name}.plan`;
}

export interface StatementOptions {
  version: number;
  toolVersion: string;
  builder?: Record<string, string>;
  /** SHA-256 of each program's instructions, when the caller has hashed them already. */
  insnSha256?: ReadonlyMap<PlanProgram, Buffer>;
  /** Programs whose instructions carry a per-program PKCS#7 kernel signature in the release. */
  kernelSigned?: readonly string[];
  /** The kernel loader whose `insns || blob` the release signs. */
  loader?: LoaderClaim;
}

export function buildStatement(plan: Plan, digest: string, opts: StatementOptions): Statement {
  const predicate: Predicate = {
    plan: { name: plan.name, formatVersion: plan.version },
    object: { name: `${plan.name}.o`, digest: { sha256: plan.objectSha256.toString('hex') } },
    release: { version: opts.version },
    programs: plan.programs.map((p) => {
      const sha256 = (opts.insnSha256?.get(p) ?? createHash('sha256').update(p.insns).digest()).toString('hex');
      return {
        name: p.name, section: p.section, type: progTypeName(p.progType), attachType: p.expectedAttachType ? attachTypeName(p.expectedAttachType) : '',
        instructions: p.insns.length / 8, insnDigest: { sha256 }, tag: predictTag(p, sha256),
        fixups: [
          ...p.fixups.map((f) => `${f.kind}:${f.name}@${f.insn}`),
          ...(p.attach ? [`attach_btf:${p.attach.name}`] : []),
        ],
      };
    }),
    maps: plan.maps.map((m) => ({
      name: m.name, type: mapTypeName(m.type), keySize: m.keySize, valueSize: m.valueSize, maxEntries: m.maxEntries, flags: m.flags, frozen: m.freeze,
    })),
    tool: { name: 'bpfseal', version: opts.toolVersion },
  };
  if (opts.builder && Object.keys(opts.builder).length) predicate.builder = opts.builder;
  if (opts.kernelSigned) predicate.kernelSignatures = [...opts.kernelSigned].sort();
  const subject = [{ name: planSubjectName(plan), digest: { sha256: digest } }];
  if (opts.loader) {
    predicate.loader = opts.loader;
    subject.push({ name: loaderSubjectName(plan), digest: { sha256: opts.loader.sha256 } });
  }
  return { _type: STATEMENT_TYPE, subject, predicateType: PREDICATE_TYPE, predicate };
}

/** Parse and shape-check a statement from a DSSE payload: strict JSON (no duplicate keys), exact field sets. */
export function parseStatement(payload: Buffer): Statement {
  const { value: v, bad, obj } = shapeChecker(payload, 'the signed statement');
  const s = obj(v, 'statement', ['_type', 'subject', 'predicateType', 'predicate']);
  if (s._type !== STATEMENT_TYPE) throw bad(`is not an in-toto Statement v1 (_type ${JSON.stringify(s._type)})`);
  if (s.predicateType !== PREDICATE_TYPE) throw bad(`has predicate type ${JSON.stringify(s.predicateType)}, not ${PREDICATE_TYPE}`);
  if (!Array.isArray(s.subject) || s.subject.length < 1 || s.subject.length > 2) throw bad('must have one subject (the plan), or two (the plan and its kernel loader)');
  for (const x of s.subject) {
    const subj = obj(x, 'subject', ['name', 'digest']);
    const dg = obj(subj.digest, 'subject digest', ['sha256']);
    if (typeof subj.name !== 'string' || typeof dg.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(dg.sha256)) throw bad('subject must have a name and a lowercase hex sha256 digest');
  }
  const p = obj(s.predicate, 'predicate', ['plan', 'object', 'release', 'programs', 'maps', 'tool'], ['builder', 'kernelSignatures', 'loader']);
  if (p.loader !== undefined) {
    const l = obj(p.loader, 'predicate.loader', ['format', 'sha256', 'instructions', 'blobBytes', 'hostInputs']);
    if (!Number.isSafeInteger(l.format) || typeof l.sha256 !== 'string' || !Array.isArray(l.hostInputs)) throw bad('predicate.loader is malformed');
  }
  if (p.kernelSignatures !== undefined && (!Array.isArray(p.kernelSignatures) || !p.kernelSignatures.every((x) => typeof x === 'string'))) throw bad('predicate.kernelSignatures must be a list of program names');
  const plan = obj(p.plan, 'predicate.plan', ['name', 'formatVersion']);
  const rel = obj(p.release, 'predicate.release', ['version']);
  if (typeof plan.name !== 'string') throw bad('predicate.plan.name is not a string');
  if (typeof rel.version !== 'number' || !Number.isSafeInteger(rel.version) || rel.version < 0) throw bad('predicate.release.version is not a non-negative integer');
  const tool = obj(p.tool, 'predicate.tool', ['name', 'version']);
  if (tool.name !== 'bpfseal' || typeof tool.version !== 'string') throw bad('predicate.tool must be {name: "bpfseal", version}');
  if (!Array.isArray(p.programs) || !Array.isArray(p.maps)) throw bad('predicate.programs and predicate.maps must be arrays');
  if (p.builder !== undefined) {
    const b = p.builder;
    if (!b || typeof b !== 'object' || Array.isArray(b) || !Object.values(b).every((x) => typeof x === 'string')) throw bad('predicate.builder must map names to strings');
  }
  return s as unknown as Statement;
}
