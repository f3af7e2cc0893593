/**
 * Running a plan's loader program in the kernel (skel_internal.h's bpf_load_and_run, done here):
 * create the blob map — exclusive to the loader (excl_prog_hash = SHA-256 of its instructions) where
 * the kernel has exclusive maps — write the blob, freeze it, load the loader (BPF_PROG_TYPE_SYSCALL,
 * sleepable, fd_array = [blob], with its signature and keyring when signed), run it with
 * BPF_PROG_RUN and the context holding the host inputs, and take the fds it made from the context.
 * Unsigned loads keep lazy fd_array binding (fd_array_cnt 0): an exclusive map is bound only after
 * the kernel has computed the program's digest. On any failure nothing stays: the loader closes what
 * it made, and this side closes the blob and the loader. A refusal at a BTF or program step is run
 * once more with a verifier log, from a fresh blob (the first run's blob holds closed fd numbers).
 */
import { createHash } from 'node:crypto';
import { BpfsealError } from '../errors.js';
import { progTypeName } from '../bpf/constants.js';
import { INSN_SIZE } from '../bpf/insn.js';
import { addressOf } from '../kernel/sys.js';
import { mapCreate, mapFreeze, mapInfo, mapUpdate, progInfo, progLoad, progTestRun } from '../kernel/bpf.js';
import { ERRNO, KernelError } from '../kernel/errors.js';
import { Fd } from '../kernel/fd.js';
import { CTX, DONE_MARKER } from '../loader/layout.js';
import type { LoaderProgram } from '../loader/generate.js';
import type { Plan } from '../plan/types.js';
import type { Handle } from './backend.js';
import { kconfigValue, resolveMaxEntries, type AppliedFixup } from './fixups.js';
import { systemHost, type HostFacts } from './host.js';
import type { LoadedCollection, LoadRecord } from './replay.js';

const SYSCALL_PROG = 31; // BPF_PROG_TYPE_SYSCALL
const BPF_F_SLEEPABLE = 1 << 4;
const ARRAY = 2;
const LOG_SIZE = 1 << 22;

export interface KernelLoaderOptions {
  host?: HostFacts;
  maxEntries?: ReadonlyMap<string, number>;
  /** PKCS#7 over `insns || blob` (kernels from 7.3 verify it) and the keyring to check it against. */
  signature?: Buffer;
  keyringId?: number;
  /** Bind the blob to the loader (default: where the kernel supports it; required when signed). */
  exclusive?: boolean;
  /** Tests only: ctx.flags (INJECT_FAILURE_FLAG makes a loader generated with injectFailureAt fail there). */
  ctxFlags?: number;
}

/** The context: header, host inputs (what the signature does not cover), and fds written by the loader. */
function buildContext(plan: Plan, loader: LoaderProgram, host: HostFacts, overrides: ReadonlyMap<string, number>): { ctx: Buffer; applied: AppliedFixup[] } {
  const ctx = Buffer.alloc(loader.ctxSize);
  ctx.writeUInt32LE(loader.ctxSize, CTX.size);
  const applied: AppliedFixup[] = [];
  for (const h of loader.hostInputs) {
    const m = plan.maps.find((x) => x.name === h.map)!;
    if (h.kind === 'max_entries') {
      const r = resolveMaxEntries(m, host, overrides);
      ctx.writeUInt32LE(r.maxEntries, h.ctxOffset);
      if (r.applied) applied.push(r.applied);
    } else {
      const k = kconfigValue(m, host);
      k.value.copy(ctx, h.ctxOffset);
      applied.push(...k.applied);
    }
  }
  return { ctx, applied };
}

let exclusiveSupported: boolean | undefined;

function createBlob(loader: LoaderProgram, exclusive: boolean): Fd {
  const spec = { type: ARRAY, keySize: 4, valueSize: loader.blob.length, maxEntries: 1, flags: 0, numaNode: 0, name: 'bpfseal_ldr', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n };
  const blob = mapCreate(exclusive ? { ...spec, exclProgHash: createHash('sha256').update(loader.insns).digest() } : spec);
  try {
    mapUpdate(blob, Buffer.alloc(4), loader.blob);
    mapFreeze(blob);
  } catch (e) {
    blob.close();
    throw e;
  }
  return blob;
}

interface Run { retval: number; ctx: Buffer }

/** One run of the loader from a fresh blob. The loader and blob are closed again; the fds it made are in ctx. */
function runOnce(loader: LoaderProgram, baseCtx: Buffer, o: KernelLoaderOptions, exclusive: boolean, log?: Buffer): Run {
  const blob = createBlob(loader, exclusive);
  let prog: Fd | undefined;
  try {
    prog = progLoad({
      type: SYSCALL_PROG, insns: loader.insns, license: 'GPL', kernVersion: 0, flags: BPF_F_SLEEPABLE, name: 'bpfseal_loader', expectedAttachType: 0,
      fdArray: [blob], signature: o.signature, keyringId: o.keyringId, fdArrayCnt: !!o.signature,
    });
    const ctx = Buffer.from(baseCtx);
    if (log) {
      ctx.writeUInt32LE(1, CTX.logLevel);
      ctx.writeUInt32LE(log.length, CTX.logSize);
      ctx.writeBigUInt64LE(addressOf(log), CTX.logBuf);
    }
    const r = progTestRun(prog, { ctx });
    return { retval: r.retval | 0, ctx };
  } finally {
    prog?.close();
    blob.close();
  }
}

function logText(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.toString('utf8', 0, end < 0 ? buf.length : end);
}

/** Close every fd the loader handed back (after a failure seen on this side only). */
function closeCtxFds(loader: LoaderProgram, ctx: Buffer): void {
  for (const off of [...(loader.fds.btf !== undefined ? [loader.fds.btf] : []), ...loader.fds.maps, ...loader.fds.programs]) {
    const fd = ctx.readInt32LE(off);
    if (fd > 0) new Fd(fd, 'loader fd').close();
  }
}

export function runKernelLoader(plan: Plan, digest: string, loader: LoaderProgram, o: KernelLoaderOptions = {}): LoadedCollection {
  const host = o.host ?? systemHost();
  const { ctx: baseCtx, applied } = buildContext(plan, loader, host, o.maxEntries ?? new Map());
  if (o.ctxFlags !== undefined) baseCtx.writeUInt32LE(o.ctxFlags >>> 0, CTX.flags);
  let exclusive = o.exclusive ?? (exclusiveSupported ?? true);
  const attempt = () => {
    try {
      return runOnce(loader, baseCtx, o, exclusive);
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      throw e.step ? e : e.at(`kernel loader: ${e.op === 'BPF_MAP_CREATE' ? 'create the blob map' : e.op === 'BPF_PROG_LOAD' ? `load the ${o.signature ? 'signed ' : ''}loader program` : 'run the loader program'}`);
    }
  };
  let run: Run;
  try {
    run = attempt();
    if (o.exclusive === undefined) exclusiveSupported = exclusive;
  } catch (e) {
    // A kernel without exclusive maps refuses excl_prog_hash (E2BIG or EINVAL): unsigned loads go on without.
    if (!(e instanceof KernelError) || o.exclusive !== undefined || o.signature || !(e.errno === ERRNO.E2BIG || e.errno === ERRNO.EINVAL) || e.op !== 'BPF_MAP_CREATE') throw e;
    exclusive = exclusiveSupported = false;
    run = attempt();
  }
  if (run.retval !== 0 || run.ctx.readUInt32LE(CTX.done) !== DONE_MARKER) {
    if (run.retval === 0) closeCtxFds(loader, run.ctx); // cannot happen with a loader of ours; never leave fds
    const step = run.ctx.readUInt32LE(CTX.step);
    const what = loader.steps[step - 1] ?? `loader step ${step}`;
    const errno = -run.retval;
    let text = '';
    if (/^load (BTF|program)/.test(what)) {
      const buf = Buffer.alloc(LOG_SIZE);
      const again = runOnce(loader, baseCtx, o, exclusive, buf);
      if (again.retval === 0) closeCtxFds(loader, again.ctx);
      text = logText(buf);
    }
    throw new KernelError(/^load BTF/.test(what) ? 'BPF_BTF_LOAD' : /^load program/.test(what) ? 'BPF_PROG_LOAD' : /^create map/.test(what) ? 'BPF_MAP_CREATE' : 'bpf_sys_bpf', errno > 0 ? errno : 5, undefined, text).at(`kernel loader: ${what}`);
  }
  return collect(plan, digest, loader, run.ctx, applied);
}

/** Own the fds the loader returned (all of them first, so none is lost), and describe them as replay does. */
function collect(plan: Plan, digest: string, loader: LoaderProgram, ctx: Buffer, applied: AppliedFixup[]): LoadedCollection {
  const offsets = [...(loader.fds.btf !== undefined ? [{ off: loader.fds.btf, what: 'btf' }] : []),
    ...plan.maps.map((m, i) => ({ off: loader.fds.maps[i], what: `map ${m.name}` })),
    ...plan.programs.map((p, i) => ({ off: loader.fds.programs[i], what: `prog ${p.name}` }))];
  const owned = offsets.map(({ off, what }) => {
    const fd = ctx.readInt32LE(off);
    return fd > 0 ? new Fd(fd, what) : undefined;
  });
  const closeAll = () => { for (const f of owned.reverse()) f?.close(); };
  try {
    const missing = offsets.filter((_, i) => !owned[i]).map((o) => o.what);
    if (missing.length) throw new BpfsealError('kernel', 'LOADER_FAILED', `kernel loader: no fd for ${missing.join(', ')}`);
    const base = loader.fds.btf !== undefined ? 1 : 0;
    const maps = new Map<string, Handle>(plan.maps.map((m, i) => [m.name, owned[base + i]!]));
    const programs = new Map<string, Handle>(plan.programs.map((p, i) => [p.name, owned[base + plan.maps.length + i]!]));
    const fixups: AppliedFixup[] = [...applied];
    for (const p of plan.programs) {
      for (const f of p.fixups) fixups.push({ program: p.name, insn: f.insn, kind: f.kind, name: f.name, value: 'resolved by the kernel loader' });
      if (p.attach) fixups.push({ program: p.name, kind: 'attach_btf', name: p.attach.name, value: 'resolved by the kernel loader' });
    }
    const record: LoadRecord = {
      plan: plan.name, digest: `sha256:${digest}`, backend: 'kernel', time: new Date().toISOString(), fixups,
      programs: plan.programs.map((p) => {
        const info = progInfo(programs.get(p.name) as Fd);
        return { name: p.name, id: info.id, tag: info.tag, insns: p.insns.length / INSN_SIZE, type: progTypeName(p.progType) };
      }),
      maps: plan.maps.map((m) => ({ name: m.name, id: mapInfo(maps.get(m.name) as Fd).id })),
    };
    return { record, maps, programs, close: closeAll };
  } catch (e) {
    closeAll();
    throw e;
  }
}
