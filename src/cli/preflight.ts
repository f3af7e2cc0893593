/**
 * `bpfseal preflight <release|object|plan>... --kernel <spec>... [--policy <file>] [--offline] [--cache <dir>]
 *   [--attest --key <key> [--log <dir> | --no-log] [--attest-out <file>]] [--json]`
 * Exit 0 every load passed, 1 a load failed (or a release did not verify), 2 usage or input, 3 a kernel
 * could not be fetched, booted or run (VM infrastructure).
 */
import type { ErrorCode } from '../errors.js';
import type { Command } from 'commander';
import { at, BpfsealError, EXIT } from '../errors.js';
import { failure, failureLine, printJson } from './output.js';
import { addSectionTypeOption, sectionTypes } from './sections.js';
import { toolVersion } from './version.js';

interface PreflightOpts {
  kernel?: string[];
  policy?: string;
  offline?: boolean;
  cache?: string;
  jobs: string;
  timeout: string;
  maxEntries?: string[];
  sectionType?: string[];
  attest?: boolean;
  key?: string;
  log?: string | boolean;
  attestOut?: string;
  json?: boolean;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];
const usage = (code: ErrorCode, msg: string) => new BpfsealError('usage', code, msg);

function positive(v: string, flag: string, max: number): number {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) throw usage('USAGE_PREFLIGHT', `${flag} ${v}: expected an integer from 1 to ${max}`);
  return Number(v);
}

function maxEntries(list: string[] | undefined): Record<string, number> {
  const out = Object.create(null) as Record<string, number>;
  for (const s of list ?? []) {
    const [, map, n] = /^([^=]+)=(\d+)$/.exec(s) ?? [];
    if (map === undefined || n === undefined || Number(n) <= 0 || Number(n) > 0xffffffff || Object.hasOwn(out, map)) throw usage('USAGE_MAX_ENTRIES', `--max-entries ${s}: expected <map>=<positive integer>, once per map`);
    out[map] = Number(n);
  }
  return { ...out };
}

export function registerPreflight(program: Command): void {
  const cmd = program
    .command('preflight')
    .description('boot each kernel under qemu and load every input inside (kernel loader and user-space replay, nothing attached): which programs each kernel\'s verifier accepts')
    .argument('<input...>', 'releases (.bpfseal), BPF ELF objects or .plan files')
    .option('--kernel <spec>', 'kernel to boot: Debian package (linux-image-7.3.4+deb13-cloud-amd64), release, version (7.3.4, 6.12) or a vmlinuz path (repeatable; at least one)', collect)
    .option('--policy <file>', 'verify each release against this trust policy on the host first')
    .option('--offline', 'use only the kernel cache (no downloads)')
    .option('--cache <dir>', 'kernel cache (default: $BPFSEAL_VM_CACHE, else ~/.cache/bpfseal/vm)')
    .option('--jobs <n>', 'kernels booted at once', '2')
    .option('--timeout <seconds>', 'time limit of the loads in each guest', '300')
    .option('--max-entries <map=N>', 'size a map declared with max_entries 0, in every input that has it (repeatable)', collect)
    .option('--attest', 'sign each result (plan x kernel) as a preflight attestation and append it to the attestation log')
    .option('--key <key>', 'private key for --attest (the same local key signer as sign)')
    .option('--log <dir>', 'attestation log for --attest (default: $BPFSEAL_LOG, else ./attestations)')
    .option('--no-log', 'with --attest: do not append to a log (use --attest-out)')
    .option('--attest-out <file>', 'with --attest: also write the Sigstore bundles here, one JSON line each')
    .option('--json', 'print one JSON document');
  addSectionTypeOption(cmd).action(async (inputs: string[], o: PreflightOpts) => {
    if (!o.kernel?.length) throw usage('USAGE_PREFLIGHT', 'preflight needs at least one --kernel <spec> (a Debian kernel package, release, version, or a vmlinuz path)');
    if (o.attest && !o.key) throw usage('USAGE_PREFLIGHT', '--attest needs --key <private key> (the key sign uses)');
    if (!o.attest && (o.key || o.attestOut || typeof o.log === 'string')) throw usage('USAGE_PREFLIGHT', '--key, --log and --attest-out go with --attest');
    if (o.attest && o.log === false && !o.attestOut) throw usage('USAGE_PREFLIGHT', '--attest --no-log records nothing: give --attest-out <file>');
    const jobs = positive(o.jobs, '--jobs', 16);
    const timeoutMs = positive(o.timeout, '--timeout', 86_400) * 1000;
    const overrides = await sectionTypes(o.sectionType);
    const entries = maxEntries(o.maxEntries);
    // A spec that names no kernel is the user's mistake (exit 2), found before anything is read or booted.
    const { parseKernelSpec } = await import('../vm/kernels.js');
    for (const k of o.kernel) parseKernelSpec(k);
    const { loadPolicy } = await import('../trust/policy.js');
    const { prepareInputs } = await import('../preflight/inputs.js');
    const { runKernels } = await import('../preflight/run.js');
    const policy = o.policy ? loadPolicy(o.policy) : undefined;
    // Everything is read (and releases verified) before the first kernel boots.
    const prepared = prepareInputs(inputs, { policy, sectionTypes: overrides });
    const tty = process.stderr.isTTY === true && !o.json;
    const runs = await runKernels(o.kernel, prepared, {
      offline: o.offline, cacheDir: o.cache, jobs, timeoutMs, maxEntries: entries, log: tty ? (l) => process.stderr.write(`${l}\n`) : undefined,
    });
    let attested: { plan: string; kernel: string; result: string; logIndex?: number }[] | undefined;
    let attestError;
    if (o.attest) {
      const { buildPreflightStatement } = await import('../preflight/statement.js');
      const { attestPreflight } = await import('../preflight/attest.js');
      const { defaultLogDir } = await import('../tlog/store.js');
      // The guest answers every input of the job, in order (runtime/preflight-guest.ts, runJob).
      const statements = runs.flatMap((r) => {
        const g = r.guest;
        return g ? prepared.map((p, i) => buildPreflightStatement(p, r.kernel!, g.release, g.enforcement, at(g.inputs, i, 'guest input'), { toolVersion: toolVersion() })) : [];
      });
      try {
        const done = await attestPreflight(statements, { key: o.key!, log: o.log === false ? false : typeof o.log === 'string' ? o.log : defaultLogDir(), out: o.attestOut });
        attested = done.map((a) => ({ plan: a.statement.predicate.plan.name, kernel: a.statement.predicate.kernel.release, result: a.statement.predicate.result, ...(a.logIndex !== undefined ? { logIndex: a.logIndex } : {}) }));
      } catch (e) {
        attestError = failure(e);
      }
    }
    const infra = runs.some((r) => r.error);
    const failed = runs.some((r) => r.guest?.inputs.some((x) => !x.passed));
    const exit = attestError ? attestError.exit : infra ? EXIT.kernel : failed ? EXIT.verify : 0;
    if (o.json) {
      printJson({
        ok: exit === 0, exit,
        inputs: prepared.map((p) => ({ path: p.path, kind: p.kind, plan: p.plan.name, digest: `sha256:${p.digest}`, programs: p.plan.programs.map((x) => x.name), ...(p.release ? { release: p.release } : {}) })),
        kernels: runs.map((r) => ({
          spec: r.spec, ...(r.kernel ? { kernel: r.kernel } : {}), ...(r.guest ? { release: r.guest.release, enforcement: r.guest.enforcement, results: r.guest.inputs } : {}),
          timings: r.timings, ...(r.error ? { error: r.error } : {}),
        })),
        ...(attested ? { attestations: attested } : {}), ...(attestError ? { error: attestError } : {}),
      });
    } else {
      const { renderMatrix } = await import('../preflight/report.js');
      process.stdout.write(renderMatrix(prepared, runs));
      if (attested) process.stdout.write(`attested ${attested.length} result(s)${attested[0]?.logIndex !== undefined ? `, log entries ${attested.map((a) => a.logIndex).join(', ')}` : ''}\n`);
    }
    for (const r of runs) if (r.error) process.stderr.write(failureLine(r.spec, r.error));
    if (attestError) process.stderr.write(failureLine(undefined, attestError));
    if (failed && !infra && !attestError) process.stderr.write('bpfseal: PREFLIGHT_FAILED: a kernel refused at least one load (see the matrix)\n');
    process.exitCode = exit;
  });
}
