/** `bpfseal verify <release>... [--key <pub>|--policy <file>] [--json]` */
import type { Command } from 'commander';
import { readInput } from './io.js';
import { failure, failureLine, printJson, type Failure } from './output.js';
import { addTrustOptions, localLogs, onlineLogs, resolvePolicy, statePath, type TrustOpts } from './trust.js';

export interface VerifyResult {
  release: string;
  ok: boolean;
  plan?: string;
  digest?: string;
  version?: number;
  signer?: { name: string; keyId?: string; identity?: string; issuer?: string };
  programs?: string[];
  kernelSignatures?: number;
  logEntries?: { verified: number; untrusted: number };
  /** What the operator should know: a check skipped (unreadable anti-rollback state), an expired certificate accepted by policy. */
  notes?: string[];
  /** verify --log <url>: the release checked against each log as served now. */
  online?: { location: string; origin: string; size: number; checked: number }[];
  /** requirePreflight: the preflight attestation that passes this plan on this host's kernel. */
  preflight?: { where: string; kernelRelease: string; signer: string; configMatched: boolean };
  error?: Failure;
}

export function registerVerify(program: Command): void {
  addTrustOptions(
    program
      .command('verify')
      .description('verify releases against a trust policy (no privileges needed)')
      .argument('<release...>', '.bpfseal release files'),
  )
    .option('--json', 'print JSON')
    .action(async (releases: string[], opts: TrustOpts & { json?: boolean }) => {
      // Loaded on use: the Sigstore verifier is most of bpfseal's start-up time.
      const { verifyWithPolicy } = await import('../runtime/verify-policy.js');
      const policy = await resolvePolicy(opts);
      const state = statePath(opts, policy);
      const online = await onlineLogs(opts, policy);
      const { checkOnline } = online.length ? await import('../tlog/online.js') : { checkOnline: undefined };
      const results: VerifyResult[] = [];
      try {
        for (const r of releases) {
          try {
            const v = verifyWithPolicy(readInput(r, { kind: 'release' }), policy, state, { stateOptional: true, preflight: { logs: localLogs(opts) } });
            const checks = [];
            for (const reader of online) checks.push(await checkOnline!(reader, v.log.entries));
            results.push({
              release: r, ok: true, plan: v.plan.name, digest: `sha256:${v.digest}`, version: v.version, signer: v.signer,
              programs: v.plan.programs.map((p) => p.name), kernelSignatures: v.kernelSignatures.size,
              logEntries: { verified: v.log.verified, untrusted: v.log.untrusted }, notes: v.notes, ...(v.preflight ? { preflight: v.preflight } : {}),
              ...(checks.length ? { online: checks } : {}),
            });
          } catch (e) {
            results.push({ release: r, ok: false, error: failure(e) });
          }
        }
      } finally {
        for (const reader of online) reader.close();
      }
      if (opts.json) printJson(results);
      for (const r of results) {
        if (r.error) process.stderr.write(failureLine(r.release, r.error, true));
        else if (!opts.json) {
          const who = r.signer!.identity ? `${r.signer!.identity} (${r.signer!.issuer})` : `${r.signer!.name} key ${r.signer!.keyId!.slice(0, 16)}`;
          const log = r.logEntries!.verified ? `, in log (${r.logEntries!.verified} entr${r.logEntries!.verified === 1 ? 'y' : 'ies'})` : '';
          process.stdout.write(`OK ${r.release}: ${r.plan} v${r.version} ${r.digest} signed by ${who}${log}\n`);
          for (const n of r.notes ?? []) process.stderr.write(`note: ${r.release}: ${n}\n`);
        }
      }
      process.exitCode = Math.max(0, ...results.map((r) => r.error?.exit ?? 0));
    });
}
