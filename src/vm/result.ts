/**
 * The result channel's stream, as init.ts writes it:
 *   "@bpfseal begin 1\n"
 *   "@bpfseal <stdout|stderr|file> <size> <sha256 hex>[ <name>]\n" then exactly <size> raw bytes
 *   "@bpfseal status <exit code> <done|timeout>\n"
 *   "@bpfseal end\n"
 * Raw bytes with a length and a digest: binary-safe and checked end to end, so several MB (a
 * dumped /sys/kernel/btf/vmlinux) come back byte for byte, and a torn stream is detected.
 */
import { createHash } from 'node:crypto';
import { VmError } from './errors.js';

export interface GuestResult {
  exitCode: number;
  timedOut: boolean;
  stdout: Buffer;
  stderr: Buffer;
  /** Files the command left in /out, by path relative to /out. */
  files: Record<string, Buffer>;
}

function fail(message: string): never {
  throw new VmError('result', 'VM_RESULT_CORRUPT', `result channel: ${message}`);
}

export function parseResultStream(data: Buffer): GuestResult {
  let at = data.indexOf('@bpfseal begin 1\n');
  if (at < 0) fail(data.length === 0 ? 'nothing received (the guest did not get to send its results)' : 'no begin marker');
  at += '@bpfseal begin 1\n'.length;
  const out: GuestResult = { exitCode: -1, timedOut: false, stdout: Buffer.alloc(0), stderr: Buffer.alloc(0), files: {} };
  let status = false;
  for (;;) {
    const nl = data.indexOf(0x0a, at);
    if (nl < 0) fail(`truncated after ${at} bytes${status ? '' : ' (no status line)'}`);
    const line = data.toString('utf8', at, nl);
    at = nl + 1;
    const [, kind, rest = ''] = /^@bpfseal (\S+)(?: (.*))?$/.exec(line) ?? [];
    if (kind === undefined) fail(`unexpected line ${JSON.stringify(line.slice(0, 80))}`);
    if (kind === 'end') break;
    if (kind === 'status') {
      const [, code, how] = /^(\d+) (done|timeout)$/.exec(rest) ?? [];
      if (code === undefined || how === undefined) fail(`bad status ${JSON.stringify(rest)}`);
      out.exitCode = Number(code);
      out.timedOut = how === 'timeout';
      status = true;
      continue;
    }
    const [, sizeText, digest, name] = /^(\d+) ([0-9a-f]{64}) ?(.*)$/.exec(rest) ?? [];
    if (sizeText === undefined || digest === undefined || name === undefined || !['stdout', 'stderr', 'file'].includes(kind)) fail(`bad header ${JSON.stringify(line.slice(0, 120))}`);
    const size = Number(sizeText);
    if (at + size > data.length) fail(`${kind} ${name}: ${size} bytes announced, ${data.length - at} received`);
    const body = data.subarray(at, at + size);
    at += size;
    if (createHash('sha256').update(body).digest('hex') !== digest) fail(`${kind} ${name}: sha256 mismatch (corrupted in transit)`);
    if (kind === 'stdout') out.stdout = Buffer.from(body);
    else if (kind === 'stderr') out.stderr = Buffer.from(body);
    else out.files[name] = Buffer.from(body);
  }
  if (!status) fail('no status line');
  return out;
}
