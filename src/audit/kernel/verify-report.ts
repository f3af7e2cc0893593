/**
 * Checking a signed host report (`bpfseal verify-report`), offline, by the path `verify` takes for a
 * release (attest/verify.ts verifyDsseBundle: bundle shape, the DSSE signature by the trusted key,
 * trusted log entries through @sigstore/verify and our own checkpoint checks), then what is particular
 * to a report: its predicate type and shape (statement.ts), and, with the host log (`--log <dir>`),
 * that the report is an entry of that log appended after the tree it names, and that this tree is a
 * prefix of the log (RFC 6962 consistency proof). The bundle is a file written by `--attest -o`, or is
 * rebuilt from the host log's entry and the envelope kept beside it.
 */
import type { Bundle } from '@sigstore/bundle';
import { verifyDsseBundle } from '../../attest/verify.js';
import { at, InputError, VerifyError } from '../../errors.js';
import { verifyConsistency } from '../../tlog/merkle.js';
import { checkEntryAgainstLog } from '../../attest/rekor.js';
import { openLog } from '../../tlog/store.js';
import { singleKeyPolicy, trustedLog, type TrustedLog } from '../../trust/policy.js';
import { keyId as keyIdOf } from '../../trust/keys.js';
import { parseEntry, rebuildBundle } from '../attestations.js';
import { parseReportStatement, type ReportProgram, type ReportStatement } from './statement.js';

export interface VerifiedReport {
  statement: ReportStatement;
  signer: { keyId: string };
  /** The report's own entry in the host log, when the log was given. */
  logEntry?: { index: number; treeSize: number; consistent: boolean };
  /** Programs the report says are neither attested nor accepted. */
  notAttested: ReportProgram[];
  /** Nothing in the report is a finding: every program attested or accepted, no finding recorded. */
  clean: boolean;
  notes: string[];
}

/** The bundle of host-log entry `index`, rebuilt from the log directory (the envelope kept beside it). */
export function reportBundleFromLog(dir: string, index: number): Bundle {
  const log = openLog(dir, { create: false });
  try {
    if (!Number.isSafeInteger(index) || index < 0 || index >= log.size) throw new InputError('REPORT_NOT_FOUND', `${dir}: the host log has no entry ${index} (size ${log.size})`);
    const p = parseEntry(log, index);
    if ('status' in p) throw new InputError('REPORT_NOT_FOUND', `${dir}: entry ${index} is not a signed report (${p.reason})`);
    const body = JSON.parse(log.entry(index).toString('utf8')) as { spec?: { envelopeHash?: { value?: string } } };
    return rebuildBundle(log, index, p, String(body.spec?.envelopeHash?.value)).bundle;
  } finally {
    log.close();
  }
}

/** The judged tree (size, root) must be a prefix of the log as it is now. */
function consistentWithLog(dir: string, s: ReportStatement): boolean {
  const log = openLog(dir, { create: false });
  try {
    const t = s.predicate.hostLog;
    const n = log.size;
    if (t.size > n) return false;
    const root = log.rootHash(n);
    const old = Buffer.from(t.rootHash, 'hex');
    if (t.size === n) return root.equals(old);
    try {
      verifyConsistency(t.size, n, old, root, log.proveConsistency(t.size, n).hashes);
      return true;
    } catch {
      return false;
    }
  } finally {
    log.close();
  }
}

function checkAgainstHostLog(dir: string, id: TrustedLog, s: ReportStatement, entryIndex: number, treeSize: number): VerifiedReport['logEntry'] {
  if (s.predicate.hostLog.logId !== id.keyId || s.predicate.hostLog.origin !== id.origin) {
    throw new VerifyError('REPORT_LOG_MISMATCH', `the report was judged against log ${s.predicate.hostLog.logId} (${s.predicate.hostLog.origin}), not the host log ${dir} (${id.keyId})`);
  }
  if (entryIndex < s.predicate.hostLog.size) throw new VerifyError('REPORT_LOG_MISMATCH', `the report is entry ${entryIndex}, inside the tree of size ${s.predicate.hostLog.size} it claims to judge`);
  const consistent = consistentWithLog(dir, s);
  if (!consistent) throw new VerifyError('REPORT_LOG_MISMATCH', `the tree the report judged (size ${s.predicate.hostLog.size}, root ${s.predicate.hostLog.rootHash}) is not a prefix of the host log ${dir}`);
  return { index: entryIndex, treeSize, consistent };
}

/** The host log's identity (key, origin) from its directory. */
function logOf(dir: string): TrustedLog {
  const log = openLog(dir, { create: false });
  try {
    return trustedLog(log.publicKey.key, log.origin);
  } finally {
    log.close();
  }
}

export function verifyReport(bundle: Bundle, o: { key: string; hostLog?: string }): VerifiedReport {
  const policy = singleKeyPolicy(o.key);
  const notes: string[] = [];
  const id = o.hostLog ? logOf(o.hostLog) : undefined;
  if (id) {
    policy.logs.push(id);
    policy.requireLogInclusion = true;
  }
  const v = verifyDsseBundle(bundle, policy, { checkLogEntry: (e, p) => { const l = at(p.logs, 0, 'trusted log'); checkEntryAgainstLog(e, l.key, l.origin); } }); // called only for an entry of a policy log: the host log
  const statement = parseReportStatement(v.payload);
  let logEntry: VerifiedReport['logEntry'];
  if (o.hostLog && id) {
    const e = at(v.trusted, 0, 'trusted log entry'); // requireLogInclusion: verifyDsseBundle refused a bundle without one
    logEntry = checkAgainstHostLog(o.hostLog, id, statement, Number(e.logIndex), Number(e.inclusionProof?.treeSize ?? 0));
  } else notes.push(`log inclusion not checked (${v.untrusted.length} entr${v.untrusted.length === 1 ? 'y' : 'ies'} from an untrusted log): give --log <host-log dir>`);
  const notAttested = statement.predicate.programs.filter((p) => p.status !== 'attested' && p.status !== 'accepted');
  const clean = notAttested.length === 0 && statement.predicate.findings.length === 0;
  return { statement, signer: { keyId: v.hint ?? keyIdOf(v.verified.key) }, ...(logEntry ? { logEntry } : {}), notAttested, clean, notes };
}
