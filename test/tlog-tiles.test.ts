/**
 * The tiles layout (src/tlog/tiles): path encoding (c2sp.org/tlog-tiles, including the x prefix from
 * N >= 1000 and partial widths), which tiles a tree has, entry bundles, growing tiles batch by batch,
 * and reading authenticated hashes from tiles — compared with the plain Merkle math (merkle.ts) for
 * every size up to a few tiles, and with tampered tiles.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BpfsealError } from '../src/errors.js';
import { leafHash, proveConsistency, proveInclusion, rootFromLeaves, storedHashIndex, treeHash, verifyConsistency, verifyInclusion } from '../src/tlog/merkle.js';
import { decodeBundle, encodeBundle } from '../src/tlog/tiles/bundle.js';
import { growBundles, growHashTiles, type TileData } from '../src/tlog/tiles/build.js';
import { edgeTiles } from '../src/tlog/tiles/math.js';
import { changedTiles, ENTRIES, encodeIndex, parseTilePath, tilePath, type TileRef } from '../src/tlog/tiles/path.js';
import { planTiles, tileKey, TileHashReader } from '../src/tlog/tiles/reader.js';

const leaf = (i: number) => leafHash(Buffer.from(`entry ${i}`));

describe('tile paths', () => {
  it('encode N in 3-digit elements, x-prefixed but the last', () => {
    expect(encodeIndex(0)).toBe('000');
    expect(encodeIndex(999)).toBe('999');
    expect(encodeIndex(1000)).toBe('x001/000');
    expect(encodeIndex(1234067)).toBe('x001/x234/067'); // the spec's example
    expect(tilePath({ level: 0, n: 1234067, width: 256 })).toBe('tile/0/x001/x234/067');
    expect(tilePath({ level: 2, n: 5, width: 17 })).toBe('tile/2/005.p/17');
    expect(tilePath({ level: ENTRIES, n: 1000, width: 1 })).toBe('tile/entries/x001/000.p/1');
    expect(() => tilePath({ level: 0, n: 0, width: 0 })).toThrow(RangeError);
    expect(() => tilePath({ level: 64, n: 0, width: 256 })).toThrow(RangeError);
  });

  it('parse only canonical paths, as the inverse of tilePath', () => {
    const refs: TileRef[] = [{ level: 0, n: 0, width: 256 }, { level: 3, n: 999_999, width: 1 }, { level: ENTRIES, n: 1_000_000, width: 255 }, { level: 63, n: 12, width: 256 }];
    for (const t of refs) expect(parseTilePath(tilePath(t))).toEqual(t);
    for (const bad of ['tile/0/1', 'tile/0/0001', 'tile/00/000', 'tile/0/x000/001', 'tile/0/001/002', 'tile/0/000.p/256', 'tile/0/000.p/0', 'tile/0/000.p/07', 'tile/-1/000', 'tile/data/000', 'tiles/0/000', 'tile/0/x1/000', 'tile/64/000']) {
      expect(parseTilePath(bad), bad).toBeUndefined();
    }
  });

  it('list the tiles of a tree like the spec: size 70,000 and 256', () => {
    const all = (size: number) => changedTiles(0, size).filter((t) => t.level !== ENTRIES);
    const t70k = all(70_000);
    expect(t70k.filter((t) => t.level === 0 && t.width === 256)).toHaveLength(273);
    expect(t70k.filter((t) => t.width < 256).map((t) => [t.level, t.width])).toEqual([[0, 112], [1, 17], [2, 1]]);
    expect(t70k.filter((t) => t.level === 1 && t.width === 256)).toHaveLength(1);
    expect(all(256).map(tilePath)).toEqual(['tile/0/000', 'tile/1/000.p/1']);
    expect(edgeTiles(256).map(tilePath)).toEqual(['tile/1/000.p/1']);
    expect(changedTiles(256, 300).map(tilePath)).toEqual(['tile/0/001.p/44', 'tile/entries/001.p/44']);
    expect(changedTiles(300, 300)).toEqual([]);
  });
});

describe('entry bundles', () => {
  it('are uint16-length-prefixed entries and must hold exactly the expected count', () => {
    const entries = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(0xffff, 7)];
    const b = encodeBundle(entries);
    expect(b.subarray(0, 3)).toEqual(Buffer.from([0, 1, 0x61]));
    expect(decodeBundle(b, 3, 'x').map((e) => e.length)).toEqual([1, 0, 0xffff]);
    expect(() => decodeBundle(b, 2, 'x')).toThrow(BpfsealError);
    expect(() => decodeBundle(b.subarray(0, b.length - 1), 3, 'x')).toThrow(/not an entry bundle/);
    expect(() => encodeBundle([Buffer.alloc(0x10000)])).toThrow(/does not fit/);
  });
});

/** Tiles of a tree grown batch by batch, as the log writes them (later widths replace earlier ones). */
function grow(sizes: number[]): { tiles: Map<string, TileData>; roots: Map<number, Buffer> } {
  const tiles = new Map<string, TileData>();
  const roots = new Map<number, Buffer>();
  let size = 0;
  for (const next of sizes) {
    const leaves = Array.from({ length: next - size }, (_, k) => leaf(size + k));
    const edge = (level: number) => tiles.get(tileKey(edgeTiles(size).find((t) => t.level === level)!))!.data;
    const g = growHashTiles(size, leaves, edge);
    const entries = leaves.map((_, k) => Buffer.from(`entry ${size + k}`));
    const edgeEntries = () => decodeBundle(tiles.get(tileKey({ level: ENTRIES, n: Math.floor(size / 256), width: size % 256 }))!.data, size % 256, 'b');
    for (const t of [...g.tiles, ...growBundles(size, entries, edgeEntries)]) tiles.set(tileKey(t.ref), t);
    roots.set(next, g.rootHash);
    size = next;
  }
  return { tiles, roots };
}

const source = (tiles: Map<string, TileData>, log: TileRef[] = []) => ({
  readTile: (t: TileRef) => {
    log.push(t);
    const d = tiles.get(tileKey(t));
    if (!d) throw new Error(`missing ${tilePath(t)}`);
    return d.data;
  },
});

describe('growing tiles and reading hashes from them', () => {
  it('gives the RFC 6962 root at every size, for batches that cross tile and level boundaries', () => {
    const sizes = [1, 2, 255, 256, 257, 511, 600, 65_535, 65_536, 65_537, 70_000];
    const { tiles, roots } = grow(sizes);
    const leaves = Array.from({ length: 70_000 }, (_, i) => leaf(i));
    for (const s of sizes) expect(roots.get(s)!.equals(rootFromLeaves(leaves.slice(0, s))), `size ${s}`).toBe(true);
    // The final tiles are exactly those a tree of 70,000 has (plus earlier partials).
    for (const t of changedTiles(0, 70_000)) expect(tiles.has(tileKey(t)), tilePath(t)).toBe(true);
  });

  it('proves inclusion and consistency from tiles exactly like the stored-hash math', () => {
    const { tiles, roots } = grow([100, 300, 1000, 1100]);
    const leaves = Array.from({ length: 1100 }, (_, i) => leaf(i));
    const r = new TileHashReader(1100, roots.get(1100)!, source(tiles), 'test');
    for (let n = 1; n <= 1100; n += 37) {
      const root = rootFromLeaves(leaves.slice(0, n));
      expect(treeHash(n, r).equals(root)).toBe(true);
      for (const i of [0, n - 1, Math.floor(n / 3)]) verifyInclusion(leaves[i], i, n, proveInclusion(i, n, r), root);
      verifyConsistency(n, 1100, root, roots.get(1100)!, proveConsistency(n, 1100, r));
    }
    expect(r.readHashes([storedHashIndex(0, 1099)])[0].equals(leaves[1099])).toBe(true);
  });

  it('reads O(log n) tiles per proof and authenticates each against the signed root', () => {
    const { tiles, roots } = grow([70_000]);
    const log: TileRef[] = [];
    const r = new TileHashReader(70_000, roots.get(70_000)!, source(tiles, log), 'test', 0);
    proveInclusion(12_345, 70_000, r);
    // Edge tiles (3) + the leaf's full tile + its full level-1 parent.
    expect(log.map(tilePath).sort()).toEqual(['tile/0/048', 'tile/0/273.p/112', 'tile/1/000', 'tile/1/001.p/17', 'tile/2/000.p/1']);
    expect(planTiles(70_000, [storedHashIndex(0, 12_345)]).map(tilePath)).toEqual(['tile/0/273.p/112', 'tile/1/001.p/17', 'tile/2/000.p/1', 'tile/1/000', 'tile/0/048']);
  });

  it('rejects a tampered full tile, a tampered edge tile and a wrong root', () => {
    const { tiles, roots } = grow([70_000]);
    const root = roots.get(70_000)!;
    const tamper = (path: string) => {
      const copy = new Map(tiles);
      const t = parseTilePath(path)!;
      const data = Buffer.from(copy.get(tileKey(t))!.data);
      data[5] ^= 1;
      copy.set(tileKey(t), { ref: t, data });
      return new TileHashReader(70_000, root, source(copy), 'test');
    };
    expect(() => proveInclusion(12_345, 70_000, tamper('tile/0/048'))).toThrow(/tile\/0\/048 does not hash to its entry in tile\/1\/000/);
    expect(() => proveInclusion(12_345, 70_000, tamper('tile/1/000'))).toThrow(/tile\/1\/000 does not hash/);
    expect(() => proveInclusion(12_345, 70_000, tamper('tile/2/000.p/1'))).toThrow(/signed root hash/);
    const wrong = createHash('sha256').update('x').digest();
    expect(() => treeHash(70_000, new TileHashReader(70_000, wrong, source(tiles), 'test'))).toThrow(/signed root hash/);
    // A proof for an untampered index still works when an unrelated tile is bad.
    proveInclusion(69_999, 70_000, tamper('tile/0/048'));
  });
});
