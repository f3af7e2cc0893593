/**
 * `bpfseal verify-report <bundle file | host-log index> --key <host pub> [--log <host-log dir>] [--json]`:
 * check a signed host report of `audit --kernel --attest` offline (src/audit/kernel/verify-report.ts).
 * Exit 0: the report verifies and records nothing but attested or accepted programs and no finding;
 * 1: it does not verify (stable code), or it verifies and records findings (REPORT_FINDINGS);
 * 2: unreadable or malformed input.
 */
import type { Command } from 'commander';
import type { Bundle } from '@sigstore/bundle';
import { InputError } from '../errors.js';
import { readInput } from './io.js';
import { failure, failureLine, printJson } from './output.js';
import type { VerifiedReport } from '../audit/kernel/verify-report.js';

interface Opts {
  key: string;
  log?: string;
  json?: boolean;
}

async function readBundle(file: string): Promise<Bundle> {
  let json: unknown;
  try {
    json = JSON.parse(readInput(file, { kind: 'release' }).toString('utf8'));
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError('REPORT_INVALID', `${file}: not JSON (${(e as Error).message})`, { file });
  }
  try {
    // Loaded on use: @sigstore/bundle (with the protobuf specs) would otherwise load for every command.
    // Through our own module: a dynamic import of the CommonJS package loses its named exports in the bundle.
    const { parseBundleJson } = await import('../attest/release.js');
    return parseBundleJson(json);
  } catch (e) {
    throw new InputError('REPORT_INVALID', `${file}: not a Sigstore bundle (${(e as Error).message})`, { file });
  }
}

function summary(what: string, r: VerifiedReport): string {
  const p = r.statement.predicate;
  const s = p.summary;
  const lines = [`OK ${what}: host ${p.host.name}, boot ${p.host.bootId}, kernel ${p.host.kernelRelease}, at ${p.time}, signed by key ${r.signer.keyId.slice(0, 16)}`,
    `  judged against host log ${p.hostLog.origin} at size ${p.hostLog.size} (root ${p.hostLog.rootHash})${r.logEntry ? `; the report is entry ${r.logEntry.index} of that log, which extends the judged tree` : ''}`,
    `  ${p.programs.length} programs: ${s.attested} attested, ${s['known-code']} known-code, ${s.modified} modified, ${s.unattested} unattested, ${s.accepted} accepted; ${p.findings.length} finding(s)`];
  for (const q of r.notAttested) lines.push(`  id ${q.id}  ${q.name.padEnd(16)} ${q.type.padEnd(14)} tag ${q.tag}  ${q.status.toUpperCase()}${q.findings?.length ? `: ${q.findings.join('; ')}` : ''}`);
  return `${lines.join('\n')}\n`;
}

export function registerVerifyReport(program: Command): void {
  program
    .command('verify-report')
    .description('verify a signed host report (audit --kernel --attest): a bundle file, or an entry index of the host log given with --log')
    .argument('<report>', 'report bundle file (audit --attest -o), or the index of the report entry in the host log given with --log')
    .requiredOption('--key <pub>', 'the host key the report must be signed with')
    .option('--log <dir>', 'the host log the report was appended to: its entry and the tree it judged are checked against it')
    .option('--json', 'print JSON')
    .action(async (what: string, o: Opts) => {
      const { reportBundleFromLog, verifyReport } = await import('../audit/kernel/verify-report.js');
      try {
        const fromLog = /^(0|[1-9][0-9]*)$/.test(what) && o.log !== undefined;
        const bundle = fromLog ? reportBundleFromLog(o.log!, Number(what)) : await readBundle(what);
        const r = verifyReport(bundle, { key: o.key, hostLog: o.log });
        const findings = r.clean ? [] : [{ code: 'REPORT_FINDINGS', message: `the report records ${r.notAttested.length} program(s) not attested and ${r.statement.predicate.findings.length} finding(s)` }];
        if (o.json) printJson({ report: what, ok: true, clean: r.clean, signer: r.signer, ...(r.logEntry ? { logEntry: r.logEntry } : {}), notes: r.notes, findings, statement: r.statement });
        else {
          process.stdout.write(summary(what, r));
          for (const n of r.notes) process.stderr.write(`note: ${n}\n`);
          for (const f of findings) process.stderr.write(`finding: ${f.code}: ${f.message}\n`);
        }
        process.exitCode = r.clean ? 0 : 1;
      } catch (e) {
        const f = failure(e);
        if (o.json) printJson({ report: what, ok: false, error: f });
        process.stderr.write(failureLine(what, f, true));
        process.exitCode = f.exit;
      }
    });
}
