/**
 * The in-toto Statement v1 (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md)
 * that bpfseal signs. Its subject is the plan (name, sha256 of the canonical plan bytes); its predicate
 * (type PREDICATE_TYPE, versioned) records what the plan will do to a kernel.
 */
import { createHash } from 'node:crypto';
import { InputError } from '../errors.js';
import { attachTypeName, mapTypeName, progTypeName } from '../bpf/constants.js';
import type { Plan } from '../plan/types.js';
import { predictTag } from '../plan/tag.js';

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
}

export interface Statement {
  _type: typeof STATEMENT_TYPE;
  subject: { name: string; digest: { sha256: string } }[];
  predicateType: typeof PREDICATE_TYPE;
  predicate: Predicate;
}

export function planSubjectName(plan: Plan): string {
  return `${plan.name}.plan`;
}

export function buildStatement(plan: Plan, digest: string, opts: { version: number; toolVersion: string; builder?: Record<string, string> }): Statement {
  const predicate: Predicate = {
    plan: { name: plan.name, formatVersion: plan.version },
    object: { name: `${plan.name}.o`, digest: { sha256: plan.objectSha256.toString('hex') } },
    release: { version: opts.version },
    programs: plan.programs.map((p) => {
      const sha256 = createHash('sha256').update(p.insns).digest('hex');
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
  return { _type: STATEMENT_TYPE, subject: [{ name: planSubjectName(plan), digest: { sha256: digest } }], predicateType: PREDICATE_TYPE, predicate };
}

/** Parse and shape-check a statement from a verified DSSE payload. */
export function parseStatement(payload: Buffer): Statement {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new InputError('STATEMENT_INVALID', 'the signed payload is not JSON');
  }
  const s = v as Partial<Statement>;
  if (s._type !== STATEMENT_TYPE) throw new InputError('STATEMENT_INVALID', `payload is not an in-toto Statement v1 (_type ${JSON.stringify(s._type)})`);
  if (s.predicateType !== PREDICATE_TYPE) throw new InputError('STATEMENT_INVALID', `predicate type ${JSON.stringify(s.predicateType)} is not ${PREDICATE_TYPE}`);
  if (!Array.isArray(s.subject) || s.subject.length !== 1 || typeof s.subject[0]?.digest?.sha256 !== 'string') {
    throw new InputError('STATEMENT_INVALID', 'statement must have exactly one subject with a sha256 digest');
  }
  const p = s.predicate;
  if (!p || typeof p.release?.version !== 'number' || !Number.isSafeInteger(p.release.version) || !Array.isArray(p.programs) || typeof p.plan?.name !== 'string') {
    throw new InputError('STATEMENT_INVALID', 'predicate is missing plan, release version or programs');
  }
  return s as Statement;
}
