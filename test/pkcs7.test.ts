import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import forge from 'node-forge';
import { afterAll, describe, expect, it } from 'vitest';
import { generateKeyPair, loadPrivateKey, writeKeyFiles } from '../src/trust/keys.js';
import { selfSignedCertificate } from '../src/trust/x509.js';
import {
  KERNEL_MAX_SIGNATURE_SIZE, parseInstructionSignature, signInstructions, verifyInstructionSignature,
} from '../src/attest/pkcs7.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
if (!hasOpenssl) console.warn('openssl not found: skipping the openssl cms cross-checks in pkcs7.test.ts');

const dir = mkdtempSync(join(tmpdir(), 'bpfseal-pkcs7-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

/** The independent check from facts/kernel.md. */
function opensslVerify(sig: Buffer, insns: Buffer, certPath: string): boolean {
  const s = join(dir, `sig-${randomBytes(4).toString('hex')}.der`);
  const c = join(dir, `insns-${randomBytes(4).toString('hex')}.bin`);
  writeFileSync(s, sig);
  writeFileSync(c, insns);
  const r = openssl(['cms', '-verify', '-binary', '-inform', 'DER', '-in', s, '-content', c, '-certfile', certPath, '-noverify', '-out', '/dev/null']);
  return r.status === 0;
}

const insns = randomBytes(8 * 100);

describe.each(['rsa-3072', 'ecdsa-p256'] as const)('%s', (alg) => {
  const files = writeKeyFiles(dir, alg, alg);
  const key = loadPrivateKey(files.key).key;
  const cert = readFileSync(files.crt, 'utf8');
  const sig = signInstructions(insns, key, cert);
  const tampered = Buffer.from(insns);
  tampered[8 * 42 + 3]! ^= 0x01;

  it('fits the kernel limit', () => {
    console.log(`${alg}: signature ${sig.length} bytes (certificate ${forge.pem.decode(cert)[0]!.body.length} bytes)`);
    expect(sig.length).toBeLessThan(KERNEL_MAX_SIGNATURE_SIZE);
  });

  it('is strict DER with the RFC 5652 shape', () => {
    const bin = sig.toString('binary');
    expect(Buffer.from(forge.asn1.toDer(forge.asn1.fromDer(bin, true)).getBytes(), 'binary').equals(sig)).toBe(true);
    const p = parseInstructionSignature(sig);
    expect(p.certificates).toHaveLength(1);
    expect('issuerTlv' in p.signer.sid).toBe(true);
    expect(p.signer.digestAlgorithm).toBe('2.16.840.1.101.3.4.2.1');
    expect(p.signer.signatureAlgorithm).toBe(alg === 'rsa-3072' ? '1.2.840.113549.1.1.1' : '1.2.840.10045.4.3.2');
  });

  it('our verifier: true for the bytes signed, false for one changed bit or another key', () => {
    expect(verifyInstructionSignature(sig, insns, cert)).toBe(true);
    expect(verifyInstructionSignature(sig, insns, readFileSync(files.crt))).toBe(true);
    expect(verifyInstructionSignature(sig, tampered, cert)).toBe(false);
    expect(verifyInstructionSignature(sig, insns.subarray(8), cert)).toBe(false);
    const other = generateKeyPair(alg);
    const otherCert = selfSignedCertificate(other.privateKey, other.publicKey, { commonName: alg });
    expect(verifyInstructionSignature(sig, insns, otherCert)).toBe(false);
    expect(verifyInstructionSignature(sig, insns, other.publicKey)).toBe(false);
  });

  it('a flipped bit in the signature value fails', () => {
    const bad = Buffer.from(sig);
    bad[bad.length - 10]! ^= 0x40;
    expect(verifyInstructionSignature(bad, insns, cert)).toBe(false);
  });

  it.skipIf(!hasOpenssl)('openssl cms -verify agrees with our verifier', () => {
    expect(opensslVerify(sig, insns, files.crt)).toBe(true);
    expect(opensslVerify(sig, tampered, files.crt)).toBe(false);
    const p = openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', writeTmp(sig)]);
    expect(p.out).toMatch(/eContent: <ABSENT>/);
    expect(p.out).not.toMatch(/signingTime/);
  });

  it.skipIf(!hasOpenssl)('we verify what openssl signs: signed attrs, -noattr, -keyid', () => {
    const inp = writeTmp(insns);
    for (const extra of [[], ['-noattr'], ['-keyid']]) {
      const out = join(dir, `ossl-${randomBytes(4).toString('hex')}.der`);
      const r = openssl(['cms', '-sign', '-binary', '-md', 'sha256', '-in', inp, '-signer', files.crt, '-inkey', files.key, '-outform', 'DER', '-out', out, ...extra]);
      expect(r.status, r.out).toBe(0);
      const s = readFileSync(out);
      expect(verifyInstructionSignature(s, insns, cert), extra.join(' ')).toBe(true);
      expect(verifyInstructionSignature(s, tampered, cert), extra.join(' ')).toBe(false);
    }
    const nd = join(dir, 'nodetach.der');
    openssl(['cms', '-sign', '-binary', '-nodetach', '-md', 'sha256', '-in', inp, '-signer', files.crt, '-inkey', files.key, '-outform', 'DER', '-out', nd]);
    expect(() => verifyInstructionSignature(readFileSync(nd), insns, cert)).toThrow(expect.objectContaining({ code: 'PKCS7_NOT_DETACHED' }));
  });
});

function writeTmp(b: Buffer): string {
  const p = join(dir, `t-${randomBytes(4).toString('hex')}`);
  writeFileSync(p, b);
  return p;
}

describe('signInstructions refusals', () => {
  it('Ed25519: the kernel cannot verify it', () => {
    const k = generateKeyPair('ed25519');
    const cert = selfSignedCertificate(k.privateKey, k.publicKey, { commonName: 'ed' });
    expect(() => signInstructions(insns, k.privateKey, cert)).toThrow(/kernel program signatures need an RSA or ECDSA key/);
    expect(() => signInstructions(insns, k.privateKey, cert)).toThrow(expect.objectContaining({ code: 'SIG_KEY_UNSUPPORTED', exitCode: 2 }));
  });

  it('certificate of another key', () => {
    const a = generateKeyPair('ecdsa-p256');
    const b = generateKeyPair('ecdsa-p256');
    const cert = selfSignedCertificate(b.privateKey, b.publicKey, { commonName: 'b' });
    expect(() => signInstructions(insns, a.privateKey, cert)).toThrow(expect.objectContaining({ code: 'SIG_CERT_MISMATCH' }));
  });

  it('instruction bytes that are not whole instructions', () => {
    const a = generateKeyPair('ecdsa-p256');
    const cert = selfSignedCertificate(a.privateKey, a.publicKey, { commonName: 'a' });
    expect(() => signInstructions(Buffer.alloc(12), a.privateKey, cert)).toThrow(expect.objectContaining({ code: 'INSNS_INVALID' }));
    expect(() => signInstructions(Buffer.alloc(0), a.privateKey, cert)).toThrow(expect.objectContaining({ code: 'INSNS_INVALID' }));
  });

  it('a certificate too large for signature_size', () => {
    const a = generateKeyPair('ecdsa-p256');
    const cert = selfSignedCertificate(a.privateKey, a.publicKey, { commonName: 'x'.repeat(9000) });
    expect(() => signInstructions(insns, a.privateKey, cert)).toThrow(expect.objectContaining({ code: 'SIG_TOO_LARGE' }));
  });

  it('RSA output is deterministic (no signingTime)', () => {
    const k = generateKeyPair('rsa-3072');
    const cert = selfSignedCertificate(k.privateKey, k.publicKey, { commonName: 'r' });
    expect(signInstructions(insns, k.privateKey, cert).equals(signInstructions(insns, k.privateKey, cert))).toBe(true);
  });

  it('garbage and PEM are malformed, not false', () => {
    const k = generateKeyPair('ecdsa-p256');
    const cert = selfSignedCertificate(k.privateKey, k.publicKey, { commonName: 'g' });
    for (const bad of [Buffer.from('garbage'), Buffer.from(cert), Buffer.alloc(0), Buffer.from([0x30, 0x80, 0, 0])]) {
      expect(() => verifyInstructionSignature(bad, insns, cert)).toThrow(expect.objectContaining({ code: 'PKCS7_MALFORMED' }));
    }
  });
});
