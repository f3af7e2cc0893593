/**
 * Host audit of the kernel: every BPF program loaded now (PROG_GET_NEXT_ID + OBJ_GET_INFO_BY_FD),
 * marked attested when its tag is the tag of a program in a logged, verified plan (predicted tags from
 * the attestation log, and the tags the host load log recorded for allowed loads), else unattested.
 */
import { progFdById, progInfo, progNextId } from '../kernel/bpf.js';
import { KernelError } from '../kernel/errors.js';
import { progTypeName } from '../bpf/constants.js';

export interface KernelProgram {
  id: number;
  name: string;
  type: string;
  tag: string;
  attested: boolean;
  /** Where the tag was attested: plan name, digest and program, from which log. */
  matches: { plan: string; digest?: string; program: string; source: 'attestation-log' | 'host-log' }[];
}

export interface AttestedTag {
  tag: string;
  plan: string;
  digest?: string;
  program: string;
  source: 'attestation-log' | 'host-log';
}

/** Programs loaded in the kernel now. Programs that disappear while we look are skipped. */
export function kernelPrograms(): { id: number; name: string; type: string; tag: string }[] {
  const out: { id: number; name: string; type: string; tag: string }[] = [];
  for (let id = progNextId(0); id !== 0; id = progNextId(id)) {
    let fd;
    try {
      fd = progFdById(id);
    } catch (e) {
      if (e instanceof KernelError && e.errno === 2) continue; // unloaded meanwhile
      throw e;
    }
    try {
      const info = progInfo(fd);
      out.push({ id: info.id, name: info.name, type: progTypeName(info.type), tag: info.tag });
    } finally {
      fd.close();
    }
  }
  return out;
}

export function markAttested(programs: { id: number; name: string; type: string; tag: string }[], tags: AttestedTag[]): KernelProgram[] {
  const byTag = new Map<string, AttestedTag[]>();
  for (const t of tags) byTag.set(t.tag, [...(byTag.get(t.tag) ?? []), t]);
  return programs.map((p) => {
    const m = byTag.get(p.tag) ?? [];
    return { ...p, attested: m.length > 0, matches: m.map(({ plan, digest, program, source }) => ({ plan, ...(digest ? { digest } : {}), program, source })) };
  });
}
