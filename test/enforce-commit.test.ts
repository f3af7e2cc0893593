/**
 * Loads that pin links (what `enforce` does with its attached program), on this host's kernel with a
 * raw tracepoint link (LSM programs cannot load here): the link is pinned at <dir>/links/<name> with
 * the load's other pins and recorded with its kernel id; unload removes it; any failure before or
 * during the commit leaves no pin, closes the link, and is recorded; `accept` refuses before the
 * kernel is touched.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { addressOf, bpf } from '../src/kernel/sys.js';
import { progLoad } from '../src/kernel/bpf.js';
import { Fd } from '../src/kernel/fd.js';
import { linkExists, linkInfo } from '../src/kernel/link.js';
import { KernelError } from '../src/kernel/errors.js';
import { openHostLog, readDecisions } from '../src/hostlog/hostlog.js';
import { loadRelease } from '../src/runtime/load.js';
import { pinsInPlace, unloadDir } from '../src/runtime/unload.js';
import { BpfsealError, type ErrorCode } from '../src/errors.js';
import { parsePolicy, type TrustPolicy } from '../src/trust/policy.js';
import { writeKeyFiles } from '../src/trust/keys.js';
import { cleanupTmpDirs, makeTmpDir } from './helpers/paths.js';
import { closeLeftoverFds, newPinDir, probeBpf, removePinDirs } from './helpers/kernel.js';
import { signFixture } from './helpers/releases.js';

const probe = probeBpf();
if (!probe.ok) console.warn(`enforce-commit.test.ts: real-kernel tests skipped: ${probe.why}`);
afterAll(cleanupTmpDirs);
afterEach(() => { removePinDirs(); expect(closeLeftoverFds()).toEqual([]); });

/** BPF_RAW_TRACEPOINT_OPEN (17: 0 name, 8 prog_fd) of a 2-instruction raw_tp program on a tracepoint only BPF test runs fire. */
function rawTpLink(): Fd | undefined {
  const prog = progLoad({ type: 17, insns: Buffer.from('b7000000000000009500000000000000', 'hex'), license: 'GPL', kernVersion: 0, flags: 0, name: 'test_rawtp', expectedAttachType: 0, fdArray: [] });
  try {
    const name = Buffer.from('bpf_test_finish\0');
    const a = Buffer.alloc(24);
    a.writeBigUInt64LE(addressOf(name), 0);
    a.writeUInt32LE(prog.value, 8);
    return new Fd(bpf(17, a, [name]), 'raw_tp link');
  } catch (e) {
    if (e instanceof KernelError && e.errno === 2) return undefined; // no such tracepoint here
    throw e;
  } finally {
    prog.close();
  }
}

async function gone(id: number): Promise<boolean> {
  for (let i = 0; i < 250 && linkExists(id); i++) await new Promise((r) => setTimeout(r, 20));
  return !linkExists(id);
}

const linkable = probe.ok && (() => { const l = rawTpLink(); l?.close(); return !!l; })();

describe.skipIf(!linkable)('a load with links', () => {
  let policy: TrustPolicy;
  let rel: Buffer;
  const host = () => {
    const d = makeTmpDir('bpfseal-host-');
    return { hostLog: join(d, 'host-log'), statePath: join(d, 'state.json') };
  };
  const records = (hostLog: string) => {
    const log = openHostLog(hostLog, false);
    try {
      return readDecisions(log).map((r) => r.decision!);
    } finally {
      log.close();
    }
  };
  /**
   * Load `rel` with a raw tracepoint link made in beforeCommit and handed to the commit, or, with
   * `fail`, closed there and the load failed (what enable does with a link it made before failing).
   */
  const loadWithLink = (files: ReturnType<typeof host>, dir: string, opts: { fail?: BpfsealError; onCommitStep?: (step: string) => void } = {}) => {
    const made = { id: 0 };
    const done = loadRelease(rel, {
      policy, ...files, pinDir: dir, loader: 'user',
      beforeCommit: () => {
        const link = rawTpLink()!;
        made.id = linkInfo(link).id;
        if (opts.fail) {
          link.close(); // never left open
          throw opts.fail;
        }
        return [{ name: 'probe', link, id: made.id }];
      },
      ...(opts.onCommitStep ? { onCommitStep: opts.onCommitStep } : {}),
    });
    return { done, made };
  };
  beforeAll(async () => {
    const d = makeTmpDir('bpfseal-links-');
    const k = writeKeyFiles(d, 'k', 'ecdsa-p256');
    policy = parsePolicy(JSON.stringify({ version: 1, signers: [{ name: 'k', key: 'k.pub', plans: ['*'], programTypes: ['*'] }] }), join(d, 'p.json'));
    rel = (await signFixture('minimal', 'linked', k, 1)).bytes;
  });

  it('pins the link at <dir>/links/<name>, records it, and unload removes it (the link goes with its pin)', async () => {
    const files = host();
    const dir = newPinDir();
    const { done, made } = loadWithLink(files, dir);
    const r = await done;
    const { id } = made;
    expect(r.committed!.pins).toContain(join(dir, 'links', 'probe'));
    expect(readdirSync(join(dir, 'links'))).toEqual(['probe']);
    expect(linkExists(id)).toBe(true); // the fd was closed: the pin holds it
    const rec = records(files.hostLog).find((d) => d.decision === 'allowed')!;
    expect(rec.pinned).toContainEqual({ path: join(dir, 'links', 'probe'), kind: 'link', id });
    expect(pinsInPlace(rec)).toBe(true);
    const u = await unloadDir(dir, files.hostLog);
    expect(u.removed).toContain(join(dir, 'links', 'probe'));
    expect(existsSync(dir)).toBe(false);
    expect(await gone(id)).toBe(true);
  });

  it('a failure before the commit pins nothing, closes the link and is recorded as refused', async () => {
    const files = host();
    const dir = newPinDir();
    const { done, made } = loadWithLink(files, dir, { fail: new BpfsealError('kernel', 'TEST_ATTACH_FAILED' as ErrorCode, 'attach failed') });
    await expect(done).rejects.toMatchObject({ code: 'TEST_ATTACH_FAILED' });
    expect(existsSync(dir)).toBe(false);
    expect(await gone(made.id)).toBe(true);
    expect(records(files.hostLog)).toMatchObject([{ decision: 'refused', code: 'TEST_ATTACH_FAILED' }]);
  });

  it('a failure during the commit removes the staged link pin and closes the link', async () => {
    const files = host();
    const dir = newPinDir();
    const { done, made } = loadWithLink(files, dir, { onCommitStep: (s) => { if (s === 'rename') throw new BpfsealError('input', 'TEST_COMMIT_FAILED' as ErrorCode, 'injected'); } });
    await expect(done).rejects.toMatchObject({ code: 'TEST_COMMIT_FAILED' });
    expect(existsSync(dir)).toBe(false);
    expect(readdirSync('/sys/fs/bpf').filter((n) => n.startsWith('bpfseal_staging_'))).toEqual([]);
    expect(await gone(made.id)).toBe(true);
    expect(records(files.hostLog).map((d) => d.decision)).toEqual(['allowed', 'aborted']);
  });

  it('accept refuses a verified release before anything reaches the kernel', async () => {
    const files = host();
    const dir = newPinDir();
    let called = false;
    await expect(loadRelease(rel, {
      policy, ...files, pinDir: dir,
      accept: (v) => { throw new BpfsealError('input', 'TEST_NOT_WANTED' as ErrorCode, `not ${v.plan.name}`); },
      beforeCommit: () => { called = true; return []; },
    })).rejects.toMatchObject({ code: 'TEST_NOT_WANTED', message: 'not linked' });
    expect(called).toBe(false);
    expect(existsSync(dir)).toBe(false);
    expect(records(files.hostLog)).toMatchObject([{ decision: 'refused', code: 'TEST_NOT_WANTED' }]);
  });
});
