/**
 * Helpers for the signing/verification acceptance tests (test/attest*.test.ts): CLI calls with JSON,
 * DSSE PAE, policy and state files in a tmp dir, bpf(2) probing and unique bpffs pin directories,
 * and availability checks for the independent verifiers (openssl, python3-cryptography).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, type CliResult } from './cli.js';

export { runCli, type CliResult };

/** Run the CLI and parse stdout as JSON (undefined if stdout is not JSON). */
export async function runCliJson<T = unknown>(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult & { json: T | undefined }> {
  const r = await runCli(args, opts);
  let json: T | undefined;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

/** What `bpfseal verify --json` prints per release (the CLI's own type). */
export type { VerifyResult as VerifyJson } from '../../src/cli/verify.js';
import type { VerifyResult as VerifyJson } from '../../src/cli/verify.js';

/** `bpfseal verify <releases...> <trust...> --state <state> --json`: exit status and one result per release. */
export async function verifyCliMany(releases: string[], trust: string[], state: string): Promise<{ code: number | null; results: VerifyJson[]; stderr: string }> {
  const r = await runCliJson<VerifyJson[]>(['verify', ...releases, ...trust, '--state', state, '--json']);
  if (!Array.isArray(r.json) || r.json.length !== releases.length) {
    throw new Error(`verify --json did not print a ${releases.length}-element array (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
  return { code: r.code, results: r.json, stderr: r.stderr };
}

/** `bpfseal verify <release> <trust...> --state <state> --json`: exit status and the one result. */
export async function verifyCli(release: string, trust: string[], state: string): Promise<{ code: number | null; result: VerifyJson; stderr: string }> {
  const r = await verifyCliMany([release], trust, state);
  return { code: r.code, result: r.results[0]!, stderr: r.stderr };
}

/** DSSE v1 pre-authentication encoding (secure-systems-lab/dsse protocol.md), built independently of bpfseal. */
export function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'ascii'), type,
    Buffer.from(` ${payload.length} `, 'ascii'), payload,
  ]);
}

/** A policy file (JSON, version 1) written as `name` in `dir`; returns its path. */
export function writePolicy(dir: string, name: string, policy: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify({ version: 1, ...policy, ...(Array.isArray(policy.signers) ? { signers: policy.signers.map(allPlans) } : {}) }, null, 2));
  return p;
}

/** Policies name plans and programTypes explicitly; tests that do not care trust every plan and type. */
export function allPlans(s: unknown): unknown {
  return s && typeof s === 'object' ? { plans: ['*'], programTypes: ['*'], ...(s as object) } : s;
}

/** An anti-rollback state file with these versions; returns its path. */
export function writeState(path: string, versions: Record<string, number>): string {
  writeFileSync(path, JSON.stringify({ versions }, null, 2) + '\n');
  return path;
}

export const hasOpenssl = spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0;
export const hasPyCryptography = spawnSync('python3', ['-c', 'import cryptography'], { encoding: 'utf8' }).status === 0;

export function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/**
 * Can this process use bpf(2)? Probed once, in-process, with bpfseal's own binding (creates and closes
 * a 1-entry array map). Also reports whether the kernel verifies program signatures.
 */
export async function probeKernel(): Promise<{ bpf: boolean; why: string; verifiesSignatures?: boolean }> {
  try {
    const probe = await import('../../src/kernel/probe.js');
    if (!probe.canUseBpf()) return { bpf: false, why: 'bpf(2) map creation failed (needs root or CAP_BPF)' };
    let verifiesSignatures: boolean | undefined;
    try {
      verifiesSignatures = probe.kernelVerifiesSignatures();
    } catch (e) {
      verifiesSignatures = undefined;
      return { bpf: true, why: `signature probe failed: ${(e as Error).message}` };
    }
    return { bpf: true, why: '', verifiesSignatures };
  } catch (e) {
    return { bpf: false, why: `bpf(2) binding unavailable: ${(e as Error).message}` };
  }
}

/** Unique pin directories /sys/fs/bpf/bpfseal-attest-<pid>-<n>; cleanup() removes every one handed out. */
export class PinDirs {
  private n = 0;
  private readonly made: string[] = [];
  next(): string {
    const d = `/sys/fs/bpf/bpfseal-attest-${process.pid}-${this.n++}`;
    this.made.push(d);
    return d;
  }
  cleanup(): void {
    while (this.made.length) {
      const d = this.made.pop()!;
      if (existsSync(d)) rmSync(d, { recursive: true, force: true });
    }
  }
}

/** Every file under `dir` (relative paths, sorted), or [] if it does not exist. */
export function listTree(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(join(d, e.name), r);
      else out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}
