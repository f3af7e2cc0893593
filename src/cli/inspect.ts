/** `bpfseal inspect <object.o|file.plan> [--json] [--disasm]` */
import type { Command } from 'commander';
import type { PlanDescription } from '../plan/describe.js';
import { readInput } from './io.js';
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

export function registerInspect(program: Command): void {
  const cmd = program
    .command('inspect')
    .description('describe an object or plan: programs, maps, fix-ups, predicted tags, digest')
    .argument('<input>', 'BPF ELF object or .plan file')
    .option('--json', 'print JSON')
    .option('--disasm', 'print each program\'s instructions (maps by name)');
  addSectionTypeOption(cmd)
    .action(async (input: string, opts: { json?: boolean; disasm?: boolean; sectionType?: string[] }) => {
      const { planFromBytes } = await import('../plan/file.js');
      const { describePlan, disassembleProgram } = await import('../plan/describe.js');
      const { plan, digest } = planFromBytes(readInput(input), input, { sectionTypes: await sectionTypes(opts.sectionType) });
      const { describeLoader, formatLoader } = await import('../loader/describe.js');
      const d = describePlan(plan, digest);
      const loader = describeLoader(plan);
      if (opts.json) {
        const disasm = opts.disasm ? Object.fromEntries(plan.programs.map((p) => [p.name, disassembleProgram(plan, p)])) : undefined;
        printJson({ ...d, loader, ...(disasm ? { disassembly: disasm } : {}) });
        return;
      }
      process.stdout.write(formatDescription(d));
      process.stdout.write(formatLoader(loader));
      if (opts.disasm) {
        for (const p of plan.programs) {
          process.stdout.write(`\n${p.name} (${p.section}):\n${disassembleProgram(plan, p).join('\n')}\n`);
        }
      }
    });
}
