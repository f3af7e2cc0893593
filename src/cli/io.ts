/**
 * CLI plumbing shared by the commands: output paths and progress on a TTY (bounded reads and durable
 * writes live in ../fsx/ and are re-exported here for the commands).
 */
import { basename, dirname, join } from 'node:path';
import { BpfsealError } from '../errors.js';
import { isDirectory } from '../fsx/dirs.js';

export { isDirectory } from '../fsx/dirs.js';
export { readInput } from '../fsx/read.js';
export { writeFileDurable } from '../fsx/durable.js';

/**
 * Where the output for `input` goes: next to the input by default; into `out` when it is a directory
 * (or ends with '/'); `out` itself when there is exactly one input.
 */
export function outputPath(input: string, ext: string, out: string | undefined, inputs: number): string {
  const base = basename(input).replace(/\.(o|plan|bpfseal)$/, '') + ext;
  if (!out) return join(dirname(input), base);
  if (out.endsWith('/') || isDirectory(out)) return join(out, base);
  if (inputs > 1) throw new BpfsealError('usage', 'USAGE_OUTPUT', `-o ${out}: with ${inputs} inputs, -o must name an existing directory`);
  return out;
}

/** A one-line progress indicator on stderr, only when stderr is a terminal and there is more than one item. */
export class Progress {
  private readonly on: boolean;
  constructor(private total: number, private label: string) {
    this.on = total > 1 && process.stderr.isTTY === true;
  }
  tick(i: number, item: string): void {
    if (!this.on) return;
    process.stderr.write(`\r\x1b[K${this.label} ${i + 1}/${this.total} ${item}`);
  }
  done(): void {
    if (this.on) process.stderr.write('\r\x1b[K');
  }
}
