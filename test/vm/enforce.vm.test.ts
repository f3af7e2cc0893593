/**
 * `bpfseal enforce` on Debian's 7.3.4 (issue 10 §1 acceptance), one boot: with enforcement on, an
 * unsigned BPF_PROG_LOAD (the project's bpf(2) binding, and `bpftool prog load` where the host has
 * bpftool) is refused with EPERM and shows as a denial in `audit --kernel`; a release signed with a
 * trusted key (certificate in the session keyring, which the policy's keyring -3 names) loads; one
 * whose certificate sits in another keyring, not allowlisted, is refused; `--off` restores unsigned
 * loads. Beside it, short boots: 7.2.x (verdicts, no loader signatures: the enforcer loads with
 * per-program signatures) turns enforcement on and off around an unsigned load; 6.18.x (signatures
 * verified, no verdicts) refuses with exit 3 and loads nothing. Releases are signed on the host.
 * Prints the timings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logIdentity } from '../../src/tlog/keys.js';
import { sharedLibraries } from '../../src/vm/bundle.js';
import { runInVm, type RunResult } from '../../src/vm/run.js';
import type { Kernel } from '../../src/vm/kernels.js';
import { CLI, cleanupTmpDirs, makeTmpDir, ROOT } from '../helpers/paths.js';
import { atLeast, availableKernels, majorMinor, pool, vmSetup } from './helpers.js';

const { setup, why } = vmSetup();
const kernels = availableKernels(setup, why);
const k73 = kernels.find((k) => atLeast(k.release, 7, 3));
const k618 = kernels.find((k) => majorMinor(k.release).join('.') === '6.18');
const k72 = kernels.find((k) => majorMinor(k.release).join('.') === '7.2');
const runs = new Map<string, RunResult>();
const BPFTOOL = '/usr/sbin/bpftool';

function filesUnder(dir: string, guest: string, out: Record<string, Buffer>): void {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) filesUnder(p, `${guest}/${n}`, out);
    else out[`${guest}/${n}`] = readFileSync(p);
  }
}

/** Keys, releases, the attestation log and the policy, made on the host with the CLI. */
function guestFiles(): Record<string, Buffer> {
  const dir = makeTmpDir('bpfseal-vm-enforce-');
  const cli = (...args: string[]): string => execFileSync(process.execPath, [CLI, ...args], { cwd: dir, encoding: 'utf8' });
  cli('keygen', '--out', 'keys', '--name', 'trusted');
  cli('keygen', '--out', 'keys', '--name', 'other');
  copyFileSync(join(ROOT, 'src/enforce/bpf/bpfseal_enforcer.o'), join(dir, 'bpfseal_enforcer.o'));
  copyFileSync(join(ROOT, 'test/fixtures/minimal.o'), join(dir, 'minimal.o'));
  copyFileSync(join(ROOT, 'test/fixtures/minimal.o'), join(dir, 'minimal_other.o'));
  cli('sign', 'bpfseal_enforcer.o', '--key', 'keys/trusted.key', '--cert', 'keys/trusted.crt', '--log', 'alog', '-o', 'enforcer.bpfseal');
  cli('sign', 'minimal.o', '--key', 'keys/trusted.key', '--cert', 'keys/trusted.crt', '--log', 'alog', '-o', 'minimal.bpfseal');
  cli('sign', 'minimal_other.o', '--key', 'keys/other.key', '--cert', 'keys/other.crt', '--log', 'alog', '-o', 'other.bpfseal');
  const { origin } = logIdentity(join(dir, 'alog'));
  writeFileSync(join(dir, 'policy.json'), JSON.stringify({
    version: 1,
    signers: [
      { name: 'trusted', key: 'keys/trusted.pub', certificate: 'keys/trusted.crt', plans: ['bpfseal_enforcer', 'minimal'], programTypes: ['lsm', 'xdp'] },
      { name: 'other', key: 'keys/other.pub', certificate: 'keys/other.crt', plans: ['minimal_other'], programTypes: ['xdp'] },
    ],
    logs: [{ key: 'alog/log.pub', origin }],
  }, null, 2).replace('{\n  "version": 1,', '{ "version": 1,'));
  const files: Record<string, Buffer> = {
    '/root/enforce.sh': readFileSync(join(ROOT, 'test/vm/guest/enforce.sh')),
    '/root/unsigned-load.mjs': readFileSync(join(ROOT, 'test/vm/guest/unsigned-load.mjs')),
  };
  for (const f of ['policy.json', 'enforcer.bpfseal', 'minimal.bpfseal', 'other.bpfseal', 'minimal.o', 'keys/trusted.crt', 'keys/trusted.pub', 'keys/other.crt', 'keys/other.pub']) {
    files[`/root/rel/${f}`] = readFileSync(join(dir, f));
  }
  filesUnder(join(dir, 'alog'), '/root/rel/alog', files);
  // bpftool and the libraries node does not bring already, where the host has it. (A per-run file
  // replaces the base initramfs entry, with mode 0644: node's own loader and libc must stay as they are.)
  if (existsSync(BPFTOOL)) {
    files[BPFTOOL] = readFileSync(BPFTOOL);
    const nodes = new Set(sharedLibraries(process.execPath));
    for (const l of sharedLibraries(BPFTOOL)) if (!nodes.has(l)) files[l] = readFileSync(l);
  }
  return files;
}

beforeAll(async () => {
  const todo: { k: Kernel; command: string }[] = [];
  if (k73) todo.push({ k: k73, command: 'sh /root/enforce.sh' });
  if (k72) todo.push({ k: k72, command: 'sh /root/enforce.sh short' });
  if (k618) {
    todo.push({ k: k618, command: 'bpfseal enforce --release /root/rel/enforcer.bpfseal --policy /root/rel/policy.json --host-log /tmp/host-log --json >/out/enforce.out 2>/out/enforce.err; echo $? >/out/enforce.rc; ls -A /sys/fs/bpf >/out/bpffs; test -e /tmp/host-log; echo $? >/out/hostlog.rc' });
  }
  if (!todo.length) return;
  const files = guestFiles();
  await pool(todo, Number(process.env.BPFSEAL_VM_CONCURRENCY ?? 2), async ({ k, command }) => {
    runs.set(k.release, await runInVm(k, { files, command, timeoutMs: 400_000 }));
  });
});

afterAll(() => {
  cleanupTmpDirs();
  for (const r of runs.values()) {
    const times = (r.files.times?.toString() ?? '').trim().split('\n').filter(Boolean).map((l) => {
      const [n, a, b] = l.split(' ');
      return `${n} ${((Number(b) - Number(a)) * 1000).toFixed(0)} ms`;
    });
    const enforce = r.files['enforce.out'] ? (JSON.parse(r.files['enforce.out'].toString()) as { ms?: Record<string, number> }).ms : undefined;
    console.log(`[vm] enforce ${r.kernel.release}: boot ${r.bootMs} ms, command ${r.commandMs} ms, total ${r.totalMs} ms${r.boots > 1 ? ` (${r.boots} boots)` : ''}`
      + `${times.length ? `\n  steps: ${times.join(', ')}` : ''}${enforce ? `\n  enforce inside bpfseal: ${JSON.stringify(enforce)}` : ''}`);
  }
});

if (!k73 && setup) it.skip('enforce on 7.3: no 7.3 kernel among the kernels under test ($BPFSEAL_VM_KERNELS)', () => {});

interface Step { out: string; err: string; rc: number }
const step = (r: RunResult, name: string): Step => {
  const f = (ext: string): string => r.files[`${name}.${ext}`]?.toString('utf8') ?? '';
  return { out: f('out').trim(), err: f('err').trim(), rc: Number(f('rc').trim() || NaN) };
};
const json = <T = Record<string, unknown>>(s: Step): T => {
  try {
    return JSON.parse(s.out) as T;
  } catch {
    throw new Error(`not JSON (rc ${s.rc}):\n${s.out}\n${s.err}`);
  }
};

interface Denial { comm: string; progType: string; progName: string; verdict: string; keyringType: string; keyringSerial: number }

describe.runIf(!!k73)(`enforce on ${k73?.package ?? '7.3'}`, () => {
  const r = (): RunResult => {
    const x = runs.get(k73!.release);
    if (!x) throw new Error('no run');
    return x;
  };

  it('runs the whole script', () => {
    expect(r().exitCode, r().stderr).toBe(0);
    expect(r().timedOut).toBe(false);
  });

  it('enables: the enforcer is verified and loaded through the signed kernel loader, attached, the session keyring allowed', () => {
    const e = step(r(), 'enforce');
    expect(e.rc, e.err).toBe(0);
    const j = json<{ loader: string; kernelVerified: string; linkId: number; programId: number; allow: { spec: string; serial?: number }[] }>(e);
    expect(j).toMatchObject({ ok: true, active: true, plan: 'bpfseal_enforcer', loader: 'kernel', kernelVerified: 'loader' });
    expect(j.linkId).toBeGreaterThan(0);
    expect(j.allow).toEqual([{ spec: 'policy keyring -3', serial: expect.any(Number), description: expect.any(String) }]);
    const s = json<{ active: boolean; linkId: number; allow: { serials: { serial: number }[]; types: string[] } }>(step(r(), 'status'));
    expect(s).toMatchObject({ ok: true, active: true, linkId: j.linkId, programId: j.programId, problems: [] });
    expect(s.allow).toEqual({ serials: [{ serial: j.allow[0].serial, description: expect.any(String) }], types: [] });
    // Enabling again while on is refused before anything is loaded; the first enforcer stays (the later steps use it).
    const again = step(r(), 'again');
    expect(again.rc).toBe(2);
    expect(json(again)).toMatchObject({ error: { code: 'ENFORCE_ACTIVE' } });
  });

  it('an unsigned load works before, is refused with EPERM while enforcing, and works again after --off', () => {
    expect(json(step(r(), 'before'))).toEqual({ ok: true });
    expect(json(step(r(), 'unsigned'))).toMatchObject({ ok: false, code: 'KERNEL_EPERM', errno: 1 });
    expect(json(step(r(), 'after'))).toEqual({ ok: true });
  });

  it.runIf(existsSync(BPFTOOL))('bpftool prog load of an unsigned object is refused while enforcing, and loads after --off', () => {
    const b = step(r(), 'bpftool');
    expect(b.rc).not.toBe(0);
    expect(b.err).toMatch(/Operation not permitted/);
    expect(step(r(), 'bpftool-after').rc).toBe(0);
  });

  it('a release signed by the trusted key (certificate in the allowed session keyring) loads', () => {
    const t = step(r(), 'trusted');
    expect(t.rc, t.err).toBe(0);
    expect(json(t)).toMatchObject({ plan: 'minimal', loader: 'kernel', kernelVerified: 'loader', pins: ['/sys/fs/bpf/trusted/xdp_pass'] });
  });

  it('a release verified against another keyring (not allowlisted) is refused with EPERM', () => {
    const o = step(r(), 'other');
    expect(o.rc).toBe(3);
    expect(o.err).toMatch(/^bpfseal: KERNEL_EPERM: kernel loader: load the signed loader program: .*an LSM policy such as bpfseal enforce does not admit this keyring/m);
  });

  it('audit --kernel shows the denials, with who, what and which keyring; nothing else is a finding', () => {
    const a = step(r(), 'audit');
    const j = json<{ findings: { code: string }[]; kernel: { programs: { name: string; attested: boolean }[]; enforcement: { decisions: number; denials: Denial[] } } }>(a);
    expect(j.findings, a.err).toEqual([]);
    expect(a.rc).toBe(0);
    const d = j.kernel.enforcement.denials;
    expect(d).toContainEqual(expect.objectContaining({ comm: 'node', progType: 'socket_filter', progName: 'unsigned_probe', verdict: 'unsigned', keyringType: 'none', keyringSerial: 0 }));
    const otherRing = Number(step(r(), 'ring').out);
    expect(d).toContainEqual(expect.objectContaining({ comm: 'node', progType: 'syscall', progName: 'bpfseal_loader', verdict: 'verified', keyringType: 'user', keyringSerial: otherRing }));
    if (existsSync(BPFTOOL)) expect(d.some((x) => x.comm === 'bpftool' && x.verdict === 'unsigned')).toBe(true);
    // The trusted loader and the program it installed were admitted, not denied.
    expect(d.some((x) => x.progName === 'xdp_pass')).toBe(false);
    expect(j.kernel.enforcement.decisions).toBeGreaterThan(d.length);
    expect(j.kernel.programs.filter((p) => ['bpfseal_admit', 'xdp_pass'].includes(p.name)).map((p) => p.attested)).toEqual([true, true]);
  });

  it('--off detaches and removes exactly the pins, with the counters recorded', () => {
    const o = step(r(), 'off');
    expect(o.rc, o.err).toBe(0);
    const j = json<{ removed: string[]; counts: { decisions: number; allowed: number; denied: number; lost: number } }>(o);
    expect(j).toMatchObject({ ok: true, wasActive: true });
    expect(j.removed.map((p) => p.replace('/sys/fs/bpf/bpfseal-enforce/', '')).sort()).toEqual(['bpfseal_admit', 'links/bpfseal_admit', 'maps/allow_serial', 'maps/allow_type', 'maps/counts', 'maps/decisions']);
    expect(j.counts.lost).toBe(0);
    expect(j.counts.allowed).toBeGreaterThanOrEqual(2); // the trusted loader and the program it loaded
    expect(j.counts.denied).toBeGreaterThanOrEqual(2);
    expect(j.counts.decisions).toBe(j.counts.allowed + j.counts.denied);
  });
});

describe.runIf(!!k618)(`enforce on ${k618?.package ?? '6.18'} (signatures verified, no verdicts)`, () => {
  it('refuses with exit 3 (ENFORCE_UNSUPPORTED) and loads, pins and records nothing', () => {
    const r = runs.get(k618!.release)!;
    expect(r.exitCode, r.stderr).toBe(0);
    const e = step(r, 'enforce');
    expect(e.rc).toBe(3);
    const j = json<{ error: { message: string } }>(e).error;
    expect(j).toMatchObject({ code: 'ENFORCE_UNSUPPORTED', exit: 3 });
    expect(j.message).toMatch(/records no signature verdicts/);
    expect(j.message).not.toMatch(/BPF LSM is not active|cannot verify BPF program signatures|bpf_prog_load LSM hook/);
    expect(e.err).toMatch(/^bpfseal: ENFORCE_UNSUPPORTED: /);
    expect(r.files.bpffs?.toString().trim()).toBe(''); // nothing pinned
    expect(r.files['hostlog.rc']?.toString().trim()).toBe('1'); // no host log: nothing was attempted
  });
});

describe.runIf(!!k72)(`enforce on ${k72?.package ?? '7.2'} (verdicts; per-program signatures)`, () => {
  it('loads the enforcer with per-program kernel signatures, refuses an unsigned load, and --off restores it', () => {
    const r = runs.get(k72!.release)!;
    expect(r.exitCode, r.stderr).toBe(0);
    const e = step(r, 'enforce');
    expect(e.rc, e.err).toBe(0);
    expect(json(e)).toMatchObject({ ok: true, active: true, loader: 'user', kernelVerified: 'programs' });
    expect(json(step(r, 'unsigned'))).toMatchObject({ ok: false, code: 'KERNEL_EPERM', errno: 1 });
    const off = step(r, 'off');
    expect(off.rc, off.err).toBe(0);
    expect(json(off)).toMatchObject({ wasActive: true, counts: { lost: 0 } });
    expect(json(step(r, 'after'))).toEqual({ ok: true });
  });
});
