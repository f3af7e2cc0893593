/**
 * runInVm when things go wrong, on one real kernel: exit codes and streams, the guest watchdog,
 * a kernel that cannot reach /init (the console tail is in the error), a boot timeout, an abort,
 * the ttyS1 fallback channel, overlapping runs, and that no qemu process or temp dir is left.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { VmError } from '../../src/vm/errors.js';
import { runInVm, type RunOptions } from '../../src/vm/run.js';
import { DIST } from '../helpers/paths.js';
import { availableKernels, vmSetup } from './helpers.js';

const { setup, why } = vmSetup();
const kernels = availableKernels(setup, why);
// The newest kernel under test; any of them would do.
const kernel = kernels.find((k) => k.release.startsWith('7.3.')) ?? kernels[0];
const quick: Partial<RunOptions> = { sessionKeyring: false, bootRetries: 0 };
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Our temp dirs, and the qemu processes whose parent is this process. */
const ourTemps = (): string[] => readdirSync(tmpdir()).filter((f) => f.startsWith('bpfseal-vm-') && !f.startsWith('bpfseal-vm-release-'));
function qemuChildren(): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).flatMap((p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const [comm, rest] = [stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), stat.slice(stat.lastIndexOf(')') + 2).split(' ')];
      return comm.startsWith('qemu-system') && Number(rest[1]) === process.pid ? [Number(p)] : [];
    } catch {
      return [];
    }
  });
}

let tempsBefore: string[] = [];
beforeAll(() => {
  tempsBefore = ourTemps();
});
afterAll(() => {
  if (!kernel) return;
  expect(qemuChildren()).toEqual([]);
  expect(ourTemps().filter((t) => !tempsBefore.includes(t))).toEqual([]);
});

describe.runIf(kernel)(`runInVm on ${kernel?.release}`, () => {
  it('returns stdout, stderr and the exit code apart; argv, env and files arrive as given', async () => {
    const r = await runInVm(kernel!, {
      ...quick, command: ['sh', '-c', 'echo "$1|$V|$(pwd)|$(cat /root/in.txt)"; echo oops >&2; exit 7', 'sh', "it's a $test"],
      env: { V: 'x y' }, files: { '/root/in.txt': 'input' },
    });
    expect(r.exitCode).toBe(7);
    expect(r.stdout).toBe("it's a $test|x y|/opt/bpfseal|input\n");
    expect(r.stderr).toBe('oops\n');
    expect(r.timedOut).toBe(false);
    expect(r.console).toContain('@bpfseal init');
    expect(r.bootMs).toBeGreaterThan(0);
  });

  it('kills a command at its time limit and still returns what it printed', async () => {
    const r = await runInVm(kernel!, { ...quick, command: 'echo before; sleep 600 & sleep 600; echo never', timeoutMs: 2_000 });
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).toBe(137);
    expect(r.stdout).toBe('before\n');
  });

  it('reports a kernel that cannot reach /init with its console tail', async () => {
    const e = await runInVm(kernel!, { ...quick, command: 'true', append: 'rdinit=/nonexistent' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(VmError);
    expect(e).toMatchObject({ code: 'VM_BOOT_FAILED', step: 'boot', exitCode: 3 });
    expect((e as VmError).message).toContain(kernel!.release);
    expect((e as VmError).consoleTail).toMatch(/Kernel panic|No working init|Unable to mount root/);
  });

  it('reports a kernel that dies during the command, with the panic in the console tail', async () => {
    const e = await runInVm(kernel!, { ...quick, command: 'echo c > /proc/sysrq-trigger; sleep 60' }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'VM_GUEST_DIED', step: 'guest' });
    // The panic line, or (when the console tail starts inside the long call trace) the trace's own frame.
    expect((e as VmError).consoleTail).toMatch(/sysrq triggered crash|sysrq_handle_crash/);
  });

  it('kills qemu when the boot takes longer than allowed', async () => {
    const e = await runInVm(kernel!, { ...quick, command: 'true', bootTimeoutMs: 300 }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'VM_TIMEOUT', step: 'boot' });
    expect(qemuChildren()).toEqual([]);
  });

  it('kills qemu on abort', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 1_500);
    const e = await runInVm(kernel!, { ...quick, command: 'sleep 600', signal: ac.signal }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'VM_ABORTED' });
    expect(qemuChildren()).toEqual([]);
  });

  it('falls back to ttyS1 when the kernel has no virtio console, binary-safe', async () => {
    const blob = randomBytes(1 << 20);
    const r = await runInVm(kernel!, {
      ...quick, append: 'initcall_blacklist=virtio_console_init', files: { '/root/b': blob },
      command: 'test ! -e /sys/class/virtio-ports && cp /root/b /out/b',
    });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.console).toContain('@bpfseal sent /dev/ttyS1');
    expect(sha(r.files.b)).toBe(sha(blob));
  });

  it('a signal that ends the host process ends its qemu and removes its temp dir', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'bpfseal-vmsig-'));
    const script = `import { runInVm } from ${JSON.stringify(join(DIST, 'vm/run.js'))};
      runInVm(${JSON.stringify(kernel!.vmlinuz)}, { command: 'sleep 600', sessionKeyring: false }).catch(() => {});`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, TMPDIR: tmp }, stdio: 'ignore' });
    // qemu's command line names the run's temp dir, which is under `tmp`.
    const qemus = (): string[] => readdirSync('/proc').filter((p) => {
      try {
        return /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(tmp) && readFileSync(`/proc/${p}/comm`, 'utf8').startsWith('qemu');
      } catch {
        return false;
      }
    });
    for (let i = 0; i < 100 && qemus().length === 0; i++) await sleep(100);
    expect(qemus().length).toBe(1);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.once('exit', (c, sig) => r(sig ? 128 + 15 : c)));
    expect(code).toBe(143);
    for (let i = 0; i < 100 && qemus().length > 0; i++) await sleep(100);
    expect(qemus()).toEqual([]);
    expect(readdirSync(tmp)).toEqual([]);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('runs VMs side by side without sharing files', async () => {
    const [a, b] = await Promise.all(['a', 'b'].map((n) => runInVm(kernel!, { ...quick, command: `echo ${n} > /out/who; echo ${n}` })));
    expect([a.stdout, b.stdout]).toEqual(['a\n', 'b\n']);
    expect([a.files.who.toString(), b.files.who.toString()]).toEqual(['a\n', 'b\n']);
  });
});
