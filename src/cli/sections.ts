/** `--section-type <pattern>=<prog_type>[:<attach_type>]`, shared by plan, inspect and sign. */
import type { Command } from 'commander';
import { BpfsealError } from '../errors.js';
import type { SectionOverride } from '../bpf/sections.js';

export function addSectionTypeOption(c: Command): Command {
  return c.option(
    '--section-type <pattern=type>',
    "program type (and expected attach type) for sections libbpf's table does not know, e.g. 'lirc_mode2/*=lirc_mode2' or 'tun_rss_steering=socket_filter' (repeatable; recorded in the plan)",
    (v: string, prev: string[] = []) => [...prev, v],
  );
}

/** Parse the flags; the section table (a large module) is loaded only when there are any. */
export async function sectionTypes(list: string[] | undefined): Promise<SectionOverride[]> {
  if (!list?.length) return [];
  const { parseSectionOverride } = await import('../bpf/sections.js');
  return list.map((s) => {
    const o = parseSectionOverride(s);
    if (!o) throw new BpfsealError('usage', 'USAGE_SECTION_TYPE', `--section-type ${s}: expected <section pattern>=<prog_type>[:<attach_type>] with bpftool's type names (xdp, socket_filter, sched_cls, ...)`);
    return o;
  });
}
