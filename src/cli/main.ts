#!/usr/bin/env node
/** bpfseal command line. Exit codes: 0 ok, 1 verification/policy rejection, 2 usage or bad input, 3 kernel refused. */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { EXIT, BpfsealError } from '../errors.js';
import { registerInspect } from './inspect.js';
import { registerPlan } from './plan.js';
import { failure } from './output.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('bpfseal')
    .description('Signed BPF supply chain: deterministic loader plans, signatures, verify-before-load, attestation logs')
    .version(pkg.version)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError('(run bpfseal --help for usage)');
  registerPlan(program);
  registerInspect(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
      return EXIT.usage;
    }
    const f = failure(e);
    const file = e instanceof BpfsealError && e.file ? '' : '';
    process.stderr.write(`bpfseal: ${file}${f.message}\n`);
    return f.exit;
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
