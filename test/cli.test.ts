/** The `plan` and `inspect` commands, run as a user would (the built bundle) on copies of fixtures. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DIGEST_LINE, parseDigestLines, runCliProcess, runCliAll } from './helpers/cli.js';
import { EH, SH, section, shdrAt } from './helpers/elfpatch.js';
import { parseElf } from '../src/elf/reader.js';
import { cleanupTmpDirs, fixturePath, makeTmpDir, readFixture, ROOT, sha256hex } from './helpers/paths.js';

afterAll(cleanupTmpDirs);

let work: string;
/** Copy fixtures into a fresh directory (plans are never written into test/fixtures). */
function stage(...names: string[]): string[] {
  return names.map((n) => {
    const dst = join(work, n);
    copyFileSync(fixturePath(n), dst);
    return dst;
  });
}
beforeEach(() => {
  work = makeTmpDir('bpfseal-cli-');
});

describe('plan', () => {
  it('writes <name>.plan next to the object by default (relative and absolute paths)', () => {
    stage('minimal.o', 'globals.o');
    const r = runCliProcess(['plan', 'minimal.o'], { cwd: work });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const [line] = parseDigestLines(r.stdout);
    expect(r.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(line.path).toBe('minimal.plan');
    expect(line.digest).toBe(sha256hex(readFileSync(join(work, 'minimal.plan'))));

    const abs = runCliProcess(['plan', join(work, 'globals.o')]);
    expect(abs.code, abs.stderr).toBe(0);
    expect(parseDigestLines(abs.stdout)).toEqual([{ digest: sha256hex(readFileSync(join(work, 'globals.plan'))), path: join(work, 'globals.plan') }]);
    expect(readdirSync(work).sort()).toEqual(['globals.o', 'globals.plan', 'minimal.o', 'minimal.plan']);
  });

  it('-o dir/ and -o dir (existing directory) put <name>.plan inside', () => {
    const [obj] = stage('subprogs.o');
    const d1 = join(work, 'out1');
    const d2 = join(work, 'out2');
    mkdirSync(d1);
    mkdirSync(d2);
    const r1 = runCliProcess(['plan', obj, '-o', `${d1}/`]);
    const r2 = runCliProcess(['plan', obj, '--out', d2]);
    expect([r1.code, r2.code]).toEqual([0, 0]);
    expect(parseDigestLines(r1.stdout)[0].path).toBe(join(d1, 'subprogs.plan'));
    expect(parseDigestLines(r2.stdout)[0].path).toBe(join(d2, 'subprogs.plan'));
    expect(readFileSync(join(d1, 'subprogs.plan')).equals(readFileSync(join(d2, 'subprogs.plan')))).toBe(true);
    expect(existsSync(join(work, 'subprogs.plan'))).toBe(false);
  });

  it('-o file writes exactly that file', () => {
    const [obj] = stage('maps_btf.o');
    const out = join(work, 'custom-name.bin');
    const r = runCliProcess(['plan', obj, '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(parseDigestLines(r.stdout)).toEqual([{ digest: sha256hex(readFileSync(out)), path: out }]);
    expect(readdirSync(work).sort()).toEqual(['custom-name.bin', 'maps_btf.o']);
    // no temporary files left behind by the atomic write
    expect(readdirSync(work).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('-o file with two objects is a usage error: exit 2, nothing written', () => {
    const objs = stage('minimal.o', 'globals.o');
    const out = join(work, 'both.plan');
    const r = runCliProcess(['plan', ...objs, '-o', out]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('-o must name an existing directory');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).sort()).toEqual(['globals.o', 'minimal.o']);
  });

  it('-o into a directory that does not exist: exit 2 naming the path', () => {
    const [obj] = stage('minimal.o');
    const r = runCliProcess(['plan', obj, '-o', join(work, 'missing', 'dir') + '/']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(join(work, 'missing', 'dir', 'minimal.plan'));
    expect(r.stderr).toMatch(/cannot write \(ENOENT\)/);
  });

  it('prints one `sha256:<64 hex>  <path>` line per object, in argument order', () => {
    const objs = stage('minimal.o', 'globals.o', 'core.o');
    const r = runCliProcess(['plan', ...objs]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines.at(-1)).toBe('');
    expect(lines.slice(0, -1)).toHaveLength(3);
    for (const l of lines.slice(0, -1)) expect(l).toMatch(DIGEST_LINE);
    expect(parseDigestLines(r.stdout).map((l) => l.path)).toEqual(objs.map((o) => o.replace(/\.o$/, '.plan')));
  });

  it('--json prints an array of {object, plan, digest}', () => {
    const objs = stage('minimal.o', 'externs.o');
    const r = runCliProcess(['plan', '--json', ...objs]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toEqual(objs.map((o) => {
      const planPath = o.replace(/\.o$/, '.plan');
      return { object: o, plan: planPath, digest: `sha256:${sha256hex(readFileSync(planPath))}` };
    }));
  });

  it('one good and one bad object: the good plan is written, the bad one reported, exit 2', () => {
    const [good] = stage('minimal.o');
    const bad = join(work, 'broken.o');
    writeFileSync(bad, readFixture('globals.o').subarray(0, 1000));
    const r = runCliProcess(['plan', bad, good]);
    expect(r.code).toBe(2);
    expect(parseDigestLines(r.stdout)).toEqual([{ digest: sha256hex(readFileSync(join(work, 'minimal.plan'))), path: join(work, 'minimal.plan') }]);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`bpfseal: ${bad}: `);
    expect(r.stderr).toContain('lies outside the file');
    expect(existsSync(join(work, 'broken.plan'))).toBe(false);

    const rj = runCliProcess(['plan', '--json', good, bad]);
    expect(rj.code).toBe(2);
    const j = JSON.parse(rj.stdout);
    expect(j).toHaveLength(2);
    expect(j[0]).toMatchObject({ object: good, plan: join(work, 'minimal.plan') });
    expect(j[1]).toMatchObject({ object: bad, error: { code: 'ELF_OUT_OF_RANGE', exit: 2 } });
    expect(j[1].plan).toBeUndefined();
  });

  it('a missing object: exit 2 with the file name', () => {
    const missing = join(work, 'does-not-exist.o');
    const r = runCliProcess(['plan', missing]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(missing);
    expect(r.stderr).toContain('ENOENT');
  });

  it('a directory given as the object: exit 2', () => {
    const r = runCliProcess(['plan', work]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(work);
  });
});

describe('inspect', () => {
  /** Objects and their plans, planned once (one process) in a shared directory. */
  let shared: string;
  const obj = (f: string) => join(shared, f);
  const planOf = (f: string) => join(shared, f.replace(/\.o$/, '.plan'));
  beforeAll(() => {
    shared = makeTmpDir('bpfseal-cli-inspect-');
    const names = ['map_in_map.o', 'externs.o', 'sections.o', 'subprogs.o', 'globals.o', 'minimal.o'];
    for (const n of names) copyFileSync(fixturePath(n), obj(n));
    const r = runCliProcess(['plan', ...names.map(obj)]);
    expect(r.code, r.stderr).toBe(0);
  });

  it('an object and its plan describe identically (text and JSON)', async () => {
    const [jo, jp, to, tp] = await runCliAll([
      ['inspect', '--json', obj('map_in_map.o')], ['inspect', '--json', planOf('map_in_map.o')],
      ['inspect', obj('map_in_map.o')], ['inspect', planOf('map_in_map.o')],
    ]);
    expect([jo.code, jp.code, to.code, tp.code]).toEqual([0, 0, 0, 0]);
    expect(jp.stdout).toBe(jo.stdout);
    expect(tp.stdout).toBe(to.stdout);
    const d = JSON.parse(jo.stdout);
    expect(d.digest).toBe(`sha256:${sha256hex(readFileSync(planOf('map_in_map.o')))}`);
    expect(d.object).toBe(`sha256:${sha256hex(readFixture('map_in_map.o'))}`);
    expect(d.name).toBe('map_in_map');
    expect(d.slots).toEqual(expect.arrayContaining([{ map: 'jmp_table', index: 0, target: 'program tail_target' }]));
    expect(to.stdout).toContain(d.digest);
  });

  it.each(['externs.o', 'sections.o'])('%s: object and plan give the same digest and JSON', async (f) => {
    const [a, b] = await runCliAll([['inspect', '--json', obj(f)], ['inspect', '--json', planOf(f)]]);
    expect(JSON.parse(a.stdout)).toEqual(JSON.parse(b.stdout));
    expect(JSON.parse(a.stdout).digest).toBe(`sha256:${sha256hex(readFileSync(planOf(f)))}`);
  });

  it('--disasm prints maps by name and helpers by name', async () => {
    const [r, rj, g, e] = await runCliAll([
      ['inspect', '--disasm', obj('subprogs.o')], ['inspect', '--json', '--disasm', obj('subprogs.o')],
      ['inspect', '--disasm', obj('globals.o')], ['inspect', '--disasm', planOf('externs.o')],
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('map[vals]');
    expect(r.stdout).toContain('call bpf_map_lookup_elem#1');
    expect(r.stdout).toMatch(/call pc[+-]\d+ <mix>/);
    expect(r.stdout).toMatch(/= func pc[+-]\d+ <loop_cb>/);
    expect(r.stdout).not.toContain('idx:');
    const j = JSON.parse(rj.stdout);
    expect(Object.keys(j.disassembly).sort()).toEqual(['socket_calls', 'xdp_calls']);
    expect(j.disassembly.xdp_calls.join('\n')).toContain('map[vals]');
    // data maps with offsets; kfunc and ksym fix-ups by name
    expect(g.stdout).toMatch(/= map\[\.rodata\]\[0\]\+4/);
    expect(e.stdout).toContain('call kernel-function bpf_task_from_pid');
    expect(e.stdout).toContain('ksym _stext');
    expect(e.stdout).toMatch(/map\[\.kconfig\]\[0\]\+\d+/);
  });

  it('bad inputs: missing file, neither ELF nor plan, corrupted plan -> exit 2', async () => {
    const missing = join(work, 'nope.plan');
    const junk = join(work, 'junk.o');
    writeFileSync(junk, 'junk junk junk\n');
    const corrupt = join(work, 'corrupt.plan');
    writeFileSync(corrupt, Buffer.concat([readFileSync(planOf('minimal.o')), Buffer.from([0])]));
    const [m, j, c] = await runCliAll([['inspect', missing], ['inspect', junk], ['inspect', corrupt]]);
    expect([m.code, j.code, c.code]).toEqual([2, 2, 2]);
    expect(m.stderr).toContain(missing);
    expect(m.stderr).toContain('ENOENT');
    expect(j.stderr).toContain('neither a BPF ELF object nor a bpfseal plan');
    expect(c.stderr).toContain('invalid plan: 1 trailing bytes');
    for (const r of [m, j, c]) expect(r.stdout).toBe('');
  });

  // Bug: src/cli/main.ts prints `bpfseal: <message>` for errors thrown by `inspect`, and the errors of
  // planFromBytes (ELF/BTF/plan format) do not carry the file name, so the user is not told which file
  // is bad. `plan` names the file (`bpfseal: <file>: <message>`), and BpfsealError has a `file` field
  // for exactly this; inspect should do the same.
  it('a malformed object given to inspect: the message names the file', () => {
    const f = join(work, 'truncated.o');
    writeFileSync(f, readFixture('minimal.o').subarray(0, 100));
    const r = runCliProcess(['inspect', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('lies outside the file');
    expect(r.stderr).toContain(f);
  });
});

describe('usage', () => {
  it('an unknown option or a missing argument: exit 2', async () => {
    const [obj] = stage('minimal.o');
    const [u, m] = await runCliAll([['plan', '--bogus', obj], ['plan']]);
    expect(u.code).toBe(2);
    expect(u.stderr).toContain("unknown option '--bogus'");
    expect(existsSync(join(work, 'minimal.plan'))).toBe(false);
    expect(m.code).toBe(2);
    expect(m.stderr).toContain("missing required argument 'object'");
  });

  it('--help and --version exit 0', async () => {
    const [h, p, v] = await runCliAll([['--help'], ['plan', '--help'], ['--version']]);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('Usage: bpfseal');
    expect(h.stdout).toMatch(/plan \[options\] <object\.\.\.>/);
    expect(h.stdout).toMatch(/inspect \[options\] <input>/);
    expect(p.code).toBe(0);
    expect(p.stdout).toContain('--json');
    expect(p.stdout).toContain('-o, --out');
    expect(v.code).toBe(0);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect(v.stdout.trim()).toContain(pkg.version);
  });
});

describe('--section-type', () => {
  // minimal.o with its program section renamed "xdp" -> "foo": a section libbpf's table does not know.
  function renamed(dir: string): string {
    const b = Buffer.from(readFixture('minimal.o'));
    const elf = parseElf(b);
    const names = elf.sections[b.readUInt16LE(EH.shstrndx)];
    const nameAt = names.offset + b.readUInt32LE(shdrAt(b, section(elf, 'xdp').index) + SH.name);
    expect(b.toString('latin1', nameAt, nameAt + 4)).toBe('xdp\0');
    b.write('foo', nameAt, 'latin1');
    const p = join(dir, 'renamed.o');
    writeFileSync(p, b);
    return p;
  }

  it('an unknown section is refused with a hint; --section-type plans it with that type, recorded in the plan', () => {
    const dir = makeTmpDir('bpfseal-sectype-');
    const obj = renamed(dir);
    const bad = runCliProcess(['plan', obj, '-o', `${dir}/`]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("section 'foo', which names no known program type");
    expect(bad.stderr).toContain("--section-type 'foo=<prog_type>'");
    const ok = runCliProcess(['inspect', obj, '--json', '--section-type', 'f*=xdp:xdp']);
    expect(ok.code, ok.stderr).toBe(0);
    const d = JSON.parse(ok.stdout) as { programs: { section: string; type: string; attachType: string }[] };
    expect(d.programs[0]).toMatchObject({ section: 'foo', type: 'xdp', attachType: 'xdp' });
    expect(runCliProcess(['plan', obj, '-o', `${dir}/`, '--section-type', 'foo=socket_filter']).code).toBe(0);
    expect(runCliProcess(['plan', obj, '--section-type', 'foo=no_such_type']).code).toBe(2);
  });
});
