/** Run the built CLI (node dist/bundle/bpfseal.mjs, what package.json "bin" names) in a child process and capture everything. */
import { spawn, spawnSync } from 'node:child_process';
import { CLI, requireDist, ROOT } from './paths.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * What every CLI outcome must satisfy, checked for every test run: a crash (exit 70, "internal error")
 * is never an expected result, and a failure with exit 1, 2 or 3 names its stable error code, so that a
 * test expecting "exit 2" cannot be satisfied by the wrong error.
 */
function checkOutcome(args: string[], r: CliResult): CliResult {
  const where = `bpfseal ${args.join(' ')} (exit ${r.code})`;
  if (r.code === 70 || /internal error/.test(r.stderr)) throw new Error(`${where} crashed:\n${r.stderr}`);
  if (r.code !== null && r.code >= 1 && r.code <= 3 && !/(^|: )[A-Z][A-Z0-9_]{2,}: /m.test(r.stderr) && !/"code": "[A-Z]/.test(r.stdout)) {
    throw new Error(`${where} failed without naming an error code:\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
  return r;
}

export function runCli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): CliResult {
  requireDist();
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, BPFSEAL_DEBUG: '', ...opts.env },
    encoding: 'utf8',
    timeout: 30_000,
    maxBuffer: 64 << 20,
  });
  if (r.error) throw r.error;
  return checkOutcome(args, { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr });
}

/** `sha256:<64 hex>  <path>` lines printed by `bpfseal plan`. */
export const DIGEST_LINE = /^sha256:([0-9a-f]{64}) {2}(.+)$/;

export function parseDigestLines(stdout: string): { digest: string; path: string }[] {
  const lines = stdout.split('\n').filter((l) => l !== '');
  return lines.map((l) => {
    const m = DIGEST_LINE.exec(l);
    if (!m) throw new Error(`not a digest line: ${JSON.stringify(l)}`);
    return { digest: m[1], path: m[2] };
  });
}

/** Asynchronous variant, so that independent invocations can run side by side. */
export function runCliAsync(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  requireDist();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, BPFSEAL_DEBUG: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      try {
        resolve(checkOutcome(args, { code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
      } catch (e) {
        reject(e);
      }
    });
  });
}

/** Run several CLI invocations concurrently; results in argument order. */
export function runCliAll(argvs: string[][], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult[]> {
  return Promise.all(argvs.map((a) => runCliAsync(a, opts)));
}
