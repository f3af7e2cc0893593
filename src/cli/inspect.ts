/** `bpfseal inspect <object.o|file.plan|release.bpfseal> [--json] [--disasm]` */
import type { Command } from 'commander';
import type { PlanDescription } from '../plan/describe.js';
import type { Plan } from '../plan/types.js';
import type { LoaderSummary } from '../loader/describe.js';
import type { ReleaseInfo } from '../attest/describe-release.js';
import { BpfsealError } from '../errors.js';
import { readInput } from './io.js';
import { LIMITS } from '../fsx/read.js';
import { addSectionTypeOption, sectionTypes } from './sections.js';
import { printJson } from './output.js';

function hexFlags(n: number): string {
  return n ? `0x${n.toString(16)}` : '0';
}

export function formatDescription(d: PlanDescription): string {
  const out: string[] = [];
  out.push(`plan ${d.name}  ${d.digest}`);
  out.push(`  object ${d.object}  license "${d.license}"  btf ${d.btf} bytes`);
  out.push(`programs (${d.programs.length}):`);
  for (const p of d.programs) {
    out.push(`  ${p.name}  section ${p.section}  type ${p.type}${p.attachType ? `  attach ${p.attachType}` : ''}${p.flags ? `  flags ${hexFlags(p.flags)}` : ''}`);
    out.push(`    ${p.instructions} insns  maps [${p.maps.join(', ')}]  tag ${p.tag ?? (p.stable ? '(kernel-side CO-RE may change it)' : '(set by host fix-ups)')}${p.coreRelocations ? `  co-re ${p.coreRelocations}` : ''}`);
    out.push(`    bytes ${p.stable ? 'stable (kernel-signable as planned)' : 'need host fix-ups'}${p.fixups.length ? `: ${p.fixups.join('; ')}` : ''}`);
  }
  out.push(`maps (${d.maps.length}):`);
  for (const m of d.maps) {
    out.push(`  ${m.name}  ${m.type}  key ${m.keySize}  value ${m.valueSize}  max ${m.maxEntries}  flags ${hexFlags(m.flags)}` +
      `${m.initialData ? `  init ${m.initialData} bytes` : ''}${m.frozen ? '  frozen' : ''}${m.inner ? `  inner ${m.inner}` : ''}  (kernel name ${m.kernelName})`);
    for (const f of m.fixups) out.push(`    fix-up: ${f}`);
  }
  if (d.slots.length) {
    out.push('initial slots:');
    for (const s of d.slots) out.push(`  ${s.map}[${s.index}] = ${s.target}`);
  }
  return out.join('\n') + '\n';
}

/** A release is JSON; plans and objects start with their magic bytes. (Here, so that inspecting an object loads no Sigstore code.) */
function looksLikeRelease(b: Buffer): boolean {
  const first = b.subarray(0, 64).toString('latin1').trimStart()[0];
  return first === '{';
}

type InspectOpts = { json?: boolean; disasm?: boolean; sectionType?: string[] };

export function registerInspect(program: Command): void {
  const cmd = program
    .command('inspect')
    .description('describe an object, plan or release: programs, maps, fix-ups, predicted tags, digest; a release\'s signer, log entries and kernel signatures, unverified')
    .argument('<input>', 'BPF ELF object, .plan file or .bpfseal release')
    .option('--json', 'print JSON')
    .option('--disasm', 'print each program\'s instructions (maps by name)');
  addSectionTypeOption(cmd)
    .action(async (input: string, opts: InspectOpts) => {
      const bytes = readInput(input, { kind: 'release' });
      const { isElfBytes, isPlanBytes, planFromBytes } = await import('../plan/file.js');
      // A .bpfseal that is neither JSON nor an object or plan is a bad release, and says so.
      if (looksLikeRelease(bytes) || (input.endsWith('.bpfseal') && !isElfBytes(bytes) && !isPlanBytes(bytes))) return inspectRelease(input, bytes, opts);
      if (bytes.length > LIMITS.object) readInput(input, { kind: 'object' }); // the object limit's own error
      const { plan, digest } = planFromBytes(bytes, input, { sectionTypes: await sectionTypes(opts.sectionType) });
      const { describeLoader } = await import('../loader/describe.js');
      await printPlan(plan, digest, describeLoader(plan), opts);
    });
}

/** The plan part of inspect's output, the same for an object, a plan and the plan inside a release. */
async function printPlan(plan: Plan, digest: string, loader: LoaderSummary, opts: InspectOpts, release?: ReleaseInfo): Promise<void> {
  const { describePlan, disassembleProgram } = await import('../plan/describe.js');
  const { formatLoader } = await import('../loader/describe.js');
  const d = describePlan(plan, digest);
  if (opts.json) {
    const disasm = opts.disasm ? Object.fromEntries(plan.programs.map((p) => [p.name, disassembleProgram(plan, p)])) : undefined;
    printJson({ ...(release ? { release } : {}), ...d, loader, ...(disasm ? { disassembly: disasm } : {}) });
    return;
  }
  process.stdout.write(formatDescription(d));
  process.stdout.write(formatLoader(loader));
  if (opts.disasm) {
    for (const p of plan.programs) {
      process.stdout.write(`\n${p.name} (${p.section}):\n${disassembleProgram(plan, p).join('\n')}\n`);
    }
  }
}

/** inspect <release>: what the release claims and carries (not verified), then its plan as for plans. */
async function inspectRelease(input: string, bytes: Buffer, opts: InspectOpts): Promise<void> {
  if (opts.sectionType?.length) throw new BpfsealError('usage', 'USAGE_SECTION_TYPE', '--section-type applies to objects: a release\'s plan is signed as it is', { file: input });
  const { describeRelease, formatRelease } = await import('../attest/describe-release.js');
  const r = describeRelease(bytes, input);
  if (!opts.json) process.stdout.write(formatRelease(input, r.info));
  await printPlan(r.plan, r.digest, r.loader, opts, r.info);
}
