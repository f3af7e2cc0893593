/** `bpfseal features [--json]` and `bpfseal version [--json]`: the host probe of runtime/features.ts. */
import type { Command } from 'commander';
import type { HostFeatures } from '../runtime/features.js';
import { printJson } from './output.js';
import { toolVersion } from './version.js';

const yes = (b: boolean, y: string, n: string) => (b ? y : n);

export function formatFeatures(f: HostFeatures): string {
  const verification = {
    none: 'none: user-space verification only (kernels before 6.18, or built without CONFIG_SYSTEM_DATA_VERIFICATION)',
    'per-program': 'per-program: each program\'s instructions (6.18-7.2); maps and their contents are not covered',
    loader: 'loader: one signature over the signed loader, insns || blob (7.3+): everything the load does',
    unknown: 'unknown (bpf(2) is not permitted, so the kernel could not be asked)',
  }[f.signatures.verification];
  const rows: [string, string][] = [
    ['bpf(2)', yes(f.bpf.permitted, 'permitted', 'not permitted (needs CAP_BPF, or root; load --dry-run works without)')],
    [`bpffs ${f.bpffs.path}`, yes(f.bpffs.mounted, 'mounted', 'not mounted (load mounts it: mount -t bpf bpf /sys/fs/bpf)')],
    ['signature verification', `${verification}${f.signatures.answer ? ` [probe: ${f.signatures.answer}]` : ''}`],
    ['BPF LSM', f.lsm.readable ? `${yes(f.lsm.bpf, 'active', 'not active')} (lsm: ${f.lsm.active.join(',') || 'none'})` : 'unknown (/sys/kernel/security/lsm cannot be read)'],
    ['bpfseal enforce', f.enforce.possible ? 'possible' : `not possible: ${f.enforce.reasons.join('; ')}`],
    ['load --loader auto', f.load ? `${f.load.loader === 'kernel' ? 'kernel loader' : 'user-space replay'}, kernel verifies ${{ loader: 'the signed loader', programs: 'each program signature', none: 'nothing' }[f.load.kernelVerifies]} (release signed with --cert)` : 'unknown'],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return [`bpfseal ${f.bpfseal}  node ${f.node}  kernel ${f.kernel.release} (${f.kernel.arch})  uid ${f.uid ?? '?'}`, ...rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`)].join('\n') + '\n';
}

export function registerFeatures(program: Command): void {
  program
    .command('features')
    .description('probe this host as bpftool feature does: bpf(2) permitted, bpffs mounted, which kernel signature verification, BPF LSM')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { hostFeatures } = await import('../runtime/features.js');
      const f = hostFeatures();
      if (opts.json) printJson(f);
      else process.stdout.write(formatFeatures(f));
    });
  program
    .command('version')
    .description('print the versions of bpfseal, node and the kernel; --json adds what bpfseal features probes')
    .option('--json', 'print JSON (the same document as features --json)')
    .action(async (opts: { json?: boolean }) => {
      if (opts.json) {
        const { hostFeatures } = await import('../runtime/features.js');
        printJson(hostFeatures());
        return;
      }
      const { arch, release } = await import('node:os');
      process.stdout.write(`bpfseal ${toolVersion()}\nnode ${process.version}\nkernel ${release()} (${arch()})\n`);
    });
}
