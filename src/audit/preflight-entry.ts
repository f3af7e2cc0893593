/**
 * `bpfseal audit` meets a preflight attestation in the log: not a release attestation, and not an
 * invalid one either. It is listed as `preflight` when its statement parses and its DSSE signature
 * verifies with the logged key, and (with a policy) that key belongs to a signer trusted for the plan;
 * otherwise it is a finding like any other entry. It attests no program tags (audit --kernel).
 */
import { createPublicKey } from 'node:crypto';
import type { Envelope } from '@sigstore/bundle';
import { preAuthEncoding } from '../attest/rekor-body.js';
import { at } from '../errors.js';
import { globMatch, type TrustPolicy } from '../trust/policy.js';
import { keyId, verifyData } from '../trust/keys.js';
import type { AuditedEntry } from './attestations.js';
import { parsePreflightStatement } from '../preflight/statement.js';

export function auditPreflightEntry(env: Envelope, verifierPem: string, policy?: TrustPolicy): Partial<AuditedEntry> {
  let st;
  try {
    st = parsePreflightStatement(env.payload);
  } catch (e) {
    return { status: 'not-attestation', code: 'STATEMENT_INVALID', reason: (e as Error).message };
  }
  const p = st.predicate;
  const facts = { plan: p.plan.name, digest: `sha256:${at(st.subject, 0, 'subject').digest.sha256}` }; // the parser requires exactly one
  const summary = `preflight ${p.result} on ${p.kernel.release} (enforcement ${p.enforcement})`;
  const key = createPublicKey(verifierPem);
  if (!verifyData(key, preAuthEncoding(env.payloadType, env.payload), env.signatures[0]?.sig ?? Buffer.alloc(0))) {
    return { ...facts, status: 'bad-signature', code: 'BAD_SIGNATURE', reason: `${summary}: the DSSE signature does not verify with the logged key` };
  }
  if (policy) {
    const id = keyId(key);
    const signer = policy.revokedKeys.has(id) ? undefined : policy.signers.find((s) => s.keyId === id && s.plans.some((g) => globMatch(g, p.plan.name)));
    if (!signer) return { ...facts, status: 'untrusted', code: 'UNTRUSTED_SIGNER', reason: `${summary}: signed by key ${id}, which ${policy.source} does not trust for plan '${p.plan.name}'` };
    return { ...facts, status: 'preflight', signer: signer.name, reason: summary };
  }
  return { ...facts, status: 'preflight', reason: summary };
}
