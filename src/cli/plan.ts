/** `bpfseal plan <object.o>... [-o <file|dir>] [--json]` */
import type { Command } from 'commander';
import { addSectionTypeOption, sectionTypes } from './sections.js';
import { outputPath, Progress, readInput, writeFileDurable } from './io.js';
import { failure, failureLine, type Failure, printJson } from './output.js';

export interface PlanResult {
  object: string;
  plan?: string;
  digest?: string;
  error?: Failure;
}

export function registerPlan(program: Command): void {
  const cmd = program
    .command('plan')
    .description('turn BPF ELF objects into deterministic, FD-index-stable loader plans')
    .argument('<object...>', 'BPF ELF object files (clang -target bpf -c)')
    .option('-o, --out <file|dir>', 'output file (one object) or directory; default: next to each object')
    .option('--json', 'print a JSON array of {object, plan, digest}');
  addSectionTypeOption(cmd)
    .action(async (objects: string[], opts: { out?: string; json?: boolean; sectionType?: string[] }) => {
      const overrides = await sectionTypes(opts.sectionType);
      const { planObject } = await import('../plan/file.js'); // loaded on use, as in every command
      const progress = new Progress(objects.length, 'planning');
      const results: PlanResult[] = [];
      objects.forEach((obj, i) => {
        progress.tick(i, obj);
        try {
          const out = outputPath(obj, '.plan', opts.out, objects.length);
          const { bytes, digest } = planObject(readInput(obj), obj, { sectionTypes: overrides });
          writeFileDurable(out, bytes);
          results.push({ object: obj, plan: out, digest: `sha256:${digest}` });
        } catch (e) {
          results.push({ object: obj, error: failure(e) });
        }
      });
      progress.done();
      if (opts.json) printJson(results);
      for (const r of results) {
        if (r.error) process.stderr.write(failureLine(r.object, r.error));
        else if (!opts.json) process.stdout.write(`${r.digest}  ${r.plan}\n`);
      }
      process.exitCode = Math.max(0, ...results.map((r) => r.error?.exit ?? 0));
    });
}
