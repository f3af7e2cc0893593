/**
 * Host load log records: every `load` decision, and what became of each allowed load. One JSON object
 * per log entry, `type` bpfseal.load/v1:
 *   allowed   written (durably) before any pin of the load becomes visible; carries the load id, the
 *             final pin directory and every program and map id it will pin;
 *   aborted   a recorded load that did not complete (failure after the record, or a crash found by
 *             recovery): its pins are gone, its version does not count for anti-rollback;
 *   refused   a load bpfseal refused (verification, policy or kernel), with the code and reason;
 *   unloaded  `unload` removed the pins of a load.
 * Records read back from a log are validated field by field: a malformed one is reported, never
 * trusted (a host log is a file root can edit).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export const HOST_LOG_TYPE = 'bpfseal.load/v1';

export type Decision = 'allowed' | 'refused' | 'aborted' | 'unloaded';

export interface ProgramRecord {
  name: string;
  id: number;
  tag: string | null;
  insns: number;
  /** bpftool's program type name. */
  type?: string;
  /** Map ids bound to the program, in the kernel's order. */
  mapIds?: number[];
}

export interface MapRecord {
  name: string;
  id: number;
  /** Frozen maps (.rodata, .kconfig): SHA-256 (hex) of the value at key 0 as the kernel held it at load. */
  frozenSha256?: string;
}

export interface FixupRecord {
  program?: string;
  map?: string;
  insn?: number;
  kind: string;
  name: string;
  /** The value the host supplied, as text (id, address, config value); "unresolved (weak)" when absent. */
  value: string;
}

export interface LoadDecision {
  type: typeof HOST_LOG_TYPE;
  decision: Decision;
  time: string;
  host: string;
  /** /proc/sys/kernel/random/boot_id: ids of kernel objects mean something only within one boot. */
  bootId?: string;
  /** Random id tying the allowed, aborted and unloaded records of one load together. */
  loadId?: string;
  release?: string;
  plan?: string;
  digest?: string;
  version?: number;
  signer?: { name?: string; keyId?: string; identity?: string; issuer?: string };
  /** How the load ran: the kernel loader program, or user-space replay; and what the kernel verified. */
  loader?: 'kernel' | 'user';
  kernelVerified?: 'loader' | 'programs' | 'none';
  programs?: ProgramRecord[];
  maps?: MapRecord[];
  /** The uid that loaded the objects (the kernel's created_by_uid of each program). */
  uid?: number;
  fixups?: FixupRecord[];
  /** Final pin directory (real path) and every pin in it. */
  pinDir?: string;
  pins?: string[];
  /** Every pin with the kernel object it holds: what recovery and unload check before touching it. */
  pinned?: { path: string; kind: 'prog' | 'map' | 'link'; id: number }[];
  /** refused: the stable error code and message; aborted: why. */
  code?: string;
  reason?: string;
}

let bootIdCache: string | undefined;

/** This boot's id (the kernel's random boot_id), or '' where it cannot be read. */
export function bootId(): string {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = '';
    }
  }
  return bootIdCache;
}

export function decision(d: Omit<LoadDecision, 'type' | 'time' | 'host' | 'bootId'>): LoadDecision {
  return { type: HOST_LOG_TYPE, time: new Date().toISOString(), host: hostname(), bootId: bootId(), ...d };
}

const str = (v: unknown): v is string => typeof v === 'string';
const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const opt = (v: unknown, f: (x: unknown) => boolean) => v === undefined || f(v);
const hex64 = (v: unknown): boolean => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);

function mapOk(m: unknown): boolean {
  const o = m as Record<string, unknown>;
  return !!o && typeof o === 'object' && str(o.name) && int(o.id) && opt(o.frozenSha256, hex64);
}

function programOk(p: unknown): boolean {
  const o = p as Record<string, unknown>;
  return !!o && typeof o === 'object' && str(o.name) && int(o.id) && (o.tag === null || str(o.tag)) && int(o.insns) && opt(o.type, str)
    && opt(o.mapIds, (m) => Array.isArray(m) && m.every(int));
}

/** A record read from a host log, if it is one; undefined for anything malformed. */
export function parseDecision(entry: Buffer): LoadDecision | undefined {
  let v: unknown;
  try {
    v = JSON.parse(entry.toString('utf8'));
  } catch {
    return undefined;
  }
  const d = v as Record<string, unknown>;
  if (!d || typeof d !== 'object' || Array.isArray(d) || d.type !== HOST_LOG_TYPE) return undefined;
  if (!['allowed', 'refused', 'aborted', 'unloaded'].includes(d.decision as string) || !str(d.time) || !str(d.host)) return undefined;
  const ok = opt(d.bootId, str) && opt(d.loadId, str) && opt(d.release, str) && opt(d.plan, str) && opt(d.digest, str) && opt(d.version, int)
    && opt(d.loader, (x) => x === 'kernel' || x === 'user') && opt(d.kernelVerified, (x) => x === 'loader' || x === 'programs' || x === 'none') && opt(d.pinDir, str) && opt(d.code, str) && opt(d.reason, str)
    && opt(d.pins, (x) => Array.isArray(x) && x.every(str))
    && opt(d.pinned, (x) => Array.isArray(x) && x.every((q) => !!q && typeof q === 'object' && str((q as { path: unknown }).path) && ['prog', 'map', 'link'].includes((q as { kind: string }).kind) && int((q as { id: unknown }).id)))
    && opt(d.programs, (x) => Array.isArray(x) && x.every(programOk))
    && opt(d.maps, (x) => Array.isArray(x) && x.every(mapOk)) && opt(d.uid, int)
    && opt(d.fixups, (x) => Array.isArray(x) && x.every((f) => !!f && typeof f === 'object' && str((f as FixupRecord).kind) && str((f as FixupRecord).name) && str((f as FixupRecord).value)))
    && opt(d.signer, (x) => !!x && typeof x === 'object' && !Array.isArray(x));
  if (!ok) return undefined;
  if ((d.decision === 'allowed' || d.decision === 'aborted' || d.decision === 'unloaded') && !str(d.loadId)) return undefined;
  if (d.decision === 'allowed' && (!str(d.plan) || !int(d.version) || !str(d.pinDir))) return undefined;
  return d as unknown as LoadDecision;
}

// ---------------------------------------------------------------------------------------------------
// Enforcement records (`bpfseal enforce`), type bpfseal.enforcement/v1, in the same host log:
//   on        the enforcer was attached: its load id and pin directory, the link, the allowlist;
//   decision  one admission decision of the enforcer's bpf_prog_load hook, drained from its ring
//             buffer (src/enforce/decisions.ts decodes the kernel's record);
//   off       `enforce --off` detached and removed it, with the decision counters at that moment.

export const ENFORCEMENT_TYPE = 'bpfseal.enforcement/v1';

export type EnforcementEvent = 'on' | 'off' | 'decision';

/** One allowlist entry: a user/session keyring by serial, or a system keyring type (signing.rst, "Keyrings"). */
export interface AllowEntry {
  /** What the operator named: "-3", "session", "bpfseal", "builtin", "policy keyring -3", ... */
  spec: string;
  serial?: number;
  keyringType?: 'builtin' | 'secondary' | 'platform';
  description?: string;
}

export interface EnforcementCounts {
  decisions: number;
  allowed: number;
  denied: number;
  /** Decisions the ring buffer had no room for: made, counted, but not in the host log. */
  lost: number;
}

export interface EnforcementRecord {
  type: typeof ENFORCEMENT_TYPE;
  event: EnforcementEvent;
  time: string;
  host: string;
  bootId?: string;
  /** The enforcer's load (its `allowed` bpfseal.load/v1 record has the same load id). */
  loadId: string;
  pinDir?: string;
  /** on */
  allow?: AllowEntry[];
  linkId?: number;
  progId?: number;
  /** off */
  counts?: EnforcementCounts;
  reason?: string;
  /** decision: the kernel's record (seq counts from 1 per enforcer), `at` from its boot-time clock. */
  seq?: number;
  /** decision: where it was in the ring buffer (only grows: what a drain uses to skip records it already has). */
  ringPos?: number;
  at?: string;
  pid?: number;
  tid?: number;
  uid?: number;
  comm?: string;
  progType?: string;
  progName?: string;
  insns?: number;
  verdict?: string;
  keyringType?: string;
  keyringSerial?: number;
  kernel?: boolean;
  allowed?: boolean;
}

export function enforcementRecord(r: Omit<EnforcementRecord, 'type' | 'time' | 'host' | 'bootId'>): EnforcementRecord {
  return { type: ENFORCEMENT_TYPE, time: new Date().toISOString(), host: hostname(), bootId: bootId(), ...r };
}

const s32 = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= -0x8000_0000 && v <= 0x7fff_ffff;
const bool = (v: unknown): v is boolean => typeof v === 'boolean';

function allowOk(a: unknown): boolean {
  const o = a as Record<string, unknown>;
  return !!o && typeof o === 'object' && !Array.isArray(o) && str(o.spec) && opt(o.serial, s32) && opt(o.description, str)
    && opt(o.keyringType, (t) => t === 'builtin' || t === 'secondary' || t === 'platform') && (o.serial !== undefined) !== (o.keyringType !== undefined);
}

function countsOk(c: unknown): boolean {
  const o = c as Record<string, unknown>;
  return !!o && typeof o === 'object' && int(o.decisions) && int(o.allowed) && int(o.denied) && int(o.lost);
}

/** An enforcement record read from a host log, if it is one; undefined for anything malformed. */
export function parseEnforcement(v: unknown): EnforcementRecord | undefined {
  const d = v as Record<string, unknown>;
  if (!d || typeof d !== 'object' || Array.isArray(d) || d.type !== ENFORCEMENT_TYPE) return undefined;
  if (!['on', 'off', 'decision'].includes(d.event as string) || !str(d.time) || !str(d.host) || !str(d.loadId)) return undefined;
  const ok = opt(d.bootId, str) && opt(d.pinDir, str) && opt(d.allow, (x) => Array.isArray(x) && x.every(allowOk)) && opt(d.linkId, int) && opt(d.progId, int)
    && opt(d.counts, countsOk) && opt(d.reason, str) && opt(d.seq, int) && opt(d.ringPos, int) && opt(d.at, str) && opt(d.pid, int) && opt(d.tid, int) && opt(d.uid, int)
    && opt(d.comm, str) && opt(d.progType, str) && opt(d.progName, str) && opt(d.insns, int) && opt(d.verdict, str) && opt(d.keyringType, str)
    && opt(d.keyringSerial, s32) && opt(d.kernel, bool) && opt(d.allowed, bool);
  if (!ok) return undefined;
  if (d.event === 'on' && (!str(d.pinDir) || !Array.isArray(d.allow))) return undefined;
  if (d.event === 'decision' && (!int(d.seq) || !int(d.ringPos) || !bool(d.allowed) || !str(d.verdict) || !int(d.pid))) return undefined;
  return d as unknown as EnforcementRecord;
}

/** A host log entry: a load decision, an enforcement record, or neither (malformed: reported, never trusted). */
export function parseHostRecord(entry: Buffer): { decision?: LoadDecision; enforcement?: EnforcementRecord } {
  const decision = parseDecision(entry);
  if (decision) return { decision };
  let v: unknown;
  try {
    v = JSON.parse(entry.toString('utf8'));
  } catch {
    return {};
  }
  const enforcement = parseEnforcement(v);
  return enforcement ? { enforcement } : {};
}
