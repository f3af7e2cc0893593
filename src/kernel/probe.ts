/**
 * Feature probe: does this kernel verify BPF program signatures (BPF_PROG_LOAD signature/keyring_id)?
 * Loads a 2-instruction socket filter with a deliberately invalid signature against the session
 * keyring: EOPNOTSUPP means no (kernel built without CONFIG_SYSTEM_DATA_VERIFICATION, as on these
 * machines), EBADMSG/EKEYREJECTED/ENOKEY mean the kernel parsed the signature, so yes.
 */
import { mapCreate, progLoad } from './bpf.js';
import { KernelError } from './errors.js';

let cached: boolean | undefined;

export function kernelVerifiesSignatures(): boolean {
  if (cached !== undefined) return cached;
  const insns = Buffer.from([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]); // r0 = 0; exit
  try {
    progLoad({ type: 1, insns, license: 'GPL', kernVersion: 0, flags: 0, name: 'bpfseal_probe', expectedAttachType: 0, fdArray: [], signature: Buffer.from('not a signature'), keyringId: -3 }).close();
    cached = true; // accepted garbage: enforcement is not in effect, but the fields exist
  } catch (e) {
    if (!(e instanceof KernelError)) throw e;
    if (e.errno === 95) cached = false;
    else if (e.errno === 74 || e.errno === 129 || e.errno === 126) cached = true;
    else throw e;
  }
  return cached;
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
