/**
 * Run the CLI and capture everything. Two ways, with the same outcome checks:
 *  - runCli: in this process, through `main()` of src/cli/main.ts (the program object every command
 *    is registered on), one run at a time. For tests of what a command does, where the process
 *    boundary is not what is tested: no node start-up and module loading per run (~0.15 s each).
 *  - runCliProcess / runCliAsync / runCliAll: the built bundle (node dist/bundle/bpfseal.mjs, what
 *    package.json "bin" names) in a child process: for what only a process shows (the installed entry
 *    point and its bundling, exit statuses as the shell sees them, signals, several processes at once,
 *    another uid). test/cli-process.test.ts runs every command this way at least once.
 */
import { spawn, spawnSync } from 'node:child_process';
import { type Fd, leakedFds, openFds } from '../../src/kernel/fd.js';
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

export interface CliOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

let inProcess = false;

/**
 * Run `bpfseal <args>` in this process: main() with cwd, environment, process.exitCode and the two
 * output streams set up as a child process would have them, and put back afterwards. Besides the
 * outcome checks every run gets, an in-process run must close every BPF descriptor it opened (a child
 * process would hide a leak by exiting).
 */
export async function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const { main } = await import('../../src/cli/main.js');
  if (inProcess) throw new Error('runCli: in-process runs share process state, one at a time (runCliAll runs processes side by side)');
  inProcess = true;
  const before = new Set(openFds());
  const collectedBefore = leakedFds().length;
  let leaked: Fd[] = [];
  const env: NodeJS.ProcessEnv = { ...process.env, BPFSEAL_DEBUG: '', ...opts.env };
  const savedEnv = { ...process.env };
  const savedCwd = process.cwd();
  const savedExit = process.exitCode;
  const { stdout, stderr } = process;
  const savedWrite = [stdout.write, stderr.write] as const;
  const capture = (into: string[]) =>
    ((chunk: string | Uint8Array, enc?: unknown, cb?: unknown) => {
      into.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      const done = typeof enc === 'function' ? enc : cb;
      if (typeof done === 'function') process.nextTick(done as () => void);
      return true;
    }) as typeof process.stdout.write;
  const out: string[] = [];
  const err: string[] = [];
  let code = -1;
  try {
    // The environment is changed in place (a replaced process.env object would not reach getenv()).
    setEnv(env);
    process.chdir(opts.cwd ?? ROOT);
    stdout.write = capture(out);
    stderr.write = capture(err);
    code = await main(['node', 'bpfseal', ...args]);
  } finally {
    [stdout.write, stderr.write] = savedWrite;
    process.exitCode = savedExit;
    process.chdir(savedCwd);
    setEnv(savedEnv);
    inProcess = false;
    // Closed here whatever happened, so that a leak is never carried into the next run's baseline.
    leaked = openFds().filter((fd) => !before.has(fd));
    for (const fd of leaked) fd.close();
  }
  const result = checkOutcome(args, { code, signal: null, stdout: out.join(''), stderr: err.join('') });
  // An Fd dropped without close() and collected meanwhile is closed by the safety net and counted there.
  const collected = leakedFds().length - collectedBefore;
  if (leaked.length > 0 || collected > 0) {
    throw new Error(`bpfseal ${args.join(' ')} left ${leaked.length} BPF descriptor(s) open and ${collected} collected unclosed:\n${result.stderr}`);
  }
  return result;
}

function setEnv(to: NodeJS.ProcessEnv): void {
  for (const k of Object.keys(process.env)) if (to[k] === undefined) delete process.env[k];
  for (const [k, v] of Object.entries(to)) if (v !== undefined && process.env[k] !== v) process.env[k] = v;
}

/** Run the built bundle in a child process (see the header): for what only a real process shows. */
export function runCliProcess(args: string[], opts: CliOptions = {}): CliResult {
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

/** A run's outcome, for assertion messages. */
export const show = (r: CliResult) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

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

/** runCliProcess without waiting, so that independent processes can run side by side. */
export function runCliAsync(args: string[], opts: CliOptions = {}): Promise<CliResult> {
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
export function runCliAll(argvs: string[][], opts: CliOptions = {}): Promise<CliResult[]> {
  return Promise.all(argvs.map((a) => runCliAsync(a, opts)));
}
