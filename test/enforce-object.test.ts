/**
 * The enforcer object (src/enforce/bpf): bpfseal's own planner accepts it as it is committed (an lsm
 * program on bpf_prog_load, a hash and two array maps and a ring buffer, stable bytes, CO-RE records
 * for the kernel to apply), its kernel loader can be generated, `enforce` recognises it and refuses
 * any other release, and the committed object is what the committed source builds to.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { planFromObject } from '../src/plan/build.js';
import { generateLoader } from '../src/loader/generate.js';
import { ATTACH_TYPE, MAP_TYPE, PROG_TYPE } from '../src/bpf/constants.js';
import { expectKind, KIND, parseBtf, typeSize } from '../src/bpf/btf.js';
import { sectionByName } from '../src/elf/reader.js';
import { loadCollection } from '../src/bpf/collection.js';
import { checkEnforcerPlan, bundledEnforcerObject, ENFORCER } from '../src/enforce/shape.js';
import type { Plan } from '../src/plan/types.js';
import { cleanupTmpDirs, makeTmpDir, readFixture, ROOT } from './helpers/paths.js';

afterAll(cleanupTmpDirs);

const OBJECT = join(ROOT, 'src/enforce/bpf/bpfseal_enforcer.o');
const fresh = (): Plan => planFromObject(readFileSync(OBJECT), 'bpfseal_enforcer.o').plan;

describe('the enforcer object', () => {
  it('plans: one lsm program on bpf_prog_load with stable bytes, and its four maps', () => {
    const plan = fresh();
    expect(plan.name).toBe('bpfseal_enforcer');
    expect(plan.license).toBe('GPL');
    expect(plan.programs).toHaveLength(1);
    const p = plan.programs[0];
    expect(p).toMatchObject({ name: 'bpfseal_admit', section: 'lsm/bpf_prog_load', progType: PROG_TYPE.get('lsm'), expectedAttachType: ATTACH_TYPE.get('lsm_mac'), attach: { name: 'bpf_lsm_bpf_prog_load', btfKind: 'func' }, fixups: [] });
    // CO-RE: the bpf_prog -> aux and aux->sig.{verdict,keyring_type,keyring_serial} accesses (bpf_core_relo: 16 bytes each).
    expect(p.coreRelos.data.length / p.coreRelos.recSize).toBe(4);
    const maps = Object.fromEntries(plan.maps.map((m) => [m.name, m]));
    expect(maps.allow_serial).toMatchObject({ type: MAP_TYPE.get('hash'), keySize: 4, valueSize: 1, maxEntries: 64 });
    expect(maps.allow_type).toMatchObject({ type: MAP_TYPE.get('array'), keySize: 4, valueSize: 1, maxEntries: 8 });
    expect(maps.counts).toMatchObject({ type: MAP_TYPE.get('array'), keySize: 4, valueSize: 32, maxEntries: 1 });
    expect(maps.decisions).toMatchObject({ type: MAP_TYPE.get('ringbuf'), keySize: 0, valueSize: 0, maxEntries: 1 << 18 });
    expect(p.fdArray.map((i) => plan.maps[i].name).sort()).toEqual(['allow_serial', 'allow_type', 'counts', 'decisions']);
  });

  it('declares the kernel structs locally (CO-RE): bpf_prog_aux.sig with the 7.2+/7.3 field types', () => {
    const spec = loadCollection(readFileSync(OBJECT), 'bpfseal_enforcer.o');
    const btf = parseBtf(sectionByName(spec.elf, '.BTF')!.data);
    const aux = expectKind(btf.types.find((t) => t?.name === 'bpf_prog_aux')!, KIND.STRUCT, 'bpf_prog_aux');
    const sig = expectKind(btf.types[aux.members.find((m) => m.name === 'sig')!.type], KIND.STRUCT, 'bpf_prog_aux.sig');
    const field = (n: string) => { const m = sig.members.find((x) => x.name === n)!; return { off: m.bitOffset / 8, size: typeSize(btf, m.type) }; };
    expect(field('keyring_serial')).toEqual({ off: 0, size: 4 });
    expect(field('keyring_type')).toEqual({ off: 4, size: 1 });
    expect(field('verdict')).toEqual({ off: 5, size: 1 });
  });

  it('becomes a kernel loader (what `enforce` runs on 7.3+)', () => {
    const l = generateLoader(fresh());
    expect(l.steps).toContain("resolve attach target 'bpf_lsm_bpf_prog_load' of program 'bpfseal_admit'");
    expect(l.hostInputs).toEqual([]);
    expect(l.fds.maps).toHaveLength(4);
  });

  it('is the object `enforce --object` names', () => {
    expect(bundledEnforcerObject()).toBe(OBJECT);
    expect(readFileSync(bundledEnforcerObject()).equals(readFileSync(OBJECT))).toBe(true);
  });

  const clang = spawnSync('clang-19', ['--version']).status === 0 && spawnSync('make', ['--version']).status === 0;
  it.skipIf(!clang)('is what the committed source builds to (make -C test/fixtures, byte for byte)', () => {
    const dir = makeTmpDir();
    const out = join(dir, 'bpfseal_enforcer.o');
    const r = spawnSync('make', ['-s', '-C', join(ROOT, 'test/fixtures'), `ENFORCER=${out}`, out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(out).equals(readFileSync(OBJECT))).toBe(true);
  });
});

describe('what enforce accepts as the enforcer', () => {
  it('accepts the enforcer plan', () => {
    expect(() => checkEnforcerPlan(fresh())).not.toThrow();
  });

  it('refuses other releases and altered enforcers (ENFORCER_UNEXPECTED)', () => {
    const others = ['minimal', 'maps_btf', 'sections'].map((f) => planFromObject(readFixture(f), `${f}.o`).plan);
    for (const p of others) expect(() => checkEnforcerPlan(p), p.name).toThrow(expect.objectContaining({ code: 'ENFORCER_UNEXPECTED' }));
    const edits: [string, (p: Plan) => void][] = [
      ['ring buffer is a hash', (p) => { p.maps.find((m) => m.name === ENFORCER.maps.decisions)!.type = MAP_TYPE.get('hash')!; }],
      ['allowlist values are wider', (p) => { p.maps.find((m) => m.name === ENFORCER.maps.allowSerial)!.valueSize = 8; }],
      ['counts missing', (p) => { p.maps = p.maps.filter((m) => m.name !== ENFORCER.maps.counts); }],
      ['other hook', (p) => { p.programs[0].attach = { name: 'bpf_lsm_file_open', btfKind: 'func' }; }],
      ['not lsm', (p) => { p.programs[0].progType = PROG_TYPE.get('tracing')!; }],
      ['second program', (p) => { p.programs.push({ ...p.programs[0], name: 'extra' }); }],
      ['host-patched', (p) => { p.programs[0].fixups = [{ insn: 0, kind: 'kfunc', name: 'x', weak: false }]; }],
    ];
    for (const [what, edit] of edits) {
      const p = fresh();
      edit(p);
      expect(() => checkEnforcerPlan(p), what).toThrow(expect.objectContaining({ code: 'ENFORCER_UNEXPECTED' }));
    }
  });
});
