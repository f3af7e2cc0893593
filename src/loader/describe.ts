/**
 * What `inspect` says about a plan's kernel loader: its size, the SHA-256 of the bytes a 7.3+ kernel
 * verifies (`insns || blob`), what those bytes fix, and what they leave to the host at load time
 * (host inputs from the context; values the kernel resolves by name). docs/loader-format.md has the
 * layout this summarises.
 */
import { InputError } from '../errors.js';
import type { Plan } from '../plan/types.js';
import { loaderClaim, loaderOf } from './claim.js';

export interface LoaderDescription {
  format: number;
  /** SHA-256 of `insns || blob`, "sha256:" + hex. */
  signedBytes: string;
  instructions: number;
  blobBytes: number;
  steps: number;
  /** What the signed bytes fix, in words. */
  covers: string[];
  /** Values the loader reads from its context at run time: no signature covers them. */
  hostInputs: { kind: string; map: string; bytes: number }[];
  /** Names the signed bytes carry whose values the running kernel supplies (BTF ids, addresses). */
  resolvedByKernel: { kind: string; name: string; program: string }[];
}

export type LoaderSummary = LoaderDescription | { error: { code: string; message: string } };

export function describeLoader(plan: Plan): LoaderSummary {
  let l;
  try {
    l = loaderOf(plan);
  } catch (e) {
    if (e instanceof InputError) return { error: { code: e.code, message: e.message } };
    throw e;
  }
  const claim = loaderClaim(l);
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? '' : 's'}`;
  const insns = plan.programs.reduce((s, p) => s + p.insns.length / 8, 0);
  const init = plan.maps.filter((m) => m.initData && !m.kconfig.length).map((m) => m.name);
  const frozen = plan.maps.filter((m) => m.freeze).map((m) => m.name);
  const covers = [
    ...(plan.btf.length ? [`the object's BTF (${plan.btf.length} bytes)`] : []),
    `the attributes of ${n(plan.maps.length, 'map')} (type, key/value size, max_entries unless a host input, flags, BTF ids, inner templates)`,
    ...(init.length ? [`initial values of ${init.join(', ')}`] : []),
    ...(plan.slots.length ? [`${n(plan.slots.length, 'map-in-map / prog_array slot')}`] : []),
    ...(frozen.length ? [`that ${frozen.join(', ')} ${frozen.length === 1 ? 'is' : 'are'} frozen`] : []),
    `the instructions of ${n(plan.programs.length, 'program')} (${insns} insns, as planned), their fd_array, func/line info and CO-RE relocations`,
    'the order of every step, and that a failed step closes everything made before it',
  ];
  const resolvedByKernel = plan.programs.flatMap((p) => [
    ...p.fixups.map((f) => ({ kind: f.kind, name: f.name, program: p.name })),
    ...(p.attach?.name ? [{ kind: 'attach_btf', name: p.attach.name, program: p.name }] : []),
  ]);
  return {
    format: claim.format, signedBytes: `sha256:${claim.sha256}`, instructions: claim.instructions, blobBytes: claim.blobBytes, steps: l.steps.length,
    covers, hostInputs: l.hostInputs.map((h) => ({ kind: h.kind, map: h.map, bytes: h.size })), resolvedByKernel,
  };
}

export function formatLoader(d: LoaderSummary): string {
  if ('error' in d) return `kernel loader: none (${d.error.code}: ${d.error.message})\n`;
  const out = [
    `kernel loader (format ${d.format}): ${d.instructions} insns, blob ${d.blobBytes} bytes, ${d.steps} steps`,
    `  signed bytes ${d.signedBytes} (insns || blob: what a 7.3+ kernel verifies, with sign --cert)`,
    '  the signature fixes:',
    ...d.covers.map((c) => `    ${c}`),
    d.hostInputs.length
      ? `  host inputs (from the load's context, not signed; recorded in the host log): ${d.hostInputs.map((h) => `${h.kind} of '${h.map}' (${h.bytes} bytes)`).join('; ')}`
      : '  host inputs: none (every byte the loader uses is signed)',
    ...(d.resolvedByKernel.length ? [`  resolved by name in the running kernel (the names are signed, the values are that kernel's): ${d.resolvedByKernel.map((r) => `${r.kind} ${r.name}`).join(', ')}`] : []),
  ];
  return out.join('\n') + '\n';
}
