/**
 * The local log as a Sigstore transparency log (src/attest/rekor.ts): a DSSE bundle built by
 * @sigstore/sign with LocalLogWitness verifies offline with @sigstore/verify when the log key is in the
 * TrustedRoot; altered proofs, checkpoints, bodies and SETs are rejected — by @sigstore/verify where it
 * checks, and by checkEntryAgainstLog where it does not (proof rootHash/treeSize, checkpoint origin).
 */
import { PublicKeyDetails } from '@sigstore/protobuf-specs';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { bundleFromJSON, bundleToJSON, type Bundle, type SerializedBundle } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { DSSEBundleBuilder, type Signer } from '@sigstore/sign';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BpfsealError } from '../src/errors.js';
import { canonicalJson, checkEntryAgainstLog, LocalLogWitness, tlogEntry, trustedRootTlog, type SerializedTlogEntry } from '../src/attest/rekor.js';
import { openLog, type TransparencyLog } from '../src/tlog/store.js';
import { openSignedCheckpoint } from '../src/tlog/note.js';
import { cosign, generateWitnessKey, parseWitnessSigner, verifyCosignatures } from '../src/tlog/witness/cosign.js';
import { cleanupTmpDirs, makeTmpDir } from './helpers/paths.js';

const signerKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signerPem = signerKey.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const HINT = 'bpfseal-test-key';

/** A Signer with a local ECDSA P-256 key (the @sigstore/sign Signer interface). */
const signer: Signer = {
  sign: async (data) => ({ signature: sign('sha256', data, signerKey.privateKey), key: { $case: 'publicKey', publicKey: signerPem, hint: HINT } }),
};

const statement = Buffer.from(JSON.stringify({ _type: 'https://in-toto.io/Statement/v1', subject: [{ name: 'x.plan', digest: { sha256: '00'.repeat(32) } }], predicateType: 'https://bpfseal.dev/plan/v1', predicate: {} }));

let log: TransparencyLog;
let bundleJson: SerializedBundle;

beforeAll(async () => {
  log = openLog(makeTmpDir('bpfseal-tlog-rekor-'), { origin: 'bpfseal.test/log' });
  await log.appendMany([Buffer.from('{"earlier":1}'), Buffer.from('{"earlier":2}'), Buffer.from('{"earlier":3}')]);
  const builder = new DSSEBundleBuilder({ signer, witnesses: [new LocalLogWitness(log)] });
  bundleJson = bundleToJSON(await builder.create({ data: statement, type: 'application/vnd.in-toto+json' }));
});
afterAll(() => {
  log.close();
  cleanupTmpDirs();
});

function verifier(timestamps: number, tlog: TransparencyLog = log): Verifier {
  const root = TrustedRoot.fromJSON({
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [trustedRootTlog(tlog)],
    certificateAuthorities: [],
    ctlogs: [],
    timestampAuthorities: [],
  });
  const keys = { [HINT]: { rawBytes: signerKey.publicKey.export({ type: 'spki', format: 'der' }), keyDetails: PublicKeyDetails.PKIX_ECDSA_P256_SHA_256 } };
  return new Verifier(toTrustMaterial(root, keys), { tlogThreshold: 1, ctlogThreshold: 0, timestampThreshold: timestamps });
}

/** A deep copy of the bundle JSON with its one tlog entry changed by `edit`. */
function altered(edit: (e: SerializedTlogEntry) => void): SerializedBundle {
  const b = JSON.parse(JSON.stringify(bundleJson)) as SerializedBundle;
  edit(b.verificationMaterial.tlogEntries[0] as unknown as SerializedTlogEntry);
  return b;
}

function sigstoreVerify(b: SerializedBundle, timestamps = 1): void {
  verifier(timestamps).verify(toSignedEntity(bundleFromJSON(b) as Bundle));
}

function ours(b: SerializedBundle, origin = log.origin): void {
  checkEntryAgainstLog(b.verificationMaterial.tlogEntries[0] as unknown as SerializedTlogEntry, log.publicKey.pem, origin);
}

function entryOf(b: SerializedBundle): SerializedTlogEntry {
  return b.verificationMaterial.tlogEntries[0] as unknown as SerializedTlogEntry;
}

const flipB64 = (s: string, byte = 0) => {
  const b = Buffer.from(s, 'base64');
  b[byte] ^= 1;
  return b.toString('base64');
};

describe('LocalLogWitness in a DSSE bundle', () => {
  it('logs the Rekor dsse 0.0.1 body and verifies offline with @sigstore/verify', () => {
    const e = entryOf(bundleJson);
    expect(e.kindVersion).toEqual({ kind: 'dsse', version: '0.0.1' });
    expect(e.logIndex).toBe('3');
    const body = Buffer.from(e.canonicalizedBody, 'base64');
    expect(log.entry(3).equals(body)).toBe(true);
    const parsed = JSON.parse(body.toString()) as { spec: { payloadHash: { value: string }; envelopeHash: { value: string }; signatures: { verifier: string }[] } };
    expect(body.toString()).toBe(canonicalJson(parsed as never));
    expect(parsed.spec.payloadHash.value).toBe(createHash('sha256').update(statement).digest('hex'));
    expect(parsed.spec.envelopeHash.value).toBe(createHash('sha256').update(JSON.stringify(bundleJson.dsseEnvelope)).digest('hex'));
    expect(Buffer.from(parsed.spec.signatures[0].verifier, 'base64').toString()).toBe(signerPem);
    sigstoreVerify(bundleJson, 1); // the SET is the verified timestamp
    ours(bundleJson);
    expect(checkEntryAgainstLog(tlogEntry(log, 3), log.publicKey.key, log.origin)).toMatchObject({ index: 3, treeSize: 4 });
  });

  it('verifies without a SET when no timestamp is required', async () => {
    const builder = new DSSEBundleBuilder({ signer, witnesses: [new LocalLogWitness(log, { inclusionPromise: false })] });
    const b = bundleToJSON(await builder.create({ data: statement, type: 'application/vnd.in-toto+json' }));
    expect(entryOf(b).inclusionPromise).toBeUndefined();
    sigstoreVerify(b, 0);
    ours(b);
    expect(() => sigstoreVerify(b, 1)).toThrow(/timestamp/i);
  });

  it('rejects a changed proof hash, checkpoint, body or SET', () => {
    const cases: [string, (e: SerializedTlogEntry) => void][] = [
      ['proof hash', (e) => (e.inclusionProof!.hashes![1] = flipB64(e.inclusionProof!.hashes![1], 31))],
      ['checkpoint root', (e) => (e.inclusionProof!.checkpoint.envelope = e.inclusionProof!.checkpoint.envelope.replace(/\n([A-Za-z0-9+/=]{44})\n/, (_m, r: string) => `\n${flipB64(r, 5)}\n`))],
      ['checkpoint size', (e) => (e.inclusionProof!.checkpoint.envelope = e.inclusionProof!.checkpoint.envelope.replace(/\n4\n/, '\n5\n'))],
      // The log's ECDSA signature (the first line; the second is its Ed25519 one, for tlog-tiles clients).
      ['checkpoint signature', (e) => (e.inclusionProof!.checkpoint.envelope = e.inclusionProof!.checkpoint.envelope.replace(/\n\n— (\S+) (\S+)\n/, (_m, n: string, s: string) => `\n\n— ${n} ${flipB64(s, 40)}\n`))],
      ['body', (e) => (e.canonicalizedBody = Buffer.from(Buffer.from(e.canonicalizedBody, 'base64').toString().replace('"dsse"', '"dsse" ')).toString('base64'))],
      ['SET', (e) => (e.inclusionPromise!.signedEntryTimestamp = flipB64(e.inclusionPromise!.signedEntryTimestamp, 20))],
      ['log index', (e) => (e.logIndex = '2')],
    ];
    for (const [what, edit] of cases) {
      const b = altered(edit);
      expect(() => sigstoreVerify(b), what).toThrow();
      expect(() => ours(b), what).toThrow(BpfsealError);
    }
  });

  it('catches what @sigstore/verify does not: proof rootHash / treeSize, checkpoint origin', () => {
    const wrongRoot = altered((e) => (e.inclusionProof!.rootHash = flipB64(e.inclusionProof!.rootHash)));
    const wrongSize = altered((e) => (e.inclusionProof!.treeSize = '99'));
    for (const b of [wrongRoot, wrongSize]) {
      sigstoreVerify(b); // accepted there (shared/facts/node.md)
      expect(() => ours(b)).toThrow(/tree size|root hash/);
    }
    expect(() => ours(bundleJson, 'bpfseal.test/other')).toThrow(BpfsealError);
  });

  it('proves an entry against a later, witness-cosigned checkpoint; @sigstore/verify still accepts it', async () => {
    const w = generateWitnessKey('w.test/rekor');
    await log.append(Buffer.from('{"later":1}'));
    const cosigned = cosign(log.checkpoint().note, parseWitnessSigner(w.signer), log.origin);
    const c = openSignedCheckpoint(cosigned.note, log.verifiers, log.origin);
    const entry = tlogEntry(log, 3, { checkpoint: c });
    const bundle = bundleFromJSON(bundleJson);
    bundle.verificationMaterial.tlogEntries = [entry];
    const b = bundleToJSON(bundle);
    sigstoreVerify(b);
    ours(b);
    expect(verifyCosignatures(entryOf(b).inclusionProof!.checkpoint.envelope, [{ name: 'w.test/rekor', key: w.vkey }], 1).ok).toBe(true);
  });

  it('refuses to log an envelope whose signature does not verify with the given key', async () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const witness = new LocalLogWitness(log);
    const bundle = bundleFromJSON(bundleJson);
    const before = log.size;
    await expect(witness.testify(bundle.content, other)).rejects.toMatchObject({ code: 'TLOG_DSSE_SIGNATURE_INVALID' });
    expect(log.checkpoint().size).toBe(before);
  });
});
