/**
 * A writer for the "newc" cpio format, the one the kernel unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst). Written here so the harness needs no
 * cpio binary. Archives are deterministic: inode numbers count up, times, uids and gids are zero.
 */
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { VmError } from './errors.js';

export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; mode?: number; data: Buffer }
  /** A host file read when the archive is written (node itself is ~100 MB: not held twice). */
  | { kind: 'file'; path: string; mode?: number; source: string }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; mode?: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

const hex8 = (n: number): string => (n >>> 0).toString(16).padStart(8, '0');
const pad4 = (n: number): number => (4 - (n % 4)) % 4;

/**
 * One newc header plus the name: "070701", then 13 eight-digit hex fields (ino, mode, uid, gid, nlink,
 * mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check), the NUL-terminated name,
 * padded so the data starts on a 4-byte boundary.
 */
export function newcHeader(ino: number, mode: number, nlink: number, size: number, name: string, rdev: readonly [number, number] = [0, 0]): Buffer {
  if (size > 0xffffffff) throw new VmError('initramfs', 'VM_CPIO_TOO_LARGE', `${name}: ${size} bytes does not fit a newc archive (4 GiB limit)`);
  const nameBytes = Buffer.from(`${name}\0`, 'utf8');
  const fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
  const head = Buffer.from(`070701${fields.map(hex8).join('')}`, 'latin1');
  return Buffer.concat([head, nameBytes, Buffer.alloc(pad4(head.length + nameBytes.length))]);
}

/** Entry names are relative ("bin/sh"); the kernel resolves them against the rootfs. */
function relName(p: string): string {
  const n = p.replace(/^\/+/, '').replace(/\/+$/, '');
  if (n === '' || n.split('/').some((c) => c === '..' || c === '.' || c === '')) {
    throw new VmError('initramfs', 'VM_CPIO_BAD_PATH', `bad path in initramfs: ${JSON.stringify(p)}`);
  }
  return n;
}

/**
 * The archive as a stream of chunks. Parent directories are emitted before their first child (the
 * kernel does not create them), each path at most once; the trailer ends the archive.
 */
export async function* newcChunks(entries: Iterable<CpioEntry>): AsyncGenerator<Buffer> {
  let ino = 1;
  const seen = new Set<string>();
  function* parents(name: string): Generator<Buffer> {
    const parts = name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (seen.has(d)) continue;
      seen.add(d);
      yield newcHeader(ino++, S_IFDIR | 0o755, 2, 0, d);
    }
  }
  for (const e of entries) {
    const name = relName(e.path);
    yield* parents(name);
    if (seen.has(name)) throw new VmError('initramfs', 'VM_CPIO_DUPLICATE', `initramfs path twice: /${name}`);
    seen.add(name);
    if (e.kind === 'dir') {
      yield newcHeader(ino++, S_IFDIR | (e.mode ?? 0o755), 2, 0, name);
    } else if (e.kind === 'symlink') {
      const t = Buffer.from(e.target, 'utf8');
      yield newcHeader(ino++, S_IFLNK | 0o777, 1, t.length, name);
      yield Buffer.concat([t, Buffer.alloc(pad4(t.length))]);
    } else if (e.kind === 'chardev') {
      yield newcHeader(ino++, S_IFCHR | (e.mode ?? 0o600), 1, 0, name, [e.major, e.minor]);
    } else if ('data' in e) {
      yield newcHeader(ino++, S_IFREG | (e.mode ?? 0o644), 1, e.data.length, name);
      yield Buffer.concat([e.data, Buffer.alloc(pad4(e.data.length))]);
    } else {
      yield* fileFromHost(ino++, name, e.source, e.mode);
    }
  }
  yield newcHeader(0, 0, 1, 0, 'TRAILER!!!');
}

async function* fileFromHost(ino: number, name: string, source: string, mode: number | undefined): AsyncGenerator<Buffer> {
  let size: number;
  try {
    size = statSync(source).size;
  } catch (e) {
    throw new VmError('initramfs', 'VM_CPIO_SOURCE', `cannot read ${source} for /${name}: ${(e as Error).message}`, { cause: e, file: source });
  }
  yield newcHeader(ino, S_IFREG | (mode ?? 0o644), 1, size, name);
  // Streamed, not read whole: node alone is ~100 MB. The header already promised `size` bytes.
  let got = 0;
  for await (const c of createReadStream(source)) {
    got += (c as Buffer).length;
    if (got > size) break;
    yield c as Buffer;
  }
  if (got !== size) throw new VmError('initramfs', 'VM_CPIO_SOURCE', `${source} changed size while it was archived`, { file: source });
  yield Buffer.alloc(pad4(size));
}

/** Write entries as a gzip-compressed newc archive (level 1..9), or uncompressed with level 0. */
export async function writeCpio(entries: Iterable<CpioEntry>, outPath: string, level = 6): Promise<void> {
  const src = Readable.from(newcChunks(entries));
  const out = createWriteStream(outPath, { mode: 0o644 });
  if (level === 0) await pipeline(src, out);
  else await pipeline(src, createGzip({ level }), out);
}

/** The whole archive in memory, for the small per-run archive and for tests. */
export async function cpioBuffer(entries: Iterable<CpioEntry>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of newcChunks(entries)) parts.push(c);
  return Buffer.concat(parts);
}

