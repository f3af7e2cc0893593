/** `bpfseal demo [--dir <dir>] [--dry-run]`: the whole chain on the bundled example (src/demo/run.ts). */
import type { Command } from 'commander';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('plan, sign, log, verify, load, test-run, audit and unload the bundled example')
    .option('--dir <dir>', 'work directory (default: a new one under $TMPDIR)')
    .option('--dry-run', 'use the model kernel even when bpf(2) is permitted')
    .action(async (opts: { dir?: string; dryRun?: boolean }) => {
      const { runDemo } = await import('../demo/run.js');
      await runDemo(opts);
    });
}
