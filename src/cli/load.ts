/** `bpfseal load <release> [--key|--policy] (--pin <dir> | --dry-run) [--json]`, `bpfseal unload <dir>`, `bpfseal recover`. */
import type { Command } from 'commander';
import type { LoaderChoice } from '../runtime/load.js';
import { BpfsealError } from '../errors.js';
import { readInput } from './io.js';
import { printJson } from './output.js';
import { addTrustOptions, resolvePolicy, statePath, type TrustOpts } from './trust.js';

function parseMaxEntries(list: string[] | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of list ?? []) {
    const m = /^([^=]+)=(\d+)$/.exec(s);
    if (!m || Number(m[2]) <= 0 || Number(m[2]) > 0xffffffff) throw new BpfsealError('usage', 'USAGE_MAX_ENTRIES', `--max-entries ${s}: expected <map>=<positive integer>`);
    if (out.has(m[1])) throw new BpfsealError('usage', 'USAGE_MAX_ENTRIES', `--max-entries ${m[1]} given twice`);
    out.set(m[1], Number(m[2]));
  }
  return out;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];
const HOST_LOG_HELP = 'host load log (default: $BPFSEAL_HOST_LOG, else /var/lib/bpfseal/host-log)';

export function registerLoad(program: Command): void {
  addTrustOptions(
    program
      .command('load')
      .description('verify a release against the trust policy, then replay its plan into the kernel (all or nothing, recorded in the host log)')
      .argument('<release>', '.bpfseal release file'),
  )
    .option('--pin <dir>', 'pin programs at <dir>/<program> and maps at <dir>/maps/<map> (on bpffs)')
    .option('--dry-run', 'replay against the model kernel: no privileges, nothing loaded, pinned or recorded')
    .option('--max-entries <map=N>', 'size a map declared with max_entries 0 (repeatable)', collect)
    .option('--host-log <dir>', HOST_LOG_HELP)
    .option('--loader <kernel|user|auto>', 'kernel: run the plan\'s loader program in the kernel; user: replay from user space; auto: the kernel loader where the kernel verifies its signature', 'auto')
    .option('--json', 'print the load record as JSON')
    .action(async (release: string, opts: TrustOpts & { pin?: string; dryRun?: boolean; maxEntries?: string[]; json?: boolean; hostLog?: string; loader: string }) => {
      if (!['kernel', 'user', 'auto'].includes(opts.loader)) throw new BpfsealError('usage', 'USAGE_LOADER', `--loader ${opts.loader}: use kernel, user or auto`);
      if (!opts.pin && !opts.dryRun) {
        throw new BpfsealError('usage', 'USAGE_NO_PIN', 'load needs --pin <bpffs dir> (objects would die with this process) or --dry-run');
      }
      const maxEntries = parseMaxEntries(opts.maxEntries);
      const policy = await resolvePolicy(opts);
      const { loadRelease } = await import('../runtime/load.js'); // on use: heavy (Sigstore, koffi)
      const { hostLogDir } = await import('../hostlog/hostlog.js');
      const bytes = readInput(release, { kind: 'release' }); // read once: verification and replay use these bytes
      const r = await loadRelease(bytes, {
        policy, statePath: statePath(opts, policy), pinDir: opts.dryRun ? undefined : opts.pin, dryRun: opts.dryRun, maxEntries,
        hostLog: opts.dryRun ? undefined : hostLogDir(opts.hostLog), release, loader: opts.loader as LoaderChoice,
        preflight: { logs: opts.log },
      });
      const rec = r.loaded.record;
      const out = {
        ...rec, version: r.verified.version, signer: r.verified.signer, loader: r.loader, kernelVerified: r.kernelVerified, notes: r.notes,
        ...(r.verified.preflight ? { preflight: r.verified.preflight } : {}),
        pins: r.committed?.pins ?? [], ...(r.committed ? { loadId: r.committed.loadId, pinDir: r.committed.pinDir, hostLogIndex: r.committed.hostLogIndex } : {}),
      };
      if (opts.json) {
        printJson(out);
        return;
      }
      for (const n of r.notes) process.stderr.write(`note: ${n}\n`);
      process.stdout.write(`${opts.dryRun ? 'would load' : 'loaded'} ${out.plan} v${out.version} ${out.digest} (signer ${out.signer.name})\n`);
      const verifiedBy = { loader: 'the kernel verified the signed loader (insns || blob)', programs: 'the kernel verified each program signature (instructions only)', none: 'not verified by the kernel' }[r.kernelVerified];
      process.stdout.write(`  loader ${r.loader}: ${verifiedBy}\n`);
      for (const p of out.programs) process.stdout.write(`  program ${p.name}  id ${p.id}  tag ${p.tag}\n`);
      for (const m of out.maps) process.stdout.write(`  map ${m.name}  id ${m.id}\n`);
      for (const f of out.fixups) process.stdout.write(`  fix-up ${f.kind} ${f.name}${f.program ? ` in ${f.program}` : ''} = ${f.value}\n`);
      if (r.committed) process.stdout.write(`  pinned under ${r.committed.pinDir}\n  recorded as host log entry ${r.committed.hostLogIndex}\n`);
    });

  program
    .command('unload')
    .description('remove exactly what a recorded `load --pin <dir>` pinned there (the kernel frees unreferenced objects)')
    .argument('<dir>', 'pin directory given to load')
    .option('--host-log <dir>', HOST_LOG_HELP)
    .option('--json', 'print the removed pins as JSON')
    .action(async (dir: string, opts: { json?: boolean; hostLog?: string }) => {
      const { unloadDir } = await import('../runtime/unload.js');
      const { hostLogDir } = await import('../hostlog/hostlog.js');
      const r = await unloadDir(dir, hostLogDir(opts.hostLog));
      if (opts.json) printJson(r);
      else process.stdout.write(`removed ${r.removed.length} pin(s) from ${r.dir}\n`);
    });

  program
    .command('recover')
    .description('finish or undo loads that a crash interrupted (every load and unload does this first)')
    .option('--host-log <dir>', HOST_LOG_HELP)
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean; hostLog?: string }) => {
      const { recoverHost } = await import('../runtime/unload.js');
      const { hostLogDir } = await import('../hostlog/hostlog.js');
      const recovered = await recoverHost(hostLogDir(opts.hostLog));
      const stuck = recovered.filter((r) => r.outcome === 'stuck');
      if (opts.json) printJson({ ok: stuck.length === 0, recovered, ...(stuck.length ? { code: 'RECOVERY_STUCK' } : {}) });
      else if (!recovered.length) process.stdout.write('nothing to recover\n');
      else for (const r of recovered) process.stdout.write(`${r.outcome} load ${r.loadId}${r.pinDir ? ` (${r.pinDir})` : ''}${r.problems ? `: ${r.problems.join('; ')}` : ''}\n`);
      if (stuck.length) {
        // Exit 1: something stays pinned that recovery could not remove; the markers stay for a retry.
        if (!opts.json) process.stderr.write(`bpfseal: RECOVERY_STUCK: ${stuck.length} interrupted load(s) could not be undone; their markers stay in ${hostLogDir(opts.hostLog)}/loads-pending\n`);
        process.exitCode = 1;
      }
    });
}
