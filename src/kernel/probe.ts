/**
 * Feature probes, each run once per process:
 *  - canUseBpf: may this process use bpf(2) at all (a 1-entry array map)?
 *  - signatureSupport: what the kernel verifies of a signed BPF_PROG_LOAD. A 2-instruction socket
 *    filter is loaded with a garbage signature against the builtin keyring (0, which always exists) and
 *    fd_array = [a plain, unfrozen array map] with fd_array_cnt 1:
 *      EOPNOTSUPP, or E2BIG (the fields are unknown)        -> 'none'    (no signature verification)
 *      EPERM (a signed program's map must be exclusive)     -> 'loader'  (7.3+: insns || exclusive maps)
 *      EBADMSG / EKEYREJECTED / ENOKEY (the PKCS#7 parsed)  -> 'program' (6.18-7.2: instructions only)
 *    Nothing is loaded either way. signatureProbe() also gives the kernel's answer (`features` shows it).
 *  - lsmProbe: the active LSMs (/sys/kernel/security/lsm), and whether the BPF LSM is one.
 *  - enforcementSupport: can `bpfseal enforce` refuse loads by their signature verdict here (below)?
 * `load`, preflight's guest, `enforce` and `features` (runtime/features.ts) all ask these, so every
 * command sees the same answer.
 */
import { readInput } from '../fsx/read.js';
import { BTF_MAGIC, BtfError, KIND, recordExtra } from '../bpf/btf.js';
import { mapCreate, progLoad } from './bpf.js';
import { ERRNO, errnoName, KernelError } from './errors.js';

export type SignatureSupport = 'none' | 'program' | 'loader';

/** The signature probe's outcome: what the kernel verifies, and the kernel's answer that says so. */
export interface SignatureProbe {
  support: SignatureSupport;
  /** The errno name BPF_PROG_LOAD answered with (EOPNOTSUPP, EPERM, EBADMSG, ...), or "accepted". */
  answer: string;
}

let probed: SignatureProbe | undefined;

const PROBE_INSNS = Buffer.from([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]); // r0 = 0; exit

/** The one signature probe (load, preflight's guest, enforce and `features` all ask it); throws a KernelError when bpf(2) is refused. */
export function signatureProbe(): SignatureProbe {
  if (probed !== undefined) return probed;
  const map = mapCreate({ type: 2, keySize: 4, valueSize: 8, maxEntries: 1, flags: 0, numaNode: 0, name: 'bpfseal_probe', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n });
  try {
    progLoad({ type: 1, insns: PROBE_INSNS, license: 'GPL', kernVersion: 0, flags: 0, name: 'bpfseal_probe', expectedAttachType: 0, fdArray: [map], fdArrayCnt: true, signature: Buffer.from('not a signature'), keyringId: 0 }).close();
    probed = { support: 'none', answer: 'accepted' }; // accepted garbage: the fields exist but nothing is enforced
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    const answer = errnoName(e.errno);
    if (e.errno === ERRNO.EOPNOTSUPP || e.errno === ERRNO.E2BIG) probed = { support: 'none', answer };
    else if (e.errno === ERRNO.EPERM) probed = { support: 'loader', answer };
    else if (e.errno === ERRNO.EBADMSG || e.errno === ERRNO.EKEYREJECTED || e.errno === ERRNO.ENOKEY) probed = { support: 'program', answer };
    else throw e;
  } finally {
    map.close();
  }
  return probed;
}

export function signatureSupport(): SignatureSupport {
  return signatureProbe().support;
}

/** Does this kernel verify program signatures in any form? */
export function kernelVerifiesSignatures(): boolean {
  return signatureSupport() !== 'none';
}

let bpfAllowed: boolean | undefined;

/** Can this process use bpf(2) at all? Creates and closes a 1-entry array map. */
export function canUseBpf(): boolean {
  if (bpfAllowed !== undefined) return bpfAllowed;
  try {
    mapCreate({ type: 2, keySize: 4, valueSize: 4, maxEntries: 1, flags: 0, numaNode: 0, name: 'bpfseal_probe', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n }).close();
    bpfAllowed = true;
  } catch {
    bpfAllowed = false;
  }
  return bpfAllowed;
}

// ---------------------------------------------------------------------------------------------------
// Enforcement: can a BPF LSM program refuse loads by their signature verdict here?

export interface EnforcementSupport {
  ok: boolean;
  /** /sys/kernel/security/lsm lists `bpf` (BPF LSM programs run); undefined: the file cannot be read. */
  bpfLsm?: boolean;
  lsms?: string[];
  /** struct bpf_prog_aux has sig.{verdict,keyring_type,keyring_serial} (signing.rst, "The verdict"; 7.2+). */
  verdicts: boolean;
  /** bpf_lsm_bpf_prog_load takes (prog, attr, token, kernel): the `kernel` flag a verified loader's loads carry. */
  kernelFlag: boolean;
  signatures: SignatureSupport;
  /** Why enforcement cannot work here, one reason per missing piece. */
  reasons: string[];
  /** How long the probe took (ms). */
  ms: number;
}

const LSM_FILE = '/sys/kernel/security/lsm';
const VMLINUX_BTF = '/sys/kernel/btf/vmlinux';

/**
 * What the running kernel's BTF says about the verdict fields and the admission hook. The 5 MB vmlinux
 * BTF is walked once for record offsets (as indexBtfNames does) and only the records needed are read:
 * a full parse takes seconds under emulation. Layout: btf.rst, "Type encoding" (12-byte header; struct
 * members 12 bytes: name_off, type, offset; func_proto params 8 bytes: name_off, type).
 */
export function verdictBtf(raw: Buffer): { verdicts: boolean; kernelFlag: boolean } {
  if (raw.length < 24 || raw.readUInt16LE(0) !== BTF_MAGIC) throw new BtfError('kernel BTF has a bad header');
  const hdr = raw.readUInt32LE(4);
  const tbase = hdr + raw.readUInt32LE(8), tend = tbase + raw.readUInt32LE(12);
  const sbase = hdr + raw.readUInt32LE(16), slen = raw.readUInt32LE(20);
  if (tend > raw.length || sbase + slen > raw.length) throw new BtfError('kernel BTF sections exceed the blob');
  const name = (off: number) => (off < slen ? raw.toString('latin1', sbase + off, raw.indexOf(0, sbase + off)) : '');
  const offsets: number[] = [0];
  let aux = 0, hook = 0;
  for (let p = tbase; p < tend;) {
    if (p + 12 > tend) throw new BtfError(`kernel BTF type ${offsets.length} is truncated`);
    const info = raw.readUInt32LE(p + 4), kind = (info >>> 24) & 0x1f;
    const extra = recordExtra(kind, info & 0xffff);
    if (extra < 0) throw new BtfError(`kernel BTF type ${offsets.length} has unknown kind ${kind}`);
    if (kind === KIND.STRUCT && !aux && name(raw.readUInt32LE(p)) === 'bpf_prog_aux') aux = offsets.length;
    if (kind === KIND.FUNC && !hook && name(raw.readUInt32LE(p)) === 'bpf_lsm_bpf_prog_load') hook = offsets.length;
    offsets.push(p);
    p += 12 + extra;
  }
  const rec = (id: number) => {
    const p = offsets[id];
    if (!p) return undefined;
    const info = raw.readUInt32LE(p + 4);
    return { p, kind: (info >>> 24) & 0x1f, vlen: info & 0xffff, ref: raw.readUInt32LE(p + 8) };
  };
  const members = (id: number, size: number) => {
    let t = rec(id);
    for (let i = 0; t && [KIND.TYPEDEF, KIND.VOLATILE, KIND.CONST, KIND.RESTRICT, KIND.TYPE_TAG].includes(t.kind as 8) && i < 16; i++) t = rec(t.ref);
    if (!t) return [];
    const out: { name: string; type: number }[] = [];
    for (let i = 0; i < t.vlen; i++) out.push({ name: name(raw.readUInt32LE(t.p + 12 + i * size)), type: raw.readUInt32LE(t.p + 16 + i * size) });
    return out;
  };
  const sig = aux ? members(aux, 12).find((m) => m.name === 'sig') : undefined;
  const fields = new Set(sig ? members(sig.type, 12).map((m) => m.name) : []);
  const verdicts = ['verdict', 'keyring_type', 'keyring_serial'].every((f) => fields.has(f));
  const proto = hook ? rec(hook)?.ref : undefined;
  const params = proto ? members(proto, 8).map((m) => m.name) : [];
  return { verdicts, kernelFlag: params.length === 4 && params[0] === 'prog' && params[3] === 'kernel' };
}

/** The active LSMs (/sys/kernel/security/lsm) and whether the BPF LSM is one; `reason` says why it is not usable. */
export function lsmProbe(file = LSM_FILE): { lsms?: string[]; bpfLsm?: boolean; reason?: string } {
  let lsms: string[];
  try {
    // Bounded read (a sysfs attribute is at most a page).
    lsms = readInput(file, { kind: 'policy' }).toString('utf8').trim().split(',').filter(Boolean);
  } catch (e) {
    return { reason: `cannot read ${file} (${(e as Error).message.replace(/^.*?: /, '')}): securityfs is not mounted or the kernel has no LSM framework (mount -t securityfs securityfs /sys/kernel/security)` };
  }
  const bpfLsm = lsms.includes('bpf');
  return { lsms, bpfLsm, ...(bpfLsm ? {} : { reason: `the BPF LSM is not active (${LSM_FILE}: ${lsms.join(',') || 'empty'}): it needs CONFIG_BPF_LSM and "bpf" in CONFIG_LSM or the lsm= boot parameter` }) };
}

let enforcement: EnforcementSupport | undefined;

/**
 * Enforcement needs the BPF LSM active (CONFIG_BPF_LSM and `bpf` in the LSM list), the verdict fields
 * and the 4-argument admission hook in the kernel's BTF (7.2+), and signature verification built in
 * (signatureSupport() is not 'none'). Nothing is loaded to find out.
 */
export function enforcementSupport(files: { lsm?: string; btf?: string } = {}): EnforcementSupport {
  if (enforcement && !files.lsm && !files.btf) return enforcement;
  const t0 = performance.now();
  const reasons: string[] = [];
  const { lsms, bpfLsm, reason } = lsmProbe(files.lsm);
  if (reason) reasons.push(reason);
  let btf = { verdicts: false, kernelFlag: false };
  try {
    btf = verdictBtf(readInput(files.btf ?? VMLINUX_BTF, { kind: 'object' }));
    if (!btf.verdicts) reasons.push('the kernel records no signature verdicts (struct bpf_prog_aux has no sig.verdict in its BTF; signing.rst "The verdict", Linux 7.2+)');
    if (!btf.kernelFlag) reasons.push('the bpf_prog_load LSM hook does not take (prog, attr, token, kernel) in this kernel\'s BTF');
  } catch (e) {
    reasons.push(`cannot read the kernel's BTF ${files.btf ?? VMLINUX_BTF} (${(e as Error).message}): CONFIG_DEBUG_INFO_BTF is needed`);
  }
  const signatures = signatureSupport();
  if (signatures === 'none') reasons.push('the kernel cannot verify BPF program signatures (EOPNOTSUPP: built without CONFIG_SYSTEM_DATA_VERIFICATION, or older than 6.18)');
  const out: EnforcementSupport = { ok: reasons.length === 0, ...(bpfLsm !== undefined ? { bpfLsm } : {}), ...(lsms ? { lsms } : {}), verdicts: btf.verdicts, kernelFlag: btf.kernelFlag, signatures, reasons, ms: Math.round(performance.now() - t0) };
  if (!files.lsm && !files.btf) enforcement = out;
  return out;
}
