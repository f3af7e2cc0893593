/**
 * Enforcement pieces that run on this host's kernel (which has no signature verdicts, so the enforcer
 * itself runs only in the VM, test/vm/enforce.vm.test.ts): the ring buffer reader against a real
 * BPF_MAP_TYPE_RINGBUF fed by a socket filter (positions, wrap-around, read without consuming),
 * draining decision records into a host log exactly once, the allowlist in real maps, keyrings
 * resolved through keyctl(2), and the probe's refusal on this kernel.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mapCreate, progLoad, progTestRun } from '../src/kernel/bpf.js';
import type { Fd } from '../src/kernel/fd.js';
import { RingBufferReader } from '../src/kernel/ringbuf.js';
import { enforcementSupport } from '../src/kernel/probe.js';
import { keyringSerial, KEY_SPEC, searchKeyring } from '../src/kernel/keyctl.js';
import { addKey, newKeyring } from '../src/vm/guest/keyring.js';
import { openHostLog, openHostLogForWriting, readDecisions } from '../src/hostlog/hostlog.js';
import { drainDecisions } from '../src/enforce/drain.js';
import { decisionRecord, decodeDecision, DECISION_BYTES } from '../src/enforce/decisions.js';
import { fillAllowlist, readAllowlist, resolveAllowlist, resolveKeyring } from '../src/enforce/allowlist.js';
import { cleanupTmpDirs, makeTmpDir } from './helpers/paths.js';
import { closeLeftoverFds, probeBpf } from './helpers/kernel.js';
import { decisionBytes } from './helpers/enforce.js';

const probe = probeBpf();
if (!probe.ok) console.warn(`enforce-kernel.test.ts: real-kernel tests skipped: ${probe.why}`);
afterAll(() => { cleanupTmpDirs(); expect(closeLeftoverFds()).toEqual([]); });

const insn = (op: number, dst: number, src: number, off: number, imm: number): Buffer => {
  const b = Buffer.alloc(8);
  b[0] = op; b[1] = dst | (src << 4); b.writeInt16LE(off, 2); b.writeInt32LE(imm, 4);
  return b;
};
/**
 * A socket filter that copies the first `len` bytes of the packet (after the Ethernet header the test
 * run strips) to the stack and submits them with bpf_ringbuf_output(map at fd_array[0]).
 */
function feeder(len: number): Buffer {
  return Buffer.concat([
    insn(0xbf, 6, 1, 0, 0), // r6 = r1 (skb)
    insn(0xb7, 2, 0, 0, 0), // r2 = 0 (offset)
    insn(0xbf, 3, 10, 0, 0), insn(0x07, 3, 0, 0, -len), // r3 = r10 - len
    insn(0xb7, 4, 0, 0, len), insn(0xbf, 1, 6, 0, 0), // r4 = len; r1 = skb
    insn(0x85, 0, 0, 0, 26), // bpf_skb_load_bytes
    insn(0x55, 0, 0, 7, 0), // if r0 != 0 goto out
    insn(0x18, 1, 5, 0, 0), insn(0, 0, 0, 0, 0), // r1 = map fd_array[0] (BPF_PSEUDO_MAP_IDX)
    insn(0xbf, 2, 10, 0, 0), insn(0x07, 2, 0, 0, -len), insn(0xb7, 3, 0, 0, len), insn(0xb7, 4, 0, 0, 0),
    insn(0x85, 0, 0, 0, 130), // bpf_ringbuf_output
    insn(0xb7, 0, 0, 0, 0), insn(0x95, 0, 0, 0, 0), // out: return 0
  ]);
}

class Feeder {
  readonly ring: Fd;
  readonly prog: Fd;
  constructor(readonly len: number, size = 4096) {
    this.ring = mapCreate({ type: 27, keySize: 0, valueSize: 0, maxEntries: size, flags: 0, numaNode: 0, name: 'test_ring', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n });
    this.prog = progLoad({ type: 1, insns: feeder(len), license: 'GPL', kernVersion: 0, flags: 0, name: 'test_feeder', expectedAttachType: 0, fdArray: [this.ring] });
  }
  /** Submit one record (`len` bytes). */
  submit(record: Buffer): void {
    progTestRun(this.prog, { data: Buffer.concat([Buffer.alloc(14, 0xee), record]) });
  }
  close(): void {
    this.prog.close();
    this.ring.close();
  }
}

describe.skipIf(!probe.ok)('ring buffer reader', () => {
  it('reads submitted records in order with growing positions, across the wrap, and only consume() moves on', () => {
    const f = new Feeder(40);
    const rb = RingBufferReader.open(f.ring, 4096);
    try {
      const rec = (i: number) => Buffer.alloc(40, i);
      for (let i = 0; i < 60; i++) f.submit(rec(i)); // 48 bytes each: 4096 / 48 = 85 fit
      const first = rb.read();
      expect(first.map((s) => s.data[0])).toEqual([...Array(60).keys()]);
      expect(first.map((s) => Number(s.pos))).toEqual([...Array(60).keys()].map((i) => i * 48));
      expect(rb.read().map((s) => Number(s.pos))).toEqual(first.map((s) => Number(s.pos))); // not consumed yet
      rb.consume();
      expect(rb.read()).toEqual([]);
      for (let i = 60; i < 120; i++) f.submit(rec(i)); // positions 2880 .. 5712: past the 4096-byte end
      const second = rb.read(25);
      expect(second.map((s) => s.data[0])).toEqual([...Array(25).keys()].map((i) => 60 + i));
      rb.consume();
      const rest = rb.read();
      expect(rest.map((s) => s.data[0])).toEqual([...Array(35).keys()].map((i) => 85 + i));
      expect(rest.every((s) => s.data.equals(rec(s.data[0])))).toBe(true); // a record across the end is whole
      expect(Number(rest.at(-1)!.pos)).toBe(119 * 48);
      rb.consume();
    } finally {
      rb.close();
      f.close();
    }
  });

  it('refuses a size that is not a power of two', () => {
    const f = new Feeder(8);
    try {
      expect(() => RingBufferReader.open(f.ring, 3000)).toThrow(/power of two/);
    } finally {
      f.close();
    }
  });
});

describe.skipIf(!probe.ok)('draining decisions into the host log', () => {
  const hostLog = () => join(makeTmpDir('bpfseal-drain-'), 'host-log');
  const loadId = randomBytes(16).toString('hex');
  const decisions = (dir: string) => {
    const log = openHostLog(dir, false);
    try {
      return readDecisions(log).flatMap((r) => (r.enforcement?.event === 'decision' ? [r.enforcement] : []));
    } finally {
      log.close();
    }
  };

  it('appends each record once, with the decoded fields, and skips what an interrupted drain left', async () => {
    const dir = hostLog();
    const f = new Feeder(DECISION_BYTES, 1 << 16);
    try {
      f.submit(decisionBytes({ seq: 1, pid: 4242, comm: 'bpftool', progName: 'unsigned_probe', progType: 1, verdict: 0, keyringType: 0, allowed: false }));
      f.submit(decisionBytes({ seq: 2, pid: 77, comm: 'node', progName: 'bpfseal_loader', progType: 31, verdict: 1, keyringType: 4, keyringSerial: 123456, allowed: true }));
      expect(await drainDecisions(dir, loadId, f.ring)).toMatchObject({ appended: 2, duplicates: 0, invalid: 0 });
      expect(await drainDecisions(dir, loadId, f.ring)).toMatchObject({ appended: 0, duplicates: 0 });
      const got = decisions(dir);
      expect(got).toHaveLength(2);
      expect(got[0]).toMatchObject({ loadId, seq: 1, pid: 4242, comm: 'bpftool', progName: 'unsigned_probe', progType: 'socket_filter', verdict: 'unsigned', keyringType: 'none', allowed: false, ringPos: 0 });
      expect(got[1]).toMatchObject({ seq: 2, progType: 'syscall', verdict: 'verified', keyringType: 'user', keyringSerial: 123456, allowed: true, ringPos: DECISION_BYTES + 8 });

      // A drain killed after its append and before consuming: the records are in the log and still in the buffer.
      f.submit(decisionBytes({ seq: 4, pid: 1 }));
      f.submit(decisionBytes({ seq: 3, pid: 2 })); // two CPUs may submit out of seq order
      const rb = RingBufferReader.open(f.ring, 1 << 16);
      const pending = rb.read();
      rb.close();
      const now = { bootNs: 0n, wallMs: Date.now() };
      const log = await openHostLogForWriting(dir);
      await log.appendMany(pending.map((s) => Buffer.from(JSON.stringify(decisionRecord(decodeDecision(s.data), loadId, Number(s.pos), now)))));
      log.close();
      f.submit(decisionBytes({ seq: 5, pid: 3 }));
      expect(await drainDecisions(dir, loadId, f.ring)).toMatchObject({ appended: 1, duplicates: 2 });
      expect(decisions(dir).map((d) => d.seq)).toEqual([1, 2, 4, 3, 5]);

      // A record that does not decode is counted and consumed, not appended.
      const bad = decisionBytes({ seq: 6 });
      bad.writeUInt32LE(99, 0); // another ABI
      f.submit(bad);
      expect(await drainDecisions(dir, loadId, f.ring)).toMatchObject({ appended: 0, invalid: 1 });
      expect(await drainDecisions(dir, loadId, f.ring)).toMatchObject({ appended: 0, invalid: 0 });
    } finally {
      f.close();
    }
  });
});

describe.skipIf(!probe.ok)('the allowlist in real maps', () => {
  it('fills serials and system keyring types and reads them back', () => {
    const allowSerial = mapCreate({ type: 1, keySize: 4, valueSize: 1, maxEntries: 64, flags: 0, numaNode: 0, name: 'allow_serial', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n });
    const allowType = mapCreate({ type: 2, keySize: 4, valueSize: 1, maxEntries: 8, flags: 0, numaNode: 0, name: 'allow_type', btfKeyTypeId: 0, btfValueTypeId: 0, mapExtra: 0n });
    try {
      fillAllowlist({ allowSerial, allowType }, [{ spec: 'a', serial: 5 }, { spec: 'b', serial: -7 }, { spec: 'builtin', keyringType: 'builtin' }, { spec: 'platform', keyringType: 'platform' }]);
      expect(readAllowlist({ allowSerial, allowType })).toEqual({ serials: [-7, 5], types: ['builtin', 'platform'] });
    } finally {
      allowSerial.close();
      allowType.close();
    }
  });
});

describe('keyrings for the allowlist', () => {
  it('system keyrings by name or keyring_id 0/1/2 (signing.rst, "Keyrings")', () => {
    expect(['builtin', 'secondary', 'platform', '0', '1', '2'].map((s) => resolveKeyring(s).keyringType)).toEqual(['builtin', 'secondary', 'platform', 'builtin', 'secondary', 'platform']);
  });

  it('a special id becomes the serial of the keyring it stands for here; a named keyring is found; a key is not a keyring', () => {
    const name = `bpfseal-test-${randomBytes(4).toString('hex')}`;
    // In a process without a session keyring of its own this makes one, and -3 means it from now on.
    const ring = newKeyring(name, KEY_SPEC.session);
    const serial = keyringSerial(KEY_SPEC.session);
    expect(resolveKeyring('-3')).toMatchObject({ serial });
    expect(resolveKeyring('session')).toMatchObject({ serial });
    expect(searchKeyring(name)).toBe(ring);
    expect(resolveKeyring(name)).toEqual({ spec: name, serial: ring, description: name });
    expect(resolveKeyring(String(ring))).toMatchObject({ serial: ring });
    const key = addKey('user', `${name}-key`, Buffer.from('x'), ring);
    expect(() => resolveKeyring(String(key))).toThrow(expect.objectContaining({ code: 'ENFORCE_KEYRING', message: expect.stringContaining("a key of type 'user', not a keyring") }));
    expect(() => resolveKeyring(`${name}-nope`)).toThrow(expect.objectContaining({ code: 'ENFORCE_KEYRING' }));
    expect(() => resolveKeyring('2147483648')).toThrow(expect.objectContaining({ code: 'ENFORCE_KEYRING' }));
    // The policy's keyring first, then the policy's enforceKeyrings and --keyring specs, without repeats.
    expect(resolveAllowlist(undefined, ['session', { spec: name, from: 'policy' }, 'builtin', '0', { spec: 'platform', from: 'policy' }])).toEqual([
      { spec: 'policy keyring -3', serial, description: expect.any(String) },
      { spec: `policy enforceKeyrings ${name}`, serial: ring, description: name },
      { spec: 'builtin', keyringType: 'builtin' },
      { spec: 'policy enforceKeyrings platform', keyringType: 'platform' },
    ]);
    expect(resolveAllowlist(0, [])).toEqual([{ spec: 'policy keyring 0', keyringType: 'builtin' }]);
  });
});

describe.skipIf(!probe.ok)('enforcement support of this kernel', () => {
  it('names every missing piece, and agrees with the files it read', () => {
    const s = enforcementSupport();
    expect(s.ok).toBe(s.reasons.length === 0);
    if (!s.verdicts) expect(s.reasons.join('\n')).toMatch(/records no signature verdicts/);
    if (s.signatures === 'none') expect(s.reasons.join('\n')).toMatch(/cannot verify BPF program signatures/);
    if (s.bpfLsm === false) expect(s.reasons.join('\n')).toMatch(/BPF LSM is not active/);
    if (s.bpfLsm === undefined) expect(s.reasons.join('\n')).toMatch(/cannot read \/sys\/kernel\/security\/lsm/);
  });

  it('reads the LSM list it is given', () => {
    const d = makeTmpDir();
    const lsm = join(d, 'lsm');
    writeFileSync(lsm, 'lockdown,capability,landlock,yama\n');
    const s = enforcementSupport({ lsm });
    expect(s).toMatchObject({ bpfLsm: false, lsms: ['lockdown', 'capability', 'landlock', 'yama'] });
    expect(s.reasons.join('\n')).toMatch(/the BPF LSM is not active \([^)]*lockdown,capability,landlock,yama\)/);
  });
});
