/**
 * Enforcement data, no kernel needed: the ring buffer record decoder against the C layout (encoded
 * independently in helpers/enforce.ts), host log records (parsed strictly, told apart from load
 * records), what audit shows of them, and the BTF probe for verdict fields read the fast way and
 * checked against the full BTF parser.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decisionRecord, decodeDecision, denialLine, enforcementSummary, lastRingPos, wallTime } from '../src/enforce/decisions.js';
import { decision, enforcementRecord, parseDecision, parseEnforcement, parseHostRecord, type EnforcementRecord } from '../src/hostlog/records.js';
import type { ReadDecision } from '../src/hostlog/hostlog.js';
import { verdictBtf } from '../src/kernel/probe.js';
import { KIND, parseBtf, skipMods, type BtfComposite } from '../src/bpf/btf.js';
import { sectionByName, parseElf } from '../src/elf/reader.js';
import { decisionBytes } from './helpers/enforce.js';
import { parsePolicy } from '../src/trust/policy.js';
import { writeKeyFiles } from '../src/trust/keys.js';
import { cleanupTmpDirs, makeTmpDir, readFixture, ROOT } from './helpers/paths.js';

afterAll(cleanupTmpDirs);

const NOW = { bootNs: 10_000_000_000n, wallMs: Date.parse('2026-12-01T12:00:10.000Z') };

describe('decision records from the ring buffer', () => {
  it('decodes every field of struct decision', () => {
    const d = decodeDecision(decisionBytes({ seq: 7, pid: 321, tid: 322, uid: 1000, bootNs: 9_500_000_000n, progType: 31, insns: 1234, keyringSerial: -5, verdict: 1, keyringType: 4, kernel: true, allowed: true, comm: 'bpftool', progName: 'loader' }));
    expect(d).toEqual({ seq: 7, bootNs: 9_500_000_000n, pid: 321, tid: 322, uid: 1000, progType: 'syscall', insns: 1234, keyringSerial: -5, verdict: 'verified', keyringType: 'user', kernel: true, allowed: true, ret: 0, comm: 'bpftool', progName: 'loader' });
    expect(decodeDecision(decisionBytes({ verdict: 0, keyringType: 0 }))).toMatchObject({ verdict: 'unsigned', keyringType: 'none', allowed: false, ret: -1 });
    expect(decodeDecision(decisionBytes({ verdict: 9, keyringType: 9 }))).toMatchObject({ verdict: 'verdict_9', keyringType: 'keyring_type_9' });
  });

  it('escapes what a process can put in its comm and program name', () => {
    const d = decodeDecision(decisionBytes({ comm: 'a\u001b[2Jb\\', progName: Buffer.from([0x41, 0xff, 0x0a, 0x42, 0]) }));
    expect(d.comm).toBe('a\\x1b[2Jb\\x5c');
    expect(d.progName).toBe('A\\xff\\x0aB');
    const full = decodeDecision(decisionBytes({ progName: Buffer.from('0123456789abcdef') })); // 16 bytes, no NUL
    expect(full.progName).toBe('0123456789abcdef');
  });

  it('refuses a record of another size or ABI', () => {
    expect(() => decodeDecision(Buffer.alloc(87))).toThrow(expect.objectContaining({ code: 'ENFORCER_RECORD_INVALID' }));
    expect(() => decodeDecision(decisionBytes({ abi: 2 }))).toThrow(expect.objectContaining({ code: 'ENFORCER_RECORD_INVALID', message: expect.stringContaining('ABI 2') }));
  });

  it('dates a decision by the boot-time clock reading', () => {
    expect(wallTime(9_500_000_000n, NOW)).toBe('2026-12-01T12:00:09.500Z');
    const r = decisionRecord(decodeDecision(decisionBytes({ bootNs: 4_000_000_000n, seq: 3 })), 'L', 96, NOW);
    expect(r).toMatchObject({ type: 'bpfseal.enforcement/v1', event: 'decision', loadId: 'L', seq: 3, ringPos: 96, at: '2026-12-01T12:00:04.000Z' });
  });
});

describe('enforcement records in the host log', () => {
  const entry = (r: unknown) => Buffer.from(JSON.stringify(r));
  const dec = decisionRecord(decodeDecision(decisionBytes({ seq: 1, pid: 5, comm: 'x', progName: 'p', allowed: false })), 'L1', 0, NOW);
  const on = enforcementRecord({ event: 'on', loadId: 'L1', pinDir: '/sys/fs/bpf/e', allow: [{ spec: 'policy keyring -3', serial: 12, description: '_ses' }, { spec: 'builtin', keyringType: 'builtin' }], linkId: 3, progId: 9 });
  const off = enforcementRecord({ event: 'off', loadId: 'L1', pinDir: '/sys/fs/bpf/e', counts: { decisions: 4, allowed: 1, denied: 3, lost: 0 } });

  it('round-trip and are told apart from load records', () => {
    for (const r of [dec, on, off]) expect(parseHostRecord(entry(r))).toEqual({ enforcement: r });
    const load = decision({ decision: 'refused', code: 'X', reason: 'y' });
    expect(parseHostRecord(entry(load))).toEqual({ decision: load });
    expect(parseDecision(entry(dec))).toBeUndefined();
    expect(parseHostRecord(Buffer.from('not json'))).toEqual({});
  });

  it('refuse malformed fields', () => {
    const bad: [string, Record<string, unknown>][] = [
      ['unknown event', { ...on, event: 'maybe' }],
      ['no load id', { ...on, loadId: undefined }],
      ['on without its pin directory', { ...on, pinDir: undefined }],
      ['an allow entry with serial and type', { ...on, allow: [{ spec: 'x', serial: 1, keyringType: 'builtin' }] }],
      ['an allow entry with neither', { ...on, allow: [{ spec: 'x' }] }],
      ['a serial beyond s32', { ...on, allow: [{ spec: 'x', serial: 2 ** 31 }] }],
      ['a decision without allowed', { ...dec, allowed: undefined }],
      ['a decision without its ring position', { ...dec, ringPos: undefined }],
      ['a string pid', { ...dec, pid: '5' }],
      ['negative counts', { ...off, counts: { decisions: -1, allowed: 0, denied: 0, lost: 0 } }],
    ];
    for (const [what, r] of bad) expect(parseEnforcement(JSON.parse(JSON.stringify(r))), what).toBeUndefined();
  });

  it('audit lists denials (since a time), not allowed decisions', () => {
    const mk = (seq: number, allowed: boolean, bootNs: bigint): EnforcementRecord => decisionRecord(decodeDecision(decisionBytes({ seq, allowed, bootNs, verdict: allowed ? 1 : 0, keyringType: allowed ? 4 : 0, keyringSerial: allowed ? 77 : 0, comm: 'c', progName: `p${seq}` })), 'L1', seq * 96, NOW);
    const records: ReadDecision[] = [
      { index: 0, decision: decision({ decision: 'refused', code: 'X' }) },
      { index: 1, enforcement: on },
      { index: 2, enforcement: mk(1, false, 1_000_000_000n) },
      { index: 3, enforcement: mk(2, true, 2_000_000_000n) },
      { index: 4, enforcement: mk(3, false, 8_000_000_000n) },
      { index: 5 },
    ];
    const s = enforcementSummary(records);
    expect(s.decisions).toBe(3);
    expect(s.denials.map((d) => [d.index, d.progName, d.verdict])).toEqual([[2, 'p1', 'unsigned'], [4, 'p3', 'unsigned']]);
    expect(enforcementSummary(records, new Date('2026-12-01T12:00:05Z')).denials.map((d) => d.index)).toEqual([4]);
    expect(denialLine(s.denials[0])).toBe("#2  2026-12-01T12:00:01.000Z  pid 100 uid 0 'c'  socket_filter 'p1'  unsigned");
    const v = enforcementSummary([{ index: 9, enforcement: { ...mk(4, false, 0n), verdict: 'verified', keyringType: 'user', keyringSerial: 55 } }]).denials[0];
    expect(denialLine(v)).toMatch(/verified against user keyring 55 \(not allowed\)$/);
  });

  it('finds the last ring position drained for a load, reading back from the end', () => {
    const entries = [entry(on), ...Array.from({ length: 1200 }, (_, i) => entry({ ...dec, ringPos: i * 96, seq: i + 1 })), entry({ ...dec, loadId: 'L2', ringPos: 999_999 })];
    const read = (a: number, b: number) => entries.slice(a, b).map((e, i) => ({ index: a + i, entry: e }));
    const parse = (e: Buffer) => parseHostRecord(e).enforcement;
    expect(lastRingPos(read, entries.length, 'L1', parse)).toBe(1199 * 96);
    expect(lastRingPos(read, 1, 'L1', parse)).toBe(-1); // only its `on` record
    expect(lastRingPos(read, entries.length, 'L3', parse)).toBe(-1);
  });
});

/** The same question answered with the full BTF parser. */
function reference(raw: Buffer): { verdicts: boolean; kernelFlag: boolean } {
  const btf = parseBtf(raw);
  const aux = btf.types.find((t): t is BtfComposite => t && t.kind === KIND.STRUCT && t.name === 'bpf_prog_aux');
  const sig = aux?.members.find((m) => m.name === 'sig');
  const sigType = sig ? skipMods(btf, sig.type) : undefined;
  const names = new Set(sigType && (sigType.kind === KIND.STRUCT || sigType.kind === KIND.UNION) ? sigType.members.map((m) => m.name) : []);
  const hook = btf.types.find((t) => t && t.kind === KIND.FUNC && t.name === 'bpf_lsm_bpf_prog_load');
  const proto = hook ? btf.types[hook.sizeOrType] : undefined;
  const params = proto?.kind === KIND.FUNC_PROTO ? proto.params.map((p) => p.name) : [];
  return { verdicts: names.has('verdict') && names.has('keyring_type') && names.has('keyring_serial'), kernelFlag: params.join(',') === 'prog,attr,token,kernel' };
}

describe('verdict fields in BTF', () => {
  const objBtf = (bytes: Buffer) => sectionByName(parseElf(bytes), '.BTF')!.data;

  it('the enforcer declares bpf_prog_aux.sig (verdicts) but no hook function; other objects neither', () => {
    const enforcer = objBtf(readFileSync(join(ROOT, 'src/enforce/bpf/bpfseal_enforcer.o')));
    expect(verdictBtf(enforcer)).toEqual({ verdicts: true, kernelFlag: false });
    expect(verdictBtf(enforcer)).toEqual(reference(enforcer));
    for (const f of ['minimal', 'core', 'maps_btf']) {
      const b = objBtf(readFixture(f));
      expect(verdictBtf(b), f).toEqual(reference(b));
    }
  });

  it.skipIf(!existsSync('/sys/kernel/btf/vmlinux'))("agrees with the full parser on this kernel's BTF", () => {
    const raw = readFileSync('/sys/kernel/btf/vmlinux');
    expect(verdictBtf(raw)).toEqual(reference(raw));
  });

  it('refuses a blob that is not BTF', () => {
    expect(() => verdictBtf(Buffer.alloc(64))).toThrow(/bad header/);
  });
});

describe('the policy names more keyrings for enforce (enforceKeyrings)', () => {
  const dir = makeTmpDir('bpfseal-enforce-policy-');
  writeKeyFiles(dir, 'k', 'ecdsa-p256');
  const parse = (extra: Record<string, unknown>) => parsePolicy(JSON.stringify({ version: 1, signers: [{ name: 'k', key: 'k.pub', plans: ['*'], programTypes: ['*'] }], ...extra }), join(dir, 'p.json'));

  it('keeps the specs as given; absent means none', () => {
    expect(parse({ enforceKeyrings: ['builtin', 'bpfseal', '-3', '123456'] }).enforceKeyrings).toEqual(['builtin', 'bpfseal', '-3', '123456']);
    expect(parse({}).enforceKeyrings).toBeUndefined();
  });

  it.each([
    ['a number', { enforceKeyrings: [5] }],
    ['an empty name', { enforceKeyrings: [''] }],
    ['a control character', { enforceKeyrings: ['a\nb'] }],
    ['a repeated entry', { enforceKeyrings: ['builtin', 'builtin'] }],
    ['not an array', { enforceKeyrings: 'builtin' }],
    ['null', { enforceKeyrings: null }],
  ])('%s is refused (POLICY_INVALID, naming the field)', (_w, extra) => {
    expect(() => parse(extra)).toThrow(expect.objectContaining({ code: 'POLICY_INVALID', message: expect.stringContaining('enforceKeyrings') }));
  });
});
