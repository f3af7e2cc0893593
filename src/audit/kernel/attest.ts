/**
 * `audit --kernel --attest <key>`: the kernel report as a signed in-toto statement (statement.ts), as a
 * DSSE envelope in a Sigstore bundle v0.3, appended to the host log it was judged against the way
 * `sign` appends to the attestation log (attest/witness.ts: the envelope is kept beside the log under
 * envelopes/<sha256>.json, the log entry is the Rekor "dsse" body committing to it, with its signed
 * entry timestamp), so `bpfseal verify-report` and `bpfseal log prove` check it offline; and with `-o`
 * the bundle written to a file for a fleet to collect.
 */
import { bundleToJSON, type Bundle } from '@sigstore/bundle';
import { DSSEBundleBuilder } from '@sigstore/sign';
import { PAYLOAD_TYPE } from '../../attest/statement.js';
import { keyFileSigner } from '../../attest/sign.js';
import { at } from '../../errors.js';
import { writeFileDurable } from '../../fsx/durable.js';
import { openHostLogForWriting } from '../../hostlog/hostlog.js';
import { AttestationLogWitness } from '../../attest/witness.js';
import type { ReportStatement } from './statement.js';

export interface AttestedReport {
  /** Index of the report's entry in the host log. */
  index: number;
  bundle: Bundle;
  /** Where the bundle was written, with -o. */
  output?: string;
}

export async function attestReport(statement: ReportStatement, o: { key: string; hostLog: string; output?: string }): Promise<AttestedReport> {
  const { signer } = keyFileSigner({ key: o.key });
  const log = await openHostLogForWriting(o.hostLog);
  let bundle: Bundle;
  try {
    bundle = await new DSSEBundleBuilder({ signer, witnesses: [new AttestationLogWitness(log)] }).create({ data: Buffer.from(JSON.stringify(statement)), type: PAYLOAD_TYPE });
  } finally {
    log.close();
  }
  const index = Number(at(bundle.verificationMaterial.tlogEntries, 0, 'log entry').logIndex); // the one witness, our host log, added it
  if (o.output) writeFileDurable(o.output, `${JSON.stringify(bundleToJSON(bundle))}\n`);
  return { index, bundle, ...(o.output ? { output: o.output } : {}) };
}
