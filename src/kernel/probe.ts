/**
 * Feature probes, each run once per process:
 *  - canUseBpf: may this process use bpf(2) at all (a 1-entry array map)?
 *  - signatureSupport: what the kernel verifies of a signed BPF_PROG_LOAD. A 2-instruction socket
 *    filter is loaded with a garbage signature against the builtin keyring (0, which always exists) and
 *    fd_array = [a plain, unfrozen array map] with fd_array_cnt 1:
 *      EOPNOTSUPP, or E2BIG (the fields are unknown)        -> 'none'    (no signature verification)
 *      EPERM (a signed program's map must be exclusive)     -> 'loader'  (7.3+: insns || exclusive maps)
 *      EBADMSG / EKEYREJECTED / ENOKEY (the PKCS#7 parsed)  -> 'program' (6.18-7.2: instructions only)
 *    Nothing is loaded either way.
 */
import { mapCreate, progLoad } from './bpf.js';
import { KernelError } from './errors.js';

export type SignatureSupport = 'none' | 'program' | 'loader';

let support: SignatureSupport | undefined;

const PROBE_INSNS = Buffer.from([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]); // r0 = 0; exit

export function signatureSupport(): SignatureSupport {
  if (support !== undefined) return support;
  const map = mapCreate({ type: 2, keySize: 4, valueSize: 8, maxEntries: 1, flags: 0, numaNode: 0, name: 'bpfseal_probe', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n });
  try {
    progLoad({ type: 1, insns: PROBE_INSNS, license: 'GPL', kernVersion: 0, flags: 0, name: 'bpfseal_probe', expectedAttachType: 0, fdArray: [map], fdArrayCnt: true, signature: Buffer.from('not a signature'), keyringId: 0 }).close();
    support = 'none'; // accepted garbage: the fields exist but nothing is enforced
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    if (e.errno === 95 || e.errno === 7) support = 'none';
    else if (e.errno === 1) support = 'loader';
    else if (e.errno === 74 || e.errno === 129 || e.errno === 126) support = 'program';
    else throw e;
  } finally {
    map.close();
  }
  return support;
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
