/**
 * The enforcer's decisions: the 88-byte record its bpf_prog_load hook submits to the `decisions` ring
 * buffer (struct decision in bpf/bpfseal_enforcer.bpf.c), decoded into host log records
 * (hostlog/records.ts, event 'decision'), and what `audit --kernel` shows of them.
 *
 * Record layout (little-endian): 0 u32 abi (1), 4 u32 pid (tgid), 8 u64 seq, 16 u64 boot_ns,
 * 24 u32 tid, 28 u32 uid, 32 u32 prog_type (attr->prog_type), 36 u32 insn_cnt, 40 s32 keyring_serial,
 * 44 u8 verdict, 45 u8 keyring_type, 46 u8 kernel, 47 u8 allowed, 48 s32 ret, 52 u32 pad,
 * 56 char comm[16], 72 char prog_name[16]. verdict and keyring_type are enum bpf_sig_verdict and
 * enum bpf_sig_keyring (signing.rst, "The verdict", "Keyrings").
 */
import { InputError } from '../errors.js';
import { progTypeName } from '../bpf/constants.js';
import { enforcementRecord, type EnforcementRecord } from '../hostlog/records.js';
import type { ReadDecision } from '../hostlog/hostlog.js';

export const ENFORCER_ABI = 1;
export const DECISION_BYTES = 88;

const VERDICTS = ['unsigned', 'verified'];
export const KEYRING_TYPES = ['none', 'builtin', 'secondary', 'platform', 'user'];

export interface Decision {
  seq: number;
  bootNs: bigint;
  pid: number;
  tid: number;
  uid: number;
  progType: string;
  insns: number;
  keyringSerial: number;
  verdict: string;
  keyringType: string;
  kernel: boolean;
  allowed: boolean;
  /** The hook's return value: 0, or -EPERM. */
  ret: number;
  comm: string;
  progName: string;
}

/** A NUL-terminated char[len] as text; bytes outside printable ASCII are escaped (names come from any process). */
function cstr(b: Buffer, off: number, len: number): string {
  const end = b.indexOf(0, off);
  const raw = b.subarray(off, end < 0 || end > off + len ? off + len : end);
  return [...raw].map((c) => (c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`)).join('');
}

export function decodeDecision(b: Buffer): Decision {
  if (b.length !== DECISION_BYTES) throw new InputError('ENFORCER_RECORD_INVALID', `enforcer record of ${b.length} bytes, expected ${DECISION_BYTES}`);
  const abi = b.readUInt32LE(0);
  if (abi !== ENFORCER_ABI) throw new InputError('ENFORCER_RECORD_INVALID', `enforcer record ABI ${abi}, expected ${ENFORCER_ABI}`);
  const seq = b.readBigUInt64LE(8);
  const verdict = b.readUInt8(44), ktype = b.readUInt8(45);
  return {
    seq: Number(seq), bootNs: b.readBigUInt64LE(16), pid: b.readUInt32LE(4), tid: b.readUInt32LE(24), uid: b.readUInt32LE(28),
    progType: progTypeName(b.readUInt32LE(32)), insns: b.readUInt32LE(36), keyringSerial: b.readInt32LE(40),
    verdict: VERDICTS[verdict] ?? `verdict_${verdict}`, keyringType: KEYRING_TYPES[ktype] ?? `keyring_type_${ktype}`,
    kernel: b.readUInt8(46) !== 0, allowed: b.readUInt8(47) !== 0, ret: b.readInt32LE(48), comm: cstr(b, 56, 16), progName: cstr(b, 72, 16),
  };
}

/** Wall-clock time of a boot-time stamp, given one reading of both clocks. */
export function wallTime(bootNs: bigint, now: { bootNs: bigint; wallMs: number }): string {
  return new Date(now.wallMs - Number(now.bootNs - bootNs) / 1e6).toISOString();
}

/** The host log record of one decision of the enforcer loaded as `loadId`, read at ring position `ringPos`. */
export function decisionRecord(d: Decision, loadId: string, ringPos: number, now: { bootNs: bigint; wallMs: number }): EnforcementRecord {
  return enforcementRecord({
    event: 'decision', loadId, ringPos, seq: d.seq, at: wallTime(d.bootNs, now), pid: d.pid, tid: d.tid, uid: d.uid, comm: d.comm,
    progType: d.progType, progName: d.progName, insns: d.insns, verdict: d.verdict, keyringType: d.keyringType,
    keyringSerial: d.keyringSerial, kernel: d.kernel, allowed: d.allowed,
  });
}

/**
 * The highest ring position the host log holds a decision of the enforcer `loadId` from (-1: none),
 * reading back from the end in windows until a decision of it, or its `on` record, turns up.
 */
export function lastRingPos(entries: (from: number, to: number) => Iterable<{ index: number; entry: Buffer }>, size: number, loadId: string, parse: (e: Buffer) => EnforcementRecord | undefined): number {
  const STEP = 512;
  for (let to = size; to > 0; to -= STEP) {
    let best = -1;
    let on = false;
    for (const { entry } of entries(Math.max(0, to - STEP), to)) {
      if (!entry.includes(loadId)) continue;
      const r = parse(entry);
      if (r?.loadId !== loadId) continue;
      if (r.event === 'decision') best = Math.max(best, r.ringPos ?? -1);
      else if (r.event === 'on') on = true;
    }
    if (best >= 0 || on) return best;
  }
  return -1;
}

export interface Denial {
  index: number;
  at: string;
  pid: number;
  uid: number;
  comm: string;
  progType: string;
  progName: string;
  verdict: string;
  keyringType: string;
  keyringSerial: number;
  loadId: string;
}

/** What `audit --kernel` shows of enforcement: the denials in the host log, and how many decisions it holds. */
export interface EnforcementSummary {
  decisions: number;
  denials: Denial[];
}

export function enforcementSummary(records: readonly ReadDecision[], since?: Date): EnforcementSummary {
  const out: EnforcementSummary = { decisions: 0, denials: [] };
  for (const { index, enforcement: e } of records) {
    if (e?.event !== 'decision') continue;
    out.decisions++;
    if (e.allowed || (since && Date.parse(e.at ?? e.time) < since.getTime())) continue;
    out.denials.push({
      index, at: e.at ?? e.time, pid: e.pid!, uid: e.uid ?? 0, comm: e.comm ?? '', progType: e.progType ?? '?', progName: e.progName ?? '',
      verdict: e.verdict!, keyringType: e.keyringType ?? '?', keyringSerial: e.keyringSerial ?? 0, loadId: e.loadId,
    });
  }
  return out;
}

/** One line per denial, for `audit --kernel` and `enforce --status`. */
export function denialLine(d: Denial): string {
  const key = d.verdict === 'verified' ? `verified against ${d.keyringType} keyring${d.keyringSerial ? ` ${d.keyringSerial}` : ''} (not allowed)` : d.verdict;
  return `#${d.index}  ${d.at}  pid ${d.pid} uid ${d.uid} '${d.comm}'  ${d.progType} '${d.progName}'  ${key}`;
}
