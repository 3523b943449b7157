// C2SP tlog-tiles (https://c2sp.org/tlog-tiles): the Merkle tree of RFC 9162 stored as tiles of
// height 8. A tile at level L holds up to 256 consecutive hashes of level 8L of the tree: level-0
// tiles hold leaf hashes, a level-L tile holds the roots of 256 full level-(L-1) tiles. A tile is
// full with 256 hashes; the rightmost tile of a level is partial (width W < 256) until the tree
// grows. Tile math, paths, and subtree hashes read from tiles, after transparency-dev/tessera
// (api/layout) and golang.org/x/mod/sumdb/tlog. Sizes are JS numbers up to 2^53 - 1, so the math
// is arithmetic: bitwise operators stop at 32 bits.
import { HASH_SIZE, nodeHash } from './hash.js';
import { splitPoint, subtreeRoot } from './tree.js';
import { rangeSubtree, type CompactRange } from './compact-range.js';

/** Tree levels per tile (C2SP tlog-tiles: "tiles of height 8"). */
export const TILE_HEIGHT = 8;
/** Hashes in a full tile, 2^TILE_HEIGHT. */
export const TILE_WIDTH = 256;
/** Bytes of a full tile: its hashes end to end. */
export const TILE_BYTES = TILE_WIDTH * HASH_SIZE;

/** A tile: its level, its index within the level, and its width (TILE_WIDTH when full). */
export interface TileId {
  level: number;
  index: number;
  width: number;
}

/** A completed (full) tile, its hashes and its root (the hash one level up), as the append path stores it. */
export interface FullTile {
  level: number;
  index: number;
  hashes: Buffer[];
  root: Buffer;
}

/** 256^level: the leaves under one hash of level `level`. */
function leavesPerHash(level: number): number {
  return TILE_WIDTH ** level;
}

/** How many hashes level `level` (tree height 8 * level) has in a tree of `treeSize` leaves: floor(treeSize / 256^level). */
export function levelSize(treeSize: number, level: number): number {
  return Math.floor(treeSize / leavesPerHash(level));
}

/**
 * The tiles of a tree of `treeSize` leaves at one level: how many are full, and the width of the
 * partial tile after them (0 when there is none).
 */
export function tilesAtLevel(treeSize: number, level: number): { full: number; partialWidth: number } {
  const hashes = levelSize(treeSize, level);
  return { full: Math.floor(hashes / TILE_WIDTH), partialWidth: hashes % TILE_WIDTH };
}

/** The tile of level `level` and index `index` as a tree of `treeSize` leaves has it (full, or partial), or undefined when that tree has none of it. */
export function tileInTree(treeSize: number, level: number, index: number): TileId | undefined {
  const width = Math.min(TILE_WIDTH, levelSize(treeSize, level) - index * TILE_WIDTH);
  return width > 0 ? { level, index, width } : undefined;
}

/** The seq of the first event a tile covers (leaf index + 1): tiles and their findings are named by it. */
export function tileFirstSeq({ level, index }: Pick<TileId, 'level' | 'index'>): number {
  return index * TILE_WIDTH ** (level + 1) + 1;
}

/** MTH of a full tile's hashes: the hash one level up (RFC 9162 section 2.1.1 over a perfect subtree). */
export function tileRoot(hashes: readonly Uint8Array[]): Buffer {
  if (hashes.length !== TILE_WIDTH) throw new RangeError(`a full tile has ${TILE_WIDTH} hashes, got ${hashes.length}`);
  return subtreeRoot(hashes, 0, TILE_WIDTH);
}

/** A tile's hashes end to end: its bytes at a C2SP path. */
export function tileBytes(hashes: readonly Uint8Array[]): Buffer {
  return Buffer.concat(hashes);
}

/** A tile's bytes split into its hashes; throws RangeError when the length is not a whole number of hashes. */
export function tileHashes(bytes: Uint8Array): Buffer[] {
  if (bytes.length % HASH_SIZE !== 0) throw new RangeError(`tile of ${bytes.length} bytes is not a whole number of hashes`);
  const hashes: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += HASH_SIZE) hashes.push(Buffer.from(bytes.subarray(at, at + HASH_SIZE)));
  return hashes;
}

// ---- Paths (C2SP tlog-tiles "Merkle Tree" and "Log Entries"): build and parse side by side.

/** What a tile path names: a hash tile, or an entry bundle (`level` is then 0). */
export interface TilePath extends TileId {
  kind: 'hash' | 'entries';
}

/**
 * <N> as C2SP encodes it: 3-digit zero-padded groups, every group but the last prefixed with x
 * (1234067 -> x001/x234/067).
 */
export function encodeTileIndex(index: number): string {
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`invalid tile index ${index}`);
  let groups = [String(index % 1000).padStart(3, '0')];
  for (let n = Math.floor(index / 1000); n > 0; n = Math.floor(n / 1000)) groups = [`x${String(n % 1000).padStart(3, '0')}`, ...groups];
  return groups.join('/');
}

/** `tile/<L>/<N>[.p/<W>]` for a hash tile, `tile/entries/<N>[.p/<W>]` for an entry bundle. */
export function tilePath(tile: TilePath): string {
  const partial = tile.width < TILE_WIDTH ? `.p/${tile.width}` : '';
  const level = tile.kind === 'entries' ? 'entries' : String(tile.level);
  return `tile/${level}/${encodeTileIndex(tile.index)}${partial}`;
}

/**
 * Parses a path made by tilePath (without a leading slash); undefined for anything else. Only
 * the canonical spelling is accepted (no extra zeros, W in 1..255, L in 0..63), so that one
 * tile has one path.
 */
export function parseTilePath(path: string): TilePath | undefined {
  const match = /^tile\/(entries|[0-9]|[1-5][0-9]|6[0-3])\/((?:x[0-9]{3}\/)*[0-9]{3})(?:\.p\/([1-9][0-9]{0,2}))?$/.exec(path);
  if (!match) return undefined;
  const [, level, groups, width] = match as unknown as [string, string, string, string | undefined];
  const index = Number(groups.replaceAll('x', '').replaceAll('/', ''));
  const tile: TilePath = {
    kind: level === 'entries' ? 'entries' : 'hash',
    level: level === 'entries' ? 0 : Number(level),
    index,
    width: width === undefined ? TILE_WIDTH : Number(width),
  };
  if (!Number.isSafeInteger(index) || (width !== undefined && tile.width >= TILE_WIDTH)) return undefined;
  return tilePath(tile) === path ? tile : undefined;
}

// ---- Subtree hashes from tiles.

/** The hash at `position` of level `level` (tree height 8 * level), however the caller has it. */
export type TileHash = (level: number, position: number) => Buffer;

/**
 * MTH(D[start:end]) of a tree (RFC 9162 section 2.1.1) from tile hashes: a perfect subtree of
 * height h is hashed up from at most 128 hashes of level floor(h / 8) (its own tile row), any
 * other range is split as MTH splits it. `hashAt` gives hashes at (level, position). With `edge`,
 * the tree's compact range, a range between its nodes' boundaries is folded from it instead: the
 * right edge of a tree, which a proof to its head always needs, then reads no partial tile.
 */
export function tileSubtreeHash(start: number, end: number, hashAt: TileHash, edge?: CompactRange): Buffer {
  const n = end - start;
  if (n <= 0) throw new RangeError(`empty range [${start}, ${end})`);
  const known = edge && rangeSubtree(edge, start, end);
  if (known) return known;
  const height = perfectHeight(start, n);
  if (height === undefined) {
    const k = splitPoint(n);
    return nodeHash(tileSubtreeHash(start, start + k, hashAt, edge), tileSubtreeHash(start + k, end, hashAt, edge));
  }
  const level = Math.floor(height / TILE_HEIGHT);
  const per = leavesPerHash(level);
  const hashes: Buffer[] = [];
  for (let at = start; at < end; at += per) hashes.push(hashAt(level, at / per));
  return subtreeRoot(hashes, 0, hashes.length);
}

/** The height of [start, start + n) when it is a perfect subtree of the tree (n a power of two, start a multiple of n). */
function perfectHeight(start: number, n: number): number | undefined {
  let height = 0;
  for (let size = 1; size < n; size *= 2) height++;
  return 2 ** height === n && start % n === 0 ? height : undefined;
}

/**
 * The tiles of a tree of `treeSize` leaves that `use` reads through the TileHash it is given: run
 * once to learn which rows to fetch, then again over the fetched tiles. Each tile is named with
 * the width the tree has of it.
 */
export function tilesRead(treeSize: number, use: (hashAt: TileHash) => void): TileId[] {
  const tiles = new Map<string, TileId>();
  const placeholder = Buffer.alloc(HASH_SIZE);
  use((level, position) => {
    const index = Math.floor(position / TILE_WIDTH);
    const tile = tileInTree(treeSize, level, index);
    if (!tile || position % TILE_WIDTH >= tile.width) throw new RangeError(`hash ${level}/${position} is not in a tree of ${treeSize}`);
    tiles.set(`${level}/${index}`, tile);
    return placeholder;
  });
  return [...tiles.values()];
}

/** A TileHash over tiles given as hash lists keyed `level/index`; throws RangeError for a hash it lacks. */
export function hashesFromTiles(tiles: ReadonlyMap<string, readonly Buffer[]>): TileHash {
  return (level, position) => {
    const hash = tiles.get(`${level}/${Math.floor(position / TILE_WIDTH)}`)?.[position % TILE_WIDTH];
    if (!hash) throw new RangeError(`no tile holds hash ${level}/${position}`);
    return hash;
  };
}

// ---- The right edge, as the append path carries it.

/**
 * The hashes of the partial tile at each level 0..tails.length - 1 of a tree: tails[L] has
 * levelSize(size, L) mod 256 hashes. Levels above tails.length are not carried.
 */
export type TileTails = Buffer[][];

/**
 * How many levels have a tile completed when a tree grows from `from` to `to` leaves: the tails
 * an append must carry to write them.
 */
export function levelsCompleted(from: number, to: number): number {
  let levels = 0;
  while (levelSize(from, levels + 1) < levelSize(to, levels + 1)) levels++;
  return levels;
}

/**
 * The hashes at tile levels 1 and up (C2SP tlog-tiles: the node of tree height 8L is hash `index`
 * of level L, the root of tile L - 1 / `index`) that a compact range computed while growing by the
 * same leaves: pass `onNode` to appendLeaves, then the collection to extendTails, which then takes
 * each full tile's root from here instead of hashing the tile's 255 inner nodes a second time.
 */
export class TileNodes {
  private readonly nodes = new Map<string, Buffer>();

  /** appendLeaves's NodeSink: keeps the nodes at tile levels. */
  readonly onNode = (height: number, index: number, hash: Buffer): void => {
    if (height % TILE_HEIGHT === 0) this.nodes.set(`${height / TILE_HEIGHT}/${index}`, hash);
  };

  /** The root of full tile level/index. Throws RangeError when the range did not compute it (not grown by the same leaves). */
  tileRoot(level: number, index: number): Buffer {
    const root = this.nodes.get(`${level + 1}/${index}`);
    if (!root) throw new RangeError(`no root was computed for tile ${level}/${index}: the range grew by other leaves`);
    return root;
  }

  /** Forgets the nodes kept, once their tiles are built. */
  clear(): void {
    this.nodes.clear();
  }

  /** The nodes kept, as [`level/index`, hash] pairs: to send to another thread, where fromEntries rebuilds them. */
  entries(): [string, Buffer][] {
    return [...this.nodes];
  }

  /** The nodes of another TileNodes's entries(), as they arrive from another thread (hashes as Uint8Arrays, viewed, not copied). */
  static fromEntries(entries: Iterable<readonly [string, Uint8Array]>): TileNodes {
    const nodes = new TileNodes();
    for (const [at, hash] of entries) nodes.nodes.set(at, Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength));
    return nodes;
  }
}

/**
 * Appends leaf hashes to the tails of a tree of `size` leaves: returns the tiles completed (level
 * by level, in index order) and the tails after. A completed tile's root joins the tail one level
 * up when that level is carried; tiles of levels not carried are not produced (levelsCompleted
 * says how many levels a caller must carry for all of them). Each full tile's root is hashed from
 * its hashes, or taken from `roots` when the caller's compact range computed them (TileNodes).
 * Throws RangeError when a tail's length does not fit `size`, or `roots` lacks a root.
 */
export function extendTails(size: number, tails: TileTails, leaves: readonly Buffer[], roots?: TileNodes): { tiles: FullTile[]; tails: TileTails } {
  tails.forEach((tail, level) => {
    if (tail.length !== levelSize(size, level) % TILE_WIDTH) {
      throw new RangeError(`tail of level ${level} has ${tail.length} hashes, a tree of ${size} has ${levelSize(size, level) % TILE_WIDTH}`);
    }
  });
  const next = tails.map((tail) => tail.slice());
  const tiles: FullTile[] = [];
  for (const leaf of leaves) {
    size++;
    next[0]?.push(leaf);
    // A completed tile's root is one hash of the level above; it may complete that one too.
    for (let level = 0; next[level]?.length === TILE_WIDTH; level++) {
      const hashes = next[level]!;
      next[level] = [];
      const index = levelSize(size, level + 1) - 1;
      const root = roots ? roots.tileRoot(level, index) : tileRoot(hashes);
      tiles.push({ level, index, hashes, root });
      next[level + 1]?.push(root);
    }
  }
  tiles.sort((a, b) => a.level - b.level || a.index - b.index);
  return { tiles, tails: next };
}

// ---- What a static copy of the log needs.

/**
 * The tiles a static copy of the tree (C2SP tlog-tiles) must gain when it grows from `from` to
 * `to` leaves, level by level in index order: every full tile completed in between, then the
 * partial tile of `to` at each level that has one. With `from` 0, every tile of the tree. A
 * generator, so that a backfill of a long chain never holds its ids all at once.
 */
export function* tilesGrown(from: number, to: number): Generator<TileId> {
  for (let level = 0; levelSize(to, level) > 0; level++) {
    const { full, partialWidth } = tilesAtLevel(to, level);
    for (let index = tilesAtLevel(from, level).full; index < full; index++) yield { level, index, width: TILE_WIDTH };
    if (partialWidth > 0) yield { level, index: full, width: partialWidth };
  }
}

// ---- Tiles against a signed tree.

/**
 * The tiles MTH(0, size) is read from (RFC 9162 section 2.1.1, via tileSubtreeHash): the partial
 * tile of each level that has one (C2SP tlog-tiles), each of the width the tree has of it. Their
 * hashes, every one of them, are the nodes of the tree's compact range (or a perfect subtree's
 * hashes one tile row down), so they give its root (treeRootFromTiles); none for an empty tree.
 */
export function edgeTiles(size: number): TileId[] {
  return size > 0 ? tilesRead(size, (hashAt) => void tileSubtreeHash(0, size, hashAt)) : [];
}

/**
 * MTH(0, size) (RFC 9162 section 2.1.1) from the hashes of the tiles edgeTiles(size) names, keyed
 * `level/index` (C2SP tlog-tiles). Throws RangeError when a hash is missing.
 */
export function treeRootFromTiles(size: number, tiles: ReadonlyMap<string, readonly Buffer[]>): Buffer {
  return tileSubtreeHash(0, size, hashesFromTiles(tiles));
}

/** Tiles found not to be a signed tree's: the tiles named, and the hash the tree has where they gave another. */
export interface TileMismatch {
  /** The partial tiles together (a root mismatch), or the one full tile whose root is not its parent's hash. */
  tiles: TileId[];
  /** The tree's hash: the signed root, or the hash at the full tile's place in the tile one level up. */
  expected: Buffer;
  /** What the tiles give instead. */
  found: Buffer;
}

/**
 * Decides whether hash tiles read from storage are those of a signed tree of `size` leaves and
 * root `root` (C2SP tlog-tiles over RFC 9162 section 2.1.1), before they are published. The
 * partial tiles must give the root together (treeRootFromTiles); a full tile's root (tileRoot) must
 * be the hash at its place in its parent, the tile one level up, itself found the tree's first: so
 * trust runs from the signed root down, and a tile is known good before it is written anywhere.
 * Tiles come in batches (needs, then check), each level in index order as tilesGrown yields them:
 * the partial tiles are kept, and the last full tile found good at each level, which the next
 * batch needs; a parent forgotten is read again.
 */
export class SignedTreeTiles {
  private readonly edge: TileId[];
  /** The partial tiles' hashes by `level/index`, once they gave the root. */
  private readonly partial = new Map<string, readonly Buffer[]>();
  /** Full tiles found the tree's, by level then index: between batches, the last of each level. */
  private readonly full = new Map<number, Map<number, readonly Buffer[]>>();

  private readonly root: Buffer;

  constructor(
    readonly size: number,
    root: Uint8Array,
  ) {
    this.edge = edgeTiles(size);
    this.root = Buffer.from(root);
  }

  /**
   * The tiles to read to check `ids` (tiles of the tree, as wide as the tree has them): the
   * partial tiles until they gave the root, `ids`, and the full tiles above `ids` (parent, its
   * parent...) not known good.
   */
  needs(ids: readonly TileId[]): TileId[] {
    const need = new Map<string, TileId>();
    const add = (tile: TileId) => need.set(`${tile.level}/${tile.index}`, tile);
    if (!this.partial.size) this.edge.forEach(add);
    for (const id of ids) {
      add(id);
      for (let tile = this.parent(id); tile && !this.known(tile); tile = this.parent(tile)) add(tile);
    }
    return [...need.values()];
  }

  /**
   * Checks the tiles `needs` named (`ids`), given their hashes keyed `level/index`: the partial
   * tiles together first, then the full ones from the top level down. The first found not the
   * tree's, or undefined when all are. Throws RangeError when a tile of `ids` is not in `tiles`,
   * or the parent of one was neither in `ids` nor known good.
   */
  check(ids: readonly TileId[], tiles: ReadonlyMap<string, readonly Buffer[]>): TileMismatch | undefined {
    const hashesOf = (tile: TileId) => {
      const hashes = tiles.get(`${tile.level}/${tile.index}`);
      if (!hashes) throw new RangeError(`tile ${tile.level}/${tile.index} was not given`);
      return hashes;
    };
    if (!this.partial.size && this.edge.length) {
      const found = treeRootFromTiles(this.size, tiles);
      if (!found.equals(this.root)) return { tiles: this.edge, expected: this.root, found };
      for (const tile of this.edge) this.partial.set(`${tile.level}/${tile.index}`, hashesOf(tile));
    }
    for (const tile of [...ids].sort((a, b) => b.level - a.level || a.index - b.index)) {
      const hashes = hashesOf(tile);
      if (tile.width < TILE_WIDTH) {
        // Read again with a later batch: it must still be the tiles that gave the root. Compared
        // as bytes; the roots are hashed only as the evidence of a difference.
        const good = this.partial.get(`${tile.level}/${tile.index}`)!;
        if (tileBytes(good).equals(tileBytes(hashes))) continue;
        const [expected, found] = [good, hashes].map((row) => subtreeRoot(row, 0, row.length)) as [Buffer, Buffer];
        return { tiles: [tile], expected, found };
      }
      const parent = this.parent(tile)!;
      const expected = this.known(parent)?.[tile.index % TILE_WIDTH];
      if (!expected) throw new RangeError(`tile ${parent.level}/${parent.index} was not checked before tile ${tile.level}/${tile.index}`);
      const found = tileRoot(hashes);
      if (!found.equals(expected)) return { tiles: [tile], expected, found };
      this.full.set(tile.level, (this.full.get(tile.level) ?? new Map()).set(tile.index, hashes));
    }
    for (const [level, row] of this.full) {
      const last = Math.max(...row.keys());
      this.full.set(level, new Map([[last, row.get(last)!]]));
    }
    return undefined;
  }

  /** The tile one level up holding `tile`'s root, as the tree has it; undefined above the top. */
  private parent(tile: TileId): TileId | undefined {
    return tileInTree(this.size, tile.level + 1, Math.floor(tile.index / TILE_WIDTH));
  }

  /** The hashes of `tile` when it was found the tree's (and is still kept). */
  private known(tile: TileId): readonly Buffer[] | undefined {
    if (tile.width < TILE_WIDTH) return this.partial.get(`${tile.level}/${tile.index}`);
    return this.full.get(tile.level)?.get(tile.index);
  }
}
