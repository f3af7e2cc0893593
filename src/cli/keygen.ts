/** `bpfseal keygen --out <dir> [--name <name>] [--algorithm ecdsa-p256|ed25519|rsa-3072] [--json]` */
import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { isGeneratedAlgorithm, KEY_ALGORITHMS } from '../trust/algorithms.js';
import { isDirectory } from './io.js';
import { ensureDirectory } from '../fsx/dirs.js';
import { printJson } from './output.js';

export function registerKeygen(program: Command): void {
  program
    .command('keygen')
    .description('create a signing key: <name>.key (PKCS#8, 0600), <name>.pub (SPKI), <name>.crt (self-signed X.509)')
    .requiredOption('--out <dir>', 'directory for the key files (created 0700 if missing)')
    .option('--name <name>', 'file name stem and certificate common name', 'bpfseal')
    .option('--algorithm <alg>', `one of ${KEY_ALGORITHMS.join(', ')}`, 'ecdsa-p256')
    .option('--json', 'print {key, pub, crt, keyId, algorithm}')
    .action(async (opts: { out: string; name: string; algorithm: string; json?: boolean }) => {
      if (!isGeneratedAlgorithm(opts.algorithm)) {
        throw new InputError('KEY_ALGORITHM_UNKNOWN', `--algorithm ${opts.algorithm}: use one of ${KEY_ALGORITHMS.join(', ')}`);
      }
      if (!isDirectory(opts.out)) ensureDirectory(opts.out, 0o700, 'OUTPUT_UNWRITABLE');
      const { writeKeyFiles } = await import('../trust/keys.js');
      const r = writeKeyFiles(opts.out, opts.name, opts.algorithm);
      if (opts.json) {
        printJson({ key: r.key, pub: r.pub, crt: r.crt, keyId: r.keyId, algorithm: r.algorithm });
        return;
      }
      process.stdout.write(`key: ${r.key}\npub: ${r.pub}\ncrt: ${r.crt}\nalgorithm: ${r.algorithm}\nkeyid: ${r.keyId}\n`);
    });
}
