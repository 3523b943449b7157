import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { leafHash } from '../../src/ledger/hash.js';
import { consistencyPath, consistencyProof, inclusionPath, inclusionProof } from '../../src/ledger/proof.js';
import {
  edgeTiles,
  encodeTileIndex,
  extendTails,
  hashesFromTiles,
  levelsCompleted,
  parseTilePath,
  SignedTreeTiles,
  tilePath,
  tileBytes,
  tileRoot,
  tilesAtLevel,
  tilesGrown,
  tilesRead,
  tileSubtreeHash,
  treeRootFromTiles,
  TILE_WIDTH,
  TileNodes,
  type TileHash,
  type TileId,
  type TileMismatch,
  type TileTails,
} from '../../src/ledger/tiles.js';
import { appendLeaves, emptyRange } from '../../src/ledger/compact-range.js';
import { merkleRoot } from '../../src/ledger/tree.js';

const leaves = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));

/** Every tile of a tree of all `hashes` (full ones and the partial right edge), keyed `level/index`. */
function tilesOf(hashes: Buffer[], levels = 3): Map<string, Buffer[]> {
  const { tiles, tails } = extendTails(0, Array.from({ length: levels }, () => []), hashes);
  const map = new Map(tiles.map((t) => [`${t.level}/${t.index}`, t.hashes]));
  tails.forEach((tail, level) => {
    if (tail.length) map.set(`${level}/${tilesAtLevel(hashes.length, level).full}`, tail);
  });
  return map;
}

describe('tile paths (C2SP tlog-tiles)', () => {
  it('encodes N in x-prefixed groups of three digits', () => {
    expect(encodeTileIndex(0)).toBe('000');
    expect(encodeTileIndex(67)).toBe('067');
    expect(encodeTileIndex(1000)).toBe('x001/000');
    expect(encodeTileIndex(1234067)).toBe('x001/x234/067');
    expect(tilePath({ kind: 'hash', level: 1, index: 1234067, width: 256 })).toBe('tile/1/x001/x234/067');
    expect(tilePath({ kind: 'hash', level: 0, index: 2, width: 188 })).toBe('tile/0/002.p/188');
    expect(tilePath({ kind: 'entries', level: 0, index: 1000, width: 5 })).toBe('tile/entries/x001/000.p/5');
  });

  it('parses what it builds, and only that', () => {
    fc.assert(
      fc.property(fc.constantFrom<'hash' | 'entries'>('hash', 'entries'), fc.integer({ min: 0, max: 63 }), fc.nat(2 ** 40), fc.integer({ min: 1, max: 256 }), (kind, level, index, width) => {
        const tile = { kind, level: kind === 'entries' ? 0 : level, index, width };
        expect(parseTilePath(tilePath(tile))).toEqual(tile);
      }),
    );
    for (const bad of ['tile/0/1', 'tile/0/x000/001', 'tile/0/001.p/256', 'tile/0/001.p/0', 'tile/0/001.p/01', 'tile/64/000', 'tile/01/000', 'tile/0/001/', '/tile/0/001', 'tile/entries/001.p/999', 'tile/0/x1/001']) {
      expect(parseTilePath(bad), bad).toBeUndefined();
    }
  });
});

describe('tiles of a growing tree', () => {
  it('appending in any batches completes the same tiles, with roots one level up', () => {
    const all = leaves(3 * 256 + 17);
    const whole = tilesOf(all);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 20 }), (cuts) => {
        let size = 0;
        let tails: TileTails = [[], []];
        const written = new Map<string, Buffer[]>();
        for (const cut of [...cuts, all.length]) {
          const to = Math.min(all.length, size + cut);
          const out = extendTails(size, tails, all.slice(size, to));
          for (const t of out.tiles) written.set(`${t.level}/${t.index}`, t.hashes);
          ({ tails } = out);
          size = to;
        }
        expect([...written.keys()]).toEqual(['0/0', '0/1', '0/2']);
        for (const [key, hashes] of written) expect(hashes).toEqual(whole.get(key));
        expect(tails[1]).toEqual([0, 1, 2].map((i) => tileRoot(all.slice(256 * i, 256 * (i + 1)))));
      }),
      { numRuns: 25 },
    );
  });

  it("take full tiles' roots from the compact range grown by the same leaves, and refuse other leaves", () => {
    const all = leaves(256 * 256 + 300);
    const nodes = new TileNodes();
    appendLeaves(emptyRange(), all, nodes.onNode);
    // Compared as text: deep equality of 66,000 Buffers takes seconds.
    const text = ({ tiles, tails }: ReturnType<typeof extendTails>) => [
      ...tiles.map((t) => `${t.level}/${t.index} ${tileBytes(t.hashes).toString('hex')} ${t.root.toString('hex')}`),
      ...tails.map((tail) => tileBytes(tail).toString('hex')),
    ];
    const hashed = text(extendTails(0, [[], [], []], all));
    expect(hashed.filter((t) => t.startsWith('1/0 '))).toHaveLength(1);
    expect(text(extendTails(0, [[], [], []], all, nodes))).toEqual(hashed);
    // Sent to another thread and back.
    expect(text(extendTails(0, [[], [], []], all, TileNodes.fromEntries(structuredClone(nodes.entries()))))).toEqual(hashed);
    // Leaves the range did not grow by: their tiles' roots are not there.
    expect(() => extendTails(0, [[]], leaves(256), new TileNodes())).toThrow(/no root was computed for tile 0\/0/);
  });

  it('says how many levels complete a tile, and refuses tails that do not fit', () => {
    expect(levelsCompleted(0, 255)).toBe(0);
    expect(levelsCompleted(255, 256)).toBe(1);
    expect(levelsCompleted(65535, 65536)).toBe(2);
    expect(levelsCompleted(1, 65536 * 256)).toBe(3);
    expect(() => extendTails(3, [[]], [])).toThrow(RangeError);
    // Levels not carried produce no tiles: the caller could not read their rows.
    expect(extendTails(255, [leaves(255)], leaves(257)).tiles.map((t) => `${t.level}/${t.index}`)).toEqual(['0/0', '0/1']);
  });
});

describe('proofs from tiles', () => {
  const all = leaves(600);
  const tiles = tilesOf(all);

  it('match the proofs over all leaves, for every tree size up to 600', () => {
    for (let n = 1; n <= all.length; n++) {
      const hashes = all.slice(0, n);
      // The tiles of the tree of size n: full ones and n's partial ones (what a store reads).
      const own = tilesOf(hashes);
      const mth = (s: number, e: number) => tileSubtreeHash(s, e, hashesFromTiles(own));
      expect(mth(0, n)).toEqual(merkleRoot(hashes));
      for (const i of new Set([0, n >> 1, n - 1, (n * 7) % n])) expect(inclusionPath(i, n, mth)).toEqual(inclusionProof(i, n, hashes));
      for (const m of new Set([1, n >> 1, n - 1, (n * 5) % n])) if (m > 0) expect(consistencyPath(m, n, mth)).toEqual(consistencyProof(m, n, hashes));
    }
    expect(tiles.size).toBe(4); // 0/0, 0/1, 0/2 (600 = 2 * 256 + 88) and 1/0 of width 2
  });

  it('match around the level-1 boundary, reading O(log n) tiles', () => {
    const many = leaves(65536 + 300);
    for (const n of [65535, 65536, 65537, 65536 + 255, 65536 + 256, 65536 + 300]) {
      const hashes = many.slice(0, n);
      const own = tilesOf(hashes);
      const mth = (s: number, e: number) => tileSubtreeHash(s, e, hashesFromTiles(own));
      for (const i of [0, 40000, n - 1]) {
        expect(inclusionPath(i, n, mth)).toEqual(inclusionProof(i, n, hashes));
        const read = tilesRead(n, (hashAt) => inclusionPath(i, n, (s, e) => tileSubtreeHash(s, e, hashAt)));
        expect(read.length).toBeLessThanOrEqual(6);
        for (const t of read) expect(t.width).toBe(own.get(`${t.level}/${t.index}`)!.length);
      }
      expect(consistencyPath(300, n, mth)).toEqual(consistencyProof(300, n, hashes));
      expect(mth(0, n)).toEqual(merkleRoot(hashes));
    }
  });

  it("take the right edge from the tree's compact range: a proof to the head reads no partial tile of a level the range covers", () => {
    const n = 65536 + 300;
    const hashes = leaves(n);
    const own = tilesOf(hashes);
    const edge = appendLeaves(emptyRange(), hashes);
    const over = (hashAt: TileHash) => (s: number, e: number) => tileSubtreeHash(s, e, hashAt, edge);
    for (const i of [0, 40000, 65600]) {
      const read = tilesRead(n, (hashAt) => inclusionPath(i, n, over(hashAt)));
      // Only the full tiles holding the leaf's own subtrees: the spine comes from the range.
      expect(read.filter((t) => t.width < TILE_WIDTH)).toEqual([]);
      expect(inclusionPath(i, n, over(hashesFromTiles(own)))).toEqual(inclusionProof(i, n, hashes));
    }
    const m = 40000;
    expect(tilesRead(n, (hashAt) => consistencyPath(m, n, over(hashAt))).filter((t) => t.width < TILE_WIDTH)).toEqual([]);
    expect(consistencyPath(m, n, over(hashesFromTiles(own)))).toEqual(consistencyProof(m, n, hashes));
    expect(over(hashesFromTiles(own))(0, n)).toEqual(merkleRoot(hashes));
  });

  it('name the tiles a tree of a size has, with their widths', () => {
    expect(tilesAtLevel(600, 0)).toEqual({ full: 2, partialWidth: 88 });
    expect(tilesAtLevel(600, 1)).toEqual({ full: 0, partialWidth: 2 });
    expect(tilesAtLevel(65536, 1)).toEqual({ full: 1, partialWidth: 0 });
    expect(() => tilesRead(600, (hashAt) => hashAt(0, 600))).toThrow(RangeError);
    expect(TILE_WIDTH).toBe(256);
  });
});

describe('tiles against a signed tree', () => {
  // Sizes around the level-1 (256) and level-2 (65536) boundaries, and the tree's tiles at each.
  const sizes = [1, 255, 256, 257, 511, 512, 600, 65535, 65536, 65537, 65536 + 256 + 3];
  const many = leaves(sizes.at(-1)!);
  const trees = new Map(sizes.map((n) => [n, { root: merkleRoot(many.slice(0, n)), tiles: tilesOf(many.slice(0, n)) }]));

  /** Checks the tiles a tree grows from `from` to `n` in batches as the checkpoint job does: the batch a mismatch is found in, or -1. */
  function run(n: number, tiles: Map<string, Buffer[]>, from: number, batchSize: number): { ids: TileId[]; batch: number; mismatch?: TileMismatch } {
    const check = new SignedTreeTiles(n, trees.get(n)!.root);
    const ids = [...tilesGrown(from, n)];
    for (let batch = 0; batch * batchSize < ids.length; batch++) {
      const read = check.needs(ids.slice(batch * batchSize, (batch + 1) * batchSize));
      const mismatch = check.check(read, new Map(read.map((t) => [`${t.level}/${t.index}`, tiles.get(`${t.level}/${t.index}`)!])));
      if (mismatch) return { ids, batch, mismatch };
    }
    return { ids, batch: -1 };
  }

  it("the partial tiles give the tree's root", () => {
    for (const n of sizes) {
      const { root, tiles } = trees.get(n)!;
      const edge = edgeTiles(n);
      expect(edge.every((t) => t.width < TILE_WIDTH && tiles.get(`${t.level}/${t.index}`)!.length === t.width)).toBe(true);
      expect(edge.map((t) => t.level)).toEqual([0, 1, 2].filter((level) => tilesAtLevel(n, level).partialWidth > 0).reverse());
      expect(treeRootFromTiles(n, tiles)).toEqual(root);
    }
    expect(edgeTiles(0)).toEqual([]);
  });

  it("finds an honest tree's tiles good, grown from any size, in any batches", () => {
    fc.assert(
      fc.property(fc.constantFrom(...sizes), fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 1, max: 70 }), (n, at, batchSize) => {
        expect(run(n, trees.get(n)!.tiles, Math.floor(at * n), batchSize).batch).toBe(-1);
      }),
      { numRuns: 60 },
    );
  });

  it('names a tile with one byte altered, before the batch that holds it is written', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...sizes),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 70 }),
        fc.nat(),
        fc.nat(),
        (n, at, batchSize, pick, byte) => {
          const from = Math.floor(at * n);
          const grown = [...tilesGrown(from, n)];
          const bad = grown[pick % grown.length]!;
          const tiles = new Map(trees.get(n)!.tiles);
          const hashes = tiles.get(`${bad.level}/${bad.index}`)!.map((hash) => Buffer.from(hash));
          hashes[byte % bad.width]![byte % 32]! ^= 1;
          tiles.set(`${bad.level}/${bad.index}`, hashes);
          const { ids, batch, mismatch } = run(n, tiles, from, batchSize);
          expect(batch).toBeGreaterThanOrEqual(0);
          expect(batch).toBeLessThanOrEqual(Math.floor(ids.findIndex((t) => t.level === bad.level && t.index === bad.index) / batchSize));
          // A full tile is named alone; a partial one with the others, which together miss the root.
          expect(mismatch!.tiles).toEqual(bad.width === TILE_WIDTH ? [bad] : edgeTiles(n));
          expect(mismatch!.found).not.toEqual(mismatch!.expected);
        },
      ),
      { numRuns: 80 },
    );
  });

  it('refuses to check a tile whose parent was neither read nor found good', () => {
    // Tile 0/0's parent is full at this size, and not among the tiles read.
    const n = 65536 + 256 + 3;
    const check = new SignedTreeTiles(n, trees.get(n)!.root);
    const { tiles } = trees.get(n)!;
    const read = [{ level: 0, index: 0, width: TILE_WIDTH }];
    expect(() => check.check(read, tiles)).toThrow(RangeError);
  });
});
