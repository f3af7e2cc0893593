/**
 * Kernel keyrings from inside a guest: add an X.509 certificate as an "asymmetric" key so the kernel
 * trusts it for BPF program signatures (keyutils' add_key(2), add_key("asymmetric", NULL, der, len,
 * keyring)), make a keyring to hold it, describe a key. Bound through libc's syscall(3) with koffi, as
 * src/kernel/sys.ts binds bpf(2). x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
 */
import koffi from 'koffi';
import { KernelError } from '../../kernel/errors.js';
import { certificateDer } from '../../trust/x509.js';

const SYS_add_key = 248;
const SYS_keyctl = 250;
// include/uapi/linux/keyctl.h
const KEYCTL_GET_KEYRING_ID = 0;
const KEYCTL_JOIN_SESSION_KEYRING = 1;
const KEYCTL_DESCRIBE = 6;
const KEYCTL_LINK = 8;

/** Special keyring ids (KEY_SPEC_* in include/uapi/linux/keyctl.h). -3 is what bpf(2)'s keyring_id takes for "my session". */
export const KEY_SPEC = { thread: -1, process: -2, session: -3, user: -4, userSession: -5 } as const;

type Func = ReturnType<ReturnType<typeof koffi.load>['func']>;
let addKeyCall: Func | undefined;
let keyctlCall: Func | undefined;
let keyctlNameCall: Func | undefined;
let keyctlIdCall: Func | undefined;
let keyctlLinkCall: Func | undefined;

function bind(): void {
  if (addKeyCall) return;
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new KernelError('add_key', 0, 'keyrings are bound for Linux x86-64 only');
  const libc = koffi.load('libc.so.6');
  // syscall(3) is variadic; on x86-64 integer and pointer arguments travel in the same registers
  // either way, so fixed prototypes per system call are exact.
  addKeyCall = libc.func('long syscall(long nr, const char *type, const char *desc, const void *payload, size_t plen, int ringid)');
  keyctlCall = libc.func('long syscall(long nr, int op, long serial, void *buf, size_t len)');
  keyctlNameCall = libc.func('long syscall(long nr, int op, const char *name)');
  keyctlIdCall = libc.func('long syscall(long nr, int op, int id, int create)');
  keyctlLinkCall = libc.func('long syscall(long nr, int op, int key, int keyring)');
}

/** What a refusal most likely means; add_key's errors are terse. */
function hint(errno: number, type: string): string {
  if (errno === 65) return ' (ENOPKG: the kernel lacks the key algorithm, e.g. CONFIG_CRYPTO_ECDSA)';
  if (errno === 74) return ' (EBADMSG: not a DER X.509 certificate the kernel can parse)';
  if (errno === 19) return ` (ENODEV: the kernel has no "${type}" key type, e.g. CONFIG_ASYMMETRIC_KEY_TYPE)`;
  if (errno === 126) return ' (ENOKEY: no such keyring)';
  return '';
}

/** add_key(2): returns the new key's serial. */
export function addKey(type: string, description: string | null, payload: Buffer | null, keyring: number): number {
  bind();
  const r = Number(addKeyCall!(SYS_add_key, type, description, payload, payload?.length ?? 0, keyring));
  const errno = r < 0 ? koffi.errno() : 0;
  if (r < 0) {
    const e = new KernelError('add_key', errno);
    throw new KernelError('add_key', errno, `add_key("${type}") into keyring ${keyring} failed: ${e.code.replace(/^KERNEL_/, '')}${hint(errno, type)}`);
  }
  return r;
}

/**
 * Add a certificate (DER, or PEM which is converted) as an asymmetric key; the kernel derives the
 * key's description from the certificate's subject and key id. Returns the key serial.
 */
export function addCertificate(cert: Buffer | string, keyring: number = KEY_SPEC.session): number {
  return addKey('asymmetric', null, certificateDer(cert), keyring);
}

/** A new, empty keyring linked into `parent`; its serial is what bpf(2)'s keyring_id then names. */
export function newKeyring(name: string, parent: number = KEY_SPEC.session): number {
  return addKey('keyring', name, null, parent);
}

/** KEYCTL_DESCRIBE: "type;uid;gid;perm;description" of a key, e.g. "asymmetric;0;0;3f010000;bpfseal: 1a2b...". */
export function describeKey(serial: number): { type: string; description: string; raw: string } {
  bind();
  const buf = Buffer.alloc(4096);
  const r = check(Number(keyctlCall!(SYS_keyctl, KEYCTL_DESCRIBE, serial, buf, buf.length)), `DESCRIBE, ${serial}`);
  const raw = buf.toString('utf8', 0, Math.max(0, Math.min(r, buf.length) - 1));
  const parts = raw.split(';');
  return { type: parts[0] ?? '', description: parts.slice(4).join(';'), raw };
}

function check(r: number, what: string): number {
  if (r >= 0) return r;
  const errno = koffi.errno();
  throw new KernelError('keyctl', errno, `keyctl(${what}) failed: ${new KernelError('keyctl', errno).code.replace(/^KERNEL_/, '')}`);
}

/** KEYCTL_GET_KEYRING_ID without creating: the serial a special id stands for in this process. */
export function keyringId(id: number): number {
  bind();
  return check(Number(keyctlIdCall!(SYS_keyctl, KEYCTL_GET_KEYRING_ID, id, 0)), `GET_KEYRING_ID, ${id}`);
}

/**
 * Whether this process has a session keyring of its own. Without one, -3 means the user-session
 * keyring for lookups but add_key(-3) makes a new anonymous session keyring for this process alone,
 * which vanishes when it exits (measured in the guest: a key added by one `node` was gone for the next).
 */
export function hasSessionKeyring(): boolean {
  return keyringId(KEY_SPEC.session) !== keyringId(KEY_SPEC.userSession);
}

/** KEYCTL_JOIN_SESSION_KEYRING: a new (or the named) session keyring for this process and its children. */
export function joinSessionKeyring(name: string | null): number {
  bind();
  return check(Number(keyctlNameCall!(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name)), `JOIN_SESSION_KEYRING, ${name ?? 'anonymous'}`);
}

/** KEYCTL_LINK: make `key` reachable from `keyring` (and so possessed by whoever possesses that). */
export function linkKey(key: number, keyring: number): void {
  bind();
  check(Number(keyctlLinkCall!(SYS_keyctl, KEYCTL_LINK, key, keyring)), `LINK, ${key}, ${keyring}`);
}
