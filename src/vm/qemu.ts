/**
 * qemu's command line. TCG only: nested KVM fails on the project's machines, and TCG boots a Debian
 * cloud kernel to /init in 2-4 s (docs/vm.md). -nodefaults drops the NIC and its iPXE ROM, the VGA
 * card and the monitor; ttyS0 is the console on stdio, ttyS1 a fallback result channel into a file.
 */
import { execFileSync } from 'node:child_process';
import { VmError } from './errors.js';
import { PORT_NAME } from './init.js';

export interface QemuArgs {
  vmlinuz: string;
  initrd: string;
  /** File the virtio-serial result port writes to. */
  resultPath: string;
  /** File behind ttyS1, the result channel for kernels without virtio_console. */
  serialPath: string;
  memoryMiB: number;
  cpus: number;
  append?: string;
}

export const BASE_CMDLINE = 'console=ttyS0 panic=-1 rdinit=/init quiet';

/** qemu's option syntax separates with ',', and ',,' is a literal comma. */
const opt = (s: string): string => s.replace(/,/g, ',,');

export function qemuArgs(a: QemuArgs): string[] {
  return [
    '-accel', 'tcg,thread=multi', '-cpu', 'max', '-smp', String(a.cpus), '-m', String(a.memoryMiB),
    '-kernel', a.vmlinuz, '-initrd', a.initrd,
    '-append', a.append ? `${BASE_CMDLINE} ${a.append}` : BASE_CMDLINE,
    '-nographic', '-nodefaults', '-no-reboot',
    '-serial', 'stdio', '-serial', `file:${opt(a.serialPath)}`,
    '-chardev', `file,id=result,path=${opt(a.resultPath)}`,
    '-device', 'virtio-serial-pci', '-device', `virtserialport,chardev=result,name=${PORT_NAME}`,
  ];
}

/** The qemu binary: $BPFSEAL_QEMU, else qemu-system-x86_64 on PATH. Throws VM_NO_QEMU when absent. */
export function findQemu(): string {
  const bin = process.env.BPFSEAL_QEMU || 'qemu-system-x86_64';
  try {
    execFileSync(bin, ['--version'], { stdio: 'ignore', timeout: 10_000 });
    return bin;
  } catch (e) {
    throw new VmError('qemu', 'VM_NO_QEMU', `${bin} cannot be run (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): install qemu-system-x86 or set BPFSEAL_QEMU`, { cause: e });
  }
}
