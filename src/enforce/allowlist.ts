/**
 * The enforcer's allowlist: which keyrings' verified signatures it admits. signing.rst, "Keyrings":
 * keyring_id 0, VERIFY_USE_SECONDARY_KEYRING (1) and VERIFY_USE_PLATFORM_KEYRING (2) select the system
 * keyrings, recorded as keyring_type BUILTIN/SECONDARY/PLATFORM with serial 0; any other id names a
 * user/session keyring, recorded as keyring_type USER with the serial it resolved to (for
 * KEY_SPEC_SESSION_KEYRING, the loading process's session keyring). So system keyrings are allowed by
 * type (map allow_type, index enum bpf_sig_keyring) and user keyrings by serial (map allow_serial),
 * resolved here, in the process that runs `enforce`.
 *
 * A --keyring spec: an integer (a keyring_id as bpf(2) takes it: 0/1/2, a KEY_SPEC_* id such as -3, or
 * a keyring serial), a name for those (builtin, secondary, platform, session, user, user-session,
 * process, thread), or the description of a keyring found from the session keyring (KEYCTL_SEARCH).
 */
import { BpfsealError } from '../errors.js';
import { mapLookup, mapNextKey, mapUpdate } from '../kernel/bpf.js';
import type { Fd } from '../kernel/fd.js';
import { describeKey, KEY_SPEC, keyringSerial, searchKeyring } from '../kernel/keyctl.js';
import { KernelError } from '../kernel/errors.js';
import type { AllowEntry } from '../hostlog/records.js';
import { KEYRING_TYPES } from './decisions.js';

type SystemType = NonNullable<AllowEntry['keyringType']>;
const SYSTEM: Record<number, SystemType> = { 0: 'builtin', 1: 'secondary', 2: 'platform' };
const SPECIAL: Record<string, number> = { session: KEY_SPEC.session, user: KEY_SPEC.user, 'user-session': KEY_SPEC.userSession, process: KEY_SPEC.process, thread: KEY_SPEC.thread };

function keyringError(spec: string, msg: string, cause?: unknown): BpfsealError {
  return new BpfsealError('usage', 'ENFORCE_KEYRING', `keyring ${JSON.stringify(spec)}: ${msg}`, { cause });
}

/** A serial that names a keyring (not a key, not gone), with its description. */
function userKeyring(spec: string, serial: number): AllowEntry {
  let d;
  try {
    d = describeKey(serial);
  } catch (e) {
    throw keyringError(spec, `no keyring with serial ${serial} is visible to this process (${(e as Error).message})`, e);
  }
  if (d.type !== 'keyring') throw keyringError(spec, `serial ${serial} is a key of type '${d.type}', not a keyring; bpf(2) verifies against a keyring (name the keyring that holds it)`);
  return { spec, serial, description: d.description };
}

/** Resolve one spec to an allowlist entry. */
export function resolveKeyring(spec: string): AllowEntry {
  const s = spec.trim();
  const system = Object.entries(SYSTEM).find(([, t]) => t === s);
  if (system) return { spec, keyringType: system[1] };
  let id: number | undefined = SPECIAL[s];
  if (id === undefined && /^-?\d+$/.test(s)) {
    id = Number(s);
    if (!Number.isSafeInteger(id) || id < -0x8000_0000 || id > 0x7fff_ffff) throw keyringError(spec, 'not a 32-bit keyring id');
    if (SYSTEM[id]) return { spec, keyringType: SYSTEM[id] };
  }
  if (id !== undefined) {
    if (id > 0) return userKeyring(spec, id);
    let serial: number;
    try {
      serial = keyringSerial(id);
    } catch (e) {
      if (!(e instanceof KernelError)) throw e;
      throw keyringError(spec, `this process has no such keyring (${e.message})`, e);
    }
    return userKeyring(spec, serial);
  }
  if (!s || s.length > 255) throw keyringError(spec, 'expected a keyring id, serial or name');
  const found = searchKeyring(s);
  if (found === undefined) throw keyringError(spec, 'no keyring with this description is reachable from the session keyring (create it with keyctl newring, or give its serial)');
  return userKeyring(spec, found);
}

/**
 * The allowlist: the policy's keyring first (what `bpfseal load` passes to the kernel; default -3),
 * then each spec (the policy's enforceKeyrings, then --keyring), without duplicates. An entry's `spec`
 * says where it came from.
 */
export function resolveAllowlist(policyKeyring: number | undefined, specs: readonly (string | { spec: string; from: 'policy' | '--keyring' })[]): AllowEntry[] {
  const out: AllowEntry[] = [];
  const add = (e: AllowEntry) => {
    if (!out.some((x) => (e.serial !== undefined && x.serial === e.serial) || (e.keyringType && x.keyringType === e.keyringType))) out.push(e);
  };
  const pk = resolveKeyring(String(policyKeyring ?? KEY_SPEC.session));
  add({ ...pk, spec: `policy keyring ${policyKeyring ?? KEY_SPEC.session}` });
  for (const s of specs) {
    const { spec, from } = typeof s === 'string' ? { spec: s, from: '--keyring' } : s;
    const e = resolveKeyring(spec);
    add(from === 'policy' ? { ...e, spec: `policy enforceKeyrings ${spec}` } : e);
  }
  return out;
}

export interface AllowMaps {
  allowSerial: Fd;
  allowType: Fd;
}

const ONE = Buffer.from([1]);

/** Write the entries into the enforcer's maps (before it is attached). */
export function fillAllowlist(maps: AllowMaps, entries: readonly AllowEntry[]): void {
  for (const e of entries) {
    const key = Buffer.alloc(4);
    if (e.serial !== undefined) {
      key.writeInt32LE(e.serial);
      mapUpdate(maps.allowSerial, key, ONE);
    } else {
      key.writeUInt32LE(KEYRING_TYPES.indexOf(e.keyringType!));
      mapUpdate(maps.allowType, key, ONE);
    }
  }
}

/** What the maps allow now (read back for `enforce --status`). */
export function readAllowlist(maps: AllowMaps): { serials: number[]; types: SystemType[] } {
  const serials: number[] = [];
  for (let k = mapNextKey(maps.allowSerial, undefined, 4); k; k = mapNextKey(maps.allowSerial, k, 4)) {
    if (serials.length > 1024) break; // max_entries is 64: a loop here would be a kernel bug
    serials.push(k.readInt32LE(0));
  }
  const types: SystemType[] = [];
  for (const [i, t] of KEYRING_TYPES.entries()) {
    if (t !== 'builtin' && t !== 'secondary' && t !== 'platform') continue;
    const key = Buffer.alloc(4);
    key.writeUInt32LE(i);
    if (mapLookup(maps.allowType, key, 1)[0]) types.push(t);
  }
  return { serials: serials.sort((a, b) => a - b), types };
}
