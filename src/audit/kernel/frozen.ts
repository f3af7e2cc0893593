/**
 * Frozen maps of an attributed load (.rodata, .kconfig: BPF_MAP_FREEZE'd arrays the program only reads):
 * their configuration is part of what was signed, so a program bound to one whose value differs runs
 * other code paths than released. For each frozen map of the load bound to the program, the value the
 * kernel holds now (key 0, SHA-256) is compared with
 *   - what the load read back and recorded (MapRecord.frozenSha256), and
 *   - what the plan the record names gives (initData; for .kconfig the values this host resolves),
 *     the plan being read from beside the host log or the attestation log (plans/<digest>.plan).
 * Either mismatch is `differs`; with neither expectation available the map is `unchecked` (a finding).
 */
import { createHash } from 'node:crypto';
import type { Plan, PlanMap } from '../../plan/types.js';
import type { LoadedProgram } from './inventory.js';
import type { ProgramOfLoad } from './records.js';
import type { AttributionContext } from './attribution.js';

export interface Evidence {
  check: 'load' | 'boot' | 'tag' | 'type' | 'name' | 'uid' | 'maps' | 'frozen-map' | 'code';
  result: 'ok' | 'differs' | 'unchecked';
  message: string;
  map?: string;
  expected?: string | number | number[];
  actual?: string | number | number[];
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** SHA-256 of the value replay (or the kernel loader) writes into a frozen map at key 0. */
export function planFrozenSha256(plan: Plan, m: PlanMap, kconfig: AttributionContext['kconfig']): string {
  if (m.kconfig.length) return sha(kconfig(plan, m.name));
  const v = Buffer.alloc(m.valueSize);
  m.initData?.copy(v);
  return sha(v);
}

function expectedFromPlan(plan: Plan | undefined, name: string, ctx: AttributionContext): { sha256?: string; why?: string } {
  const m = plan?.maps.find((x) => x.name === name);
  if (!plan || !m) return { why: plan ? `the plan has no map '${name}'` : 'no plan' };
  try {
    return { sha256: planFrozenSha256(plan, m, ctx.kconfig) };
  } catch (e) {
    return { why: `the plan's value cannot be built on this host (${(e as Error).message})` };
  }
}

function oneMap(name: string, id: number, recorded: string | undefined, plan: Plan | undefined, planWhy: string | undefined, ctx: AttributionContext): Evidence[] {
  const now = ctx.readMap(id);
  if ('missing' in now) return [{ check: 'frozen-map', map: name, result: 'unchecked', message: `frozen map '${name}' (id ${id}) cannot be read: ${now.missing}` }];
  const fromPlan = expectedFromPlan(plan, name, ctx);
  const out: Evidence[] = [];
  if (recorded !== undefined) {
    out.push(recorded === now.sha256
      ? { check: 'frozen-map', map: name, result: 'ok', expected: recorded, actual: now.sha256, message: `frozen map '${name}' (id ${id}) holds what the load recorded` }
      : { check: 'frozen-map', map: name, result: 'differs', expected: recorded, actual: now.sha256, message: `frozen map '${name}' (id ${id}) holds sha256:${now.sha256}, the load recorded sha256:${recorded}` });
  }
  if (fromPlan.sha256 !== undefined) {
    out.push(fromPlan.sha256 === now.sha256
      ? { check: 'frozen-map', map: name, result: 'ok', expected: fromPlan.sha256, actual: now.sha256, message: `frozen map '${name}' (id ${id}) holds the plan's initial value` }
      : { check: 'frozen-map', map: name, result: 'differs', expected: fromPlan.sha256, actual: now.sha256, message: `frozen map '${name}' (id ${id}) holds sha256:${now.sha256}, the plan's initial value is sha256:${fromPlan.sha256}` });
  }
  if (!out.length) {
    out.push({ check: 'frozen-map', map: name, result: 'unchecked', actual: now.sha256, message: `frozen map '${name}' (id ${id}): the record has no content hash and ${planWhy ?? fromPlan.why ?? 'the plan is not available'}` });
  }
  return out;
}

/** Checks for every frozen map of the load that is bound to this program. */
export function frozenChecks(p: LoadedProgram, o: ProgramOfLoad, plan: Plan | undefined, planWhy: string | undefined, ctx: AttributionContext): Evidence[] {
  const bound = new Set(p.mapIds);
  const out: Evidence[] = [];
  for (const m of o.load.decision.maps ?? []) {
    if (!bound.has(m.id)) continue;
    const frozen = m.frozenSha256 !== undefined || plan?.maps.find((x) => x.name === m.name)?.freeze === true;
    if (frozen) out.push(...oneMap(m.name, m.id, m.frozenSha256, plan, planWhy, ctx));
  }
  // A record from before content hashes (no per-program map ids either) and no plan: which maps were
  // frozen is unknown, so none was checked. Said, never passed over.
  const old = o.program.mapIds === undefined && !(o.load.decision.maps ?? []).some((m) => m.frozenSha256 !== undefined);
  if (!plan && old && p.mapIds.length) {
    out.push({ check: 'frozen-map', result: 'unchecked', message: `the record predates frozen-map content hashes and ${planWhy ?? 'its plan is not available'}: frozen maps were not checked` });
  }
  return out;
}
