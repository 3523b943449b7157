import type pg from 'pg';

/** Signed checkpoints of chains, and the leaf hashes that proofs and checkpoint checks read. */

export interface CheckpointRow {
  environment_id: string;
  tree_size: number;
  root: Buffer;
  compact_range: Buffer[];
  note: string;
  key_id: Buffer;
  created_at: Date;
}

/** A chain whose head has moved past its latest checkpoint. */
export interface MovedChain {
  environment_id: string;
  project_id: string;
  seq: number;
  hash: Buffer;
  compact_range: Buffer[];
  last_size: number;
  last_range: Buffer[];
  /** The tree size up to which its hash tiles are archived (archived_tiles), 0 when none are. */
  archived: number;
}

/**
 * The chains whose head moved past their latest checkpoint, with how far their tiles are archived;
 * with `signedBefore`, only those whose latest checkpoint was signed (created_at) at or before it,
 * or that have none.
 */
export async function movedChains(db: pg.Pool, signedBefore?: Date): Promise<MovedChain[]> {
  const { rows } = await db.query<MovedChain>(
    `SELECT h.environment_id, e.project_id, h.seq, h.hash, h.compact_range,
            coalesce(c.tree_size, 0) AS last_size, coalesce(c.compact_range, '{}') AS last_range,
            coalesce(a.tree_size, 0) AS archived
       FROM chain_heads h
       JOIN environments e ON e.id = h.environment_id
       LEFT JOIN archived_tiles a ON a.environment_id = h.environment_id
       LEFT JOIN LATERAL (
         SELECT tree_size, compact_range, created_at FROM checkpoints
          WHERE environment_id = h.environment_id ORDER BY tree_size DESC LIMIT 1) c ON true
      WHERE h.seq > coalesce(c.tree_size, 0)
        AND ($1::timestamptz IS NULL OR c.created_at IS NULL OR c.created_at <= $1)
      ORDER BY h.environment_id`,
    [signedBefore ?? null],
  );
  return rows;
}

export interface Leaf {
  seq: number;
  hash: Buffer;
  prev: Buffer;
}

/** The leaf hashes (and links) of seqs [from, to] of a chain, in seq order. */
export async function leaves(db: pg.Pool, environment: string, from: number, to: number): Promise<Leaf[]> {
  const { rows } = await db.query<Leaf>(
    'SELECT seq, hash, prev FROM events WHERE environment_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq',
    [environment, from, to],
  );
  return rows;
}

export async function insertCheckpoint(db: pg.Pool, row: Omit<CheckpointRow, 'created_at'>): Promise<void> {
  await db.query(
    `INSERT INTO checkpoints (environment_id, tree_size, root, compact_range, note, key_id)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
    [row.environment_id, row.tree_size, row.root, row.compact_range, row.note, row.key_id],
  );
}

const COLUMNS = 'environment_id, tree_size, root, compact_range, note, key_id, created_at';

/** The newest checkpoints first; `atMost` keeps those of tree_size <= it. */
export async function listCheckpoints(
  db: pg.Pool,
  environment: string,
  limit: number,
  atMost?: number,
): Promise<CheckpointRow[]> {
  const { rows } = await db.query<CheckpointRow>(
    `SELECT ${COLUMNS} FROM checkpoints WHERE environment_id = $1 AND ($2::bigint IS NULL OR tree_size <= $2)
      ORDER BY tree_size DESC LIMIT $3`,
    [environment, atMost ?? null, limit],
  );
  return rows;
}

export async function checkpointAt(db: pg.Pool, environment: string, size: number): Promise<CheckpointRow | undefined> {
  const { rows } = await db.query<CheckpointRow>(`SELECT ${COLUMNS} FROM checkpoints WHERE environment_id = $1 AND tree_size = $2`, [
    environment,
    size,
  ]);
  return rows[0];
}
