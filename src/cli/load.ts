/** `bpfseal load <release> [--key|--policy] (--pin <dir> | --dry-run) [--json]` and `bpfseal unload <dir>`. */
import type { Command } from 'commander';
import { BpfsealError } from '../errors.js';
import { checkPinDir, ensureBpffs, unpinDir } from '../runtime/bpffs.js';
import { readInput } from './io.js';
import { printJson } from './output.js';
import { addTrustOptions, resolvePolicy, statePath, type TrustOpts } from './trust.js';

function parseMaxEntries(list: string[] | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of list ?? []) {
    const m = /^([^=]+)=(\d+)$/.exec(s);
    if (!m || Number(m[2]) <= 0 || Number(m[2]) > 0xffffffff) throw new BpfsealError('usage', 'USAGE_MAX_ENTRIES', `--max-entries ${s}: expected <map>=<positive integer>`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerLoad(program: Command): void {
  addTrustOptions(
    program
      .command('load')
      .description('verify a release against the trust policy, then replay its plan into the kernel (all or nothing)')
      .argument('<release>', '.bpfseal release file'),
  )
    .option('--pin <dir>', 'pin programs at <dir>/<program> and maps at <dir>/maps/<map> (on bpffs)')
    .option('--dry-run', 'replay against the model kernel: no privileges, nothing loaded or pinned')
    .option('--max-entries <map=N>', 'size a map declared with max_entries 0 (repeatable)', collect)
    .option('--host-log <dir>', 'host load log that records this decision (default: $BPFSEAL_HOST_LOG, else /var/lib/bpfseal/host-log)')
    .option('--json', 'print the load record as JSON')
    .action(async (release: string, opts: TrustOpts & { pin?: string; dryRun?: boolean; maxEntries?: string[]; json?: boolean; hostLog?: string }) => {
      if (!opts.pin && !opts.dryRun) {
        throw new BpfsealError('usage', 'USAGE_NO_PIN', 'load needs --pin <bpffs dir> (objects would die with this process) or --dry-run');
      }
      const maxEntries = parseMaxEntries(opts.maxEntries);
      const policy = await resolvePolicy(opts);
      if (opts.pin && !opts.dryRun) {
        ensureBpffs(opts.pin);
        checkPinDir(opts.pin);
      }
      const { loadRelease } = await import('../runtime/load.js'); // on use: heavy (Sigstore, koffi)
      const { decision, hostLogDir, recordDecision } = await import('../audit/hostlog.js');
      const hostLog = hostLogDir(opts.hostLog);
      const bytes = readInput(release, { kind: 'release' }); // read once: verification and replay use these bytes
      let r: Awaited<ReturnType<typeof loadRelease>>;
      try {
        r = loadRelease(bytes, { policy, statePath: statePath(opts, policy), pinDir: opts.dryRun ? undefined : opts.pin, dryRun: opts.dryRun, maxEntries });
      } catch (e) {
        // A refusal is a decision too (dry runs decide nothing and are not logged).
        if (!opts.dryRun && e instanceof BpfsealError) {
          await recordDecision(hostLog, decision({ decision: 'refused', release, code: e.code, reason: e.message })).catch((le: Error) => {
            process.stderr.write(`warning: could not record the refusal in the host log ${hostLog}: ${le.message}\n`);
          });
        }
        throw e;
      }
      r.loaded.close();
      if (!opts.dryRun) {
        const rec = r.loaded.record;
        try {
          await recordDecision(hostLog, decision({
            decision: 'allowed', release, plan: rec.plan, digest: rec.digest, version: r.verified.version, signer: r.verified.signer,
            programs: rec.programs, maps: rec.maps, fixups: rec.fixups, pins: rec.pins,
          }));
        } catch (e) {
          // An unrecorded load is not allowed to stay: undo it.
          r.loaded.rollback();
          throw new BpfsealError('input', 'HOST_LOG_FAILED', `could not record the load in the host log ${hostLog} (${(e as Error).message}); the load was undone`);
        }
      }
      const out = { ...r.loaded.record, version: r.verified.version, signer: r.verified.signer, notes: r.notes };
      if (opts.json) {
        printJson(out);
        return;
      }
      for (const n of r.notes) process.stderr.write(`note: ${n}\n`);
      process.stdout.write(`${opts.dryRun ? 'would load' : 'loaded'} ${out.plan} v${out.version} ${out.digest} (signer ${out.signer.name})\n`);
      for (const p of out.programs) process.stdout.write(`  program ${p.name}  id ${p.id}  tag ${p.tag}\n`);
      for (const m of out.maps) process.stdout.write(`  map ${m.name}  id ${m.id}\n`);
      for (const f of out.fixups) process.stdout.write(`  fix-up ${f.kind} ${f.name}${f.program ? ` in ${f.program}` : ''} = ${f.value}\n`);
      if (out.pins.length) process.stdout.write(`  pinned under ${opts.pin}\n`);
    });

  program
    .command('unload')
    .description('remove what `load --pin <dir>` pinned there (the kernel frees unreferenced objects)')
    .argument('<dir>', 'pin directory given to load')
    .option('--json', 'print the removed pins as JSON')
    .action((dir: string, opts: { json?: boolean }) => {
      const removed = unpinDir(dir);
      if (opts.json) printJson({ dir, removed });
      else process.stdout.write(`removed ${removed.length} pin(s) from ${dir}\n`);
    });
}
