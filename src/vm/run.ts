/**
 * Boot a kernel under qemu with the bpfseal initramfs, run one command inside, and return what it
 * printed, its exit code, the files it left in /out, and the guest console. Every run has its own
 * temporary directory and qemu process, so runs may overlap; qemu is killed on timeout, on abort and
 * when this process exits, and the directory is always removed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmError } from './errors.js';
import { baseInitramfs, runArchive, type BaseOptions } from './initramfs.js';
import { resolveKernel, type Kernel, type KernelOptions } from './kernels.js';
import { findQemu, qemuArgs } from './qemu.js';
import { parseResultStream } from './result.js';

export interface RunOptions {
  /** Shell script (string) or argv (array); runs in /opt/bpfseal. */
  command: string | string[];
  /** Guest path → content, added to the guest before /init runs. */
  files?: Record<string, Buffer | string>;
  env?: Record<string, string>;
  /** The command's time limit inside the guest (default 120 s); it is killed, and the run reports timedOut. */
  timeoutMs?: number;
  /**
   * Run the command in a session keyring of its own (default true), so `keyctl.js add-cert x -3`
   * and a later `bpfseal load` in another process see the same keyring. Costs one node start.
   */
  sessionKeyring?: boolean;
  /**
   * Boots to retry when the kernel dies or hangs before /init (default 1). Under TCG a Debian
   * kernel oopsed once in ~40 boots here (in code being live-patched, "Fatal exception in
   * interrupt"), then booted fine: emulation, not the kernel. A command is never re-run.
   */
  bootRetries?: number;
  /** Time from starting qemu to /init (default 120 s: TCG on a loaded machine is slow). */
  bootTimeoutMs?: number;
  memoryMiB?: number;
  cpus?: number;
  /** Extra kernel command line. */
  append?: string;
  /** How to resolve a kernel given as a spec string. */
  kernel?: KernelOptions;
  base?: BaseOptions;
  signal?: AbortSignal;
  /** Live guest console, e.g. to stream a boot while debugging. */
  onConsole?: (text: string) => void;
}

export interface RunResult {
  exitCode: number;
  /** The guest's watchdog killed the command at timeoutMs. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** Files the command wrote under /out, by path relative to /out. */
  files: Record<string, Buffer>;
  /** Kernel messages and init's markers (ttyS0). */
  console: string;
  /** Host time from starting qemu to /init running. */
  bootMs: number;
  /** Host time the command ran (init's start marker to its exit marker). */
  commandMs: number;
  /** Host time of the whole call: kernel and initramfs preparation, boot, run, power-off. */
  totalMs: number;
  kernel: Kernel;
  /** The guest kernel's uptime when /init started, in seconds (its own clock). */
  guestInitUptime: number;
  /** Boots it took (more than 1 when an early crash was retried; the consoles of those are in `console`). */
  boots: number;
}

const CONSOLE_LIMIT = 1 << 20;
const live = new Set<ChildProcess>();
/** Temp dirs of runs in progress, removed on the way out when `finally` will not run. */
const dirs = new Set<string>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function killAll(): void {
  for (const c of live) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

/**
 * A signal that ends this process must end its VMs too. Our handler is there only while VMs run,
 * and when it is the only one it re-raises the signal, so the default (exit) still happens.
 */
function onSignal(sig: NodeJS.Signals): void {
  killAll();
  if (process.listenerCount(sig) === 1) {
    unhook();
    process.kill(process.pid, sig);
  }
}

function hook(): void {
  process.on('exit', killAll);
  for (const s of SIGNALS) process.on(s, onSignal);
}

function unhook(): void {
  process.off('exit', killAll);
  for (const s of SIGNALS) process.off(s, onSignal);
}

/** qemu children must not outlive this process (a killed test worker, an uncaught exception, ^C). */
function track(child: ChildProcess): void {
  if (live.size === 0) hook();
  live.add(child);
  child.once('exit', () => {
    live.delete(child);
    if (live.size === 0) unhook();
  });
}

export async function runInVm(kernel: Kernel | string, opts: RunOptions): Promise<RunResult> {
  const t0 = Date.now();
  const k = typeof kernel === 'string' ? await resolveKernel(kernel, opts.kernel) : kernel;
  const qemu = findQemu();
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const base = await baseInitramfs({ ...opts.base, cacheDir: opts.base?.cacheDir ?? opts.kernel?.cacheDir });
  const run = await runArchive({
    command: opts.command, env: opts.env, files: opts.files, timeoutSec: timeoutMs / 1000, sessionKeyring: opts.sessionKeyring ?? true,
  });
  const dir = mkdtempSync(join(tmpdir(), 'bpfseal-vm-'));
  dirs.add(dir);
  try {
    const initrd = join(dir, 'initrd');
    copyFileSync(base.path, initrd);
    appendFileSync(initrd, run);
    const paths = { result: join(dir, 'result'), serial: join(dir, 'serial1') };
    const args = qemuArgs({
      vmlinuz: k.vmlinuz, initrd, resultPath: paths.result, serialPath: paths.serial,
      memoryMiB: opts.memoryMiB ?? 2048, cpus: opts.cpus ?? 2, append: opts.append,
    });
    const retries = opts.bootRetries ?? 1;
    let b: Boot | undefined;
    let earlier = '';
    let boots = 0;
    while (!b) {
      boots++;
      try {
        b = await bootAndWait(qemu, args, k, timeoutMs, opts);
      } catch (e) {
        const early = e instanceof VmError && e.step === 'boot' && (e.code === 'VM_BOOT_FAILED' || e.code === 'VM_TIMEOUT');
        if (!early || boots > retries || opts.signal?.aborted) throw e;
        earlier += `--- boot ${boots} failed (${e.code}), retried ---\n${e.consoleTail ?? ''}\n`;
        for (const p of [paths.result, paths.serial]) rmSync(p, { force: true });
      }
    }
    const raw = readChannel(paths.result, paths.serial);
    let parsed;
    try {
      parsed = parseResultStream(raw);
    } catch (e) {
      if (!(e instanceof VmError)) throw e;
      // No exit marker: the guest died (or powered off) while the command ran; the console says how.
      if (!b.exitMarker) throw new VmError('guest', 'VM_GUEST_DIED', `${k.release}: the guest stopped before the command finished (qemu exited with ${b.exit})`, { cause: e, console: b.console });
      throw new VmError('result', e.code, `${k.release}: ${e.message}`, { cause: e, console: b.console });
    }
    return {
      exitCode: parsed.exitCode, timedOut: parsed.timedOut,
      stdout: parsed.stdout.toString('utf8'), stderr: parsed.stderr.toString('utf8'), files: parsed.files,
      console: earlier + b.console, bootMs: b.bootMs, commandMs: b.commandMs, totalMs: Date.now() - t0,
      kernel: k, guestInitUptime: b.initUptime, boots,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    dirs.delete(dir);
  }
}

/** The virtio port's file if the guest wrote there, else ttyS1's. */
function readChannel(result: string, serial: string): Buffer {
  if (existsSync(result) && statSync(result).size > 0) return readFileSync(result);
  return existsSync(serial) ? readFileSync(serial) : Buffer.alloc(0);
}

interface Boot {
  console: string;
  bootMs: number;
  commandMs: number;
  initUptime: number;
  exitMarker: boolean;
  exit: string;
}

function bootAndWait(qemu: string, args: string[], k: Kernel, timeoutMs: number, opts: RunOptions): Promise<Boot> {
  const bootTimeoutMs = opts.bootTimeoutMs ?? 120_000;
  return new Promise((resolvePromise, reject) => {
    const start = Date.now();
    const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let text = '';
    let stderr = '';
    let initAt = 0;
    let initUptime = 0;
    let exitAt = 0;
    let failure: VmError | undefined;
    const kill = (e: VmError): void => {
      failure ??= e;
      child.kill('SIGKILL');
    };
    const deadline = (ms: number, what: string): NodeJS.Timeout =>
      setTimeout(() => kill(new VmError(initAt ? 'guest' : 'boot', 'VM_TIMEOUT', `${k.release}: ${what} within ${(ms / 1000).toFixed(1)} s; qemu killed`, { console: text })), ms);
    // Before /init: the boot budget. After: the command's budget plus time to send results.
    let timer = deadline(bootTimeoutMs, 'the kernel did not reach /init');
    const onAbort = (): void => kill(new VmError(initAt ? 'guest' : 'boot', 'VM_ABORTED', `${k.release}: run aborted; qemu killed`, { console: text }));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => {
      opts.onConsole?.(s);
      text += s;
      if (text.length > CONSOLE_LIMIT) text = text.slice(-CONSOLE_LIMIT);
      if (!initAt) {
        const m = /@bpfseal init ([0-9.]+)/.exec(text);
        if (m) {
          initAt = Date.now();
          initUptime = Number(m[1]);
          clearTimeout(timer);
          timer = deadline(timeoutMs + 60_000, 'the command and its results did not finish');
        }
      }
      if (!exitAt && /@bpfseal exit /.test(text)) exitAt = Date.now();
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      stderr = (stderr + s).slice(-16_384);
    });
    child.once('error', (e) => kill(new VmError('qemu', 'VM_QEMU_FAILED', `${qemu} failed to start: ${e.message}`, { cause: e })));
    child.once('close', (code, sig) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (failure) return reject(failure);
      const exit = sig ? `signal ${sig}` : `code ${code}`;
      if (!initAt) {
        const why = stderr.trim() ? `qemu: ${stderr.trim()}` : 'the kernel did not reach /init (see the console)';
        return reject(new VmError('boot', 'VM_BOOT_FAILED', `${k.release} (${k.vmlinuz}): ${why}; qemu exited with ${exit}`, { console: text }));
      }
      resolvePromise({
        console: text, bootMs: initAt - start, commandMs: (exitAt || Date.now()) - initAt, initUptime,
        exitMarker: exitAt > 0, exit,
      });
    });
  });
}
