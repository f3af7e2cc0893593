/**
 * The bpf(2) layer's own rules (src/kernel/): a load refused without a log is retried with one, and
 * - a retry that loads keeps its descriptor (btfLoad used to drop it: a leaked fd per transient failure);
 * - a retry that fails for its own reason (ENOSPC: the log did not fit) does not replace the first
 *   call's error (progLoad used to throw the retry's);
 * - an Fd collected while open is closed by the FinalizationRegistry safety net and reported.
 * The first or second call is made to fail by wrapping sys.bpf; everything else is the real kernel.
 */
import { openSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { btfLoad, progLoad } from '../src/kernel/bpf.js';
import { ERRNO, KernelError } from '../src/kernel/errors.js';
import { Fd, leakedFds, openFds } from '../src/kernel/fd.js';
import { bpf, CMD } from '../src/kernel/sys.js';
import { probeBpf } from './helpers/kernel.js';
import { cleanupTmpDirs, makeTmpDir } from './helpers/paths.js';

vi.mock('../src/kernel/sys.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/kernel/sys.js')>();
  return { ...real, bpf: vi.fn(real.bpf) };
});

const probe = probeBpf();
if (!probe.ok) console.warn(`kernel-layer.test.ts: real-kernel tests skipped: ${probe.why}`);

const realBpf = (await vi.importActual<typeof import('../src/kernel/sys.js')>('../src/kernel/sys.js')).bpf;
const fdCount = () => readdirSync('/proc/self/fd').length;

/** The smallest valid BTF: one 32-bit signed int named "int" (btf.rst, BTF_KIND_INT). */
function minimalBtf(): Buffer {
  const strings = Buffer.from('\0int\0', 'latin1');
  const types = Buffer.alloc(16);
  types.writeUInt32LE(1, 0); // name_off "int"
  types.writeUInt32LE(1 << 24, 4); // info: kind INT, vlen 0
  types.writeUInt32LE(4, 8); // size
  types.writeUInt32LE((1 << 24) | 32, 12); // BTF_INT_SIGNED, offset 0, 32 bits
  const hdr = Buffer.alloc(24);
  hdr.writeUInt16LE(0xeb9f, 0);
  hdr.writeUInt8(1, 2); // version
  hdr.writeUInt32LE(24, 4); // hdr_len
  hdr.writeUInt32LE(0, 8); // type_off
  hdr.writeUInt32LE(types.length, 12);
  hdr.writeUInt32LE(types.length, 16); // str_off
  hdr.writeUInt32LE(strings.length, 20);
  return Buffer.concat([hdr, types, strings]);
}

afterEach(() => {
  cleanupTmpDirs();
  vi.mocked(bpf).mockReset();
  vi.mocked(bpf).mockImplementation(realBpf);
});

describe.skipIf(!probe.ok)('retries with a log', () => {
  it('btfLoad: a refusal the retry does not repeat (EAGAIN) gives the retry\'s descriptor, and leaks none', () => {
    const before = fdCount();
    vi.mocked(bpf).mockClear();
    vi.mocked(bpf).mockImplementationOnce((cmd) => {
      expect(cmd).toBe(CMD.BTF_LOAD);
      throw new KernelError('BPF_BTF_LOAD', ERRNO.EAGAIN);
    });
    const fd = btfLoad(minimalBtf());
    expect(vi.mocked(bpf)).toHaveBeenCalledTimes(2);
    expect(fd).toBeInstanceOf(Fd);
    expect(fd.value).toBeGreaterThan(2);
    expect(fdCount()).toBe(before + 1);
    fd.close();
    expect(fdCount()).toBe(before);
    expect(openFds()).toEqual([]);
  });

  it('btfLoad: refused twice, the first error is thrown with the log the retry wrote', () => {
    const bad = minimalBtf();
    bad.writeUInt32LE(0x1f << 24, 24 + 4); // type 1's info: an unknown kind
    const before = fdCount();
    const e = (() => {
      try {
        btfLoad(bad);
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(KernelError);
    expect((e as KernelError).errno).toBe(ERRNO.EINVAL);
    expect((e as KernelError).log).toMatch(/kind/i);
    expect(fdCount()).toBe(before);
  });

  it('progLoad: the first refusal (EACCES from the verifier) is thrown, not the retry\'s ENOSPC, with the verifier log', () => {
    const insns = Buffer.from('9500000000000000', 'hex'); // exit without setting r0: "R0 !read_ok"
    vi.mocked(bpf)
      .mockImplementationOnce(realBpf)
      .mockImplementationOnce((cmd, attr, keep) => {
        expect(cmd).toBe(CMD.PROG_LOAD);
        try {
          realBpf(cmd, attr, keep); // the kernel writes its log, then refuses again
        } catch {
          /* as expected */
        }
        throw new KernelError('BPF_PROG_LOAD', ERRNO.ENOSPC);
      });
    let thrown: unknown;
    try {
      progLoad({ type: 1, insns, license: 'GPL', kernVersion: 0, flags: 0, name: 'bpfseal_test', expectedAttachType: 0, fdArray: [] }).close();
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(KernelError);
    const k = thrown as KernelError;
    expect(k.errno).toBe(ERRNO.EACCES);
    expect(k.code).toBe('KERNEL_EACCES');
    expect(k.retryErrno).toBe(ERRNO.ENOSPC);
    expect(k.log).toMatch(/R0 !read_ok/);
    const at = k.at("load program 'bpfseal_test'");
    expect(at.cause).toBe(k);
    expect(at.retryErrno).toBe(ERRNO.ENOSPC);
  });
});

const bindable = process.platform === 'linux' && process.arch === 'x64';
if (!bindable) console.warn('kernel-layer.test.ts: the Fd safety net test skipped (libc is bound for Linux x86-64 only)');

describe.skipIf(!bindable)('Fd safety net', () => {
  it('an Fd collected while open is closed and reported in leakedFds()', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const file = join(makeTmpDir(), 'leaked');
    writeFileSync(file, '');
    const raw = openSync(file, 'r');
    // The number may be reused once closed: what matters is that no descriptor refers to the file.
    const stillOpen = () => readdirSync('/proc/self/fd').some((n) => { try { return readlinkSync(`/proc/self/fd/${n}`) === file; } catch { return false; } });
    expect(stillOpen()).toBe(true);
    (() => {
      new Fd(raw, 'test: dropped while open');
    })();
    for (let i = 0; i < 100 && !leakedFds().some((l) => l.fd === raw); i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(leakedFds()).toContainEqual({ fd: raw, what: 'test: dropped while open' });
    expect(stillOpen()).toBe(false);
  });

  it('an Fd closed by its owner is not reported', async () => {
    const gc = runInNewContext('gc') as () => void;
    const raw = openSync('/dev/null', 'r');
    (() => {
      new Fd(raw, 'test: closed').close();
    })();
    for (let i = 0; i < 5; i++) {
      gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(leakedFds().filter((l) => l.what === 'test: closed')).toEqual([]);
  });
});
