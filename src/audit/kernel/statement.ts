/**
 * The signed host report of `audit --kernel --attest`: an in-toto Statement v1 whose predicate type is
 * REPORT_PREDICATE_TYPE. Its one subject is the host-log tree the report was judged against
 * (name `host-log:<origin>`, digest: the RFC 6962 root hash of that checkpoint, which is SHA-256), so
 * a verifier can tie it to a prefix of the very log it is appended to (consistency proof). The
 * predicate says which host and boot, which kernel, when, under which policy, and every program with
 * its status, the load it is attributed to and what differs.
 */
import { hostname, release } from 'node:os';
import { InputError } from '../../errors.js';
import { parseStrictJson, type JsonValue } from '../../json/strict.js';
import { STATEMENT_TYPE } from '../../attest/statement.js';
import type { ProgramStatus } from './attribution.js';
import type { KernelReport } from './report.js';

export const REPORT_PREDICATE_TYPE = 'https://bpfseal.dev/attestation/kernel-audit/v1';

export interface ReportProgram {
  id: number;
  name: string;
  type: string;
  tag: string;
  status: ProgramStatus;
  mapIds: number[];
  uid: number;
  loadTime?: string;
  record?: { hostLogIndex: number; loadId: string; plan: string; digest?: string; version?: number; signerKeyId?: string };
  accepted?: { reason: string; rule: string; status: 'known-code' | 'unattested' };
  /** What differs or could not be checked (evidence messages). */
  findings?: string[];
}

export interface TreeRef {
  origin: string;
  logId: string;
  size: number;
  rootHash: string;
}

export interface ReportPredicate {
  host: { name: string; bootId: string; kernelRelease: string };
  time: string;
  hostLog: TreeRef;
  attestationLog: TreeRef;
  policy: string | null;
  summary: Record<ProgramStatus, number>;
  programs: ReportProgram[];
  findings: { code: string; message: string }[];
  tool: { name: 'bpfseal'; version: string };
}

export interface ReportStatement {
  _type: typeof STATEMENT_TYPE;
  subject: [{ name: string; digest: { sha256: string } }];
  predicateType: typeof REPORT_PREDICATE_TYPE;
  predicate: ReportPredicate;
}

export interface ReportContext {
  attestationLog: TreeRef;
  policy: string | null;
  /** Every finding of the audit (attestation log and kernel). */
  findings: { code: string; message: string }[];
  toolVersion: string;
}

function program(p: KernelReport['programs'][number]): ReportProgram {
  // For a program no load claims, evidence[0] only restates its status ("no standing load ... created").
  const notes = p.evidence.filter((e, i) => e.result !== 'ok' && !(i === 0 && !p.record)).map((e) => e.message);
  const r = p.record;
  return {
    id: p.id, name: p.name, type: p.type, tag: p.tag, status: p.status, mapIds: p.mapIds, uid: p.uid, ...(p.loadTime ? { loadTime: p.loadTime } : {}),
    ...(r ? { record: { hostLogIndex: r.hostLogIndex, loadId: r.loadId, plan: r.plan, ...(r.digest ? { digest: r.digest } : {}), ...(r.version !== undefined ? { version: r.version } : {}), ...(r.signer?.keyId ? { signerKeyId: r.signer.keyId } : {}) } } : {}),
    ...(p.accepted ? { accepted: p.accepted } : {}), ...(notes.length ? { findings: notes } : {}),
  };
}

export function buildReportStatement(k: KernelReport, ctx: ReportContext): ReportStatement {
  const h = k.hostLog;
  if (!h || h.size === undefined || !h.rootHash || !h.origin || !h.logId) throw new InputError('REPORT_NO_HOST_LOG', 'a host report is judged against a host log that verifies; there is none');
  const hostLog = { origin: h.origin, logId: h.logId, size: h.size, rootHash: h.rootHash };
  return {
    _type: STATEMENT_TYPE,
    subject: [{ name: `host-log:${h.origin}`, digest: { sha256: h.rootHash } }],
    predicateType: REPORT_PREDICATE_TYPE,
    predicate: {
      host: { name: hostname(), bootId: k.bootId, kernelRelease: release() }, time: new Date().toISOString(), hostLog,
      attestationLog: ctx.attestationLog, policy: ctx.policy, summary: k.summary, programs: k.programs.map(program), findings: ctx.findings,
      tool: { name: 'bpfseal', version: ctx.toolVersion },
    },
  };
}

const STATUSES: readonly string[] = ['attested', 'known-code', 'modified', 'unattested', 'accepted'];

/** Parse and shape-check a report statement from a DSSE payload (strict JSON; the fields a verifier reads). */
export function parseReportStatement(payload: Buffer): ReportStatement {
  const bad = (why: string) => new InputError('REPORT_INVALID', `the signed report ${why}`);
  let v: JsonValue;
  try {
    v = parseStrictJson(payload.toString('utf8'));
  } catch (e) {
    throw bad(`is not strict JSON (${(e as Error).message})`);
  }
  const obj = (x: unknown, what: string): Record<string, unknown> => {
    if (!x || typeof x !== 'object' || Array.isArray(x)) throw bad(`${what} is not an object`);
    return x as Record<string, unknown>;
  };
  const s = obj(v, 'statement');
  if (s._type !== STATEMENT_TYPE) throw bad(`is not an in-toto Statement v1 (_type ${JSON.stringify(s._type)})`);
  if (s.predicateType !== REPORT_PREDICATE_TYPE) throw bad(`has predicate type ${JSON.stringify(s.predicateType)}, not ${REPORT_PREDICATE_TYPE}`);
  const subj = Array.isArray(s.subject) && s.subject.length === 1 ? obj(s.subject[0], 'subject') : undefined;
  const digest = subj && obj(subj.digest, 'subject digest').sha256;
  if (!subj || typeof subj.name !== 'string' || typeof digest !== 'string' || !/^[0-9a-f]{64}$/.test(digest)) throw bad('must have one subject: the host-log tree, by its root hash');
  const p = obj(s.predicate, 'predicate');
  const host = obj(p.host, 'predicate.host');
  const tree = obj(p.hostLog, 'predicate.hostLog');
  if (typeof host.name !== 'string' || typeof host.bootId !== 'string' || typeof host.kernelRelease !== 'string' || typeof p.time !== 'string') throw bad('predicate.host must name the host, boot id and kernel release, and predicate.time the time');
  if (typeof tree.origin !== 'string' || typeof tree.logId !== 'string' || !Number.isSafeInteger(tree.size) || tree.rootHash !== digest) throw bad('predicate.hostLog must be the tree the subject names (origin, logId, size, rootHash)');
  if (!Array.isArray(p.programs) || !p.programs.every((x) => { const q = obj(x, 'program'); return Number.isSafeInteger(q.id) && typeof q.name === 'string' && typeof q.tag === 'string' && STATUSES.includes(q.status as string); })) throw bad('predicate.programs must list programs with id, name, tag and a status');
  if (!Array.isArray(p.findings)) throw bad('predicate.findings must be a list');
  return s as unknown as ReportStatement;
}
