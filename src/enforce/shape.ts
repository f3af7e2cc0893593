/**
 * What makes a release the enforcer: the program and maps `bpfseal enforce` drives, checked on the
 * verified plan before anything reaches the kernel (a trusted signer's other release is not attached
 * as an admission policy by mistake), and where the bundled object is.
 */
import { join } from 'node:path';
import { packageRoot } from '../pkg.js';
import { InputError } from '../errors.js';
import { ATTACH_TYPE, MAP_TYPE, PROG_TYPE } from '../bpf/constants.js';
import type { Plan, PlanMap } from '../plan/types.js';

export const ENFORCER = {
  program: 'bpfseal_admit',
  /** signing.rst, "Admission: security_bpf_prog_load()"; libbpf's lsm/ prefix becomes bpf_lsm_. */
  section: 'lsm/bpf_prog_load',
  attach: 'bpf_lsm_bpf_prog_load',
  maps: { allowSerial: 'allow_serial', allowType: 'allow_type', counts: 'counts', decisions: 'decisions' },
} as const;

/** The object built from src/enforce/bpf/bpfseal_enforcer.bpf.c (make -C test/fixtures), shipped with the package. */
export function bundledEnforcerObject(): string {
  return join(packageRoot(), 'src/enforce/bpf/bpfseal_enforcer.o');
}

interface MapShape { type: string; keySize: number; valueSize: number; minEntries: number }

const MAPS: Record<string, MapShape> = {
  [ENFORCER.maps.allowSerial]: { type: 'hash', keySize: 4, valueSize: 1, minEntries: 1 },
  [ENFORCER.maps.allowType]: { type: 'array', keySize: 4, valueSize: 1, minEntries: 5 },
  [ENFORCER.maps.counts]: { type: 'array', keySize: 4, valueSize: 32, minEntries: 1 },
  [ENFORCER.maps.decisions]: { type: 'ringbuf', keySize: 0, valueSize: 0, minEntries: 4096 },
};

function unexpected(plan: Plan, msg: string): InputError {
  return new InputError('ENFORCER_UNEXPECTED', `release '${plan.name}' is not a bpfseal enforcer: ${msg}`);
}

function checkMap(plan: Plan, m: PlanMap | undefined, name: string, want: MapShape): void {
  if (!m) throw unexpected(plan, `it has no map '${name}'`);
  const ok = m.type === MAP_TYPE.get(want.type) && m.keySize === want.keySize && m.valueSize === want.valueSize && m.maxEntries >= want.minEntries && m.maxEntriesFixup === 'none';
  if (!ok) throw unexpected(plan, `map '${name}' is not a ${want.type} map with ${want.keySize}-byte keys and ${want.valueSize}-byte values`);
}

/** Refuse a plan that is not shaped like the enforcer (one lsm program on bpf_prog_load and its four maps). */
export function checkEnforcerPlan(plan: Plan): void {
  const progs = plan.programs;
  const p = progs.find((x) => x.name === ENFORCER.program);
  if (!p || progs.length !== 1) throw unexpected(plan, `it must hold exactly one program, '${ENFORCER.program}' (it has ${progs.map((x) => `'${x.name}'`).join(', ') || 'none'})`);
  if (p.progType !== PROG_TYPE.get('lsm') || p.expectedAttachType !== ATTACH_TYPE.get('lsm_mac') || p.attach?.name !== ENFORCER.attach) {
    throw unexpected(plan, `program '${p.name}' is not an lsm program on bpf_prog_load (section '${p.section}')`);
  }
  if (p.fixups.length) throw unexpected(plan, `program '${p.name}' needs instruction fix-ups`);
  for (const [name, shape] of Object.entries(MAPS)) checkMap(plan, plan.maps.find((m) => m.name === name), name, shape);
}
