/**
 * Plan -> loader program (BPF_PROG_TYPE_SYSCALL) and its blob, as libbpf's gen_loader does in C
 * (src/gen_loader.c), written for bpfseal's plans. Pure and deterministic: the same plan gives the same
 * bytes on every machine, so the signer can sign `insns || blob` and a host can regenerate and compare.
 *
 * The loader performs exactly the replay of runtime/replay.ts, in the kernel, with bpf_sys_bpf: BTF
 * load -> maps (inner templates first; host-sized max_entries from the context) -> initial values (the
 * .kconfig values from the context) -> map-in-map slots -> freezes -> programs (the plan's instructions
 * copied unchanged into the blob, their fd_array in the blob, func/line info and CO-RE records, kfunc /
 * ksym / attach targets resolved with bpf_btf_find_by_name_kind and bpf_kallsyms_lookup_name) ->
 * prog_array slots. Every fd goes into a zeroed slot at the start of the blob and into the context;
 * on any failure the loader closes every fd it made, records the step and errno, and returns the errno.
 * Format: docs/loader-format.md.
 */
import { at, InputError } from '../errors.js';
import { INSN_SIZE } from '../bpf/insn.js';
import type { Plan, PlanMap, PlanProgram } from '../plan/types.js';
import { Asm, R } from './asm.js';
import { BlobBuilder } from './blob.js';
import { BTF_KIND, BTF_LOAD, CMD, CTX, DONE_MARKER, ENOENT, EOPNOTSUPP, HELPER, LIMITS, MAP_CREATE, MAP_ELEM, MAP_FREEZE, PROG_LOAD } from './layout.js';

export const LOADER_FORMAT = 1;

/** libbpf's POISON_CALL_KFUNC_BASE (runtime/fixups.ts applies the same in user space). */
const POISON_CALL_KFUNC = 2002000000;

/** A value the loader takes from its context: not covered by a signature over `insns || blob`. */
export interface HostInput {
  kind: 'max_entries' | 'kconfig';
  map: string;
  ctxOffset: number;
  size: number;
}

export interface LoaderProgram {
  format: typeof LOADER_FORMAT;
  insns: Buffer;
  blob: Buffer;
  /** Context size and where the resulting fds are (offsets into the context). */
  ctxSize: number;
  fds: { btf?: number; maps: number[]; programs: number[] };
  hostInputs: HostInput[];
  /** steps[k - 1] describes step k (the context's `step` after a failure). */
  steps: string[];
}

function loaderLimit(msg: string): InputError {
  return new InputError('LOADER_LIMIT', `plan cannot become a kernel loader: ${msg} (sign with --no-loader for per-program signatures only; docs/loader-format.md, "Limits")`);
}

/** ctx.flags value that makes a test loader fail at the step it was generated to fail at. */
export const INJECT_FAILURE_FLAG = 0x7e57_fa11;

export interface GenerateOptions {
  /**
   * Tests only: fail at this step (1-based) with EIO when run with ctx.flags = INJECT_FAILURE_FLAG, to
   * exercise the cleanup of every step. Such a loader differs from the plan's and is never signed.
   */
  injectFailureAt?: number;
}

class Gen {
  readonly a = new Asm();
  readonly b = new BlobBuilder();
  readonly steps: string[] = [];
  readonly cleanup = this.a.newLabel('cleanup');

  constructor(private readonly opts: GenerateOptions = {}) {}

  step(what: string): void {
    this.steps.push(what);
    this.a.st(4, R.R6, CTX.step, this.steps.length);
    if (this.opts.injectFailureAt === this.steps.length) {
      // Conditional on the context, so the verifier still sees every later step as reachable.
      const go = this.a.newLabel('noinject');
      this.a.ldx(4, R.R0, R.R6, CTX.flags);
      this.a.jmpImm('JNE', R.R0, INJECT_FAILURE_FLAG | 0, go);
      this.a.movImm(R.R7, -5);
      this.a.ja(this.cleanup);
      this.a.label(go);
    }
  }

  /** *(u64 *)(blob + field) = blob + data */
  relStore(field: number, data: number): void {
    this.a.blobAddr(R.R0, data);
    this.a.blobAddr(R.R1, field);
    this.a.stx(8, R.R1, 0, R.R0);
  }

  copyBlob(dst: number, src: number, w: 1 | 2 | 4 | 8): void {
    this.a.blobAddr(R.R2, src);
    this.a.ldx(w, R.R0, R.R2, 0);
    this.a.blobAddr(R.R1, dst);
    this.a.stx(w, R.R1, 0, R.R0);
  }

  copyCtx(dst: number, ctxOff: number, w: 1 | 2 | 4 | 8): void {
    this.a.ldx(w, R.R0, R.R6, ctxOff);
    this.a.blobAddr(R.R1, dst);
    this.a.stx(w, R.R1, 0, R.R0);
  }

  sysBpf(cmd: number, attr: number, size: number): void {
    this.a.movImm(R.R1, cmd);
    this.a.blobAddr(R.R2, attr);
    this.a.movImm(R.R3, size);
    this.a.call(HELPER.sys_bpf);
    this.a.movReg(R.R7, R.R0);
  }

  /** if (r7 < 0) goto cleanup */
  check(): void {
    this.a.jmpImm('JSLT', R.R7, 0, this.cleanup);
  }

  /** Keep the new fd (r7) in its blob slot (closed on failure) and in the context (for user space). */
  keepFd(slot: number, ctxOff: number): void {
    this.a.blobAddr(R.R1, slot);
    this.a.stx(4, R.R1, 0, R.R7);
    this.a.stx(4, R.R6, ctxOff, R.R7);
  }

  /** The user's log settings, copied from the context into an attr (used on the run that collects a log). */
  logFromCtx(attr: number, level: number, size: number, buf: number): void {
    this.copyCtx(attr + level, CTX.logLevel, 4);
    this.copyCtx(attr + size, CTX.logSize, 4);
    this.copyCtx(attr + buf, CTX.logBuf, 8);
  }

  /** r7 = bpf_btf_find_by_name_kind(name, kind): (btf_obj_fd << 32) | btf_id, or a negative errno. */
  findBtf(name: string, kind: number): void {
    const s = this.b.cstring(name);
    this.a.blobAddr(R.R1, s.off);
    this.a.movImm(R.R2, s.len);
    this.a.movImm(R.R3, kind);
    this.a.movImm(R.R4, 0);
    this.a.call(HELPER.btf_find_by_name_kind);
    this.a.movReg(R.R7, R.R0);
  }

  /** A module BTF (nonzero btf_obj_fd in r7's upper half) is not supported: close it, fail with EOPNOTSUPP. */
  refuseModuleBtf(): void {
    const ok = this.a.newLabel('vmlinux');
    this.a.movReg(R.R9, R.R7);
    this.a.rshImm(R.R9, 32);
    this.a.jmpImm('JEQ', R.R9, 0, ok);
    this.a.movReg(R.R1, R.R9);
    this.a.call(HELPER.sys_close);
    this.a.movImm(R.R7, -EOPNOTSUPP);
    this.a.ja(this.cleanup);
    this.a.label(ok);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function mapAttr(m: PlanMap, hasBtf: boolean): Buffer {
  const a = Buffer.alloc(MAP_CREATE.size);
  a.writeUInt32LE(m.type, MAP_CREATE.mapType);
  a.writeUInt32LE(m.keySize, MAP_CREATE.keySize);
  a.writeUInt32LE(m.valueSize, MAP_CREATE.valueSize);
  a.writeUInt32LE(m.maxEntries, MAP_CREATE.maxEntries);
  a.writeUInt32LE(m.flags >>> 0, MAP_CREATE.mapFlags);
  a.writeUInt32LE(m.numaNode, MAP_CREATE.numaNode);
  a.write(m.kernelName.slice(0, 15), MAP_CREATE.mapName, 'latin1');
  if (hasBtf && (m.btfKeyTypeId || m.btfValueTypeId)) {
    a.writeUInt32LE(m.btfKeyTypeId, MAP_CREATE.btfKeyTypeId);
    a.writeUInt32LE(m.btfValueTypeId, MAP_CREATE.btfValueTypeId);
  }
  a.writeBigUInt64LE(m.mapExtra, MAP_CREATE.mapExtra);
  return a;
}

export function generateLoader(plan: Plan, opts: GenerateOptions = {}): LoaderProgram {
  const g = new Gen(opts);
  const { a, b } = g;
  const nm = plan.maps.length, np = plan.programs.length;
  const hasBtf = plan.btf.length > 0;
  // Blob: fd slots first (zero in the signed bytes: nothing to close before a step made it).
  const slots = b.zeros(4 * (1 + nm + np));
  const slotBtf = slots, slotMap = (i: number) => slots + 4 * (1 + i), slotProg = (i: number) => slots + 4 * (1 + nm + i);
  const ctxBtf = CTX.fds, ctxMap = (i: number) => CTX.fds + 4 * (1 + i), ctxProg = (i: number) => CTX.fds + 4 * (1 + nm + i);
  let ctxEnd = CTX.fds + 4 * (1 + nm + np);
  const hostInputs: HostInput[] = [];
  const hostInput = (kind: HostInput['kind'], map: string, size: number): number => {
    ctxEnd = Math.ceil(ctxEnd / 8) * 8;
    const off = ctxEnd;
    hostInputs.push({ kind, map, ctxOffset: off, size });
    ctxEnd += Math.ceil(size / 8) * 8;
    return off;
  };
  const zeroKey = b.add(u32(0));

  // Prologue: ctx in r6, then over the cleanup code to the steps.
  const main = a.newLabel('main');
  a.movReg(R.R6, R.R1);
  a.ja(main);
  a.label(g.cleanup);
  a.stx(4, R.R6, CTX.error, R.R7);
  for (let i = nm + np; i >= 0; i--) {
    const skip = a.newLabel('closed');
    a.blobAddr(R.R0, slots + 4 * i);
    a.ldx(4, R.R1, R.R0, 0);
    a.jmpImm('JSLE', R.R1, 0, skip);
    a.call(HELPER.sys_close);
    a.label(skip);
  }
  a.movReg(R.R0, R.R7);
  a.exit();
  a.label(main);

  if (hasBtf) {
    g.step('load BTF');
    const data = b.add(plan.btf);
    const attr = Buffer.alloc(BTF_LOAD.size);
    attr.writeUInt32LE(plan.btf.length, BTF_LOAD.btfSize);
    const at = b.add(attr);
    g.relStore(at + BTF_LOAD.btf, data);
    g.logFromCtx(at, BTF_LOAD.logLevel, BTF_LOAD.logSize, BTF_LOAD.logBuf);
    g.sysBpf(CMD.BTF_LOAD, at, BTF_LOAD.size);
    g.check();
    g.keepFd(slotBtf, ctxBtf);
  }

  plan.maps.forEach((m, i) => {
    g.step(`create map '${m.name}'`);
    const at = b.add(mapAttr(m, hasBtf));
    if (hasBtf && (m.btfKeyTypeId || m.btfValueTypeId)) g.copyBlob(at + MAP_CREATE.btfFd, slotBtf, 4);
    if (m.inner >= 0) g.copyBlob(at + MAP_CREATE.innerMapFd, slotMap(m.inner), 4);
    if (m.maxEntriesFixup !== 'none') g.copyCtx(at + MAP_CREATE.maxEntries, hostInput('max_entries', m.name, 4), 4);
    g.sysBpf(CMD.MAP_CREATE, at, MAP_CREATE.size);
    g.check();
    g.keepFd(slotMap(i), ctxMap(i));
  });

  const update = (mapIdx: number, keyOff: number, valueOff: number) => {
    const at = b.add(Buffer.alloc(MAP_ELEM.size));
    g.copyBlob(at + MAP_ELEM.mapFd, slotMap(mapIdx), 4);
    g.relStore(at + MAP_ELEM.key, keyOff);
    g.relStore(at + MAP_ELEM.value, valueOff);
    g.sysBpf(CMD.MAP_UPDATE_ELEM, at, MAP_ELEM.size);
    g.check();
  };
  plan.maps.forEach((m, i) => {
    if (m.kconfig.length) {
      g.step(`set kconfig values of map '${m.name}'`);
      const from = hostInput('kconfig', m.name, m.valueSize);
      const value = b.zeros(m.valueSize);
      for (let o = 0; o < m.valueSize; o += 8) g.copyCtx(value + o, from + o, 8);
      update(i, zeroKey, value);
    } else if (m.initData) {
      g.step(`write initial value of map '${m.name}'`);
      update(i, zeroKey, b.add(m.initData));
    }
  });
  for (const s of plan.slots.filter((x) => x.kind === 'map')) {
    g.step(`set slot ${s.index} of map '${at(plan.maps, s.map, 'slot map').name}'`); // validatePlan checked s.map
    update(s.map, b.add(u32(s.index)), slotMap(s.target));
  }
  plan.maps.forEach((m, i) => {
    if (!m.freeze) return;
    g.step(`freeze map '${m.name}'`);
    const at = b.add(Buffer.alloc(MAP_FREEZE.size));
    g.copyBlob(at + MAP_FREEZE.mapFd, slotMap(i), 4);
    g.sysBpf(CMD.MAP_FREEZE, at, MAP_FREEZE.size);
    g.check();
  });

  plan.programs.forEach((p, i) => loadProgram(g, plan, p, hasBtf, slotBtf, slotMap, slotProg(i), ctxProg(i)));

  for (const s of plan.slots.filter((x) => x.kind === 'prog')) {
    g.step(`set slot ${s.index} of map '${at(plan.maps, s.map, 'slot map').name}'`); // validatePlan checked s.map
    update(s.map, b.add(u32(s.index)), slotProg(s.target));
  }
  a.st(4, R.R6, CTX.step, 0);
  a.st(4, R.R6, CTX.done, DONE_MARKER);
  a.movImm(R.R0, 0);
  a.exit();

  const insns = a.assemble();
  const blob = b.finish();
  if (blob.length > LIMITS.blobBytes) throw loaderLimit(`its blob would be ${blob.length} bytes; an array map value holds at most ${LIMITS.blobBytes} (KMALLOC_MAX_SIZE)`);
  if (ctxEnd > LIMITS.ctxBytes) throw loaderLimit(`its context would be ${ctxEnd} bytes (the loader addresses at most ${LIMITS.ctxBytes}: ${nm} maps, ${np} programs, ${hostInputs.length} host inputs)`);
  if (insns.length / INSN_SIZE > LIMITS.insns) throw loaderLimit(`the loader would have ${insns.length / INSN_SIZE} instructions (at most ${LIMITS.insns})`);
  return {
    format: LOADER_FORMAT, insns, blob, ctxSize: ctxEnd, hostInputs, steps: g.steps,
    fds: { ...(hasBtf ? { btf: ctxBtf } : {}), maps: plan.maps.map((_, i) => ctxMap(i)), programs: plan.programs.map((_, i) => ctxProg(i)) },
  };
}

function loadProgram(g: Gen, plan: Plan, p: PlanProgram, hasBtf: boolean, slotBtf: number, slotMap: (i: number) => number, slot: number, ctxOff: number): void {
  const { a, b } = g;
  const insns = b.add(p.insns);
  const license = b.cstring(plan.license).off;
  const ext = (e: { recSize: number; data: Buffer }) => (e.data.length ? e : undefined);
  const fi = ext(p.funcInfo), li = ext(p.lineInfo), cr = ext(p.coreRelos);
  const attr = Buffer.alloc(PROG_LOAD.size);
  attr.writeUInt32LE(p.progType, PROG_LOAD.progType);
  attr.writeUInt32LE(p.insns.length / INSN_SIZE, PROG_LOAD.insnCnt);
  attr.writeUInt32LE(plan.kernVersion, PROG_LOAD.kernVersion);
  attr.writeUInt32LE(p.progFlags >>> 0, PROG_LOAD.progFlags);
  attr.write(p.name.slice(0, 15), PROG_LOAD.progName, 'latin1');
  attr.writeUInt32LE(p.expectedAttachType, PROG_LOAD.expectedAttachType);
  if (fi) { attr.writeUInt32LE(fi.recSize, PROG_LOAD.funcInfoRecSize); attr.writeUInt32LE(fi.data.length / fi.recSize, PROG_LOAD.funcInfoCnt); }
  if (li) { attr.writeUInt32LE(li.recSize, PROG_LOAD.lineInfoRecSize); attr.writeUInt32LE(li.data.length / li.recSize, PROG_LOAD.lineInfoCnt); }
  if (cr) { attr.writeUInt32LE(cr.data.length / cr.recSize, PROG_LOAD.coreReloCnt); attr.writeUInt32LE(cr.recSize, PROG_LOAD.coreReloRecSize); }
  const fdArray = p.fdArray.length ? b.zeros(4 * p.fdArray.length) : undefined;
  const at = b.add(attr);
  for (const f of p.fixups) {
    g.step(`resolve ${f.kind === 'kfunc' ? 'kfunc' : 'kernel symbol'} '${f.name}' for program '${p.name}'`);
    const insn = insns + f.insn * INSN_SIZE;
    const done = a.newLabel('fixed');
    const missing = a.newLabel('missing');
    if (f.kind === 'ksym_addr') {
      const s = b.cstring(f.name);
      const res = b.zeros(8);
      a.blobAddr(R.R1, s.off);
      a.movImm(R.R2, s.len);
      a.movImm(R.R3, 0);
      a.blobAddr(R.R4, res);
      a.call(HELPER.kallsyms_lookup_name);
      a.movReg(R.R7, R.R0);
      if (f.weak) a.jmpImm('JEQ', R.R7, -ENOENT, done); // unresolved weak: the linker left the address 0
      g.check();
      a.blobAddr(R.R2, res);
      a.ldx(8, R.R0, R.R2, 0);
      a.blobAddr(R.R8, insn);
      a.stx(4, R.R8, 4, R.R0);
      a.rshImm(R.R0, 32);
      a.stx(4, R.R8, 12, R.R0);
      a.label(done);
      continue;
    }
    g.findBtf(f.name, f.kind === 'kfunc' ? BTF_KIND.FUNC : BTF_KIND.VAR);
    if (f.weak) a.jmpImm('JSLT', R.R7, 0, missing);
    else g.check();
    g.refuseModuleBtf();
    a.blobAddr(R.R8, insn);
    a.stx(4, R.R8, 4, R.R7); // imm = the BTF id (the low half of r7)
    if (f.kind === 'ksym_btf') a.st(4, R.R8, 12, 0); // second imm: btf_obj_fd 0, vmlinux
    if (f.weak) {
      a.ja(done);
      a.label(missing);
      // Unresolved weak: as in user space (runtime/fixups.ts): a poisoned call, or a NULL ksym.
      a.blobAddr(R.R8, insn);
      a.ldx(1, R.R0, R.R8, 1);
      a.and32Imm(R.R0, 0x0f); // src_reg = 0
      a.stx(1, R.R8, 1, R.R0);
      a.st(4, R.R8, 4, f.kind === 'kfunc' ? POISON_CALL_KFUNC + f.insn : 0);
      if (f.kind === 'ksym_btf') a.st(4, R.R8, 12, 0);
    }
    a.label(done);
  }
  // The attach target last: a module BTF's fd is held only across the load, then closed.
  if (p.attach) {
    if (!p.attach.name) throw new InputError('FIXUP_UNRESOLVED', `program '${p.name}' (section '${p.section}') names no attach target; the loader must supply one`);
    g.step(`resolve attach target '${p.attach.name}' of program '${p.name}'`);
    g.findBtf(p.attach.name, p.attach.btfKind === 'typedef' ? BTF_KIND.TYPEDEF : BTF_KIND.FUNC);
    g.check();
    a.blobAddr(R.R8, at);
    a.stx(4, R.R8, PROG_LOAD.attachBtfId, R.R7);
    a.rshImm(R.R7, 32);
    a.stx(4, R.R8, PROG_LOAD.attachBtfObjFd, R.R7); // module BTF: its fd; vmlinux: 0
  }
  g.step(`load program '${p.name}'`);
  g.relStore(at + PROG_LOAD.insns, insns);
  g.relStore(at + PROG_LOAD.license, license);
  if (fi) g.relStore(at + PROG_LOAD.funcInfo, b.add(fi.data));
  if (li) g.relStore(at + PROG_LOAD.lineInfo, b.add(li.data));
  if (cr) g.relStore(at + PROG_LOAD.coreRelos, b.add(cr.data));
  if (hasBtf && (fi || li || cr)) g.copyBlob(at + PROG_LOAD.progBtfFd, slotBtf, 4);
  if (fdArray !== undefined) {
    g.relStore(at + PROG_LOAD.fdArray, fdArray);
    p.fdArray.forEach((mi, k) => g.copyBlob(fdArray + 4 * k, slotMap(mi), 4));
  }
  g.logFromCtx(at, PROG_LOAD.logLevel, PROG_LOAD.logSize, PROG_LOAD.logBuf);
  g.sysBpf(CMD.PROG_LOAD, at, PROG_LOAD.size);
  if (p.attach) {
    // Close a module BTF's fd whatever the load did (r7 keeps the result).
    const skip = a.newLabel('noobj');
    a.blobAddr(R.R8, at);
    a.ldx(4, R.R1, R.R8, PROG_LOAD.attachBtfObjFd);
    a.jmpImm('JSLE', R.R1, 0, skip);
    a.call(HELPER.sys_close);
    a.label(skip);
  }
  g.check();
  g.keepFd(slot, ctxOff);
}
