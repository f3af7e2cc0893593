/** `bpfseal load <release...> [--key|--policy] (--pin <dir> | --dry-run) [--atomic] [--json]`, `bpfseal unload <dir>`, `bpfseal recover`. */
import type { Command } from 'commander';
import type { LoaderChoice } from '../runtime/load.js';
import { at, BpfsealError } from '../errors.js';
import { readInput } from './io.js';
import { failure, failureLine, printJson, type Failure } from './output.js';
import { join } from 'node:path';
import type { LoadRecord } from '../runtime/replay.js';
import type { VerifiedRelease } from '../attest/verify.js';
import { addTrustOptions, localLogs, resolvePolicy, statePath, type TrustOpts } from './trust.js';

function parseMaxEntries(list: string[] | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of list ?? []) {
    const [, map, n] = /^([^=]+)=(\d+)$/.exec(s) ?? [];
    if (map === undefined || n === undefined || Number(n) <= 0 || Number(n) > 0xffffffff) throw new BpfsealError('usage', 'USAGE_MAX_ENTRIES', `--max-entries ${s}: expected <map>=<positive integer>`);
    if (out.has(map)) throw new BpfsealError('usage', 'USAGE_MAX_ENTRIES', `--max-entries ${map} given twice`);
    out.set(map, Number(n));
  }
  return out;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

type LoadOutput = LoadRecord & {
  version: number; signer: VerifiedRelease['signer']; loader: string; kernelVerified: string; notes: string[];
  pins: string[]; loadId?: string; pinDir?: string; hostLogIndex?: number;
};

/** The plan name of a release (to name its pin directory among several); errors as verification gives them. */
function planNameOf(bytes: Buffer, release: string, decodeRelease: (b: Buffer) => { plan: Buffer }, decodePlan: (b: Buffer) => { name: string }): string {
  try {
    return decodePlan(decodeRelease(bytes).plan).name;
  } catch (e) {
    if (e instanceof BpfsealError) throw e;
    throw new BpfsealError('input', 'RELEASE_INVALID', `${release}: not a readable release`, { file: release });
  }
}

function printLoad(out: LoadOutput, dryRun: boolean): void {
  for (const n of out.notes) process.stderr.write(`note: ${n}\n`);
  process.stdout.write(`${dryRun ? 'would load' : 'loaded'} ${out.plan} v${out.version} ${out.digest} (signer ${out.signer.name})\n`);
  const verifiedBy = { loader: 'the kernel verified the signed loader (insns || blob)', programs: 'the kernel verified each program signature (instructions only)', none: 'not verified by the kernel' }[out.kernelVerified];
  process.stdout.write(`  loader ${out.loader}: ${verifiedBy}\n`);
  for (const p of out.programs) process.stdout.write(`  program ${p.name}  id ${p.id}  tag ${p.tag}\n`);
  for (const m of out.maps) process.stdout.write(`  map ${m.name}  id ${m.id}\n`);
  for (const f of out.fixups) process.stdout.write(`  fix-up ${f.kind} ${f.name}${f.program ? ` in ${f.program}` : ''} = ${f.value}\n`);
  if (out.pinDir) process.stdout.write(`  pinned under ${out.pinDir}\n  recorded as host log entry ${out.hostLogIndex}\n`);
}
const HOST_LOG_HELP = 'host load log (default: $BPFSEAL_HOST_LOG, else /var/lib/bpfseal/host-log)';

export function registerLoad(program: Command): void {
  addTrustOptions(
    program
      .command('load')
      .description('verify releases against the trust policy, then load each into the kernel (all or nothing per release, or for the set with --atomic; recorded in the host log)')
      .argument('<release...>', '.bpfseal release files'),
  )
    .option('--pin <dir>', 'pin programs at <dir>/<program> and maps at <dir>/maps/<map> (on bpffs); with several releases, each at <dir>/<plan name>')
    .option('--dry-run', 'replay against the model kernel: no privileges, nothing loaded, pinned or recorded')
    .option('--max-entries <map=N>', 'size a map declared with max_entries 0 (repeatable)', collect)
    .option('--host-log <dir>', HOST_LOG_HELP)
    .option('--loader <kernel|user|auto>', 'kernel: run the plan\'s loader program in the kernel; user: replay from user space; auto: the kernel loader where the kernel verifies its signature', 'auto')
    .option('--atomic', 'with several releases: if one fails, unload those this call loaded (the set is one unit)')
    .option('--json', 'print the load record as JSON (an array of them for several releases)')
    .action(async (releases: string[], opts: TrustOpts & { pin?: string; dryRun?: boolean; maxEntries?: string[]; json?: boolean; hostLog?: string; loader: string; atomic?: boolean }) => {
      if (!['kernel', 'user', 'auto'].includes(opts.loader)) throw new BpfsealError('usage', 'USAGE_LOADER', `--loader ${opts.loader}: use kernel, user or auto`);
      if (!opts.pin && !opts.dryRun) {
        throw new BpfsealError('usage', 'USAGE_NO_PIN', 'load needs --pin <bpffs dir> (objects would die with this process) or --dry-run');
      }
      const maxEntries = parseMaxEntries(opts.maxEntries);
      const policy = await resolvePolicy(opts);
      const { loadRelease } = await import('../runtime/load.js'); // on use: heavy (Sigstore, koffi)
      const { hostLogDir } = await import('../hostlog/hostlog.js');
      const { decodeRelease } = await import('../attest/release.js');
      const { decodePlan } = await import('../plan/codec.js');
      const many = releases.length > 1;
      const loadOne = async (release: string): Promise<LoadOutput> => {
        const bytes = readInput(release, { kind: 'release' }); // read once: verification and replay use these bytes
        // Several releases: each under <pin>/<plan name> (the name is checked again by verification),
        // with '.' as '_': bpffs refuses dots in names, and objects are usually named foo.bpf.o.
        const pinDir = opts.dryRun ? undefined : many ? join(opts.pin!, planNameOf(bytes, release, decodeRelease, decodePlan).replace(/\./g, '_')) : opts.pin;
        const r = await loadRelease(bytes, {
          policy, statePath: statePath(opts, policy), pinDir, dryRun: opts.dryRun, maxEntries,
          hostLog: opts.dryRun ? undefined : hostLogDir(opts.hostLog), release, loader: opts.loader as LoaderChoice,
          preflight: { logs: localLogs(opts) },
        });
        const rec = r.loaded.record;
        return {
          ...rec, version: r.verified.version, signer: r.verified.signer, loader: r.loader, kernelVerified: r.kernelVerified, notes: r.notes,
          ...(r.verified.preflight ? { preflight: r.verified.preflight } : {}),
          pins: r.committed?.pins ?? [], ...(r.committed ? { loadId: r.committed.loadId, pinDir: r.committed.pinDir, hostLogIndex: r.committed.hostLogIndex } : {}),
        };
      };
      if (!many) {
        const out = await loadOne(at(releases, 0, 'release')); // <release...> is required: commander gives at least one
        if (opts.json) printJson(out);
        else printLoad(out, !!opts.dryRun);
        return;
      }
      const results: ({ release: string; ok: true; undone?: boolean } & LoadOutput | { release: string; ok: false; error: Failure })[] = [];
      for (const release of releases) {
        try {
          results.push({ release, ok: true, ...(await loadOne(release)) });
        } catch (e) {
          results.push({ release, ok: false, error: failure(e) });
          if (opts.atomic) break;
        }
      }
      const failed = results.filter((r) => !r.ok);
      if (opts.atomic && failed.length && !opts.dryRun) {
        // The set is one unit: undo what this call loaded, newest first (each undo is recorded).
        const { unloadDir } = await import('../runtime/unload.js');
        for (const r of [...results].reverse()) {
          if (!r.ok || !r.pinDir) continue;
          await unloadDir(r.pinDir, hostLogDir(opts.hostLog));
          r.undone = true;
        }
      }
      if (opts.json) printJson(results);
      for (const r of results) {
        if (!r.ok) process.stderr.write(failureLine(r.release, r.error, true));
        else if (!opts.json) {
          printLoad(r, !!opts.dryRun);
          if (r.undone) process.stdout.write(`  undone (--atomic: ${at(failed, 0, 'failed release').release} failed)\n`); // undone only after a failure
        }
      }
      if (opts.atomic && failed.length < releases.length && failed.length) process.stderr.write(`bpfseal: ATOMIC_UNDONE: --atomic: ${results.filter((r) => r.ok).length} release(s) loaded before the failure were unloaded; ${releases.length - results.length} not tried\n`);
      process.exitCode = Math.max(0, ...failed.map((r) => (r as { error: Failure }).error.exit));
    });

  program
    .command('unload')
    .description('remove exactly what a recorded `load --pin <dir>` pinned there (the kernel frees unreferenced objects)')
    .argument('<dir...>', 'pin directories given to load')
    .option('--host-log <dir>', HOST_LOG_HELP)
    .option('--json', 'print the removed pins as JSON (an array of them for several directories)')
    .action(async (dirs: string[], opts: { json?: boolean; hostLog?: string }) => {
      const { unloadDir } = await import('../runtime/unload.js');
      const { hostLogDir } = await import('../hostlog/hostlog.js');
      if (dirs.length === 1) {
        const r = await unloadDir(at(dirs, 0, 'dir'), hostLogDir(opts.hostLog));
        if (opts.json) printJson(r);
        else process.stdout.write(`removed ${r.removed.length} pin(s) from ${r.dir}\n`);
        return;
      }
      type Unloaded = { ok: true; dir: string; removed: string[] } | { ok: false; dir: string; error: Failure };
      const results: Unloaded[] = [];
      for (const dir of dirs) {
        try {
          results.push({ ok: true, ...(await unloadDir(dir, hostLogDir(opts.hostLog))) });
        } catch (e) {
          results.push({ ok: false, dir, error: failure(e) });
        }
      }
      if (opts.json) printJson(results);
      for (const r of results) {
        if (!r.ok) process.stderr.write(failureLine(r.dir, r.error, true));
        else if (!opts.json) process.stdout.write(`removed ${r.removed.length} pin(s) from ${r.dir}\n`);
      }
      process.exitCode = Math.max(0, ...results.map((r) => (r.ok ? 0 : r.error.exit)));
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
