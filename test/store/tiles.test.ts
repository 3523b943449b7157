import { describe, expect, it } from 'vitest';
import { consistencyPath, consistencyProof, inclusionPath, inclusionProof } from '../../src/ledger/proof.js';
import { extendTails, tileHashes, type FullTile } from '../../src/ledger/tiles.js';
import { appendItem, appendToChain, type Head } from '../../src/store/append.js';
import { verifyChain } from '../../src/store/chain-verify.js';
import { getChainHead } from '../../src/store/events.js';
import { leaves } from '../../src/store/checkpoints.js';
import { migrate } from '../../src/store/migrate.js';
import { readTiles, tileTree } from '../../src/store/tiles.js';
import { asSuperuser } from '../helpers/database.js';
import { createTenant, useTestApp } from '../helpers/app.js';

describe('tiles written by the append path', () => {
  const ctx = useTestApp();

  async function chain() {
    const tenant = await createTenant(ctx.t, `tiles-${Math.random()}`);
    return { project: tenant.projectId, environment: tenant.environmentId };
  }

  /** Appends `sizes` batches, each on the head the last one left, but every third as another process would (no expected head). */
  async function appendBatches(ref: { project: string; environment: string }, sizes: number[]): Promise<void> {
    let head: Head | undefined;
    for (const [i, size] of sizes.entries()) {
      const items = Array.from({ length: size }, (_, k) => appendItem({ action: `tile.test.${i}.${k}` }));
      ({ head } = await appendToChain(ctx.db.pools.app, ref, [items], Date.now(), i % 3 === 2 ? undefined : head));
    }
  }

  async function storedTiles(environment: string): Promise<FullTile[]> {
    const { rows } = await ctx.db.pools.owner.query<{ level: number; tile_index: number; hashes: Buffer; root: Buffer }>(
      'SELECT level, tile_index, hashes, root FROM tiles WHERE environment_id = $1 ORDER BY level, tile_index',
      [environment],
    );
    return rows.map((r) => ({ level: r.level, index: r.tile_index, hashes: tileHashes(r.hashes), root: r.root }));
  }

  async function leafHashes(environment: string, to: number): Promise<Buffer[]> {
    return (await leaves(ctx.db.pools.app, environment, 1, to)).map((l) => l.hash);
  }

  it('stores every full tile of the chain, whatever the batches, and proofs from tiles equal proofs over all leaves', async () => {
    const ref = await chain();
    await appendBatches(ref, [1, 254, 1, 3, 300, 255, 1, 120]); // 935 events
    const all = await leafHashes(ref.environment, 935);
    const edge = (await getChainHead(ctx.db.pools.app, ref.environment))!.range;
    const expected = extendTails(0, [[], []], all).tiles;
    expect((await storedTiles(ref.environment)).map((t) => `${t.level}/${t.index}`)).toEqual(['0/0', '0/1', '0/2']);
    expect(await storedTiles(ref.environment)).toEqual(expected);

    for (const n of [1, 255, 256, 257, 511, 512, 700, 935]) {
      const hashes = all.slice(0, n);
      for (const i of [0, n >> 1, n - 1]) {
        const mth = await tileTree(ctx.db.pools.app, ref.environment, edge, (m) => inclusionPath(i, n, m));
        expect(inclusionPath(i, n, mth)).toEqual(inclusionProof(i, n, hashes));
      }
      const m = Math.max(1, n >> 2);
      const mth = await tileTree(ctx.db.pools.app, ref.environment, edge, (f) => consistencyPath(m, n, f));
      expect(consistencyPath(m, n, mth)).toEqual(consistencyProof(m, n, hashes));
    }
  });

  it('writes level-1 tiles, and the migration backfills the same tiles for a chain appended before it', async () => {
    const ref = await chain();
    await appendBatches(ref, [...Array(32).fill(2000), 1537, 255, 300]); // 66,092: one level-1 tile, 258 level-0 tiles
    const written = await storedTiles(ref.environment);
    expect(written.filter((t) => t.level === 1).map((t) => t.index)).toEqual([0]);
    expect(written).toEqual(extendTails(0, [[], [], []], await leafHashes(ref.environment, 66_092)).tiles);

    // As if the chain had been appended before sql/007_tiles.sql: no tiles table at all.
    await asSuperuser(ctx.db, async (su) => {
      await su.query('DROP TABLE tiles');
      await su.query('DELETE FROM schema_migrations WHERE version = 7');
    });
    expect(await migrate(ctx.db.pools.owner)).toEqual(['007_tiles.sql']);
    expect(await storedTiles(ref.environment)).toEqual(written);

    const partial = await readTiles(ctx.db.pools.app, ref.environment, [
      { level: 1, index: 0, width: 256 },
      { level: 1, index: 1, width: 2 },
      { level: 0, index: 258, width: 44 },
      { level: 0, index: 3, width: 10 },
    ]);
    expect(partial.get('1/1')).toHaveLength(2);
    expect(partial.get('0/258')).toEqual((await leafHashes(ref.environment, 66_092)).slice(66_048));
    expect(partial.get('0/3')).toEqual(written.find((t) => t.level === 0 && t.index === 3)!.hashes.slice(0, 10));
  }, 120_000);

  it('verification recomputes every stored tile from the events: a tampered or missing tile is a finding', async () => {
    const ref = await chain();
    await appendBatches(ref, [600]);
    const first = await verifyChain(ctx.db.pools.app, ref);
    expect(first.ok).toBe(true);
    await appendBatches(ref, [1, 500]); // to 1101: tiles 0/2 and 0/3 complete after the verified point
    await asSuperuser(ctx.db, async (su) => {
      await su.query('ALTER TABLE tiles DISABLE TRIGGER USER');
      await su.query(`UPDATE tiles SET hashes = set_byte(hashes, 99, get_byte(hashes, 99) # 255) WHERE environment_id = $1 AND level = 0 AND tile_index IN (0, 2)`, [ref.environment]);
      await su.query('DELETE FROM tiles WHERE environment_id = $1 AND level = 0 AND tile_index = 3', [ref.environment]);
      await su.query(`UPDATE tiles SET root = set_byte(root, 0, get_byte(root, 0) # 255) WHERE environment_id = $1 AND level = 0 AND tile_index = 1`, [ref.environment]);
      await su.query('ALTER TABLE tiles ENABLE TRIGGER USER');
    });
    // COPY windows of 300 seqs: tiles completed in one window are checked once it is read.
    const full = await verifyChain(ctx.db.pools.app, ref, { seqsPerCopy: 300 });
    expect(full.failures).toEqual([
      { seq: 1, reason: 'stored tile 0/0 does not match the events' },
      { seq: 257, reason: 'stored tile 0/1 does not match the events' },
      { seq: 513, reason: 'stored tile 0/2 does not match the events' },
      { seq: 769, reason: 'tile 0/3 is missing' },
    ]);
    // A run from the last verified point checks the tiles completed since, from tails it derives.
    const since = await verifyChain(ctx.db.pools.app, ref, { from: first.end });
    expect(since.failures.map((f) => f.seq)).toEqual([513, 769]);
  });

  it('refuses to change a stored tile, for the app and for the owner', async () => {
    const ref = await chain();
    await appendBatches(ref, [256]);
    for (const pool of [ctx.db.pools.app, ctx.db.pools.owner]) {
      await expect(pool.query('UPDATE tiles SET hashes = hashes WHERE environment_id = $1', [ref.environment])).rejects.toThrow(/permission denied|append-only/);
      await expect(pool.query('DELETE FROM tiles WHERE environment_id = $1', [ref.environment])).rejects.toThrow(/permission denied|append-only/);
    }
  });
});
