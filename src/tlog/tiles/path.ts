/**
 * Tile coordinates and their paths (https://c2sp.org/tlog-tiles, "Merkle Tree" and "Log entries").
 *
 *   tile/<L>/<N>[.p/<W>]          hashes: level L (0..63), index N, width W (1..255) when partial
 *   tile/entries/<N>[.p/<W>]      entry bundles (uint16-length-prefixed entries), same N and W
 *
 * <N> is written in zero-padded 3-digit path elements, all but the last prefixed with "x"
 * (1234067 -> x001/x234/067), so no directory holds more than ~3000 names and no file name is also a
 * directory name. Sizes and indexes are exact JavaScript integers (< 2^53): arithmetic, no bit ops.
 */

/** Tiles are 256 hashes wide (tlog-tiles fixes the height at 8). */
export const TILE_HEIGHT = 8;
export const TILE_WIDTH = 256;
/** Level used for entry bundles in a TileRef (the path element "entries"). */
export const ENTRIES = -1;
/** Highest hash level a path may name (tlog-tiles: "between 0 and 63"). */
export const MAX_LEVEL = 63;

/** One tile or entry bundle: level (ENTRIES for a bundle), index within the level, width 1..256. */
export interface TileRef {
  level: number;
  n: number;
  width: number;
}

/** "x001/x234/067" for 1234067: three digits per element, every element but the last prefixed "x". */
export function encodeIndex(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`tile index ${n} is not a non-negative integer`);
  let s = String(n % 1000).padStart(3, '0');
  for (let rest = Math.floor(n / 1000); rest > 0; rest = Math.floor(rest / 1000)) {
    s = `x${String(rest % 1000).padStart(3, '0')}/${s}`;
  }
  return s;
}

function checkRef(t: TileRef): void {
  const okLevel = t.level === ENTRIES || (Number.isInteger(t.level) && t.level >= 0 && t.level <= MAX_LEVEL);
  if (!okLevel || !Number.isInteger(t.width) || t.width < 1 || t.width > TILE_WIDTH) {
    throw new RangeError(`not a tile: level ${t.level}, width ${t.width}`);
  }
}

/** The path of a tile or bundle, relative to the log prefix (no leading slash). */
export function tilePath(t: TileRef): string {
  checkRef(t);
  const level = t.level === ENTRIES ? 'entries' : String(t.level);
  const partial = t.width < TILE_WIDTH ? `.p/${t.width}` : '';
  return `tile/${level}/${encodeIndex(t.n)}${partial}`;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** Parse a tile path; only the canonical spelling is accepted (the one tilePath writes). */
export function parseTilePath(path: string): TileRef | undefined {
  const [root, levelPart, ...rest] = path.split('/');
  if (root !== 'tile' || levelPart === undefined || rest.length === 0) return undefined;
  const level = levelPart === 'entries' ? ENTRIES : DECIMAL.test(levelPart) ? Number(levelPart) : NaN;
  let width = TILE_WIDTH;
  let elems = rest;
  const [w, partialOf] = [elems.at(-1), elems.at(-2)];
  if (w !== undefined && partialOf !== undefined && partialOf.endsWith('.p')) {
    if (!DECIMAL.test(w)) return undefined;
    width = Number(w);
    elems = [...elems.slice(0, -2), partialOf.slice(0, -2)];
  }
  let n = 0;
  for (const [i, e] of elems.entries()) {
    const [, digits] = (i < elems.length - 1 ? /^x([0-9]{3})$/ : /^([0-9]{3})$/).exec(e) ?? [];
    if (digits === undefined) return undefined;
    n = n * 1000 + Number(digits);
  }
  if (!Number.isSafeInteger(n) || Number.isNaN(level)) return undefined;
  const t = { level, n, width };
  try {
    return tilePath(t) === path ? t : undefined;
  } catch {
    return undefined;
  }
}

/** 256^level as an exact number (level <= 6 keeps it below 2^53). */
export function tileSpan(level: number): number {
  return TILE_WIDTH ** level;
}

/** How many hashes level L has in a tree of `size` leaves: floor(size / 256^L). */
export function levelCount(size: number, level: number): number {
  return Math.floor(size / tileSpan(level));
}

/** Width of tile (level, n) in a tree of `size` (0 when the tree has no such tile). Bundles are level 0. */
export function widthAt(size: number, level: number, n: number): number {
  const count = levelCount(size, level === ENTRIES ? 0 : level);
  return Math.max(0, Math.min(TILE_WIDTH, count - n * TILE_WIDTH));
}

/** The tile (level, n) as it exists in a tree of `size` (full, or the partial for that size). */
export function tileIn(size: number, level: number, n: number): TileRef {
  const width = widthAt(size, level, n);
  if (width === 0) throw new RangeError(`tree of size ${size} has no tile ${level}/${n}`);
  return { level, n, width };
}

/** Number of hash levels with at least one tile in a tree of `size`. */
export function tileLevels(size: number): number {
  let levels = 0;
  while (levelCount(size, levels) > 0) levels++;
  return levels;
}

/**
 * The tiles (hash levels and bundles) that change when a tree grows from `oldSize` to `newSize`: at each
 * level, every tile that gains hashes, as it is in the new tree (golang.org/x/mod/sumdb/tlog NewTiles
 * lists the same set, plus every intermediate partial width, which a log need not write).
 */
export function changedTiles(oldSize: number, newSize: number): TileRef[] {
  const out: TileRef[] = [];
  for (let level = 0; levelCount(newSize, level) > 0; level++) {
    const before = levelCount(oldSize, level);
    const after = levelCount(newSize, level);
    if (after === before) continue;
    for (let n = Math.floor(before / TILE_WIDTH); n * TILE_WIDTH < after; n++) {
      out.push(tileIn(newSize, level, n));
      if (level === 0) out.push(tileIn(newSize, ENTRIES, n));
    }
  }
  return out;
}
