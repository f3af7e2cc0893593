/**
 * What a kernel refusal says it means: signed loads fail for reasons of their own (signing.rst), and a
 * hint must not blame the signature for what the verifier refused (seen on 7.2.12: maps_btf.o's xdp
 * program refused by the verifier, EACCES, reported as an exclusive-hash mismatch).
 */
import { describe, expect, it } from 'vitest';
import { KernelError } from '../src/kernel/errors.js';

const signed = (errno: number, log: string, keyringId = -3) => {
  const e = new KernelError('BPF_PROG_LOAD', errno, undefined, log);
  e.signed = true;
  e.keyringId = keyringId;
  return e.at("load program 'p'");
};

describe('hints of signed-load refusals', () => {
  it("EACCES with a verifier trace is the verifier's refusal, not the signature's", () => {
    const log = '61: (85) call bpf_map_peek_elem#89\nreading from stack R2 off -52+0 size 4, slot poisoned by dead code elimination\nprocessed 56 insns (limit 1000000) max_states_per_insn 0 total_states 3 peak_states 3 mark_read 0\n';
    const e = signed(13, log);
    expect(e.message).toContain('the verifier refused the program');
    expect(e.message).not.toContain('exclusive hash');
    expect(e.message).toContain('slot poisoned by dead code elimination');
  });

  it('EACCES without a verifier trace points at the exclusive map hash or an uncovered map', () => {
    expect(signed(13, '').message).toContain("a map's exclusive hash does not match the program");
  });

  it('ENOKEY names the keyring; EKEYREJECTED says the bytes changed or another key signed', () => {
    expect(signed(126, '', 42).message).toMatch(/not in keyring 42/);
    expect(signed(129, '').message).toMatch(/does not verify over the bytes loaded/);
  });

  it('EPERM after a passing signature check is an LSM refusal (bpfseal enforce)', () => {
    expect(signed(1, 'signature verification passed\n').message).toMatch(/LSM policy such as bpfseal enforce/);
    expect(signed(1, 'metadata map must be frozen\n').message).toMatch(/frozen, exclusive array maps/);
  });
});
