/**
 * Errors of the VM harness. Each names the step that failed, so "which package, which step" is in the
 * error itself; boot and guest failures carry the tail of the guest console, which is what makes a
 * broken boot diagnosable without re-running it.
 */
import type { ErrorCode } from '../errors.js';
import { BpfsealError } from '../errors.js';

/** Where in the pipeline a VM run failed. */
export type VmStep = 'spec' | 'cache' | 'apt' | 'extract' | 'initramfs' | 'qemu' | 'boot' | 'guest' | 'result';
/** The steps before qemu runs: their errors are input (exit 2), whatever the code. */
export type VmHostStep = Exclude<VmStep, 'boot' | 'guest' | 'result'>;

export class VmError extends BpfsealError {
  readonly step: VmStep;
  /** Last lines of the guest console (boot and guest steps). */
  readonly consoleTail?: string;

  constructor(step: VmStep, code: ErrorCode, message: string, options?: { cause?: unknown; file?: string; console?: string }) {
    const tail = options?.console !== undefined ? consoleTail(options.console) : undefined;
    const text = tail ? `${message}\n--- guest console (last lines) ---\n${tail}` : message;
    // A kernel that does not boot, or a guest that misbehaves, is "the kernel refused" (exit 3);
    // everything before qemu runs is an input problem (exit 2).
    super(step === 'boot' || step === 'guest' || step === 'result' ? 'kernel' : 'input', code, text, options);
    this.name = 'VmError';
    this.step = step;
    if (tail !== undefined) this.consoleTail = tail;
  }
}

/** The last `lines` lines of a console log, without the terminal escapes SeaBIOS prints. */
export function consoleTail(text: string, lines = 40): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the terminal escapes it removes
  const clean = text.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '').replace(/\r/g, '');
  return clean.split('\n').filter((l) => l.trim() !== '').slice(-lines).join('\n');
}
