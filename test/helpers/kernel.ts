/**
 * Helpers for the real-kernel runtime tests: a one-time bpf(2) probe, unique pin directories under
 * /sys/fs/bpf, a backend wrapper that records the kernel ids of every object a replay creates, and
 * bounded polling for the kernel to release them.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { release } from 'node:os';
import { createHash } from 'node:crypto';
import { btfInfo, btfNextId, mapCreate, mapNextId, progLoad, progNextId } from '../../src/kernel/bpf.js';
import { KernelError } from '../../src/kernel/errors.js';
import { Fd, openFds } from '../../src/kernel/fd.js';
import type { Handle, KernelBackend } from '../../src/runtime/backend.js';
import { parseBtf, KIND, type BtfDatasec } from '../../src/bpf/btf.js';
import type { Plan } from '../../src/plan/types.js';

export interface BpfProbe {
  ok: boolean;
  why: string;
}

let probed: BpfProbe | undefined;

/**
 * Can this process use bpf(2)? Creates (and closes) a 1-entry array map. EPERM/ENOSYS/unbound: no.
 * With kernel.unprivileged_bpf_disabled=0 an unprivileged process can create that map, so a 2-insn
 * XDP program (needs CAP_BPF + CAP_NET_ADMIN, as the fixtures do) is loaded as well.
 */
export function probeBpf(): BpfProbe {
  if (probed) return probed;
  try {
    mapCreate({ type: 2, keySize: 4, valueSize: 4, maxEntries: 1, flags: 0, numaNode: 0, name: 'bpfseal_probe', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n }).close();
    const insns = Buffer.from('b7000000020000009500000000000000', 'hex'); // r0 = XDP_PASS; exit
    progLoad({ type: 6, insns, license: 'GPL', kernVersion: 0, flags: 0, name: 'bpfseal_probe', expectedAttachType: 0, fdArray: [] }).close();
    probed = { ok: true, why: '' };
  } catch (e) {
    if (e instanceof KernelError && (e.errno === 1 || e.errno === 38 || e.errno === 0)) {
      probed = { ok: false, why: `bpf(2) is not permitted here (${e.message}); skipping real-kernel tests (run as root with CAP_BPF)` };
    } else {
      throw e;
    }
  }
  return probed;
}

// ---------------------------------------------------------------------------------------------------
// Pin directories

const BPFFS = '/sys/fs/bpf';
let pinSeq = 0;
const pinDirs: string[] = [];

/** A fresh, not yet existing directory /sys/fs/bpf/bpfseal-test-<pid>-<n>; removed by removePinDirs(). */
export function newPinDir(): string {
  let d: string;
  do d = `${BPFFS}/bpfseal-test-${process.pid}-${pinSeq++}`;
  while (existsSync(d));
  pinDirs.push(d);
  return d;
}

/** Remove every pin directory handed out (pins included). Safe to call when some never existed. */
export function removePinDirs(): void {
  while (pinDirs.length) rmSync(pinDirs.pop()!, { recursive: true, force: true });
}

/** Close descriptors a failed test left open, so one failure does not cascade; returns what was open. */
export function closeLeftoverFds(): string[] {
  const left = openFds();
  for (const f of left) f.close();
  return left.map((f) => f.what);
}

export function asFd(h: Handle | undefined, what = 'handle'): Fd {
  if (!(h instanceof Fd)) throw new Error(`${what} is not a real-kernel Fd`);
  return h;
}

// ---------------------------------------------------------------------------------------------------
// Recording backend

export type ObjKind = 'btf' | 'map' | 'prog';

export interface CreatedObject {
  kind: ObjKind;
  id: number;
  name: string;
}

export interface ProgLoadSeen {
  name: string;
  insnSha256: string;
  fds: number[];
}

export interface RecordingBackend {
  backend: KernelBackend;
  created: CreatedObject[];
  loads: ProgLoadSeen[];
}

/** Wrap a real-kernel backend: after each create, ask the kernel for the new object's id. */
export function recording(inner: KernelBackend): RecordingBackend {
  const created: CreatedObject[] = [];
  const loads: ProgLoadSeen[] = [];
  const backend: KernelBackend = {
    ...inner,
    kind: inner.kind,
    btfLoad(btf) {
      const h = inner.btfLoad(btf);
      created.push({ kind: 'btf', id: btfInfo(asFd(h)).id, name: 'btf' });
      return h;
    },
    mapCreate(m) {
      const h = inner.mapCreate(m);
      created.push({ kind: 'map', id: inner.info(h, 'map').id, name: m.name });
      return h;
    },
    progLoad(p) {
      loads.push({ name: p.name, insnSha256: createHash('sha256').update(p.insns).digest('hex'), fds: p.fdArray.map((h) => asFd(h).value) });
      const h = inner.progLoad(p);
      created.push({ kind: 'prog', id: inner.info(h, 'prog').id, name: p.name });
      return h;
    },
  };
  return { backend, created, loads };
}

/**
 * Is a kernel object with this id still in the kernel's id table? Asked with BPF_*_GET_NEXT_ID, which
 * takes no reference: probing with GET_FD_BY_ID would itself keep objects alive (closing such an fd on a
 * prog_array drops its last user reference, which schedules a deferred clear that holds the map again;
 * polling that way kept a released prog_array alive indefinitely on this kernel).
 */
export function objectExists(kind: ObjKind, id: number): boolean {
  const next = kind === 'map' ? mapNextId(id - 1) : kind === 'prog' ? progNextId(id - 1) : btfNextId(id - 1);
  return next === id;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Poll until none of the objects exists. The kernel frees programs after an RCU grace period and the
 * maps/BTF they hold after that, so release is not immediate; the bound is generous (not a timing
 * assertion). Returns the objects still present at the end.
 */
export async function waitGone(objs: CreatedObject[], tries = 200, intervalMs = 25): Promise<CreatedObject[]> {
  let left = objs.filter((o) => objectExists(o.kind, o.id));
  for (let i = 0; i < tries && left.length; i++) {
    await sleep(intervalMs);
    left = left.filter((o) => objectExists(o.kind, o.id));
  }
  return left;
}

// ---------------------------------------------------------------------------------------------------
// Host facts, read independently of src/runtime/host.ts

/** KERNEL_VERSION(a, b, min(c, 255)) from os.release(). */
export function linuxKernelVersion(rel = release()): number {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(rel);
  if (!m) throw new Error(`cannot parse kernel release ${rel}`);
  return Number(m[1]) * 65536 + Number(m[2]) * 256 + Math.min(Number(m[3] ?? 0), 255);
}

export function kallsyms(): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of readFileSync('/proc/kallsyms', 'latin1').split('\n')) {
    const [addr, , name] = line.split(/\s+/);
    if (name && !out.has(name)) out.set(name, BigInt(`0x${addr}`));
  }
  return out;
}

/** Offsets of the variables of a global-data section, from the plan's BTF (DATASEC secinfos). */
export function datasecLayout(plan: Plan, section: string): Map<string, { offset: number; size: number }> {
  const btf = parseBtf(plan.btf);
  const sec = btf.types.find((t): t is BtfDatasec => t && t.kind === KIND.DATASEC && t.name === section);
  if (!sec) throw new Error(`no DATASEC '${section}' in the BTF of ${plan.name}`);
  return new Map(sec.secinfos.map((s) => [btf.types[s.type].name, { offset: s.offset, size: s.size }]));
}

export function u32key(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/** Catch what a synchronous call throws (fails when it returns). */
export function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the call to throw, but it returned');
}
