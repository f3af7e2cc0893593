/**
 * `bpfseal log verify|prove|consistency|show [--log <dir>] [--json]`: the options here, the work in
 * log-commands.ts, loaded only when a log command runs.
 */
import type { Command } from 'commander';
import type { LogOpts } from './log-commands.js';

const impl = () => import('./log-commands.js');

export function registerLog(program: Command): void {
  const log = program.command('log').description('audit the local transparency log (default ./attestations, or $BPFSEAL_LOG)');
  const withOpts = (c: Command) => c.option('--log <dir>', 'log directory').option('--json', 'print JSON');
  withOpts(log.command('verify').description('recompute the whole tree from the entries and check every stored hash and the signed checkpoint'))
    .action(async (opts: LogOpts) => (await impl()).verifyCmd(opts));
  withOpts(log.command('prove').description('inclusion proof for an entry index, or for the entries whose subjectDigest is sha256:<hex>'))
    .argument('<index|sha256:digest>', 'entry index or subject digest')
    .action(async (what: string, opts: LogOpts) => (await impl()).proveCmd(what, opts));
  withOpts(log.command('consistency').description('prove that the log only grew since an older checkpoint'))
    .argument('<checkpoint>', 'a checkpoint file saved earlier (a copy of <log>/checkpoint)')
    .action(async (file: string, opts: LogOpts) => (await impl()).consistencyCmd(file, opts));
  withOpts(log.command('show').description('list entries: index, leaf hash, summary'))
    .action(async (opts: LogOpts) => (await impl()).showCmd(opts));
  for (const c of log.commands) c.exitOverride();
  log.exitOverride();
}
