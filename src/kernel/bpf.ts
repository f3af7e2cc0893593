/**
 * Typed bpf(2) commands: one encoder per command, field offsets from shared/facts/kernel.md
 * (union bpf_attr in include/uapi/linux/bpf.h). Each returns owned Fds or plain data.
 */
import { ATTR_SIZE, addressOf, bpf, CMD } from './sys.js';
import type { MapAttrs } from '../bpf/spec.js';
import { Fd } from './fd.js';
import { ERRNO, KernelError } from './errors.js';

function attr(): Buffer {
  return Buffer.alloc(ATTR_SIZE);
}

function nameBytes(b: Buffer, off: number, name: string): void {
  b.write(name.slice(0, 15), off, 'latin1');
}

const LOG_SIZE = 1 << 22;

function logText(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.toString('utf8', 0, end < 0 ? buf.length : end);
}

/** BPF_BTF_LOAD: 0 btf, 8 btf_log_buf, 16 btf_size, 20 btf_log_size, 24 btf_log_level. */
export function btfLoad(btf: Buffer): Fd {
  const a = attr();
  a.writeBigUInt64LE(addressOf(btf), 0);
  a.writeUInt32LE(btf.length, 16);
  try {
    return new Fd(bpf(CMD.BTF_LOAD, a, [btf]), 'btf');
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    // Retry with a log to say why (the first try is log-free so the common path stays cheap).
    const log = Buffer.alloc(LOG_SIZE);
    a.writeBigUInt64LE(addressOf(log), 8);
    a.writeUInt32LE(log.length, 20);
    a.writeUInt32LE(1, 24);
    return retryWithLog(e, log, () => new Fd(bpf(CMD.BTF_LOAD, a, [btf, log]), 'btf'));
  }
}

/**
 * The second call of a load that failed without a log. Loaded this time (a transient failure such as
 * EAGAIN): the new Fd is the result. Refused again: the first call's error is the one to report (the
 * retry may fail only for its own reasons, e.g. ENOSPC when the log does not fit), with the log the
 * retry wrote and, if its errno differs, that errno beside it.
 */
function retryWithLog(first: KernelError, log: Buffer, retry: () => Fd): Fd {
  try {
    return retry();
  } catch (e2) {
    if (!(e2 instanceof KernelError)) throw e2;
    first.log = logText(log);
    if (e2.errno !== first.errno) first.retryErrno = e2.errno;
    throw first;
  }
}

export interface MapCreateAttr extends MapAttrs {
  innerMapFd?: Fd;
  name: string;
  btfFd?: Fd;
  /** SHA-256 of the only program allowed to use the map (excl_prog_hash, 6.18+). */
  exclProgHash?: Buffer;
}

/** BPF_MAP_CREATE: offsets 0..92 (facts/kernel.md); excl_prog_hash at 80/88 only when given. */
export function mapCreate(m: MapCreateAttr): Fd {
  const a = attr();
  a.writeUInt32LE(m.type, 0);
  a.writeUInt32LE(m.keySize, 4);
  a.writeUInt32LE(m.valueSize, 8);
  a.writeUInt32LE(m.maxEntries, 12);
  a.writeUInt32LE(m.flags >>> 0, 16);
  a.writeUInt32LE(m.innerMapFd?.value ?? 0, 20);
  a.writeUInt32LE(m.numaNode, 24);
  nameBytes(a, 28, m.name);
  if (m.btfFd && (m.btfKeyTypeId || m.btfValueTypeId)) {
    a.writeUInt32LE(m.btfFd.value, 48);
    a.writeUInt32LE(m.btfKeyTypeId, 52);
    a.writeUInt32LE(m.btfValueTypeId, 56);
  }
  a.writeBigUInt64LE(m.mapExtra, 64);
  if (m.exclProgHash) {
    a.writeBigUInt64LE(addressOf(m.exclProgHash), 80);
    a.writeUInt32LE(m.exclProgHash.length, 88);
  }
  // The attr ends where the last field we set ends: kernels that predate a field refuse a nonzero one.
  return new Fd(bpf(CMD.MAP_CREATE, a.subarray(0, m.exclProgHash ? 92 : 72), [m.exclProgHash]), `map ${m.name}`);
}

/** Map element commands: 0 map_fd, 8 key, 16 value, 24 flags. */
export function mapUpdate(map: Fd, key: Buffer, value: Buffer, flags = 0n): void {
  const a = attr();
  a.writeUInt32LE(map.value, 0);
  a.writeBigUInt64LE(addressOf(key), 8);
  a.writeBigUInt64LE(addressOf(value), 16);
  a.writeBigUInt64LE(flags, 24);
  bpf(CMD.MAP_UPDATE_ELEM, a, [key, value]);
}

export function mapLookup(map: Fd, key: Buffer, valueSize: number): Buffer {
  const a = attr();
  const value = Buffer.alloc(valueSize);
  a.writeUInt32LE(map.value, 0);
  a.writeBigUInt64LE(addressOf(key), 8);
  a.writeBigUInt64LE(addressOf(value), 16);
  bpf(CMD.MAP_LOOKUP_ELEM, a, [key, value]);
  return value;
}

/** BPF_MAP_GET_NEXT_KEY (0 map_fd, 8 key, 16 next_key): the key after `key` (the first without one), or undefined at the end. */
export function mapNextKey(map: Fd, key: Buffer | undefined, keySize: number): Buffer | undefined {
  const a = attr();
  const next = Buffer.alloc(keySize);
  a.writeUInt32LE(map.value, 0);
  a.writeBigUInt64LE(addressOf(key), 8);
  a.writeBigUInt64LE(addressOf(next), 16);
  try {
    bpf(CMD.MAP_GET_NEXT_KEY, a, [key, next]);
  } catch (e) {
    if (e instanceof KernelError && e.errno === ERRNO.ENOENT) return undefined;
    throw e;
  }
  return next;
}

export function mapFreeze(map: Fd): void {
  const a = attr();
  a.writeUInt32LE(map.value, 0);
  bpf(CMD.MAP_FREEZE, a);
}

export interface ProgLoadAttr {
  type: number;
  insns: Buffer;
  license: string;
  kernVersion: number;
  flags: number;
  name: string;
  expectedAttachType: number;
  btfFd?: Fd;
  funcInfo?: { recSize: number; data: Buffer };
  lineInfo?: { recSize: number; data: Buffer };
  coreRelos?: { recSize: number; data: Buffer };
  attachBtfId?: number;
  fdArray: Fd[];
  signature?: Buffer;
  keyringId?: number;
  logLevel?: number;
  /**
   * Set fd_array_cnt (bind every fd_array map up front). Default: only with a signature (a signed
   * program must bind its maps that way; an unsigned one keeps lazy binding, which older kernels and
   * exclusive maps need).
   */
  fdArrayCnt?: boolean;
}

/** BPF_PROG_LOAD: offsets 0..168 (facts/kernel.md). Retries once with a verifier log on failure. */
export function progLoad(p: ProgLoadAttr): Fd {
  const a = attr();
  const license = Buffer.from(p.license + '\0', 'latin1');
  const fdArray = Buffer.alloc(Math.max(4, p.fdArray.length * 4));
  p.fdArray.forEach((f, i) => fdArray.writeInt32LE(f.value, i * 4));
  a.writeUInt32LE(p.type, 0);
  a.writeUInt32LE(p.insns.length / 8, 4);
  a.writeBigUInt64LE(addressOf(p.insns), 8);
  a.writeBigUInt64LE(addressOf(license), 16);
  a.writeUInt32LE(p.kernVersion, 40);
  a.writeUInt32LE(p.flags >>> 0, 44);
  nameBytes(a, 48, p.name);
  a.writeUInt32LE(p.expectedAttachType, 68);
  const ext = (e: { recSize: number; data: Buffer } | undefined) => (e && e.data.length ? e : undefined);
  const fi = ext(p.funcInfo), li = ext(p.lineInfo), cr = ext(p.coreRelos);
  if (p.btfFd && (fi || li || cr)) a.writeUInt32LE(p.btfFd.value, 72);
  if (fi) { a.writeUInt32LE(fi.recSize, 76); a.writeBigUInt64LE(addressOf(fi.data), 80); a.writeUInt32LE(fi.data.length / fi.recSize, 88); }
  if (li) { a.writeUInt32LE(li.recSize, 92); a.writeBigUInt64LE(addressOf(li.data), 96); a.writeUInt32LE(li.data.length / li.recSize, 104); }
  if (p.attachBtfId) a.writeUInt32LE(p.attachBtfId, 108);
  if (cr) { a.writeUInt32LE(cr.data.length / cr.recSize, 116); a.writeBigUInt64LE(addressOf(cr.data), 128); a.writeUInt32LE(cr.recSize, 136); }
  const withCnt = p.fdArrayCnt ?? !!p.signature;
  if (p.fdArray.length) {
    a.writeBigUInt64LE(addressOf(fdArray), 120);
    // fd_array_cnt: the kernel binds every listed map to the program and validates them up front.
    if (withCnt) a.writeUInt32LE(p.fdArray.length, 148);
  }
  if (p.signature) {
    a.writeBigUInt64LE(addressOf(p.signature), 152);
    a.writeUInt32LE(p.signature.length, 160);
    a.writeInt32LE(p.keyringId ?? 0, 164);
  }
  // The attr ends after the last field in use (offsetofend): a 6.12 kernel refuses a longer one with
  // anything nonzero in its tail (E2BIG), so fields it does not know are not even sent as zeros.
  const size = p.signature ? 168 : withCnt && p.fdArray.length ? 152 : 144;
  const sized = a.subarray(0, size);
  const keep = [p.insns, license, fdArray, fi?.data, li?.data, cr?.data, p.signature];
  const mark = (e: unknown) => {
    if (e instanceof KernelError && p.signature) { e.signed = true; e.keyringId = p.keyringId; }
    return e;
  };
  try {
    return new Fd(bpf(CMD.PROG_LOAD, sized, keep), `prog ${p.name}`);
  } catch (e) {
    mark(e);
    // Refusals of the signature itself come before the verifier runs: a log would stay empty.
    if (!(e instanceof KernelError) || NO_RETRY.has(e.errno)) throw e;
    const log = Buffer.alloc(LOG_SIZE);
    a.writeUInt32LE(p.logLevel ?? 1, 24);
    a.writeUInt32LE(log.length, 28);
    a.writeBigUInt64LE(addressOf(log), 32);
    return retryWithLog(e, log, () => new Fd(bpf(CMD.PROG_LOAD, sized, [...keep, log]), `prog ${p.name}`));
  }
}

const NO_RETRY: ReadonlySet<number> = new Set([ERRNO.EOPNOTSUPP, ERRNO.EKEYREJECTED, ERRNO.ENOKEY, ERRNO.EBADMSG]);

/** BPF_OBJ_PIN / BPF_OBJ_GET: 0 pathname, 8 bpf_fd, 12 file_flags. */
export function objPin(fd: Fd, path: string): void {
  const a = attr();
  const p = Buffer.from(path + '\0');
  a.writeBigUInt64LE(addressOf(p), 0);
  a.writeUInt32LE(fd.value, 8);
  bpf(CMD.OBJ_PIN, a, [p]);
}

export function objGet(path: string, what = path): Fd {
  const a = attr();
  const p = Buffer.from(path + '\0');
  a.writeBigUInt64LE(addressOf(p), 0);
  return new Fd(bpf(CMD.OBJ_GET, a, [p]), what);
}

/** BPF_OBJ_GET_INFO_BY_FD (0 bpf_fd, 4 info_len, 8 info): the kernel fills up to `size` bytes of the info struct. */
export function objInfo(fd: Fd, size: number): Buffer {
  const a = attr();
  const info = Buffer.alloc(size);
  a.writeUInt32LE(fd.value, 0);
  a.writeUInt32LE(info.length, 4);
  a.writeBigUInt64LE(addressOf(info), 8);
  bpf(CMD.OBJ_GET_INFO_BY_FD, a, [info]);
  return info;
}

/** A NUL-terminated name field of `len` bytes at `off`. */
function nameAt(info: Buffer, off: number, len: number): string {
  const end = info.indexOf(0, off);
  return info.toString('latin1', off, end < 0 || end > off + len ? off + len : end);
}

/** *_GET_NEXT_ID (0 start_id, 4 next_id): the next id after `start`, or 0 when there is none. */
export function nextId(cmd: number, start: number): number {
  const a = attr();
  a.writeUInt32LE(start, 0);
  try {
    bpf(cmd, a);
  } catch (e) {
    if (e instanceof KernelError && e.errno === ERRNO.ENOENT) return 0;
    throw e;
  }
  return a.readUInt32LE(4);
}

export interface ProgInfo {
  type: number;
  id: number;
  tag: string;
  name: string;
  nrMapIds: number;
}

/** BPF_OBJ_GET_INFO_BY_FD with struct bpf_prog_info: 0 type, 4 id, 8 tag[8], 52 nr_map_ids, 64 name[16]. */
export function progInfo(fd: Fd): ProgInfo {
  const info = objInfo(fd, 256);
  return {
    type: info.readUInt32LE(0), id: info.readUInt32LE(4), tag: info.subarray(8, 16).toString('hex'),
    nrMapIds: info.readUInt32LE(52), name: nameAt(info, 64, 16),
  };
}

export interface MapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
}

/** struct bpf_map_info: 0 type, 4 id, 8 key_size, 12 value_size, 16 max_entries, 20 map_flags, 24 name[16]. */
export function mapInfo(fd: Fd): MapInfo {
  const info = objInfo(fd, 104);
  return {
    type: info.readUInt32LE(0), id: info.readUInt32LE(4), keySize: info.readUInt32LE(8), valueSize: info.readUInt32LE(12),
    maxEntries: info.readUInt32LE(16), flags: info.readUInt32LE(20), name: nameAt(info, 24, 16),
  };
}

/** BPF_PROG_GET_NEXT_ID (0 start_id, 4 next_id). Returns 0 when there is no next id. */
export function progNextId(start: number): number {
  return nextId(CMD.PROG_GET_NEXT_ID, start);
}

export function progFdById(id: number): Fd {
  const a = attr();
  a.writeUInt32LE(id, 0);
  return new Fd(bpf(CMD.PROG_GET_FD_BY_ID, a), `prog id ${id}`);
}

export function mapNextId(start: number): number {
  return nextId(CMD.MAP_GET_NEXT_ID, start);
}

export interface TestRunResult {
  retval: number;
  dataOut: Buffer;
  ctxOut: Buffer;
  duration: number;
}

/** BPF_PROG_TEST_RUN: 0 prog_fd, 4 retval, 8 data_size_in, 12 data_size_out, 16 data_in, 24 data_out, 32 repeat, 36 duration, 40 ctx_size_in, 44 ctx_size_out, 48 ctx_in, 56 ctx_out. */
export function progTestRun(prog: Fd, opts: { data?: Buffer; ctx?: Buffer; repeat?: number; dataOutSize?: number; ctxOutSize?: number }): TestRunResult {
  const a = attr();
  const dataOut = Buffer.alloc(opts.dataOutSize ?? (opts.data ? opts.data.length + 256 : 0));
  const ctxOut = Buffer.alloc(opts.ctxOutSize ?? 0);
  a.writeUInt32LE(prog.value, 0);
  if (opts.data) {
    a.writeUInt32LE(opts.data.length, 8);
    a.writeBigUInt64LE(addressOf(opts.data), 16);
    a.writeUInt32LE(dataOut.length, 12);
    a.writeBigUInt64LE(addressOf(dataOut), 24);
  }
  a.writeUInt32LE(opts.repeat ?? 0, 32);
  if (opts.ctx) {
    a.writeUInt32LE(opts.ctx.length, 40);
    a.writeBigUInt64LE(addressOf(opts.ctx), 48);
  }
  if (ctxOut.length) {
    a.writeUInt32LE(ctxOut.length, 44);
    a.writeBigUInt64LE(addressOf(ctxOut), 56);
  }
  bpf(CMD.PROG_TEST_RUN, a, [opts.data, dataOut, opts.ctx, ctxOut]);
  return { retval: a.readUInt32LE(4), dataOut: dataOut.subarray(0, a.readUInt32LE(12)), ctxOut, duration: a.readUInt32LE(36) };
}

/** BPF_MAP_GET_FD_BY_ID (14): 0 map_id, 8 open_flags. */
export function mapFdById(id: number): Fd {
  const a = attr();
  a.writeUInt32LE(id, 0);
  return new Fd(bpf(CMD.MAP_GET_FD_BY_ID, a), `map id ${id}`);
}

/** BPF_OBJ_GET_INFO_BY_FD with struct bpf_btf_info: 0 btf (u64), 8 btf_size, 12 id, 16 name (u64), 24 name_len, 28 kernel_btf. */
export function btfInfo(fd: Fd): { id: number; size: number } {
  const info = objInfo(fd, 32);
  return { id: info.readUInt32LE(12), size: info.readUInt32LE(8) };
}

/** BPF_BTF_GET_FD_BY_ID: 0 btf_id. */
export function btfFdById(id: number): Fd {
  const a = attr();
  a.writeUInt32LE(id, 0);
  return new Fd(bpf(CMD.BTF_GET_FD_BY_ID, a), `btf id ${id}`);
}

/** BPF_BTF_GET_NEXT_ID: 0 start_id, 4 next_id. Returns 0 when there is no next id. */
export function btfNextId(start: number): number {
  return nextId(CMD.BTF_GET_NEXT_ID, start);
}
