/**
 * llvm-readobj as an independent ELF oracle. Normalises the JSON of LLVM 14 ({Value, RawValue}) and
 * LLVM 15+ ({Name, Value}). LLVM 14 prints relocations inside its JSON as plain text (invalid JSON), so
 * for that version relocations come from the LLVM-style `-r --expand-relocs` output instead.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync } from 'node:fs';

export const READOBJ = '/usr/bin/llvm-readobj';

export interface RoSection { index: number; name: string; type: number; flags: number; offset: number; size: number; link: number; info: number; addralign: number; entsize: number }
export interface RoSymbol { name: string; nameOff: number; value: number; size: number; type: number; binding: number; other: number; shndx: number }
export interface RoReloc { offset: number; type: number; typeName: string; symbol: number; symbolName: string }
export interface RoDump { sections: RoSection[]; symbols: RoSymbol[]; relocations: Map<number, RoReloc[]> }

/** The readobj binaries to cross-check with: /usr/bin/llvm-readobj first, then other installed versions. */
export function readobjBinaries(): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (p: string) => {
    if (!existsSync(p)) return;
    const real = realpathSync(p);
    if (seen.has(real)) return;
    if (spawnSync(p, ['--version']).status !== 0) return;
    seen.add(real);
    out.push(p);
  };
  add(READOBJ);
  for (const f of readdirSync('/usr/bin').filter((x) => /^llvm-readobj-\d+$/.test(x)).sort()) add(`/usr/bin/${f}`);
  return out;
}

/** {Name,Value} (LLVM >= 15) or {Value,RawValue} (LLVM 14) -> {name, raw}. */
function field(o: { Name?: string; Value?: string | number; RawValue?: number }): { name: string; raw: number } {
  if (typeof o.Value === 'string') return { name: o.Value, raw: o.RawValue! };
  return { name: o.Name ?? '', raw: o.Value as number };
}

function run(bin: string, args: string[]): string {
  return execFileSync(bin, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
}

// llvm-readobj --elf-output-style=JSON, read loosely: the tests compare its fields one by one
type J = any;

function parseTextRelocs(text: string): Map<number, RoReloc[]> {
  const out = new Map<number, RoReloc[]>();
  let cur: RoReloc[] | undefined;
  let r: Partial<RoReloc> = {};
  for (const line of text.split('\n')) {
    const t = line.trim();
    let m: RegExpExecArray | null;
    if ((m = /^Section \((\d+)\) .* \{$/.exec(t))) {
      cur = [];
      out.set(Number(m[1]), cur);
    } else if ((m = /^Offset: 0x([0-9A-Fa-f]+)$/.exec(t))) {
      r = { offset: parseInt(m[1], 16) };
    } else if ((m = /^Type: (\S+) \((\d+)\)$/.exec(t))) {
      r.typeName = m[1];
      r.type = Number(m[2]);
    } else if ((m = /^Symbol: (.*) \((\d+)\)$/.exec(t))) {
      r.symbolName = m[1];
      r.symbol = Number(m[2]);
      cur!.push(r as RoReloc);
    }
  }
  return out;
}

export function readobjDump(bin: string, file: string): RoDump {
  let doc: J;
  let relocs: Map<number, RoReloc[]> | undefined;
  const full = run(bin, ['--elf-output-style=JSON', '-S', '-s', '-r', file]);
  try {
    doc = JSON.parse(full);
  } catch {
    doc = JSON.parse(run(bin, ['--elf-output-style=JSON', '-S', '-s', file]));
    relocs = parseTextRelocs(run(bin, ['-r', '--expand-relocs', file]));
  }
  const top = doc[0];
  const body = top.Sections ? top : top[Object.keys(top)[0]];
  const sections: RoSection[] = body.Sections.map(({ Section: s }: J) => ({
    index: s.Index, name: field(s.Name).name, type: field(s.Type).raw, flags: s.Flags.RawFlags ?? s.Flags.Value,
    offset: s.Offset, size: s.Size, link: s.Link, info: s.Info, addralign: s.AddressAlignment, entsize: s.EntrySize,
  }));
  const symbols: RoSymbol[] = body.Symbols.map(({ Symbol: s }: J) => ({
    name: field(s.Name).name, nameOff: field(s.Name).raw, value: s.Value, size: s.Size, type: field(s.Type).raw,
    binding: field(s.Binding).raw, other: typeof s.Other === 'number' ? s.Other : s.Other.Value, shndx: field(s.Section).raw,
  }));
  if (!relocs) {
    relocs = new Map();
    for (const rs of body.Relocations ?? []) {
      relocs.set(rs.SectionIndex, rs.Relocs.map(({ Relocation: r }: J) => ({
        offset: r.Offset, type: field(r.Type).raw, typeName: field(r.Type).name, symbol: field(r.Symbol).raw, symbolName: field(r.Symbol).name,
      })));
    }
  }
  return { sections, symbols, relocations: relocs };
}
