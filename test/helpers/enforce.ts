/** Test helpers for enforcement: the enforcer's ring buffer record, encoded from struct decision in src/enforce/bpf/bpfseal_enforcer.bpf.c. */

export interface DecisionFields {
  abi?: number;
  seq?: number;
  pid?: number;
  tid?: number;
  uid?: number;
  bootNs?: bigint;
  progType?: number;
  insns?: number;
  keyringSerial?: number;
  verdict?: number;
  keyringType?: number;
  kernel?: boolean;
  allowed?: boolean;
  comm?: string;
  progName?: string | Buffer;
}

/** struct decision: 0 abi, 4 pid, 8 seq, 16 boot_ns, 24 tid, 28 uid, 32 prog_type, 36 insn_cnt, 40 keyring_serial, 44 verdict, 45 keyring_type, 46 kernel, 47 allowed, 48 ret, 52 pad, 56 comm[16], 72 name[16]. */
export function decisionBytes(f: DecisionFields): Buffer {
  const b = Buffer.alloc(88);
  b.writeUInt32LE(f.abi ?? 1, 0);
  b.writeUInt32LE(f.pid ?? 100, 4);
  b.writeBigUInt64LE(BigInt(f.seq ?? 1), 8);
  b.writeBigUInt64LE(f.bootNs ?? 1_000_000_000n, 16);
  b.writeUInt32LE(f.tid ?? f.pid ?? 100, 24);
  b.writeUInt32LE(f.uid ?? 0, 28);
  b.writeUInt32LE(f.progType ?? 1, 32);
  b.writeUInt32LE(f.insns ?? 2, 36);
  b.writeInt32LE(f.keyringSerial ?? 0, 40);
  b[44] = f.verdict ?? 0;
  b[45] = f.keyringType ?? 0;
  b[46] = f.kernel ? 1 : 0;
  const allowed = f.allowed ?? false;
  b[47] = allowed ? 1 : 0;
  b.writeInt32LE(allowed ? 0 : -1, 48);
  b.write((f.comm ?? 'test').slice(0, 15), 56, 'latin1');
  if (Buffer.isBuffer(f.progName)) f.progName.copy(b, 72, 0, 16);
  else b.write((f.progName ?? '').slice(0, 15), 72, 'latin1');
  return b;
}
