/** The terminal form of `audit --kernel`: a summary line, then one line per program with its status and why. */
import type { AttributedProgram, KernelReport } from '../audit/kernel-report.js';

const code = (p: AttributedProgram) => p.matches.map((m) => `${m.plan}/${m.program} (${m.source})`).join(', ');

function detail(p: AttributedProgram): string {
  const differs = p.evidence.filter((e) => e.result === 'differs').map((e) => e.message);
  switch (p.status) {
    case 'attested':
      return `attested: ${p.record!.plan}/${p.record!.program} v${p.record!.version ?? '?'} (load ${p.record!.loadId.slice(0, 8)}, host log #${p.record!.hostLogIndex})${p.matches.length ? `; code of ${code(p)}` : ''}`;
    case 'modified':
      return `MODIFIED: load ${p.record!.loadId.slice(0, 8)} of ${p.record!.plan} (host log #${p.record!.hostLogIndex}): ${differs.filter((m) => !/^no standing/.test(m)).join('; ')}`;
    case 'known-code':
      return `KNOWN-CODE (loaded outside bpfseal): code of ${code(p)}`;
    case 'accepted':
      return `accepted (${p.accepted!.status}; ${p.accepted!.rule}): ${p.accepted!.reason}`;
    default:
      return `UNATTESTED${differs.length > 1 ? `: ${differs.slice(1).join('; ')}` : ''}`;
  }
}

export function printKernelReport(k: KernelReport, out: NodeJS.WritableStream = process.stdout): void {
  const s = k.summary;
  out.write(`kernel: ${k.programs.length} programs loaded, ${k.programs.filter((p) => p.attested).length} attested` +
    ` (known-code ${s['known-code']}, modified ${s.modified}, unattested ${s.unattested}, accepted ${s.accepted}); boot ${k.bootId || 'unknown'}` +
    `${k.hostLog ? `; host log ${k.hostLog.dir} at size ${k.hostLog.size ?? '?'}` : '; no host log'}\n`);
  for (const p of k.programs) {
    out.write(`  id ${p.id}  ${p.name.padEnd(16)} ${p.type.padEnd(14)} tag ${p.tag}  ${detail(p)}\n`);
  }
}
