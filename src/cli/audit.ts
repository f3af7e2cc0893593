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
import { resolvePolicy } from './trust.js';

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
  json?: boolean;
}


export function registerAudit(program: Command): void {
  program
    .command('audit')
    .description('re-verify every attestation in the log, detect a rewritten log, and (--kernel) mark loaded programs attested or not')
    .option('--log <dir>', 'attestation log (default: $BPFSEAL_LOG, else ./attestations)')
    .option('--policy <file>', 'judge each attestation under this trust policy (default: $BPFSEAL_POLICY, else ./keys/policy.json if present)')
    .option('--key <pub>', 'judge under a one-key policy instead')
    .option('--since <time>', 'list only entries logged since this time (ISO 8601, or 24h, 7d) among those the last audit already checked; every entry is still judged')
    .option('--state <file>', 'what the last audit saw, per log key and log directory (default: $BPFSEAL_STATE_DIR/audit-state.json, else /var/lib/bpfseal/audit-state.json)')
    .option('--kernel', 'list the BPF programs loaded in the kernel now, each attested or unattested')
    .option('--host-log <dir>', 'host load log consulted by --kernel (default: $BPFSEAL_HOST_LOG, else /var/lib/bpfseal/host-log)')
    .option('--json', 'print JSON')
    .action(async (o: AuditOpts) => {
      const { openLog, defaultLogDir } = await import('../tlog/store.js');
      const { auditAttestations } = await import('../audit/attestations.js');
      const { defaultAuditStatePath } = await import('../audit/state.js');
      const since = o.since ? parseSince(o.since) : undefined;
      const policy = await resolvePolicy({ key: o.key, policy: o.policy }, { optional: true });
      const dir = resolve(o.log ?? defaultLogDir());
      const log = openLog(dir, { create: false });
      let report;
      try {
        report = auditAttestations(log, { policy, since, statePath: o.state ?? defaultAuditStatePath(), logFromCommandLine: o.key !== undefined && o.log !== undefined });
      } finally {
        log.close();
      }
      let kernel;
      const findings = [...report.findings];
      if (o.kernel) {
        const { kernelAudit } = await import('../audit/kernel-report.js');
        const { drainForAudit } = await import('../enforce/audit.js'); // decisions into the host log first
        const { hostLogDir } = await import('../hostlog/hostlog.js');
        const enforcement = await drainForAudit(hostLogDir(o.hostLog));
        report.notes.push(...enforcement.notes);
        findings.push(...enforcement.findings);
        kernel = kernelAudit(report, o.hostLog);
        if (kernel.enforcement && since) kernel.enforcement.denials = kernel.enforcement.denials.filter((d) => Date.parse(d.at) >= since.getTime());
        for (const p of kernel.programs) if (!p.attested) findings.push({ code: 'PROGRAM_UNATTESTED', message: `kernel program ${p.id} '${p.name}' (${p.type}, tag ${p.tag}) is not attested` });
        findings.push(...kernel.findings);
      }
      // logVerified/rewritten are already findings; the JSON keeps its documented shape.
      const { logVerified: _v, rewritten: _r, judged: _j, ...shown } = report;
      if (o.json) printJson({ ...shown, ...(kernel ? { kernel } : {}), findings, policy: policy?.source ?? null });
      else {
        process.stdout.write(`log ${report.log.dir} (${report.log.origin}): ${report.log.size} entries, root ${report.log.rootHash}` +
          `${report.previous && !report.rewritten ? `; consistent with the last audit (size ${report.previous.size})` : ''}\n`);
        if (!policy) process.stdout.write('no policy: signatures are checked, trust is not judged (give --policy or --key)\n');
        else process.stdout.write(`log identity: ${{ policy: 'a trusted log of the policy', 'command-line': 'the log given with --log (a --key audit names no logs)', untrusted: 'NOT trusted by the policy', unchecked: 'not checked' }[report.logTrust]}\n`);
        for (const e of report.entries) {
          process.stdout.write(`  #${e.index}  ${e.time}  ${e.status.padEnd(13)} ${e.plan ?? '-'}${e.version !== undefined ? ` v${e.version}` : ''}  ${e.digest?.slice(0, 23) ?? ''}  ${e.signer || e.keyId ? `signer ${e.signer ?? e.identity ?? '?'}${e.keyId ? ` (key ${e.keyId.slice(0, 16)})` : ''}` : ''}${e.reason ? `  (${e.reason})` : ''}\n`);
        }
        if (kernel) {
          process.stdout.write(`kernel: ${kernel.programs.length} programs loaded, ${kernel.programs.filter((p) => p.attested).length} attested\n`);
          for (const p of kernel.programs) {
            process.stdout.write(`  id ${p.id}  ${p.name.padEnd(16)} ${p.type.padEnd(14)} tag ${p.tag}  ${p.attested ? `attested: ${p.matches.map((m) => `${m.plan}/${m.program}`).join(', ')}` : 'UNATTESTED'}\n`);
          }
          const { denialLine } = await import('../enforce/decisions.js');
          const enf = kernel.enforcement;
          if (enf) process.stdout.write(`enforcement: ${enf.decisions} decisions in the host log, ${enf.denials.length} denied${since ? ` since ${o.since}` : ''}\n${enf.denials.map((d) => `  DENIED ${denialLine(d)}\n`).join('')}`);
        }
        for (const n of report.notes) process.stderr.write(`note: ${n}\n`);
        for (const f of findings) process.stderr.write(`finding: ${f.code}: ${f.message}\n`);
      }
      process.exitCode = findings.length ? 1 : 0;
    });
}
