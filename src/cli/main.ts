/** bpfseal command line. Exit codes: 0 ok, 1 verification/policy rejection, 2 usage or bad input, 3 kernel refused. */
import { Command, CommanderError } from 'commander';
import { BpfsealError, EXIT } from '../errors.js';
import { registerInspect } from './inspect.js';
import { registerPlan } from './plan.js';
import { failure, failureLine, printJson } from './output.js';
import { registerKeygen } from './keygen.js';
import { registerSign } from './sign.js';
import { registerVerify } from './verify.js';
import { registerLoad } from './load.js';
import { toolVersion } from './version.js';
import { registerDemo } from './demo.js';
import { registerLog } from './log.js';
import { registerAudit } from './audit.js';
import { registerVerifyReport } from './verify-report.js';
import { registerPreflight } from './preflight.js';
import { registerEnforce } from './enforce.js';
import { registerFeatures } from './features.js';
import { registerCompletion } from './completion.js';

/** The commander error being reported (outputError gets only its text). */
let pendingUsageCode = '';

/** commander.unknownOption -> USAGE_UNKNOWN_OPTION: usage errors carry a stable code like every other failure. */
export function usageCode(commanderCode: string): string {
  const tail = commanderCode.replace(/^commander\./, '').replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
  return tail ? `USAGE_${tail}` : 'USAGE';
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('bpfseal')
    .description('Signed BPF supply chain: deterministic loader plans, signatures, verify-before-load, attestation logs')
    .version(toolVersion())
    // `sign --version N` is the release version; the tool's own --version only counts before a command.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: (s, write) => write(`bpfseal: ${usageCode(pendingUsageCode)}: ${s.replace(/^error: /, '')}`) })
    .showHelpAfterError('(run bpfseal --help for usage)');
  registerPlan(program);
  registerInspect(program);
  registerKeygen(program);
  registerSign(program);
  registerVerify(program);
  registerLoad(program);
  registerLog(program);
  registerAudit(program);
  registerVerifyReport(program);
  registerPreflight(program);
  registerEnforce(program);
  registerFeatures(program);
  registerDemo(program);
  registerCompletion(program);
  // Usage errors carry a code like every other failure: remember commander's before it prints.
  const patch = (c: Command) => {
    const error = c.error.bind(c);
    c.error = (message: string, opts?: { code?: string; exitCode?: number }) => {
      pendingUsageCode = opts?.code ?? 'commander.error';
      return error(message, opts);
    };
    c.exitOverride();
    for (const sub of c.commands) patch(sub);
  };
  for (const c of program.commands) patch(c);
  patch(program);
  return program;
}

/** Has anything been written to stdout? (--json prints exactly one document per outcome.) */
let wroteStdout = false;

/**
 * With --json, a failure that reaches here (a usage error, a refusal, a kernel error) is also one
 * JSON document on stdout, `{"error": {code, message, file?, exit}}`, unless the command already
 * printed its own (with partial results and per-item errors). The stderr line is printed as always.
 */
function jsonFailure(argv: string[], f: { code: string; message: string; exit: number }, file?: string): void {
  if (!argv.slice(2).includes('--json') || wroteStdout) return;
  printJson({ error: { code: f.code, message: f.message, ...(file ? { file } : {}), exit: f.exit } });
}

/**
 * Run one command line (`argv` as process.argv: node, script, args...) and return its exit status. No
 * side effect beyond the command's own: bin.ts is the process entry point; tests call this in process,
 * one call at a time (it reads and resets process.exitCode and wraps process.stdout.write while it runs).
 */
export async function main(argv: string[]): Promise<number> {
  wroteStdout = false;
  pendingUsageCode = '';
  process.exitCode = undefined;
  const program = buildProgram();
  if (argv.length <= 2) {
    process.stderr.write(program.helpInformation());
    return EXIT.usage;
  }
  const original = process.stdout.write;
  const write = original.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    wroteStdout = true;
    return write(chunk, ...rest);
  }) as typeof process.stdout.write;
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      jsonFailure(argv, { code: usageCode(e.code), message: e.message.replace(/^error: /, ''), exit: EXIT.usage });
      return EXIT.usage;
    }
    const f = failure(e);
    const file = e instanceof BpfsealError ? e.file : undefined;
    process.stderr.write(failureLine(file, f, true));
    jsonFailure(argv, f, file);
    return f.exit;
  } finally {
    process.stdout.write = original;
  }
}

