import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { SubtreeHash } from '../ledger/proof.js';
import type { Failure } from '../ledger/verify-events.js';
import {
  tileBytes,
  type FullTile,
  hashesFromTiles,
  tileHashes,
  tileInTree,
  tilesAtLevel,
  tilesRead,
  tileSubtreeHash,
  tileFirstSeq,
  TILE_WIDTH,
  type TileHash,
  type TileId,
  type TileTails,
} from '../ledger/tiles.js';
import type { CompactRange } from '../ledger/compact-range.js';

/**
 * A chain's hash tiles (C2SP tlog-tiles, sql/007_tiles.sql): full tiles are rows of `tiles`, each
 * with its root; a partial tile (the right edge of a level) is derived from at most 255 rows: the
 * events' hashes at level 0, the stored roots of the full tiles one level down above.
 */

type Db = pg.Pool | pg.PoolClient;

/** Tiles a proof or an append needs are not stored, nor can be derived: events or tiles are missing. */
export class TilesMissingError extends Error {
  override name = 'TilesMissingError';
}

const key = (level: number, index: number) => `${level}/${index}`;

/**
 * The hashes of each tile asked for, keyed `level/index`, each cut to the width asked for (a
 * stored full tile serves a narrower request: tiles only grow). Full tiles cost one statement
 * for all; each partial one not stored costs one more. Throws TilesMissingError.
 */
export async function readTiles(db: Db, environment: string, ids: readonly TileId[]): Promise<Map<string, Buffer[]>> {
  const tiles = new Map<string, Buffer[]>();
  if (ids.length === 0) return tiles;
  const { rows } = await db.query<{ level: number; tile_index: number; hashes: Buffer }>(
    `SELECT level, tile_index, hashes FROM tiles
      WHERE environment_id = $1 AND (level, tile_index) IN (SELECT * FROM unnest($2::smallint[], $3::bigint[]))`,
    [environment, ids.map((t) => t.level), ids.map((t) => t.index)],
  );
  const stored = new Map(rows.map((r) => [key(r.level, r.tile_index), r.hashes]));
  for (const id of ids) {
    const bytes = stored.get(key(id.level, id.index));
    tiles.set(key(id.level, id.index), bytes ? tileHashes(bytes).slice(0, id.width) : await derivePartialTile(db, environment, id));
  }
  return tiles;
}

/** A partial tile from the rows below it: leaf hashes from events, or roots of full tiles. */
async function derivePartialTile(db: Db, environment: string, { level, index, width }: TileId): Promise<Buffer[]> {
  if (width === TILE_WIDTH) throw new TilesMissingError(`tile ${level}/${index} is missing`);
  const first = index * TILE_WIDTH;
  if (level === 0) {
    const { rows } = await db.query<{ seq: number; hash: Buffer }>(
      'SELECT seq, hash FROM events WHERE environment_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq',
      [environment, first + 1, first + width],
    );
    if (rows.length !== width || rows.some((r, i) => r.seq !== first + 1 + i)) {
      throw new TilesMissingError(`events ${first + 1} to ${first + width} are not all stored`);
    }
    return rows.map((r) => r.hash);
  }
  const { rows } = await db.query<{ tile_index: number; root: Buffer }>(
    'SELECT tile_index, root FROM tiles WHERE environment_id = $1 AND level = $2 AND tile_index BETWEEN $3 AND $4 ORDER BY tile_index',
    [environment, level - 1, first, first + width - 1],
  );
  if (rows.length !== width || rows.some((r, i) => r.tile_index !== first + i)) {
    throw new TilesMissingError(`tiles ${level - 1}/${first} to ${level - 1}/${first + width - 1} are not all stored`);
  }
  return rows.map((r) => r.root);
}

/**
 * The tails (partial tiles) of levels 0..levels-1 of a chain's tree of `size` leaves, for the
 * append path. Stops at the first level it cannot derive (its rows are gone), so it may return
 * fewer levels than asked for: tiles above are then not written.
 */
export async function readTails(db: Db, environment: string, size: number, levels: number): Promise<TileTails> {
  const tails: TileTails = [];
  for (let level = 0; level < levels; level++) {
    const tile = tileInTree(size, level, tilesAtLevel(size, level).full);
    try {
      tails.push(tile ? await derivePartialTile(db, environment, tile) : []);
    } catch (error) {
      if (error instanceof TilesMissingError) break;
      throw error;
    }
  }
  return tails;
}

/**
 * Subtree hashes of a chain's tree whose compact range is `edge` (RFC 9162 section 2.1.1), read
 * from tiles: `plan` is run once against placeholders to learn which tiles it reads, they are
 * read, and the returned SubtreeHash answers the same calls from them (RangeError for others).
 * The right edge comes from `edge` (the chain head's, stored with it), so a proof reads O(log n)
 * full tiles and derives a partial one only for a node inside the last ones.
 * Throws TilesMissingError when a tile can be neither read nor derived.
 */
export async function tileTree(db: Db, environment: string, edge: CompactRange, plan: (mth: SubtreeHash) => void): Promise<SubtreeHash> {
  const over = (hashAt: TileHash): SubtreeHash => (start, end) => tileSubtreeHash(start, end, hashAt, edge);
  const ids = tilesRead(edge.size, (hashAt) => plan(over(hashAt)));
  return over(hashesFromTiles(await readTiles(db, environment, ids)));
}

/** A tile as verification expects it: its place and the SHA-256 of its hashes then its root (32 bytes held, not 8 KB). */
export interface ExpectedTile {
  level: number;
  index: number;
  sha256: Buffer;
}

/** What `tile`, recomputed from verified events, says its stored row must hold. */
export function expectedTile(tile: FullTile): ExpectedTile {
  return { level: tile.level, index: tile.index, sha256: createHash('sha256').update(tileBytes(tile.hashes)).update(tile.root).digest() };
}

/**
 * The failures of stored tiles against the tiles recomputed from verified events: a missing or
 * differing tile is reported at the first seq it covers. Compared by SHA-256, computed in
 * PostgreSQL, so only digests travel.
 */
export async function tileFailures(db: Db, environment: string, expected: readonly ExpectedTile[]): Promise<Failure[]> {
  if (expected.length === 0) return [];
  const { rows } = await db.query<{ level: number; tile_index: number; digest: Buffer }>(
    `SELECT level, tile_index, sha256(hashes || root) AS digest FROM tiles
      WHERE environment_id = $1 AND (level, tile_index) IN (SELECT * FROM unnest($2::smallint[], $3::bigint[]))`,
    [environment, expected.map((t) => t.level), expected.map((t) => t.index)],
  );
  const stored = new Map(rows.map((r) => [key(r.level, r.tile_index), r.digest]));
  const failures: Failure[] = [];
  for (const tile of expected) {
    const digest = stored.get(key(tile.level, tile.index));
    const seq = tileFirstSeq(tile);
    if (!digest) failures.push({ seq, reason: `tile ${tile.level}/${tile.index} is missing` });
    else if (!digest.equals(tile.sha256)) failures.push({ seq, reason: `stored tile ${tile.level}/${tile.index} does not match the events` });
  }
  return failures;
}

/** A chain whose hash tiles in the archive are behind its latest signed checkpoint. */
export interface TilesBehind {
  environment_id: string;
  project_id: string;
  /** The tree size whose tiles are all archived (0: none). */
  archived: number;
  /** The latest checkpoint's tree size. */
  tree_size: number;
  /** The latest checkpoint's signed note. */
  note: string;
}

/** The chains whose latest checkpoint is beyond their archived tiles: those a backfill writes. */
export async function tilesBehind(db: Db): Promise<TilesBehind[]> {
  const { rows } = await db.query<TilesBehind>(
    `SELECT c.environment_id, e.project_id, coalesce(a.tree_size, 0) AS archived, c.tree_size, c.note
       FROM (SELECT DISTINCT ON (environment_id) environment_id, tree_size, note FROM checkpoints ORDER BY environment_id, tree_size DESC) c
       JOIN environments e ON e.id = c.environment_id
       LEFT JOIN archived_tiles a ON a.environment_id = c.environment_id
      WHERE c.tree_size > coalesce(a.tree_size, 0)
      ORDER BY c.environment_id`,
  );
  return rows;
}

/** Records that every tile of the chain's tree at `size` is archived; never moves back. */
export async function recordTilesArchived(db: Db, environment: string, size: number): Promise<void> {
  await db.query(
    `INSERT INTO archived_tiles (environment_id, tree_size) VALUES ($1, $2)
     ON CONFLICT (environment_id) DO UPDATE SET tree_size = greatest(archived_tiles.tree_size, excluded.tree_size)`,
    [environment, size],
  );
}
