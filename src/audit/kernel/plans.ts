/**
 * The plans host-log records name, for comparing frozen maps with the plan's initial values: read from
 * `plans/<sha256>.plan` beside the host log (load keeps it there: runtime/commit.ts) or beside the
 * attestation log (sign keeps it there), checked against its name (envelopes.ts loadPlan), decoded
 * once per digest. And the host facts .kconfig values resolve against, read once.
 */
import { decodePlan } from '../../plan/codec.js';
import type { Plan } from '../../plan/types.js';
import { kconfigValue } from '../../runtime/fixups.js';
import { systemHost, type HostFacts } from '../../runtime/host.js';
import { loadPlan } from '../../attest/envelopes.js';

export function planSource(dirs: readonly string[]): (digest: string | undefined) => { plan?: Plan; why?: string } {
  const cache = new Map<string, { plan?: Plan; why?: string }>();
  return (digest) => {
    const hex = /^sha256:([0-9a-f]{64})$/.exec(digest ?? '')?.[1];
    if (!hex) return { why: 'the record names no plan digest' };
    const hit = cache.get(hex);
    if (hit) return hit;
    let r: { plan?: Plan; why?: string } = { why: `plan ${digest} is stored neither beside the host log nor beside the attestation log` };
    for (const d of dirs) {
      const bytes = loadPlan(d, hex);
      if (!bytes) continue;
      try {
        r = { plan: decodePlan(bytes) };
      } catch (e) {
        r = { why: `plan ${digest} beside ${d} does not decode (${(e as Error).message})` };
      }
      break;
    }
    cache.set(hex, r);
    return r;
  };
}

/** The .kconfig value a plan's map gets on this host (host facts read lazily, once). */
export function hostKconfig(host: HostFacts = systemHost()): (plan: Plan, map: string) => Buffer {
  return (plan, name) => {
    const m = plan.maps.find((x) => x.name === name);
    if (!m) throw new Error(`no map '${name}'`);
    return kconfigValue(m, host).value;
  };
}
