/**
 * The kernel keyrings bpf(2)'s keyring_id names (signing.rst, "Keyrings"), from user space: what serial
 * a special id stands for in this process (KEYCTL_GET_KEYRING_ID), a key's type and description
 * (KEYCTL_DESCRIBE), and a keyring found by name (KEYCTL_SEARCH). keyctl(2) through libc's syscall(3);
 * x86-64 number 250, operations from include/uapi/linux/keyctl.h.
 */
import { ERRNO, KernelError, errnoName } from './errors.js';
import { libc } from '../sys/libc.js';
import { addressOf } from './sys.js';

const SYS_keyctl = 250;
const KEYCTL_GET_KEYRING_ID = 0;
const KEYCTL_DESCRIBE = 6;
const KEYCTL_SEARCH = 10;

/** KEY_SPEC_* (include/uapi/linux/keyctl.h): ids that stand for one of this process's keyrings. */
export const KEY_SPEC = { thread: -1, process: -2, session: -3, user: -4, userSession: -5 } as const;

function keyctl(what: string, op: number, a: number | bigint, b: number | bigint = 0, c: number | bigint = 0, d: number | bigint = 0, keep: Buffer[] = []): number {
  const l = libc();
  const r = l.syscallInts(SYS_keyctl, op, a, b, c, d);
  const errno = r < 0 ? l.errno() : 0;
  void keep; // the Buffers whose addresses are in the arguments stay alive until here
  if (r < 0) throw new KernelError('keyctl', errno, `keyctl(${what}) failed: ${errnoName(errno)}`);
  return r;
}

/** The serial `id` (a KEY_SPEC_* value or a serial) stands for in this process, without creating a keyring. */
export function keyringSerial(id: number): number {
  return keyctl(`GET_KEYRING_ID, ${id}`, KEYCTL_GET_KEYRING_ID, id, 0);
}

export interface KeyDescription {
  type: string;
  uid: number;
  description: string;
}

/** KEYCTL_DESCRIBE: "type;uid;gid;perm;description". */
export function describeKey(serial: number): KeyDescription {
  const buf = Buffer.alloc(4096);
  const n = keyctl(`DESCRIBE, ${serial}`, KEYCTL_DESCRIBE, serial, addressOf(buf), buf.length, 0, [buf]);
  const raw = buf.toString('utf8', 0, Math.max(0, Math.min(n, buf.length) - 1));
  const parts = raw.split(';');
  return { type: parts[0] ?? '', uid: Number(parts[1] ?? -1), description: parts.slice(4).join(';') };
}

/** KEYCTL_SEARCH for a keyring named `name`, from `from` (recursively through the keyrings linked there). */
export function searchKeyring(name: string, from: number = KEY_SPEC.session): number | undefined {
  const type = Buffer.from('keyring\0');
  const desc = Buffer.from(`${name}\0`);
  try {
    return keyctl(`SEARCH, ${from}, keyring, ${name}`, KEYCTL_SEARCH, from, addressOf(type), addressOf(desc), 0, [type, desc]);
  } catch (e) {
    if (e instanceof KernelError && (e.errno === ERRNO.ENOKEY || e.errno === ERRNO.ENOENT)) return undefined; // ENOKEY: not found
    throw e;
  }
}
