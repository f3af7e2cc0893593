/**
 * Host facts that declared fix-ups resolve against: kernel BTF ids (kfuncs, typed ksyms, attach
 * targets), kallsyms addresses (untyped ksyms), kconfig values, the number of possible CPUs.
 * Each source is read lazily, once, and only when a plan needs it.
 */
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import { gunzipSync } from 'node:zlib';
import { InputError } from '../errors.js';
import { indexBtfNames, KIND } from '../bpf/btf.js';

export interface HostFacts {
  /** BTF id of a named kernel type of the given kind in vmlinux BTF, or undefined. */
  btfId(name: string, kind: 'func' | 'var' | 'typedef'): number | undefined;
  /** Address of a kernel symbol from /proc/kallsyms, or undefined. */
  ksymAddress(name: string): bigint | undefined;
  /** Value of CONFIG_* (string as in .config: "y", "m", "42", "\"str\""), or undefined if unset. */
  kconfig(name: string): string | undefined;
  /** LINUX_KERNEL_VERSION: KERNEL_VERSION(a, b, min(c, 255)). */
  kernelVersion(): number;
  possibleCpus(): number;
}

const KINDS = { func: KIND.FUNC, var: KIND.VAR, typedef: KIND.TYPEDEF } as const;

export function parseCpuList(s: string): number {
  let n = 0;
  for (const part of s.trim().split(',')) {
    if (!part) continue;
    const [first, last] = part.split('-');
    n += last === undefined ? 1 : Number(last) - Number(first) + 1;
  }
  return n;
}

export function kernelVersionCode(rel: string): number {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(rel);
  if (!m) return 0;
  return (Number(m[1]) << 16) + (Number(m[2]) << 8) + Math.min(Number(m[3] ?? 0), 255);
}

export interface HostPaths {
  vmlinuxBtf: string;
  kallsyms: string;
  configGz: string;
  bootConfig: string;
  possibleCpus: string;
}

export const DEFAULT_PATHS: HostPaths = {
  vmlinuxBtf: '/sys/kernel/btf/vmlinux',
  kallsyms: '/proc/kallsyms',
  configGz: '/proc/config.gz',
  bootConfig: `/boot/config-${release()}`,
  possibleCpus: '/sys/devices/system/cpu/possible',
};

export function systemHost(paths: HostPaths = DEFAULT_PATHS): HostFacts {
  let btf: Map<string, { id: number; kind: number }> | undefined;
  let syms: Map<string, bigint> | undefined;
  let config: Map<string, string> | undefined;
  const read = (p: string, what: string) => {
    try {
      return readFileSync(p);
    } catch (e) {
      throw new InputError('HOST_UNREADABLE', `cannot read ${what} (${p}): ${(e as NodeJS.ErrnoException).code ?? e}`);
    }
  };
  return {
    btfId(name, kind) {
      btf ??= indexBtfNames(read(paths.vmlinuxBtf, 'kernel BTF'), [KIND.FUNC, KIND.VAR, KIND.TYPEDEF]);
      return btf.get(`${KINDS[kind]}:${name}`)?.id;
    },
    ksymAddress(name) {
      if (!syms) {
        syms = new Map();
        for (const line of read(paths.kallsyms, 'kernel symbols').toString('latin1').split('\n')) {
          const [addr, , sym] = line.split(' ');
          if (sym && !syms.has(sym)) syms.set(sym, BigInt(`0x${addr}`));
        }
      }
      const a = syms.get(name);
      return a === 0n ? undefined : a; // kptr_restrict shows zeros to the unprivileged: no address known
    },
    kconfig(name) {
      if (!config) {
        let text: string;
        try {
          text = gunzipSync(readFileSync(paths.configGz)).toString('latin1');
        } catch {
          text = read(paths.bootConfig, 'kernel config (/proc/config.gz or /boot/config-*)').toString('latin1');
        }
        config = new Map();
        for (const line of text.split('\n')) {
          const [, key, value] = /^(CONFIG_[A-Za-z0-9_]+)=(.*)$/.exec(line) ?? [];
          if (key !== undefined && value !== undefined) config.set(key, value);
        }
      }
      return config.get(name);
    },
    kernelVersion: () => kernelVersionCode(release()),
    possibleCpus: () => parseCpuList(read(paths.possibleCpus, 'possible CPUs').toString('latin1')),
  };
}
