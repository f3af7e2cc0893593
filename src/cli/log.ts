/**
 * `bpfseal log verify|prove|consistency|show|refresh|migrate|witness|witness-key|add-cosignatures|serve`: the
 * options here, the work in log-commands.ts (reading a log) and log-admin.ts (changing one, witnessing,
 * serving), loaded only when a log command runs. --log takes a directory or a tiled-log URL.
 */
import type { Command } from 'commander';
import type { LogOpts } from './log-commands.js';
import type { WitnessOpts } from './log-admin.js';

const read = () => import('./log-commands.js');
const admin = () => import('./log-admin.js');
const collect = (v: string, prev: string[] = []) => [...prev, v];

export function registerLog(program: Command): void {
  const log = program.command('log').description('audit, witness and serve a transparency log (default ./attestations, or $BPFSEAL_LOG; or the URL of a tiled log)');
  const withOpts = (c: Command) =>
    c
      .option('--log <dir|url>', 'log directory, or https:// / file:// URL of a tiled log')
      .option('--log-key <file|vkey>', 'the log key to check a remote log with (PEM or vkey; repeatable)', collect)
      .option('--cache <dir>', 'tile cache for remote logs (default $BPFSEAL_TILE_CACHE or ~/.cache/bpfseal/tiles)')
      .option('--no-cache', 'do not cache tiles of remote logs')
      .option('--json', 'print JSON');
  withOpts(log.command('verify').description('recompute the whole tree from the entries and check every tile and the signed checkpoint'))
    .action(async (opts: LogOpts) => (await read()).verifyCmd(opts));
  withOpts(log.command('prove').description('inclusion proof for an entry index, or for the entries whose subjectDigest is sha256:<hex>'))
    .argument('<index|sha256:digest>', 'entry index or subject digest')
    .action(async (what: string, opts: LogOpts) => (await read()).proveCmd(what, opts));
  withOpts(log.command('consistency').description('prove that the log only grew since an older checkpoint'))
    .argument('<checkpoint>', 'a checkpoint file saved earlier (a copy of <log>/checkpoint)')
    .action(async (file: string, opts: LogOpts) => (await read()).consistencyCmd(file, opts));
  withOpts(log.command('show').description('list entries: index, time, what each records (plan, version, signer, digest); --json adds the leaf hash and the entry'))
    .action(async (opts: LogOpts) => (await read()).showCmd(opts));
  withOpts(log.command('refresh').description('prove each release\'s entry against the newest checkpoint the policy\'s witnesses cosigned, and rewrite the release with that proof'))
    .argument('<release...>', '.bpfseal release files')
    .option('--policy <file>', 'the policy naming the witnesses (default: $BPFSEAL_POLICY, else ./keys/policy.json if present)')
    .option('-o, --output <file|dir>', 'write here instead of replacing each release')
    .action(async (releases: string[], opts: LogOpts & { policy?: string; output?: string }) => (await import('./log-refresh.js')).refreshCmd(releases, opts));
  log.command('migrate').description('convert a log in the first bpfseal layout to tlog-tiles, in place').option('--log <dir>', 'log directory').option('--json', 'print JSON')
    .action(async (opts: LogOpts) => (await admin()).migrateCmd(opts));
  withOpts(log.command('witness').description('cosign the log\'s checkpoint (c2sp.org/tlog-cosignature) if it is consistent with the last one this witness cosigned'))
    .argument('<log>', 'log directory or tiled-log URL')
    .requiredOption('--key <file>', 'witness signer key (bpfseal log witness-key)')
    .option('--state <dir>', 'witness state: the last cosigned checkpoint per log (default $BPFSEAL_STATE_DIR/witness, else /var/lib/bpfseal/witness)')
    .option('--out <file>', 'write the cosigned checkpoint here (else to stdout)')
    .option('--no-add', 'do not add the cosignature to a local log directory')
    .action(async (location: string, opts: WitnessOpts) => (await admin()).witnessCmd(location, opts));
  log.command('witness-key').description('make an Ed25519 witness key; prints its verifier key (vkey) for policies')
    .argument('<file>', 'where to write the private key (mode 0600, never overwritten)')
    .requiredOption('--name <name>', 'the witness name, a schema-less URL like witness.example.com/w1')
    .option('--json', 'print {key, name, vkey}')
    .action(async (file: string, opts: { name: string; json?: boolean }) => (await admin()).witnessKeyCmd(file, opts));
  log.command('add-cosignatures').description('add cosigned checkpoints from witnesses to the log (checkpoint, checkpoint.cosigned)')
    .argument('<files...>', 'cosigned checkpoint files (bpfseal log witness --out)')
    .option('--log <dir>', 'log directory').option('--json', 'print JSON')
    .action(async (files: string[], opts: LogOpts) => (await admin()).addCosignaturesCmd(files, opts));
  log.command('serve').description('serve the log\'s public files (checkpoint, tile/, log.pub, log.vkey) over HTTP, read-only')
    .option('--log <dir>', 'log directory').option('--host <host>', 'address to listen on', '127.0.0.1').option('--port <port>', 'port', '8080')
    .action(async (opts: LogOpts & { host?: string; port?: string }) => (await admin()).serveCmd(opts));
  for (const c of log.commands) c.exitOverride();
  log.exitOverride();
}
