/**
 * Reading and damaging a tiled log's files directly (c2sp.org/tlog-tiles layout, src/tlog), for tests
 * outside src/tlog that check what happens to a damaged log. Independent of src/tlog on purpose.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** "x001/234" for 1234: tlog-tiles path encoding of a tile index. */
function encodeIndex(n: number): string {
  let s = String(n % 1000).padStart(3, '0');
  for (let rest = Math.floor(n / 1000); rest > 0; rest = Math.floor(rest / 1000)) s = `x${String(rest % 1000).padStart(3, '0')}/${s}`;
  return s;
}

/** Size named by the log's checkpoint (second line). */
function checkpointSize(dir: string): number {
  return Number(readFileSync(join(dir, 'checkpoint'), 'utf8').split('\n')[1]);
}

/** The entry bundle files the current checkpoint covers, in order (full ones, then the partial one). */
export function bundlePaths(dir: string): string[] {
  const size = checkpointSize(dir);
  const out: string[] = [];
  for (let n = 0; n * 256 < size; n++) {
    const width = Math.min(256, size - n * 256);
    const full = join(dir, 'tile/entries', encodeIndex(n));
    out.push(width === 256 || !existsSync(`${full}.p/${width}`) ? full : `${full}.p/${width}`);
  }
  return out;
}

/** The current bundle file that contains `needle` (to edit an entry in place). */
export function bundleWith(dir: string, needle: string): string {
  const p = bundlePaths(dir).find((f) => readFileSync(f).includes(needle));
  if (!p) throw new Error(`no entry bundle of ${dir} contains ${needle}`);
  return p;
}

/** The raw entries of the log (uint16 BE length-prefixed in each bundle). */
export function rawEntries(dir: string): Buffer[] {
  const out: Buffer[] = [];
  for (const f of bundlePaths(dir)) {
    const b = readFileSync(f);
    for (let o = 0; o + 2 <= b.length; o += 2 + b.readUInt16BE(o)) out.push(b.subarray(o + 2, o + 2 + b.readUInt16BE(o)));
  }
  return out;
}
