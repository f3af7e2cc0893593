import { createHash, createPrivateKey, generateKeyPairSync, type KeyObject, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Command } from 'commander';
import forge from 'node-forge';
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  generateKeyPair, KEY_ALGORITHMS, keyAlgorithm, keyId, loadPrivateKey, loadPublicKey, signData, verifyData, writeKeyFiles,
} from '../src/trust/keys.js';
import { certificateInfo, subjectKeyIdentifier } from '../src/trust/x509.js';
import { registerKeygen } from '../src/cli/keygen.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
if (!hasOpenssl) console.warn('openssl not found: skipping the openssl cross-checks in keys.test.ts');

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'bpfseal-keys-'));
  dirs.push(d);
  return d;
}
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** subjectPublicKey BIT STRING contents computed without our DER code: from JWK / PKCS#1. */
function publicKeyBits(pub: KeyObject): Buffer {
  const jwk = pub.export({ format: 'jwk' });
  if (pub.asymmetricKeyType === 'ec') {
    return Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
  }
  if (pub.asymmetricKeyType === 'ed25519') return Buffer.from(jwk.x!, 'base64url');
  return pub.export({ type: 'pkcs1', format: 'der' });
}

describe.each(KEY_ALGORITHMS)('keygen %s', (alg) => {
  const dir = tmp();
  const files = writeKeyFiles(dir, 'k', alg);

  it('writes key 0600, pub and crt, and a key id over the SPKI', () => {
    expect(statSync(files.key).mode & 0o777).toBe(0o600);
    expect(existsSync(files.pub) && existsSync(files.crt)).toBe(true);
    expect(readFileSync(files.key, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(readFileSync(files.pub, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    const priv = loadPrivateKey(files.key);
    expect(priv.tooOpen).toBe(false);
    expect(keyAlgorithm(priv.key)).toBe(alg);
    const pub = loadPublicKey(files.pub);
    const spki = pub.export({ type: 'spki', format: 'der' });
    expect(files.keyId).toBe(createHash('sha256').update(spki).digest('hex'));
    expect(keyId(pub)).toBe(files.keyId);
    expect(keyId(priv.key)).toBe(files.keyId);
    expect(keyId(loadPublicKey(files.crt))).toBe(files.keyId);
  });

  it('certificate parses, is self-signed, and carries the RFC 5280 method-1 SKI', () => {
    const pem = readFileSync(files.crt, 'utf8');
    const x = new X509Certificate(pem);
    const pub = loadPublicKey(files.pub);
    expect(x.verify(pub)).toBe(true);
    expect(x.verify(generateKeyPair(alg).publicKey)).toBe(false);
    // checkIssued(x) would be false: OpenSSL wants keyCertSign on an issuer, and this is a CA:FALSE leaf
    // (like the kernel's own module-signing key); the kernel's self-signed check only matches names/AKI.
    expect(x.issuer).toBe(x.subject);
    expect(x.subject).toBe('CN=k');
    expect(x.ca).toBe(false);
    const info = certificateInfo(pem);
    const expected = createHash('sha1').update(publicKeyBits(pub)).digest('hex');
    expect(info.ski).toBe(expected);
    expect(subjectKeyIdentifier(pub.export({ type: 'spki', format: 'der' })).toString('hex')).toBe(expected);
    expect(info.serial).toBe(x.serialNumber);
    expect(info.serial).toMatch(/^[4-7][0-9A-F]{31}$/);
    const days = (info.notAfter.getTime() - info.notBefore.getTime()) / 86_400_000;
    expect(days).toBeGreaterThan(3649.9);
    expect(days).toBeLessThan(3650.1);
    expect(Math.abs(info.notBefore.getTime() - new Date(x.validFrom).getTime())).toBe(0);
    // Strict DER: an independent parser (node-forge) re-encodes it byte for byte.
    const der = x.raw;
    expect(Buffer.from(forge.asn1.toDer(forge.asn1.fromDer(der.toString('binary'), true)).getBytes(), 'binary').equals(der)).toBe(true);
  });

  it.skipIf(!hasOpenssl)('openssl x509 -text shows the v3 profile and the same SKI', () => {
    const r = spawnSync('openssl', ['x509', '-in', files.crt, '-noout', '-text'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const ski = certificateInfo(readFileSync(files.crt)).ski!;
    const colon = ski.toUpperCase().match(/../g)!.join(':');
    expect(r.stdout).toMatch(new RegExp(`X509v3 Subject Key Identifier: *\\n *${colon}\\n`));
    expect(r.stdout).toMatch(new RegExp(`X509v3 Authority Key Identifier: *\\n *(keyid:)?${colon}\\n`));
    expect(r.stdout).toContain('Version: 3 (0x2)');
    expect(r.stdout).toMatch(/X509v3 Basic Constraints: critical\n *CA:FALSE/);
    expect(r.stdout).toMatch(/X509v3 Key Usage: critical\n *Digital Signature\n/);
    expect(r.stdout).toMatch(/X509v3 Extended Key Usage: *\n *Code Signing/);
    const sigAlg = { 'ecdsa-p256': 'ecdsa-with-SHA256', ed25519: 'ED25519', 'rsa-3072': 'sha256WithRSAEncryption' }[alg];
    expect(r.stdout).toContain(`Signature Algorithm: ${sigAlg}`);
  });

  it('signData/verifyData round-trip and reject tampering', () => {
    const { key } = loadPrivateKey(files.key);
    const pub = loadPublicKey(files.pub);
    const data = Buffer.from('bpfseal statement');
    const sig = signData(key, data);
    expect(verifyData(pub, data, sig)).toBe(true);
    expect(verifyData(pub, Buffer.from('bpfseal statemenT'), sig)).toBe(false);
    expect(verifyData(generateKeyPair(alg).publicKey, data, sig)).toBe(false);
  });
});

describe('refusing to overwrite', () => {
  it.each(['k.key', 'k.pub', 'k.crt'])('an existing %s stops everything, byte-identical', (existing) => {
    const dir = tmp();
    writeFileSync(join(dir, existing), 'precious\n');
    expect(() => writeKeyFiles(dir, 'k', 'ecdsa-p256')).toThrow(expect.objectContaining({ code: 'KEY_EXISTS', exitCode: 2 }));
    expect(() => writeKeyFiles(dir, 'k', 'ecdsa-p256')).toThrow(`refusing to overwrite ${join(dir, existing)}`);
    expect(readFileSync(join(dir, existing), 'utf8')).toBe('precious\n');
    for (const f of ['k.key', 'k.pub', 'k.crt'].filter((f) => f !== existing)) expect(existsSync(join(dir, f))).toBe(false);
  });

  it('rejects names with path separators', () => {
    expect(() => writeKeyFiles(tmp(), '../x', 'ed25519')).toThrow(expect.objectContaining({ code: 'KEY_NAME_INVALID' }));
  });
});

describe('loading keys', () => {
  const dir = tmp();
  const files = writeKeyFiles(dir, 'k', 'rsa-3072');

  it('public key or certificate where a private key is expected', () => {
    expect(() => loadPrivateKey(files.pub)).toThrow(expect.objectContaining({ code: 'KEY_NOT_PRIVATE' }));
    expect(() => loadPrivateKey(files.crt)).toThrow(expect.objectContaining({ code: 'KEY_NOT_PRIVATE' }));
    expect(() => loadPrivateKey(join(dir, 'missing.key'))).toThrow(expect.objectContaining({ code: 'INPUT_UNREADABLE' }));
    writeFileSync(join(dir, 'junk.key'), 'not a key');
    expect(() => loadPrivateKey(join(dir, 'junk.key'))).toThrow(expect.objectContaining({ code: 'KEY_INVALID' }));
  });

  it('private key where a public key is expected', () => {
    expect(() => loadPublicKey(files.key)).toThrow(expect.objectContaining({ code: 'KEY_IS_PRIVATE' }));
  });

  it('PKCS#1 and SEC1 PEM load; a group-readable key is flagged', () => {
    const rsa = createPrivateKey(readFileSync(files.key));
    const p1 = join(dir, 'pkcs1.key');
    writeFileSync(p1, rsa.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o640 });
    chmodSync(p1, 0o640);
    const l = loadPrivateKey(p1);
    expect(keyId(l.key)).toBe(files.keyId);
    expect(l.tooOpen).toBe(true);
    const ec = generateKeyPair('ecdsa-p256').privateKey;
    const sec1 = join(dir, 'sec1.key');
    writeFileSync(sec1, ec.export({ type: 'sec1', format: 'pem' }), { mode: 0o600 });
    expect(keyId(loadPrivateKey(sec1).key)).toBe(keyId(ec));
  });

  it('unsupported curves are refused', () => {
    const p384 = join(dir, 'p384.key');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    writeFileSync(p384, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    expect(() => loadPrivateKey(p384)).toThrow(expect.objectContaining({ code: 'KEY_UNSUPPORTED' }));
  });
});

describe('registerKeygen', () => {
  async function run(args: string[]): Promise<string> {
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
      out.push(String(s));
      return true;
    });
    try {
      const p = new Command();
      p.exitOverride();
      registerKeygen(p);
      for (const c of p.commands) c.exitOverride();
      await p.parseAsync(['node', 'bpfseal', 'keygen', ...args]);
    } finally {
      spy.mockRestore();
    }
    return out.join('');
  }

  it('defaults: bpfseal.{key,pub,crt}, ecdsa-p256, creates the directory 0700', async () => {
    const dir = join(tmp(), 'new', 'keys');
    const text = await run(['--out', dir]);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const id = keyId(loadPublicKey(join(dir, 'bpfseal.pub')));
    expect(text).toBe(
      `key: ${join(dir, 'bpfseal.key')}\npub: ${join(dir, 'bpfseal.pub')}\ncrt: ${join(dir, 'bpfseal.crt')}\nalgorithm: ecdsa-p256\nkeyid: ${id}\n`,
    );
    expect(keyAlgorithm(loadPrivateKey(join(dir, 'bpfseal.key')).key)).toBe('ecdsa-p256');
    const before = readFileSync(join(dir, 'bpfseal.key'));
    await expect(run(['--out', dir])).rejects.toMatchObject({ code: 'KEY_EXISTS', exitCode: 2 });
    expect(readFileSync(join(dir, 'bpfseal.key')).equals(before)).toBe(true);
  });

  it('--json, --name, --algorithm', async () => {
    const dir = tmp();
    const j = JSON.parse(await run(['--out', dir, '--name', 'prod', '--algorithm', 'ed25519', '--json'])) as Record<string, string>;
    expect(Object.keys(j).sort()).toEqual(['algorithm', 'crt', 'key', 'keyId', 'pub']);
    expect(j.algorithm).toBe('ed25519');
    expect(j.key).toBe(join(dir, 'prod.key'));
    expect(j.keyId).toBe(keyId(loadPublicKey(j.crt!)));
  });

  it('unknown algorithm: exit 2, nothing written', async () => {
    const dir = tmp();
    await expect(run(['--out', dir, '--algorithm', 'dsa'])).rejects.toMatchObject({ code: 'KEY_ALGORITHM_UNKNOWN', exitCode: 2 });
    expect(existsSync(join(dir, 'bpfseal.key'))).toBe(false);
  });
});

describe('signatureVerifies (src/sig.ts): the one verify primitive', () => {
  it('true for a good signature; false, never a throw, for a changed byte, a malformed DER signature or a key of another kind', async () => {
    const { signatureVerifies } = await import('../src/sig.js');
    const { sign } = await import('node:crypto');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ed = generateKeyPairSync('ed25519');
    const data = Buffer.from('bpfseal');
    const sigEc = sign('sha256', data, ec.privateKey);
    const sigEd = sign(null, data, ed.privateKey);
    expect(signatureVerifies('sha256', data, ec.publicKey, sigEc)).toBe(true);
    expect(signatureVerifies(null, data, ed.publicKey, sigEd)).toBe(true);
    expect(signatureVerifies('sha256', Buffer.from('bpfseaL'), ec.publicKey, sigEc)).toBe(false);
    expect(signatureVerifies('sha256', data, ec.publicKey, Buffer.from([0x30, 0x02, 0x01]))).toBe(false); // not DER
    expect(signatureVerifies('sha256', data, ed.publicKey, sigEc)).toBe(false); // Ed25519 key with a digest: node throws
    expect(signatureVerifies(null, data, ec.publicKey, sigEd)).toBe(false);
  });
});
