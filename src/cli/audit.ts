/**
 * `bpfseal audit [--log <dir>] [--policy <file>|--key <pub>] [--since <time>] [--state <file>] [--json]`
 * `bpfseal audit --kernel [--host-log <dir>] ...`
 * Exit 0 when there is nothing to report, 1 on any finding (a rewritten log, an attestation that no
 * longer verifies under the policy, an unattested program in the kernel).
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { BpfsealError } from '../errors.js';
import { printJson } from './output.js';
import { isLogUrl, resolvePolicy } from './trust.js';
import type { TrustPolicy } from '../trust/policy.js';
import type { MirrorResult } from '../audit/mirror.js';
import type { AttestationAudit, Finding } from '../audit/attestations.js';
import type { KernelReport } from '../audit/kernel-report.js';

export function parseSince(s: string, now = Date.now()): Date {
  const rel = /^(\d+)([smhd])$/.exec(s);
  if (rel) return new Date(now - Number(rel[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[rel[2] as 's' | 'm' | 'h' | 'd']);
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new BpfsealError('usage', 'USAGE_SINCE', `--since ${s}: expected an ISO 8601 time (2026-11-21T10:00:00Z) or a duration like 24h or 7d`);
  return new Date(t);
}

interface AuditOpts {
  log?: string;
  policy?: string;
  key?: string;
  since?: string;
  state?: string;
  kernel?: boolean;
  hostLog?: string;
  accept?: string[];
  attest?: string;
  output?: string;
  json?: boolean;
  follow?: boolean;
  sinceCheckpoint?: boolean;
}


export function registerAudit(program: Command): void {
  program
    .command('audit')
    .description('re-verify every attestation in the log, detect a rewritten log, and (--kernel) mark loaded programs attested or not')
    .option('--log <dir|url>', 'attestation log: a directory (default: $BPFSEAL_LOG, else ./attestations) or the https:// or file:// URL of a tiled log, which the policy must list in "logs" (mirrored under the tile cache, then audited)')
    .option('--policy <file>', 'judge each attestation under this trust policy (default: $BPFSEAL_POLICY, else ./keys/policy.json if present)')
    .option('--key <pub>', 'judge under a one-key policy instead')
    .option('--since <time>', 'list only entries logged since this time (ISO 8601, or 24h, 7d) among those the last audit already checked; every entry is still judged')
    .option('--state <file>', 'what the last audit saw, per log key and log directory (default: $BPFSEAL_STATE_DIR/audit-state.json, else /var/lib/bpfseal/audit-state.json)')
    .option('--follow', 'judge only the entries appended since the last audit (its remembered checkpoint; consistency and inclusion are proved from tiles); a full audit the first time. For cron and CI')
    .option('--since-checkpoint', 'the same as --follow')
    .option('--kernel', 'list the BPF programs loaded in the kernel now, each attested or unattested')
    .option('--host-log <dir>', 'host load log consulted by --kernel (default: $BPFSEAL_HOST_LOG, else /var/lib/bpfseal/host-log)')
    .option('--accept <rule>', 'with --kernel: accept programs other tools load on purpose: <name pattern>, name:<pattern>, type:<pattern>, or both joined with "," (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--attest <private key>', 'with --kernel: sign the result as a host report (in-toto, DSSE) and append it to the host log')
    .option('-o, --output <file>', 'with --attest: also write the report as a Sigstore bundle to this file')
    .option('--json', 'print JSON')
    .action(async (o: AuditOpts) => {
      if ((o.attest || o.accept?.length) && !o.kernel) throw new BpfsealError('usage', 'USAGE_KERNEL_ONLY', `${o.attest ? '--attest' : '--accept'} applies to audit --kernel only`);
      if (o.output && !o.attest) throw new BpfsealError('usage', 'USAGE_OUTPUT', '-o names the file for the signed report of --attest');
      const { parseAcceptFlag } = await import('../audit/kernel/accept.js');
      const flags = (o.accept ?? []).map(parseAcceptFlag);
      const { openLog, defaultLogDir } = await import('../tlog/store.js');
      const { auditAttestations } = await import('../audit/attestations.js');
      const { defaultAuditStatePath } = await import('../audit/state.js');
      const since = o.since ? parseSince(o.since) : undefined;
      const follow = o.follow === true || o.sinceCheckpoint === true;
      if (follow && o.kernel) throw new BpfsealError('usage', 'USAGE_FOLLOW', '--follow judges only new entries, and --kernel needs every attested program: run them separately');
      const policy = await resolvePolicy({ key: o.key, policy: o.policy }, { optional: true });
      const remote = o.log !== undefined && isLogUrl(o.log) ? await mirrorRemote(o.log, policy) : undefined;
      const dir = remote?.dir ?? resolve(o.log ?? defaultLogDir());
      const log = openLog(dir, { create: false });
      let report;
      try {
        report = auditAttestations(log, { policy, since, follow, statePath: o.state ?? defaultAuditStatePath(), logFromCommandLine: !remote && o.key !== undefined && o.log !== undefined });
      } finally {
        log.close();
      }
      if (remote) {
        report.notes.push(`remote log ${remote.url}: mirrored at ${remote.dir} (size ${remote.size}; every entry authenticated against the checkpoint signed by the policy's key for ${remote.origin}); commit times are not published by tiled logs, so entry times are unknown`);
        if (remote.missing) report.notes.push(`remote log ${remote.url}: ${remote.missing} envelope(s) or plan(s) the entries name are not published there (those entries are findings)`);
      }
      let kernel;
      let attested;
      const findings = [...report.findings];
      if (o.kernel) {
        const { kernelAudit } = await import('../audit/kernel-report.js');
        if (o.attest) await ensureHostLog(o.hostLog);
        const { drainForAudit } = await import('../audit/enforce.js'); // the enforcers' decisions into the host log first
        const { hostLogDir } = await import('../hostlog/hostlog.js');
        const enforcement = await drainForAudit(hostLogDir(o.hostLog));
        report.notes.push(...enforcement.notes);
        findings.push(...enforcement.findings);
        const accept = [...(policy?.kernelAccept ?? []).map((r) => ({ ...r, source: `policy ${policy!.source}` })), ...flags];
        kernel = kernelAudit(report, o.hostLog, { accept });
        if (kernel.enforcement && since) kernel.enforcement.denials = kernel.enforcement.denials.filter((d) => Date.parse(d.at) >= since.getTime());
        findings.push(...kernel.findings);
        if (o.attest) attested = await attestKernelReport(kernel, report, findings, policy?.source ?? null, o);
      }
      // logVerified/rewritten are already findings; the JSON keeps its documented shape.
      const { logVerified: _v, rewritten: _r, judged: _j, from: _f, ...shown } = report;
      if (o.json) printJson({ ...shown, ...(remote ? { remote: { url: remote.url, mirror: remote.dir, size: remote.size, envelopes: remote.envelopes, plans: remote.plans, missing: remote.missing } } : {}), ...(follow ? { from: report.from } : {}), ...(kernel ? { kernel } : {}), ...(attested ? { report: attested } : {}), findings, policy: policy?.source ?? null });
      else {
        process.stdout.write(`log ${report.log.dir} (${report.log.origin}): ${report.log.size} entries, root ${report.log.rootHash}` +
          `${report.previous && !report.rewritten ? `; consistent with the last audit (size ${report.previous.size})` : ''}${report.from ? `; judged entries ${report.from}..${report.log.size - 1} (appended since)` : ''}\n`);
        if (!policy) process.stdout.write('no policy: signatures are checked, trust is not judged (give --policy or --key)\n');
        else process.stdout.write(`log identity: ${{ policy: 'a trusted log of the policy', 'command-line': 'the log given with --log (a --key audit names no logs)', untrusted: 'NOT trusted by the policy', unchecked: 'not checked' }[report.logTrust]}\n`);
        for (const e of report.entries) {
          process.stdout.write(`  #${e.index}  ${e.time}  ${e.status.padEnd(13)} ${e.plan ?? '-'}${e.version !== undefined ? ` v${e.version}` : ''}  ${e.digest?.slice(0, 23) ?? ''}  ${e.signer || e.keyId ? `signer ${e.signer ?? e.identity ?? '?'}${e.keyId ? ` (key ${e.keyId.slice(0, 16)})` : ''}` : ''}${e.reason ? `  (${e.reason})` : ''}\n`);
        }
        if (kernel) {
          (await import('./kernel-output.js')).printKernelReport(kernel);
          const { denialLine } = await import('../enforce/decisions.js');
          const enf = kernel.enforcement;
          if (enf) process.stdout.write(`enforcement: ${enf.decisions} decisions in the host log, ${enf.denials.length} denied${since ? ` since ${o.since}` : ''}\n${enf.denials.map((d) => `  DENIED ${denialLine(d)}\n`).join('')}`);
        }
        if (attested) process.stdout.write(`report: signed and appended to the host log as entry ${attested.hostLogIndex}${attested.output ? `; bundle ${attested.output}` : ''} (bpfseal verify-report)\n`);
        for (const n of report.notes) process.stderr.write(`note: ${n}\n`);
        for (const f of findings) process.stderr.write(`finding: ${f.code}: ${f.message}\n`);
      }
      process.exitCode = findings.length ? 1 : 0;
    });
}

/**
 * audit --log <url>: the remote log must be one the policy trusts (its key pins whose log it is: a
 * --key audit names no logs), opened with those keys, then mirrored locally and audited as a directory.
 */
async function mirrorRemote(url: string, policy: TrustPolicy | undefined): Promise<MirrorResult> {
  if (!policy?.logs.length) {
    throw new BpfsealError('usage', 'USAGE_LOG_URL', `--log ${url}: auditing a remote log needs a trust policy that lists it in "logs" (its key and origin say whose log it is); --key names no log`);
  }
  const { openLogReader } = await import('../tlog/open-reader.js');
  const { mirrorDir, mirrorLog } = await import('../audit/mirror.js');
  const reader = await openLogReader(url, { keys: policy.logs.map((l) => l.key.export({ type: 'spki', format: 'pem' }).toString()) });
  try {
    const trusted = policy.logs.find((l) => l.origin === reader.origin);
    if (!trusted) throw new BpfsealError('usage', 'USAGE_LOG_URL', `--log ${url}: serves the log ${reader.origin}, which the trust policy does not list`);
    return await mirrorLog(reader, trusted.key, mirrorDir(url));
  } finally {
    reader.close();
  }
}

/** --attest appends to the host log: make it first, so the report is judged against a log that exists. */
async function ensureHostLog(dir: string | undefined): Promise<void> {
  const { hostLogDir, openHostLogForWriting } = await import('../hostlog/hostlog.js');
  (await openHostLogForWriting(hostLogDir(dir))).close();
}

async function attestKernelReport(kernel: KernelReport, audit: AttestationAudit, findings: Finding[], policy: string | null, o: AuditOpts): Promise<{ hostLogIndex: number; predicateType: string; output?: string }> {
  const { buildReportStatement, REPORT_PREDICATE_TYPE } = await import('../audit/kernel/statement.js');
  const { attestReport } = await import('../audit/kernel/attest.js');
  const { hostLogDir } = await import('../hostlog/hostlog.js');
  const { toolVersion } = await import('./version.js');
  const { origin, logId, size, rootHash } = audit.log;
  const statement = buildReportStatement(kernel, { attestationLog: { origin, logId, size, rootHash }, policy, findings: findings.map(({ code, message }) => ({ code, message })), toolVersion: toolVersion() });
  const r = await attestReport(statement, { key: o.attest!, hostLog: hostLogDir(o.hostLog), output: o.output });
  return { hostLogIndex: r.index, predicateType: REPORT_PREDICATE_TYPE, ...(r.output ? { output: r.output } : {}) };
}
