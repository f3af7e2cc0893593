#!/usr/bin/env node
/**
 * The VM harness by hand, until `bpfseal preflight --kernel` uses it:
 *   node dist/vm/cli.js fetch 7.3.4 6.18.15 linux-image-7.2.12+deb14-cloud-amd64   fill the cache
 *   node dist/vm/cli.js list                                                     what the cache holds
 *   node dist/vm/cli.js run 7.3.4 [--file host:guest]... [--timeout s] -- uname -r
 * `run` prints the command's stdout and stderr, copies /out files into --out, and exits with the
 * command's exit code (3 when the VM itself failed, with the console tail).
 */
import { Command } from 'commander';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BpfsealError } from '../errors.js';
import { cachedKernels, defaultCacheDir, resolveKernel } from './kernels.js';
import { runInVm } from './run.js';

const log = (m: string): void => void process.stderr.write(`${m}\n`);

function program(): Command {
  const p = new Command().name('bpfseal-vm').description('boot Debian kernels under qemu with bpfseal inside');
  p.command('fetch <spec...>')
    .description('download kernel packages into the cache ($BPFSEAL_VM_CACHE or ~/.cache/bpfseal/vm)')
    .action(async (specs: string[]) => {
      for (const s of specs) {
        const k = await resolveKernel(s, { log });
        process.stdout.write(`${k.release}  ${k.package ?? k.vmlinuz}  config ${k.configSha256 ?? 'none'}  (${k.source})\n`);
      }
    });
  p.command('list')
    .description('kernels in the cache')
    .action(() => {
      for (const k of cachedKernels()) process.stdout.write(`${k.release}  ${k.package}  ${k.version}  config ${k.configSha256 ?? 'none'}\n`);
      process.stderr.write(`cache: ${defaultCacheDir()}\n`);
    });
  p.command('run <spec> <command...>')
    .description('boot <spec> and run <command> in /opt/bpfseal')
    .option('--file <host:guest>', 'copy a host file into the guest (repeatable)', (v: string, a: string[]) => [...a, v], [])
    .option('--out <dir>', 'write the files the command left in /out here')
    .option('--timeout <seconds>', 'time limit for the command', '120')
    .option('--memory <MiB>', 'guest memory', '2048')
    .option('--console', 'stream the guest console to stderr')
    .action(async (spec: string, command: string[], o: { file: string[]; out?: string; timeout: string; memory: string; console?: boolean }) => {
      const files: Record<string, Buffer> = {};
      for (const f of o.file) {
        const at = f.lastIndexOf(':');
        if (at <= 0) throw new TypeError(`--file ${f}: expected host:guest`);
        files[f.slice(at + 1)] = readFileSync(f.slice(0, at));
      }
      const r = await runInVm(spec, {
        command, files, timeoutMs: Number(o.timeout) * 1000, memoryMiB: Number(o.memory), kernel: { log }, base: { log },
        ...(o.console ? { onConsole: (s: string) => void process.stderr.write(s) } : {}),
      });
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      for (const [name, data] of Object.entries(r.files)) {
        if (!o.out) continue;
        mkdirSync(dirname(join(o.out, name)), { recursive: true });
        writeFileSync(join(o.out, name), data);
      }
      log(`[vm] ${r.kernel.release}: boot ${r.bootMs} ms, command ${r.commandMs} ms, total ${r.totalMs} ms, exit ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}`);
      process.exitCode = r.exitCode;
    });
  return p;
}

program()
  .parseAsync(process.argv)
  .catch((e: unknown) => {
    process.stderr.write(`bpfseal-vm: ${(e as Error).message}\n`);
    process.exitCode = e instanceof BpfsealError ? e.exitCode : 2;
  });
