/**
 * `preflight --attest`: sign each preflight statement as a DSSE envelope in a Sigstore bundle with the
 * same local-key signer `sign` uses, append it to the attestation log (the envelope is kept beside the
 * log, as for releases, so `audit` and `load` can read it back), and optionally write the bundles to a
 * file as JSON Lines (one bundle per line: the in-toto convention for several attestations).
 */
import { bundleToJSON, type Bundle } from '@sigstore/bundle';
import { DSSEBundleBuilder, type Witness } from '@sigstore/sign';
import { PAYLOAD_TYPE } from '../attest/statement.js';
import { keyFileSigner } from '../attest/sign.js';
import { AttestationLogWitness } from '../attest/witness.js';
import { writeFileDurable } from '../fsx/durable.js';
import { openLogForWriting } from '../tlog/migrate.js';
import type { PreflightStatement } from './statement.js';

export interface AttestOptions {
  key: string;
  /** Log directory, or false for none. */
  log: string | false;
  /** Write the bundles here (JSON Lines). */
  out?: string;
}

export interface Attested {
  statement: PreflightStatement;
  bundle: Bundle;
  /** Index of the entry in the attestation log. */
  logIndex?: number;
}

export async function attestPreflight(statements: PreflightStatement[], o: AttestOptions): Promise<Attested[]> {
  const { signer } = keyFileSigner({ key: o.key });
  const log = o.log === false ? undefined : await openLogForWriting(o.log);
  try {
    const witnesses: Witness[] = log ? [new AttestationLogWitness(log)] : [];
    const builder = new DSSEBundleBuilder({ signer, witnesses });
    const out: Attested[] = [];
    for (const statement of statements) {
      const bundle = await builder.create({ data: Buffer.from(JSON.stringify(statement)), type: PAYLOAD_TYPE });
      const e = bundle.verificationMaterial.tlogEntries?.[0];
      out.push({ statement, bundle, ...(e ? { logIndex: Number(e.logIndex) } : {}) });
    }
    if (o.out) writeFileDurable(o.out, out.map((a) => JSON.stringify(bundleToJSON(a.bundle))).join('\n') + '\n');
    return out;
  } finally {
    log?.close();
  }
}
