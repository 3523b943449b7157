import type pg from 'pg';

/** Forgets idempotency keys received before `before`; returns how many. */
export async function pruneIdempotencyKeys(db: pg.Pool, before: Date): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM idempotency_keys WHERE received_at < $1', [before]);
  return rowCount ?? 0;
}
