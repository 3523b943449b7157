import { describe, expect, it } from 'vitest';
import { tileRoot, tileBytes, type TileId } from '../../src/ledger/tiles.js';
import { checkHere, verifyArchivedChain, type ChainObjects } from '../../src/ledger/verify-archive.js';
import { DAYS, ENVIRONMENT, KEY, makeChain, PROJECT, seal } from '../helpers/bundles.js';

// 700 events on two days (1-300, 301-700): level-0 tiles 0 and 1 full, 2 of width 188; level 1 of width 2.
const events = makeChain([300, 400]);
const bundles = seal(events, [300, 400]);
const leaves = events.map((e) => e.hash);
const level0 = (index: number, width = 256) => leaves.slice(index * 256, index * 256 + width);
const TILES: [TileId, Buffer][] = [
  [{ level: 0, index: 0, width: 256 }, tileBytes(level0(0))],
  [{ level: 0, index: 1, width: 256 }, tileBytes(level0(1))],
  [{ level: 0, index: 1, width: 44 }, tileBytes(level0(1, 44))],
  [{ level: 0, index: 2, width: 188 }, tileBytes(level0(2, 188))],
  [{ level: 1, index: 0, width: 2 }, tileBytes([tileRoot(level0(0)), tileRoot(level0(1))])],
];
const tileKey = (t: TileId) => `tile/${t.level}/${t.index}/${t.width}`;

/** The check of the two bundles with `tiles` archived, from `from` (a day; the first by default); `reads` gets each key read. */
async function check(tiles: [TileId, Buffer][], from?: string, reads: string[] = []) {
  const objects = new Map<string, Buffer>([...bundles.map((b, i) => [`bundle/${i}`, b.bytes] as const), ...tiles.map(([t, bytes]) => [tileKey(t), bytes] as const)]);
  const chain: ChainObjects = {
    project: PROJECT,
    environment: ENVIRONMENT,
    bundles: bundles.map((_, i) => ({ key: `bundle/${i}`, day: DAYS[i]!.partition, part: 1 })),
    checkpoints: [],
    checkpointKey: (size) => `note/${size}`,
    tiles: tiles.map(([tile]) => ({ key: tileKey(tile), tile })),
    tileKey,
  };
  const read = async (key: string) => {
    reads.push(key);
    return objects.get(key) ?? 'gone';
  };
  return verifyArchivedChain(chain, { from }, read, [KEY], checkHere([KEY]));
}

/** The tile failures of checking the two bundles with `tiles` archived. */
async function tileFailures(tiles: [TileId, Buffer][]) {
  return (await check(tiles)).failures.filter((f) => f.kind === 'tile');
}

/** TILES with the one of `id`'s key replaced by `bytes`, or left out. */
const changed = (id: string, bytes?: Buffer): [TileId, Buffer][] =>
  TILES.flatMap(([tile, b]) => (tileKey(tile) !== id ? [[tile, b] as [TileId, Buffer]] : bytes ? [[tile, bytes] as [TileId, Buffer]] : []));
const flipped = (bytes: Buffer, at: number) => {
  const copy = Buffer.from(bytes);
  copy[at]! ^= 1;
  return copy;
};

describe('verify-archive checks archived tiles against the bundles\' events', () => {
  it('accepts tiles that are the events\' (full and partial, every level)', async () => {
    expect(await tileFailures(TILES)).toEqual([]);
  });

  it('finds a tampered full tile at the first seq it covers, with the bundle that completes it', async () => {
    expect(await tileFailures(changed('tile/0/1/256', flipped(TILES[1]![1], 300)))).toEqual([
      expect.objectContaining({ kind: 'tile', day: DAYS[1]!.partition, seq: 257, key: 'tile/0/1/256', reason: expect.stringMatching(/not those of the bundles' events/) }),
    ]);
  });

  it('finds tampered partial tiles, at the edge and above', async () => {
    expect(await tileFailures(changed('tile/0/2/188', flipped(TILES[3]![1], 0)))).toEqual([expect.objectContaining({ kind: 'tile', seq: 513, key: 'tile/0/2/188' })]);
    expect(await tileFailures(changed('tile/1/0/2', flipped(TILES[4]![1], 40)))).toEqual([expect.objectContaining({ kind: 'tile', seq: 1, key: 'tile/1/0/2' })]);
  });

  it('finds a missing full tile; a missing partial one is not required', async () => {
    expect(await tileFailures(changed('tile/0/0/256'))).toEqual([
      expect.objectContaining({ kind: 'tile', day: DAYS[0]!.partition, seq: 1, key: 'tile/0/0/256', reason: expect.stringMatching(/not in the archive/) }),
    ]);
    expect(await tileFailures(changed('tile/0/1/44'))).toEqual([]);
  });

  it('finishes a bundle as soon as it is checked: the tiles it completes are read before the next bundle', async () => {
    const reads: string[] = [];
    await check(TILES, undefined, reads);
    expect(reads.indexOf('tile/0/0/256')).toBeGreaterThan(reads.indexOf('bundle/0'));
    expect(reads.indexOf('tile/0/0/256')).toBeLessThan(reads.indexOf('bundle/1'));
  });

  it('checks nothing of a chain archived before tiles were (it has none)', async () => {
    expect(await tileFailures([])).toEqual([]);
  });

  it('lists every archived tile for the Object Lock check, a full one dated by the bundle that completes it', async () => {
    expect((await check(TILES)).tiles).toEqual([
      { key: 'tile/0/0/256', tile: TILES[0]![0], seq: 1, day: DAYS[0]!.partition },
      { key: 'tile/0/1/256', tile: TILES[1]![0], seq: 257, day: DAYS[1]!.partition },
      { key: 'tile/0/1/44', tile: TILES[2]![0], seq: 257, day: null },
      { key: 'tile/0/2/188', tile: TILES[3]![0], seq: 513, day: null },
      { key: 'tile/1/0/2', tile: TILES[4]![0], seq: 1, day: null },
    ]);
    // Tiles are checked from seq 1 only: a check of a later range lists none.
    expect((await check(TILES, DAYS[1]!.partition)).tiles).toEqual([]);
  });
});
