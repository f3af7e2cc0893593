/**
 * The attestation log as seen by signing: a Witness that keeps each signed DSSE envelope beside the
 * log (envelopes/<sha256>.json, content-addressed), appends the Rekor "dsse" body whose envelopeHash
 * commits to that file, and keeps the entry's signed timestamp (envelopes.ts). The tree thus covers
 * every envelope, and `audit` can re-read and re-verify each attestation from the log directory alone
 * (the signer also stores the plan itself there: savePlan).
 */
import { envelopeToJSON } from '@sigstore/bundle';
import type { SignatureBundle, VerificationMaterial, Witness } from '@sigstore/sign';
import { saveEnvelope, saveTimestamp } from './envelopes.js';
import { LocalLogWitness } from './rekor.js';
import type { TransparencyLog } from '../tlog/store.js';

export { ENVELOPES, loadEnvelope, saveEnvelope, savePlan } from './envelopes.js';

export class AttestationLogWitness implements Witness {
  private readonly inner: LocalLogWitness;

  constructor(private readonly log: TransparencyLog) {
    this.inner = new LocalLogWitness(log);
  }

  async testify(content: SignatureBundle, publicKey: string): Promise<VerificationMaterial> {
    // Envelope first: a crash between the two leaves an unreferenced file, never an entry without its envelope.
    const hash = content.$case === 'dsseEnvelope' ? saveEnvelope(this.log.dir, JSON.stringify(envelopeToJSON(content.dsseEnvelope))) : undefined;
    const material = await this.inner.testify(content, publicKey);
    const e = material.tlogEntries?.[0];
    if (hash && e?.inclusionPromise) {
      saveTimestamp(this.log.dir, hash, { logIndex: Number(e.logIndex), integratedTime: Number(e.integratedTime), signedEntryTimestamp: e.inclusionPromise.signedEntryTimestamp.toString('base64') });
    }
    return material;
  }
}
