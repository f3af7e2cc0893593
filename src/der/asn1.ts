/**
 * A small DER (ITU-T X.690) encoder and strict parser for the few structures bpfseal writes and reads:
 * X.509 certificates (RFC 5280) and CMS SignedData (RFC 5652).
 *
 * Why not node-forge's asn1 here: its parser does not keep the original bytes of each element, and CMS
 * verification must hash the signed attributes exactly as received (RFC 5652 §5.4). This parser keeps
 * every element's raw TLV and rejects non-DER input (indefinite or non-minimal lengths, high tag numbers).
 */
import { InputError } from '../errors.js';

/** Malformed DER; exit 2. */
export class Asn1Error extends InputError {
  constructor(message: string) {
    super('ASN1_MALFORMED', `malformed DER: ${message}`);
    this.name = 'Asn1Error';
  }
}

// Tag bytes (X.690 §8.1.2): universal class, primitive unless noted.
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

// ---------------------------------------------------------------------------------------------------
// Encoding

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV with a single-byte tag and a definite, minimal length (X.690 §10.1). */
export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export const sequence = (...items: Buffer[]): Buffer => tlv(TAG.SEQUENCE, Buffer.concat(items));

/** SET OF: DER sorts the encoded elements in ascending octet order (X.690 §11.6). */
export const setOf = (...items: Buffer[]): Buffer => tlv(TAG.SET, Buffer.concat([...items].sort(Buffer.compare)));

/** Context-specific constructed tag [n], used for EXPLICIT tagging and IMPLICIT SET/SEQUENCE. */
export const contextConstructed = (n: number, content: Buffer): Buffer => tlv(0xa0 | n, content);

/** Context-specific primitive tag [n] (IMPLICIT over a primitive type, e.g. AKI keyIdentifier). */
export const contextPrimitive = (n: number, content: Buffer): Buffer => tlv(0x80 | n, content);

export const nullValue = (): Buffer => Buffer.from([TAG.NULL, 0]);
export const octetString = (b: Buffer): Buffer => tlv(TAG.OCTET_STRING, b);
export const bitString = (b: Buffer): Buffer => tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), b]));
export const utf8String = (s: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
export const boolean = (v: boolean): Buffer => tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0]));

/** A non-negative INTEGER from unsigned big-endian bytes, minimal two's complement (X.690 §8.3.2). */
export function unsignedInteger(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  let b = bytes.subarray(i);
  if (b.length === 0) b = Buffer.from([0]);
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(TAG.INTEGER, b);
}

export const smallInteger = (n: number): Buffer => unsignedInteger(Buffer.from([n >> 24, n >> 16, n >> 8, n].map((x) => x & 0xff)));

const oidCache = new Map<string, Buffer>();

/** OBJECT IDENTIFIER from dotted form (X.690 §8.19); encodings are cached (a handful of OIDs, used per signature). */
export function oid(dotted: string): Buffer {
  let b = oidCache.get(dotted);
  if (!b) {
    b = encodeOid(dotted);
    oidCache.set(dotted, b);
  }
  return b;
}

function encodeOid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((s) => Number(s));
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new Error(`bad OID ${dotted}`);
  const out: number[] = [];
  const first = [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)];
  for (const arc of first) {
    const groups: number[] = [];
    let v = arc;
    do {
      groups.unshift(v % 128);
      v = Math.floor(v / 128);
    } while (v > 0);
    groups.forEach((g, i) => out.push(i < groups.length - 1 ? g | 0x80 : g));
  }
  return tlv(TAG.OID, Buffer.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime for 1950..2049, GeneralizedTime from 2050; seconds precision, 'Z'. */
export function time(d: Date): Buffer {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const y = d.getUTCFullYear();
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(TAG.UTC_TIME, Buffer.from(`${p(y % 100)}${rest}`, 'latin1'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(`${p(y, 4)}${rest}`, 'latin1'));
}

// ---------------------------------------------------------------------------------------------------
// Parsing

export interface Der {
  /** The single identifier octet. */
  tag: number;
  /** The whole TLV as received. */
  raw: Buffer;
  /** The contents octets. */
  content: Buffer;
}

function readOne(buf: Buffer, off: number): Der {
  if (off + 2 > buf.length) throw new Asn1Error('truncated header');
  const tag = buf[off]!;
  if ((tag & 0x1f) === 0x1f) throw new Asn1Error('high tag numbers are not supported');
  let len = buf[off + 1]!;
  let hdr = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new Asn1Error('indefinite length is not DER');
    if (n > 4) throw new Asn1Error('length too large');
    if (off + 2 + n > buf.length) throw new Asn1Error('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[off + 2 + i]!;
    if (buf[off + 2] === 0 || len < 0x80) throw new Asn1Error('non-minimal length');
    hdr += n;
  }
  if (off + hdr + len > buf.length) throw new Asn1Error(`element at offset ${off} runs past the end`);
  return { tag, raw: buf.subarray(off, off + hdr + len), content: buf.subarray(off + hdr, off + hdr + len) };
}

/** Parse exactly one element filling the whole buffer. */
export function parseDer(buf: Buffer): Der {
  const d = readOne(buf, 0);
  if (d.raw.length !== buf.length) throw new Asn1Error(`${buf.length - d.raw.length} trailing bytes`);
  return d;
}

/** The elements inside a constructed value. */
export function children(d: Der): Der[] {
  if (!(d.tag & 0x20)) throw new Asn1Error(`tag 0x${d.tag.toString(16)} is not constructed`);
  const out: Der[] = [];
  for (let off = 0; off < d.content.length; ) {
    const c = readOne(d.content, off);
    out.push(c);
    off += c.raw.length;
  }
  return out;
}

/** Check the tag and return the node; `what` names the field for the error (e.g. "SignerInfo.sid"). */
export function expectTag(d: Der | undefined, tag: number, what: string): Der {
  if (!d) throw new Asn1Error(`${what} missing`);
  if (d.tag !== tag) throw new Asn1Error(`${what}: expected tag 0x${tag.toString(16)}, got 0x${d.tag.toString(16)}`);
  return d;
}

/** Dotted OID from an OBJECT IDENTIFIER node. */
export function readOid(d: Der | undefined, what: string): string {
  const c = expectTag(d, TAG.OID, what).content;
  if (c.length === 0 || c[c.length - 1]! & 0x80) throw new Asn1Error(`${what}: bad OID encoding`);
  const arcs: number[] = [];
  let v = 0;
  for (const b of c) {
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(v);
      v = 0;
    }
  }
  const first = arcs.shift()!;
  const a0 = first < 80 ? Math.floor(first / 40) : 2;
  return [a0, first - a0 * 40, ...arcs].join('.');
}

/** Small non-negative INTEGER (e.g. a version field). */
export function readSmallInteger(d: Der | undefined, what: string): number {
  const c = expectTag(d, TAG.INTEGER, what).content;
  if (c.length === 0 || c.length > 4 || c[0]! & 0x80) throw new Asn1Error(`${what}: unsupported INTEGER`);
  return c.reduce((acc, b) => acc * 256 + b, 0);
}

/** UTCTime or GeneralizedTime in the RFC 5280 §4.1.2.5 profile (…Z, seconds). */
export function readTime(d: Der | undefined, what: string): Date {
  if (!d || (d.tag !== TAG.UTC_TIME && d.tag !== TAG.GENERALIZED_TIME)) throw new Asn1Error(`${what}: expected a time`);
  const s = d.content.toString('latin1');
  const m = /^(\d{2}|\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m || (d.tag === TAG.UTC_TIME) !== (m[1]!.length === 2)) throw new Asn1Error(`${what}: bad time ${JSON.stringify(s)}`);
  let y = Number(m[1]);
  if (m[1]!.length === 2) y += y < 50 ? 2000 : 1900;
  return new Date(Date.UTC(y, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}
