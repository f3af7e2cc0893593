/**
 * The harness's byte formats without a VM: the newc archives it writes (checked by unpacking them
 * with the cpio tool, an independent reader), the result stream (written by the guest's own shell
 * function under busybox, parsed back), and the shell quoting of per-run files.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { cpioBuffer, newcHeader, writeCpio, type CpioEntry } from '../../src/vm/cpio.js';
import { commandScript, envScript, INIT_SCRIPT, SEND_RESULTS, shQuote } from '../../src/vm/init.js';
import { runArchive } from '../../src/vm/initramfs.js';
import { qemuArgs } from '../../src/vm/qemu.js';
import { parseResultStream } from '../../src/vm/result.js';
import { VmError } from '../../src/vm/errors.js';
import { cleanupTmpDirs, makeTmpDir } from '../helpers/paths.js';

const BUSYBOX = '/bin/busybox';
const hasCpio = spawnSync('cpio', ['--version']).status === 0;
const hasBusybox = existsSync(BUSYBOX);

afterAll(cleanupTmpDirs);

function unpack(archive: Buffer): string {
  const dir = makeTmpDir('bpfseal-vm-cpio-');
  execFileSync('cpio', ['-idm', '--quiet', '--no-absolute-filenames'], { cwd: dir, input: archive });
  return dir;
}

describe('newc writer', () => {
  it('writes 110-byte headers with the name NUL-terminated and padded to 4 bytes', () => {
    const h = newcHeader(7, 0o100644, 1, 5, 'ab');
    expect(h.subarray(0, 6).toString()).toBe('070701');
    expect(h.subarray(6, 14).toString()).toBe('00000007');
    expect(h.subarray(54, 62).toString()).toBe('00000005'); // filesize
    expect(h.subarray(94, 102).toString()).toBe('00000003'); // namesize counts the NUL
    expect(h.length % 4).toBe(0);
    expect(h.subarray(110, 113).toString('latin1')).toBe('ab\0');
  });

  it.skipIf(!hasCpio)('produces archives cpio unpacks: parents, modes, symlinks, binary data', async () => {
    const host = join(makeTmpDir(), 'host.bin');
    const big = randomBytes(300_001); // odd size: exercises the data padding
    writeFileSync(host, big);
    const entries: CpioEntry[] = [
      { kind: 'file', path: '/a/b/c.txt', data: Buffer.from('hello\n') },
      { kind: 'file', path: '/bin/tool', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
      { kind: 'file', path: '/a/host.bin', source: host },
      { kind: 'symlink', path: '/bin/sh', target: 'busybox' },
      { kind: 'dir', path: '/empty' },
    ];
    for (const archive of [await cpioBuffer(entries), await (async () => {
      const p = join(makeTmpDir(), 'x.cpio.gz');
      await writeCpio(entries, p, 6);
      return gunzipSync(readFileSync(p));
    })()]) {
      const d = unpack(archive);
      expect(readFileSync(join(d, 'a/b/c.txt'), 'utf8')).toBe('hello\n');
      expect(lstatSync(join(d, 'bin/tool')).mode & 0o777).toBe(0o755);
      expect(readFileSync(join(d, 'a/host.bin')).equals(big)).toBe(true);
      expect(readlinkSync(join(d, 'bin/sh'))).toBe('busybox');
      expect(lstatSync(join(d, 'empty')).isDirectory()).toBe(true);
    }
  });

  it('is deterministic and refuses bad or duplicate paths', async () => {
    const e: CpioEntry[] = [{ kind: 'file', path: '/x', data: Buffer.from('1') }];
    expect((await cpioBuffer(e)).equals(await cpioBuffer(e))).toBe(true);
    await expect(cpioBuffer([{ kind: 'file', path: '/a/../b', data: Buffer.alloc(0) }])).rejects.toMatchObject({ code: 'VM_CPIO_BAD_PATH' });
    await expect(cpioBuffer([...e, ...e])).rejects.toMatchObject({ code: 'VM_CPIO_DUPLICATE' });
  });

  it.skipIf(!hasCpio)('the per-run archive carries command, env, timeout and files', async () => {
    const d = unpack(gunzipSync(await runArchive({
      command: ['echo', "it's"], env: { A: 'x y' }, timeoutSec: 2.5, sessionKeyring: true,
      files: { '/root/s.sh': '#!/bin/sh\necho\n', '/root/d.bin': Buffer.from([0, 1, 2]) },
    })));
    expect(readFileSync(join(d, 'bpfseal/command'), 'utf8')).toBe(`exec 'echo' 'it'\\''s'\n`);
    expect(readFileSync(join(d, 'bpfseal/timeout'), 'utf8')).toBe('3\n');
    expect(existsSync(join(d, 'bpfseal/session-keyring'))).toBe(true);
    expect(lstatSync(join(d, 'root/s.sh')).mode & 0o111).not.toBe(0);
    expect([...readFileSync(join(d, 'root/d.bin'))]).toEqual([0, 1, 2]);
  });
});

describe.skipIf(!hasBusybox)('guest shell pieces, run by busybox sh', () => {
  it('the init script parses', () => {
    const f = join(makeTmpDir(), 'init');
    writeFileSync(f, INIT_SCRIPT);
    expect(spawnSync(BUSYBOX, ['sh', '-n', f], { encoding: 'utf8' }).stderr).toBe('');
  });

  it('quoting survives quotes, spaces, $ and newlines', () => {
    const tricky = `a'b "c" $HOME \`x\` \\ \n end`;
    const out = execFileSync(BUSYBOX, ['sh', '-c', `${envScript({ V: tricky })}printf %s "$V"`], { encoding: 'utf8' });
    expect(out).toBe(tricky);
    const argv = execFileSync(BUSYBOX, ['sh', '-c', commandScript(['printf', '[%s]', tricky, ''])], { encoding: 'utf8' });
    expect(argv).toBe(`[${tricky}][]`);
    expect(shQuote("'")).toBe(`''\\'''`);
    expect(() => envScript({ 'A;rm': 'x' })).toThrow(/bad environment variable name/);
  });

  it('send_results writes a stream the host parses byte for byte', () => {
    const run = makeTmpDir();
    const out = join(run, 'out');
    mkdirSync(join(out, 'sub dir'), { recursive: true });
    const blob = randomBytes(1 << 20);
    writeFileSync(join(run, 'stdout'), 'line\n@bpfseal end\n'); // a marker inside data is just data
    writeFileSync(join(run, 'stderr'), '');
    writeFileSync(join(out, 'sub dir', 'b.bin'), blob);
    writeFileSync(join(run, 'timedout'), 'timeout\n');
    const stream = execFileSync(BUSYBOX, ['sh', '-c', `${SEND_RESULTS}\nsend_results "$1" "$2" 137`, 'sh', run, out], { maxBuffer: 16 << 20 });
    const r = parseResultStream(stream);
    expect(r.stdout.toString()).toBe('line\n@bpfseal end\n');
    expect(r.stderr.length).toBe(0);
    expect(r.exitCode).toBe(137);
    expect(r.timedOut).toBe(true);
    expect(createHash('sha256').update(r.files['sub dir/b.bin']).digest('hex')).toBe(createHash('sha256').update(blob).digest('hex'));
  });
});

describe('result stream parser', () => {
  const blob = (kind: string, data: Buffer, name = ''): Buffer =>
    Buffer.concat([Buffer.from(`@bpfseal ${kind} ${data.length} ${createHash('sha256').update(data).digest('hex')}${name ? ` ${name}` : ''}\n`), data]);
  const good = Buffer.concat([Buffer.from('@bpfseal begin 1\n'), blob('stdout', Buffer.from('hi')), blob('file', Buffer.from([0xff, 0x0a]), 'f'), Buffer.from('@bpfseal status 0 done\n@bpfseal end\n')]);

  it('reads a complete stream', () => {
    const r = parseResultStream(good);
    expect(r.stdout.toString()).toBe('hi');
    expect([...r.files.f]).toEqual([0xff, 0x0a]);
    expect(r.exitCode).toBe(0);
  });

  it('detects truncation, corruption and a missing stream', () => {
    for (const cut of [good.length - 5, 40, 20]) {
      expect(() => parseResultStream(good.subarray(0, cut))).toThrow(VmError);
    }
    const flipped = Buffer.from(good);
    flipped[good.indexOf('hi')] ^= 1;
    expect(() => parseResultStream(flipped)).toThrow(/sha256 mismatch/);
    expect(() => parseResultStream(Buffer.alloc(0))).toThrow(/nothing received/);
  });
});

describe('qemu command line', () => {
  it('is TCG with the console on ttyS0 and escapes commas in chardev paths', () => {
    const a = qemuArgs({ vmlinuz: '/k', initrd: '/i', resultPath: '/t/a,b', serialPath: '/t/s', memoryMiB: 2048, cpus: 2, append: 'x=1' });
    expect(a.slice(0, 6)).toEqual(['-accel', 'tcg,thread=multi', '-cpu', 'max', '-smp', '2']);
    expect(a).toContain('console=ttyS0 panic=-1 rdinit=/init quiet x=1');
    expect(a).toContain('file,id=result,path=/t/a,,b');
    expect(a).toContain('-no-reboot');
  });
});
