/**
 * The loader decision (src/runtime/loader-choice.ts), the one that load, `features` and the preflight
 * guest share: every kernel answer against what a release offers, what --loader asks, and the policy's
 * requireKernelSignatures (README, "Kernels").
 */
import { describe, expect, it } from 'vitest';
import { BpfsealError } from '../src/errors.js';
import type { SignatureSupport } from '../src/kernel/probe.js';
import { chooseLoader, type LoaderChoice, type LoaderInputs } from '../src/runtime/loader-choice.js';

const release = (loader: boolean, signed: string[], programs = ['a', 'b']): LoaderInputs => ({ name: 'app', loader, programs, signedPrograms: new Set(signed) });
const full = release(true, ['a', 'b']);
const noLoader = release(false, ['a', 'b']);
const bare = release(false, []);
const partial = release(true, ['a']);

function choose(r: LoaderInputs, support: SignatureSupport, want: LoaderChoice = 'auto', require = false, kernelBackend = true) {
  const notes: string[] = [];
  try {
    return { ...chooseLoader(r, support, { want, requireKernelSignatures: require, keyring: 7, kernelBackend }, notes), notes };
  } catch (e) {
    if (!(e instanceof BpfsealError)) throw e;
    return { refused: e.code, kind: e.kind };
  }
}

describe('chooseLoader', () => {
  it('7.3+ (loader): the signed loader runs in the kernel, which verifies it; --loader user or no loader verifies nothing', () => {
    expect(choose(full, 'loader')).toEqual({ loader: 'kernel', kernelVerified: 'loader', notes: ['kernel verifies the signed loader (insns || blob) with keyring 7'] });
    expect(choose(full, 'loader', 'kernel')).toMatchObject({ loader: 'kernel', kernelVerified: 'loader' });
    expect(choose(full, 'loader', 'user')).toEqual({ loader: 'user', kernelVerified: 'none', notes: [] });
    expect(choose(noLoader, 'loader')).toEqual({ loader: 'user', kernelVerified: 'none', notes: [] });
    expect(choose(noLoader, 'loader', 'kernel')).toMatchObject({ loader: 'kernel', kernelVerified: 'none' });
  });

  it('7.3+ with requireKernelSignatures: only the signed loader is accepted', () => {
    expect(choose(full, 'loader', 'auto', true)).toMatchObject({ loader: 'kernel', kernelVerified: 'loader' });
    expect(choose(full, 'loader', 'user', true)).toEqual({ refused: 'USAGE_LOADER', kind: 'usage' });
    expect(choose(noLoader, 'loader', 'auto', true)).toEqual({ refused: 'KERNEL_SIGNATURE_REQUIRED', kind: 'verify' });
  });

  it('6.18-7.2 (program): per-program signatures are passed to a user-space replay; the kernel loader verifies nothing', () => {
    expect(choose(full, 'program')).toEqual({ loader: 'user', kernelVerified: 'programs', notes: ['kernel verifies program signatures: passing 2 PKCS#7 signature(s) with keyring 7 (instructions only)'] });
    expect(choose(partial, 'program')).toMatchObject({ loader: 'user', kernelVerified: 'programs' });
    expect(choose(bare, 'program')).toEqual({ loader: 'user', kernelVerified: 'none', notes: [] });
    expect(choose(full, 'program', 'kernel')).toMatchObject({ loader: 'kernel', kernelVerified: 'none' });
  });

  it('6.18-7.2 with requireKernelSignatures: every program signed, and not the kernel loader', () => {
    expect(choose(full, 'program', 'auto', true)).toMatchObject({ loader: 'user', kernelVerified: 'programs' });
    expect(choose(partial, 'program', 'auto', true)).toEqual({ refused: 'KERNEL_SIGNATURE_REQUIRED', kind: 'verify' });
    expect(choose(release(false, [], []), 'program', 'auto', true)).toEqual({ refused: 'KERNEL_SIGNATURE_REQUIRED', kind: 'verify' });
    expect(choose(full, 'program', 'kernel', true)).toEqual({ refused: 'KERNEL_SIGNATURE_REQUIRED', kind: 'verify' });
  });

  it('a kernel that verifies nothing (none): a note when the release carries signatures; refused when the policy requires them of a real load', () => {
    expect(choose(full, 'none')).toEqual({ loader: 'user', kernelVerified: 'none', notes: ['this kernel cannot verify program signatures (EOPNOTSUPP); loading without kernel enforcement, as the policy allows'] });
    expect(choose(bare, 'none')).toEqual({ loader: 'user', kernelVerified: 'none', notes: [] });
    expect(choose(full, 'none', 'kernel')).toMatchObject({ loader: 'kernel', kernelVerified: 'none' });
    expect(choose(full, 'none', 'auto', true)).toEqual({ refused: 'KERNEL_SIGNATURES_UNSUPPORTED', kind: 'kernel' });
    expect(choose(full, 'none', 'auto', true, false)).toMatchObject({ loader: 'user', kernelVerified: 'none' });
  });
});
