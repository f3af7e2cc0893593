/**
 * Helpers for the audit tests (test/audit*.test.ts): unique minimal.o variants (so kernel tags and plan
 * names are ours alone), sign/verify/audit through the CLI with JSON, release bundle edits re-encoded
 * canonically, log directory copies, an independent RFC 6962 inclusion check over the raw `entries`
 * file, and kernel helpers (programs by tag/id, a foreign socket filter, pin dirs
 * /sys/fs/bpf/bpfseal-audit-<pid>-<n>).
 */
import { runCliJson } from './attest.js';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundleFromJSON, bundleToJSON, type SerializedBundle } from '@sigstore/bundle';
import { decodeRelease, encodeRelease } from '../../src/attest/release.js';
import { progFdById, progInfo, progLoad, progNextId } from '../../src/kernel/bpf.js';
import { afterEach } from 'vitest';
import { KernelError } from '../../src/kernel/errors.js';
import type { Fd } from '../../src/kernel/fd.js';
import { runCli, show, type CliResult } from './cli.js';
import { readFixture } from './paths.js';

export { runCli, show, type CliResult };

/** Run the CLI; stdout parsed as JSON when it is JSON. */
export function cliJson<T = any>(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult & { json: T | undefined }> {
  return runCliJson<T>(args, opts);
}


// ---------------------------------------------------------------------------------------------------
// Objects

/** File offset of minimal.o's `xdp` section: `r0 = 2; exit` (checked below). */
const MINIMAL_XDP_OFFSET = 64;
const MINIMAL_INSNS = 'b7000000020000009500000000000000';

let imm = (process.pid % 100_000) * 1000 + 17;
/** A return value no other test process uses: the variant's instructions (and kernel tag) are unique. */
export function uniqueImm(): number {
  return (imm++ % 0x7fff_0000) + 3;
}

/** Instructions of the minimal.o variant returning `ret` (`r0 = ret; exit`). */
export function variantInsns(ret: number): Buffer {
  const b = Buffer.from(MINIMAL_INSNS, 'hex');
  b.writeInt32LE(ret, 4);
  return b;
}

/**
 * Write minimal.o with its XDP program returning `ret` as `<dir>/<name>.o` (plan name = `name`).
 * XDP return values are not range-checked by the verifier, so the variant loads like the original.
 */
export function writeVariant(dir: string, name: string, ret = uniqueImm()): { path: string; ret: number; insns: Buffer } {
  const b = Buffer.from(readFixture('minimal'));
  if (b.subarray(MINIMAL_XDP_OFFSET, MINIMAL_XDP_OFFSET + 16).toString('hex') !== MINIMAL_INSNS) {
    throw new Error('test/fixtures/minimal.o changed: its xdp section is not `r0 = 2; exit` at offset 64');
  }
  const insns = variantInsns(ret);
  insns.copy(b, MINIMAL_XDP_OFFSET);
  const path = join(dir, `${name}.o`);
  writeFileSync(path, b);
  return { path, ret, insns };
}

// ---------------------------------------------------------------------------------------------------
// Signing

export interface SignJson { input: string; release?: string; digest?: string; version?: number; error?: { code: string; message: string; exit: number } }

/** `bpfseal sign <obj> --key <key> <extra...> -o <outDir>/ --json`; throws unless it signed. */
export async function signOk(obj: string, key: string, outDir: string, extra: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ release: string; digest: string; r: CliResult }> {
  const r = await cliJson<SignJson[]>(['sign', obj, '--key', key, ...extra, '-o', `${outDir}/`, '--json'], opts);
  const s = r.json?.[0];
  if (r.code !== 0 || !s?.release || !s.digest) throw new Error(`sign ${obj} failed: ${show(r)}`);
  return { release: s.release, digest: s.digest, r };
}

/** What `bpfseal verify --json` prints per release (the CLI's own type). */
export type { VerifyResult as VerifyJson } from '../../src/cli/verify.js';
import type { VerifyResult as VerifyJson } from '../../src/cli/verify.js';

/** `bpfseal verify <release> <args...> --json`: exit code and the one result. */
export async function verifyJson(release: string, args: string[]): Promise<{ code: number | null; result: VerifyJson; r: CliResult }> {
  const r = await cliJson<VerifyJson[]>(['verify', release, ...args, '--json']);
  if (!Array.isArray(r.json) || r.json.length !== 1) throw new Error(`verify --json did not print one result: ${show(r)}`);
  return { code: r.code, result: r.json[0], r };
}

/** Edit a release's bundle (serialized JSON form) and write it re-encoded canonically to `out`. */
export function editBundle(release: string, out: string, edit: (b: any) => void): string {
  const rel = decodeRelease(readFileSync(release));
  const json = JSON.parse(JSON.stringify(bundleToJSON(rel.bundle))) as SerializedBundle;
  edit(json);
  writeFileSync(out, encodeRelease({ ...rel, bundle: bundleFromJSON(json) }));
  return out;
}

/** The bundle JSON of a release file. */
export function bundleJson(release: string): any {
  return (JSON.parse(readFileSync(release, 'utf8')) as { bundle: any }).bundle;
}

// ---------------------------------------------------------------------------------------------------
// Log directories

/** Copy a whole log directory (modes kept: log.key stays 0600). */
export function copyDir(src: string, dst: string): void {
  cpSync(src, dst, { recursive: true, preserveTimestamps: true });
}

export function logOrigin(dir: string): string {
  return (JSON.parse(readFileSync(join(dir, 'log.json'), 'utf8')) as { origin: string }).origin;
}

/** Log ID: SHA-256 of the DER SPKI of log.pub. */
export function logIdOf(dir: string): Buffer {
  const pem = readFileSync(join(dir, 'log.pub'), 'utf8');
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return createHash('sha256').update(der).digest();
}

/** Size and root (bytes) named by a checkpoint note. */
export function parseCheckpoint(note: string): { origin: string; size: number; root: Buffer } {
  const [origin, size, root] = note.split('\n');
  return { origin, size: Number(size), root: Buffer.from(root, 'base64') };
}

/** The raw entry bytes of a log, read from its entry bundles (tlog-tiles layout). */
export { rawEntries } from './tlog-files.js';

const sha256 = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
export const leafHashOf = (entry: Buffer) => sha256(Buffer.from([0]), entry);

/** RFC 9162 §2.1.3.2: the root an inclusion proof leads to (independent of src/tlog). */
export function rootFromInclusion(index: number, size: number, leaf: Buffer, path: Buffer[]): Buffer {
  if (index >= size) throw new Error('index beyond the tree');
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) throw new Error('proof too long');
    if (fn % 2 === 1 || fn === sn) {
      r = sha256(Buffer.from([1]), p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = sha256(Buffer.from([1]), r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error('proof too short');
  return r;
}

/** Decisions of a host load log, via `bpfseal log show --json` (entries in order). */
export async function hostDecisions(dir: string): Promise<any[]> {
  if (!existsSync(join(dir, 'log.json'))) return [];
  const r = await cliJson<{ index: number; entry: any }[]>(['log', 'show', '--log', dir, '--json']);
  if (r.code !== 0 || !Array.isArray(r.json)) throw new Error(`log show ${dir} failed: ${show(r)}`);
  return r.json.map((e) => e.entry);
}

// ---------------------------------------------------------------------------------------------------
// Kernel

/** Unique pin directories /sys/fs/bpf/bpfseal-audit-<pid>-<n>; cleanup() removes every one handed out. */
export class AuditPinDirs {
  private n = 0;
  private readonly made: string[] = [];
  next(): string {
    let d: string;
    do d = `/sys/fs/bpf/bpfseal-audit-${process.pid}-${this.n++}`;
    while (existsSync(d));
    this.made.push(d);
    return d;
  }
  cleanup(): void {
    while (this.made.length) rmSync(this.made.pop()!, { recursive: true, force: true });
  }
}

/** A key pair as `keygen --json` reports it. */
export interface Key { key: string; pub: string; keyId: string }

/**
 * What every kernel-audit test file sets up: pin directories under /sys/fs/bpf and descriptors the
 * test holds, both removed after each test.
 */
export function kernelTestResources(): { pins: AuditPinDirs; fds: Fd[] } {
  const pins = new AuditPinDirs();
  const fds: Fd[] = [];
  afterEach(() => {
    while (fds.length) fds.pop()?.close();
    pins.cleanup();
  });
  return { pins, fds };
}

/** Ids of the programs loaded now whose tag is `tag`. */
export function programIdsWithTag(tag: string): number[] {
  const out: number[] = [];
  for (let id = progNextId(0); id !== 0; id = progNextId(id)) {
    let fd: Fd;
    try {
      fd = progFdById(id);
    } catch (e) {
      if (e instanceof KernelError && e.errno === 2) continue;
      throw e;
    }
    try {
      if (progInfo(fd).tag === tag) out.push(id);
    } finally {
      fd.close();
    }
  }
  return out;
}

/** Does a program with this id exist (BPF_PROG_GET_NEXT_ID takes no reference)? */
export function programExists(id: number): boolean {
  return progNextId(id - 1) === id;
}

/** The tag this kernel gives an XDP program with these instructions (loaded and closed at once). */
export function kernelTagOf(insns: Buffer): string {
  const fd = progLoad({ type: 6, insns, license: 'GPL', kernVersion: 0, flags: 0, name: 'bpfseal_atag', expectedAttachType: 0, fdArray: [] });
  try {
    return progInfo(fd).tag;
  } finally {
    fd.close();
  }
}

/** A socket filter loaded outside bpfseal (`r0 = ret; exit`), kept alive by the returned fd. */
export function foreignSocketFilter(name: string, ret = uniqueImm()): { fd: Fd; id: number; tag: string; name: string } {
  const fd = progLoad({ type: 1, insns: variantInsns(ret), license: 'GPL', kernVersion: 0, flags: 0, name, expectedAttachType: 0, fdArray: [] });
  const info = progInfo(fd);
  return { fd, id: info.id, tag: info.tag, name: info.name };
}

import { sleep } from './kernel.js';
export { sleep }; // one sleep helper for the tests

/** Poll (bounded; the kernel frees programs after an RCU grace period) until `cond` holds; returns it. */
export async function eventually(cond: () => boolean, tries = 200, intervalMs = 25): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return true;
    await sleep(intervalMs);
  }
  return cond();
}
