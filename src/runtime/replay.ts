/**
 * Replay a verified plan into a kernel, all or nothing: BTF load -> maps (inner templates first,
 * declared max_entries fix-ups) -> initial values -> map-in-map slots -> freezes -> program loads with
 * the plan's bytes and fd_array (declared fix-ups applied) -> prog_array slots. The result is owned
 * descriptors only: pinning is the commit's (commit.ts), so a process that dies here leaves nothing.
 * Any failure closes every descriptor made so far, then reports the step.
 */
import { mapAttrs } from '../bpf/spec.js';
import { at, BpfsealError } from '../errors.js';
import { progTypeName } from '../bpf/constants.js';
import { KernelError } from '../kernel/errors.js';
import { PlanFormatError } from '../plan/codec.js';
import type { Plan } from '../plan/types.js';
import type { Handle, KernelBackend } from './backend.js';
import { kconfigValue, resolveMaxEntries, resolveProgram, type AppliedFixup } from './fixups.js';
import { systemHost, type HostFacts } from './host.js';

export interface ReplayOptions {
  host?: HostFacts;
  /** Sizes for maps declared with max_entries 0. */
  maxEntries?: ReadonlyMap<string, number>;
  /** Per-program PKCS#7 signatures for kernels that verify them, and the keyring to check against. */
  signatures?: Map<string, Buffer>;
  keyringId?: number;
  /** Called before every step; a test throws from it to inject a failure there. */
  onStep?: (step: string) => void;
}

export interface LoadRecord {
  plan: string;
  digest: string;
  backend: 'kernel' | 'model';
  time: string;
  programs: { name: string; id: number; tag: string | null; insns: number; type: string }[];
  maps: { name: string; id: number }[];
  fixups: AppliedFixup[];
}

export interface LoadedCollection {
  record: LoadRecord;
  maps: Map<string, Handle>;
  programs: Map<string, Handle>;
  /** Close every descriptor (objects stay in the kernel only through pins made by a commit). */
  close(): void;
}

class Transaction {
  readonly handles: Handle[] = [];
  track<H extends Handle>(h: H): H {
    this.handles.push(h);
    return h;
  }
  closeAll(): void {
    for (const h of this.handles.splice(0).reverse()) h.close();
  }
}

/**
 * The handle a plan's reference names (an inner map, a slot's map or target, an fd_array entry). decodePlan
 * refuses a plan whose references are out of range (validatePlan), so only a plan that bypassed it gets here.
 */
function planRef(hs: readonly Handle[], i: number, what: string): Handle {
  const h = hs[i];
  if (h === undefined) throw new PlanFormatError(`${what} ${i} is out of range (there are ${hs.length})`);
  return h;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

/** What every replay step works with: the plan, the kernel, the transaction that owns what is made, and progress. */
interface ReplayRun {
  plan: Plan;
  backend: KernelBackend;
  host: HostFacts;
  opts: ReplayOptions;
  tx: Transaction;
  fixups: AppliedFixup[];
  /** Names the step about to run (a failure reports it). */
  step: (s: string) => void;
}

/** Replay `plan` into `backend`, all or nothing (above); a failure closes what was made and names the step. */
export function replay(plan: Plan, digest: string, backend: KernelBackend, opts: ReplayOptions = {}): LoadedCollection {
  const host = opts.host ?? systemHost();
  const tx = new Transaction();
  const fixups: AppliedFixup[] = [];
  let current = 'start';
  const step = (s: string) => {
    current = s;
    opts.onStep?.(s);
  };
  const run: ReplayRun = { plan, backend, host, opts, tx, fixups, step };
  try {
    step('load BTF');
    const btf = plan.btf.length ? tx.track(backend.btfLoad(plan.btf)) : undefined;
    const maps = createMaps(run, btf);
    writeInitialValues(run, maps);
    fillSlots(run, 'map', maps, maps);
    freezeMaps(run, maps);
    const { progs, records: progRecords } = loadPrograms(run, maps, btf);
    fillSlots(run, 'prog', maps, progs);
    const mapRecords = plan.maps.map((m, i) => ({ name: m.name, id: backend.info(at(maps, i, 'map handle'), 'map').id }));
    const record: LoadRecord = {
      plan: plan.name, digest: `sha256:${digest}`, backend: backend.kind, time: new Date().toISOString(),
      programs: progRecords, maps: mapRecords, fixups,
    };
    const mapHandles = new Map(plan.maps.map((m, i) => [m.name, at(maps, i, 'map handle')]));
    const progHandles = new Map(plan.programs.map((p, i) => [p.name, at(progs, i, 'program handle')]));
    return { record, maps: mapHandles, programs: progHandles, close: () => tx.closeAll() };
  } catch (e) {
    tx.closeAll();
    if (e instanceof KernelError) throw e.at(current);
    if (e instanceof BpfsealError) {
      e.message = `${current}: ${e.message}`;
      throw e;
    }
    // Anything else (a failed write, a bug) still names the step; everything was rolled back above.
    throw new BpfsealError('input', 'REPLAY_FAILED', `${current}: ${e instanceof Error ? e.message : String(e)}; nothing was left loaded`, { cause: e });
  }
}

/** Create every map in plan order (an inner template before the maps of maps made from it), with max_entries fix-ups. */
function createMaps(run: ReplayRun, btf: Handle | undefined): Handle[] {
  const { plan, backend, host, opts, tx, fixups, step } = run;
  const maps: Handle[] = [];
  plan.maps.forEach((m) => {
    step(`create map '${m.name}'`);
    const { maxEntries, applied } = resolveMaxEntries(m, host, opts.maxEntries ?? new Map());
    if (applied) fixups.push(applied);
    maps.push(tx.track(backend.mapCreate({
      ...mapAttrs(m), maxEntries, name: m.kernelName, btf, inner: m.inner >= 0 ? planRef(maps, m.inner, 'inner map index') : undefined,
    })));
  });
  return maps;
}

/** Write each map's initial value: the host's kconfig values, or the plan's initial data. */
function writeInitialValues(run: ReplayRun, maps: Handle[]): void {
  const { plan, backend, host, fixups, step } = run;
  const zero = u32(0);
  plan.maps.forEach((m, i) => {
    if (m.kconfig.length) {
      step(`set kconfig values of map '${m.name}'`);
      const { value, applied } = kconfigValue(m, host);
      fixups.push(...applied);
      backend.mapUpdate(at(maps, i, 'map handle'), zero, value);
    } else if (m.initData) {
      step(`write initial value of map '${m.name}'`);
      backend.mapUpdate(at(maps, i, 'map handle'), zero, m.initData);
    }
  });
}

/** Fill the plan's slots of one kind: map-in-map slots with maps, prog_array slots with programs. */
function fillSlots(run: ReplayRun, kind: 'map' | 'prog', maps: Handle[], targets: Handle[]): void {
  const { plan, backend, step } = run;
  for (const s of plan.slots.filter((x) => x.kind === kind)) {
    step(`set slot ${s.index} of map '${plan.maps[s.map]?.name ?? `#${s.map}`}'`);
    backend.mapUpdate(planRef(maps, s.map, 'slot map index'), u32(s.index), u32(backendFdValue(planRef(targets, s.target, 'slot target index'))));
  }
}

/** Freeze the maps the plan marks frozen, once their values and slots are written. */
function freezeMaps(run: ReplayRun, maps: Handle[]): void {
  const { plan, backend, step } = run;
  plan.maps.forEach((m, i) => {
    if (!m.freeze) return;
    step(`freeze map '${m.name}'`);
    backend.mapFreeze(at(maps, i, 'map handle'));
  });
}

/** Load every program with its declared fix-ups applied and its fd_array as map descriptors; their records. */
function loadPrograms(run: ReplayRun, maps: Handle[], btf: Handle | undefined): { progs: Handle[]; records: LoadRecord['programs'] } {
  const { plan, backend, host, opts, tx, fixups, step } = run;
  const progs: Handle[] = [];
  const records: LoadRecord['programs'] = [];
  for (const p of plan.programs) {
    step(`load program '${p.name}'`);
    const r = resolveProgram(p, host);
    fixups.push(...r.applied);
    const h = tx.track(backend.progLoad({
      name: p.name, type: p.progType, expectedAttachType: p.expectedAttachType, flags: p.progFlags, license: plan.license,
      kernVersion: plan.kernVersion, insns: r.insns, fdArray: p.fdArray.map((i) => planRef(maps, i, 'fd_array map index')), btf, funcInfo: p.funcInfo,
      lineInfo: p.lineInfo, coreRelos: p.coreRelos, attachBtfId: r.attachBtfId, signature: opts.signatures?.get(p.name), keyringId: opts.keyringId,
    }));
    progs.push(h);
    const info = backend.info(h, 'prog');
    records.push({ name: p.name, id: info.id, tag: info.tag ?? null, insns: p.insns.length / 8, type: progTypeName(p.progType) });
  }
  return { progs, records };
}

export { pinName } from '../plan/codec.js';

/** The fd number (real kernel) or model id that goes into a slot value. */
function backendFdValue(h: Handle): number {
  const v = (h as unknown as { value?: number }).value;
  if (typeof v !== 'number') throw new Error('internal: handle has no slot value');
  return v;
}
