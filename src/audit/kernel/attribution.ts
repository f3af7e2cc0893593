/**
 * Attribution of one loaded program: by load first, then by code (README, "audit --kernel").
 *   attested    its id is one that a standing `allowed` load of this boot created (records.ts), and its
 *               tag, type, name, loader uid, bound maps and frozen map contents are what that load
 *               recorded (and, for frozen maps, what the plan's initial values give);
 *   modified    its id is such a load's, but something of the above differs;
 *   known-code  no standing load of this boot created it, but its tag, type and name are those of a
 *               program in a verified attestation or a standing load: bpfseal's code, loaded outside
 *               bpfseal (bpftool, another loader, a reload);
 *   unattested  nothing matches.
 * Pure over its inputs (the kernel's view, the host-log index, code refs, a plan source and a map
 * reader), so the rules are tested without a kernel as well as on one.
 */
import { progTypeName } from '../../bpf/constants.js';
import type { Plan } from '../../plan/types.js';
import type { LoadedProgram, MapReader } from './inventory.js';
import type { CodeRef, HostIndex, ProgramOfLoad } from './records.js';
import { frozenChecks, type Evidence } from './frozen.js';

export type { Evidence } from './frozen.js';

export type ProgramStatus = 'attested' | 'known-code' | 'modified' | 'unattested' | 'accepted';

/** Stable codes, one per status (the code of the finding a program other than attested gives). */
export const STATUS_CODE: Record<ProgramStatus, string> = {
  attested: 'PROGRAM_ATTESTED', 'known-code': 'PROGRAM_KNOWN_CODE', modified: 'PROGRAM_MODIFIED', unattested: 'PROGRAM_UNATTESTED', accepted: 'PROGRAM_ACCEPTED',
};

/** The host-log load a program is attributed to. */
export interface RecordRef {
  hostLogIndex: number;
  loadId: string;
  plan: string;
  program: string;
  digest?: string;
  version?: number;
  signer?: { name?: string; keyId?: string; identity?: string; issuer?: string };
  release?: string;
  loader?: 'kernel' | 'user';
  pinDir?: string;
  time: string;
}

export interface CodeMatch {
  plan: string;
  digest?: string;
  program: string;
  source: 'attestation-log' | 'host-log';
}

export interface AttributedProgram extends LoadedProgram {
  status: ProgramStatus;
  code: string;
  /** status === 'attested' (kept from the tag-only audit, whose JSON had it). */
  attested: boolean;
  /** Programs of verified attestations and standing loads with this tag, type and name. */
  matches: CodeMatch[];
  record?: RecordRef;
  evidence: Evidence[];
  accepted?: { reason: string; rule: string; status: 'known-code' | 'unattested' };
}

export interface AttributionContext {
  host: HostIndex;
  /** Code refs by tag. */
  code: ReadonlyMap<string, readonly CodeRef[]>;
  /** The plan a record's digest names, when it is stored beside the host log or the attestation log. */
  plan: (digest: string | undefined) => { plan?: Plan; why?: string };
  readMap: MapReader;
  /** The value a .kconfig map of this plan gets on this host (runtime/fixups.ts kconfigValue). */
  kconfig: (plan: Plan, map: string) => Buffer;
}

/** The kernel keeps BPF_OBJ_NAME_LEN - 1 = 15 bytes of a program name. */
export const kernelName = (name: string): string => name.slice(0, 15);

const codeEquals = (p: LoadedProgram, c: CodeRef) => c.tag === p.tag && c.type === p.type && kernelName(c.program) === p.name;

function recordRef(o: ProgramOfLoad): RecordRef {
  const d = o.load.decision;
  return {
    hostLogIndex: o.load.index, loadId: d.loadId!, plan: d.plan!, program: o.program.name, time: d.time,
    ...(d.digest ? { digest: d.digest } : {}), ...(d.version !== undefined ? { version: d.version } : {}), ...(d.signer ? { signer: d.signer } : {}),
    ...(d.release ? { release: d.release } : {}), ...(d.loader ? { loader: d.loader } : {}), ...(d.pinDir ? { pinDir: d.pinDir } : {}),
  };
}

function same(check: Evidence['check'], expected: string | number, actual: string | number, what: string): Evidence {
  return expected === actual
    ? { check, result: 'ok', expected, actual, message: `${what} ${actual} as recorded` }
    : { check, result: 'differs', expected, actual, message: `${what} is ${actual}, the load recorded ${expected}` };
}

/** Bound maps: each one created by the same load, and the set the load recorded for this program. */
function mapChecks(p: LoadedProgram, o: ProgramOfLoad): Evidence[] {
  const created = new Map((o.load.decision.maps ?? []).map((m) => [m.id, m.name]));
  const out: Evidence[] = [];
  const foreign = p.mapIds.filter((id) => !created.has(id));
  out.push(foreign.length
    ? { check: 'maps', result: 'differs', actual: p.mapIds, message: `map${foreign.length > 1 ? 's' : ''} ${foreign.join(', ')} bound to the program ${foreign.length > 1 ? 'were' : 'was'} not created by load ${o.load.decision.loadId}` }
    : { check: 'maps', result: 'ok', actual: p.mapIds, message: `every bound map (${p.mapIds.join(', ') || 'none'}) was created by load ${o.load.decision.loadId}` });
  const rec = o.program.mapIds;
  if (rec) {
    const a = [...p.mapIds].sort((x, y) => x - y), b = [...rec].sort((x, y) => x - y);
    const eq = a.length === b.length && a.every((x, i) => x === b[i]);
    out.push(eq
      ? { check: 'maps', result: 'ok', expected: rec, actual: p.mapIds, message: 'bound map ids as recorded at load' }
      : { check: 'maps', result: 'differs', expected: rec, actual: p.mapIds, message: `bound map ids [${p.mapIds.join(', ')}], the load recorded [${rec.join(', ')}]` });
  }
  return out;
}

/** The type the load recorded, else the plan's (records from before types were recorded). */
function typeCheck(p: LoadedProgram, o: ProgramOfLoad, plan: Plan | undefined): Evidence {
  if (o.program.type) return same('type', o.program.type, p.type, 'type');
  const pp = plan?.programs.find((x) => x.name === o.program.name);
  if (pp) return same('type', progTypeName(pp.progType), p.type, 'type (from the plan)');
  return { check: 'type', result: 'unchecked', actual: p.type, message: 'the record names no type and its plan is not available' };
}

function byLoad(p: LoadedProgram, o: ProgramOfLoad, ctx: AttributionContext): Evidence[] {
  const { plan, why } = ctx.plan(o.load.decision.digest);
  const ev: Evidence[] = [{ check: 'load', result: 'ok', message: `created by load ${o.load.decision.loadId} (host log #${o.load.index}, boot ${ctx.host.bootId})` }];
  if (o.program.tag) ev.push(same('tag', o.program.tag, p.tag, 'tag'));
  ev.push(typeCheck(p, o, plan));
  ev.push(same('name', kernelName(o.program.name), p.name, 'name'));
  if (o.load.decision.uid !== undefined) ev.push(same('uid', o.load.decision.uid, p.uid, 'loader uid'));
  ev.push(...mapChecks(p, o));
  ev.push(...frozenChecks(p, o, plan, why, ctx));
  return ev;
}

/** Why no load of this boot attests the id: records of other boots and ended loads that name it. */
function notByLoad(p: LoadedProgram, host: HostIndex): Evidence[] {
  const ev: Evidence[] = [{ check: 'load', result: 'differs', message: `no standing bpfseal load of this boot (${host.bootId || 'unknown'}) created program id ${p.id}` }];
  for (const o of host.otherBoot.get(p.id) ?? []) {
    ev.push({ check: 'boot', result: 'differs', expected: host.bootId, actual: o.load.decision.bootId ?? 'none', message: `host log #${o.load.index} (load ${o.load.decision.loadId}) names id ${p.id} in boot ${o.load.decision.bootId ?? '(not recorded)'}: ids of another boot are other programs` });
  }
  const e = host.ended.get(p.id);
  if (e) ev.push({ check: 'load', result: 'differs', message: `load ${e.load.decision.loadId} (host log #${e.load.index}) created id ${p.id} but was ${e.ended} (host log #${e.endIndex}): it attests nothing any more` });
  return ev;
}

/** Code refs with this tag whose type or name differ: said, since "same instructions, other type" is a finding. */
function nearMisses(p: LoadedProgram, refs: readonly CodeRef[]): Evidence[] {
  return refs.filter((c) => !codeEquals(p, c)).slice(0, 8).map((c) => ({
    check: 'code' as const, result: 'differs' as const, expected: `${c.type ?? '?'} ${kernelName(c.program)}`, actual: `${p.type} ${p.name}`,
    message: `tag ${p.tag} is that of ${c.plan}/${c.program} (${c.source}), but as ${c.type ?? 'an unrecorded type'} named '${kernelName(c.program)}'`,
  }));
}

export function attribute(p: LoadedProgram, ctx: AttributionContext): AttributedProgram {
  const refs = ctx.code.get(p.tag) ?? [];
  const matches = refs.filter((c) => codeEquals(p, c)).map(({ plan, digest, program, source }) => ({ plan, ...(digest ? { digest } : {}), program, source }));
  const own = ctx.host.byProgId.get(p.id);
  if (own) {
    const evidence = byLoad(p, own, ctx);
    const status: ProgramStatus = evidence.some((e) => e.result === 'differs') ? 'modified' : 'attested';
    return { ...p, status, code: STATUS_CODE[status], attested: status === 'attested', matches, record: recordRef(own), evidence };
  }
  const evidence = [...notByLoad(p, ctx.host), ...nearMisses(p, refs)];
  const status: ProgramStatus = matches.length ? 'known-code' : 'unattested';
  if (matches.length) evidence.push({ check: 'code', result: 'ok', message: `tag, type and name are those of ${matches.map((m) => `${m.plan}/${m.program} (${m.source})`).join(', ')}` });
  return { ...p, status, code: STATUS_CODE[status], attested: false, matches, evidence };
}
