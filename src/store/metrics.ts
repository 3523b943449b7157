import type pg from 'pg';

/** Aggregates for /metrics, read at scrape time (owner role: it reads pg-boss's schema too). */
export interface LedgerGauges {
  chains: number;
  chains_behind_checkpoint: number;
  max_events_behind_checkpoint: number;
  oldest_unsealed_day_age_days: number;
  verification_runs: { status: string; ok: string; count: number }[];
  findings: number;
  queues: { name: string; count: number }[];
}

export async function ledgerGauges(db: pg.Pool): Promise<LedgerGauges> {
  const [lag, sealed, runs, findings, queues] = await Promise.all([
    db.query<{ chains: number; behind: number; max_behind: number }>(
      `SELECT count(*)::int AS chains,
              count(*) FILTER (WHERE h.seq > coalesce(c.size, 0))::int AS behind,
              coalesce(max(h.seq - coalesce(c.size, 0)), 0)::bigint AS max_behind
         FROM chain_heads h
         LEFT JOIN LATERAL (SELECT max(tree_size) AS size FROM checkpoints WHERE environment_id = h.environment_id) c ON true`,
    ),
    db.query<{ age: number | null }>(
      `SELECT (current_date - min(to_date(substr(c.relname, 8), 'YYYYMMDD')))::int AS age
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_[0-9]{8}$'
          AND to_date(substr(c.relname, 8), 'YYYYMMDD') < current_date
          AND NOT EXISTS (SELECT FROM sealed_partitions s WHERE s.partition = to_date(substr(c.relname, 8), 'YYYYMMDD'))`,
    ),
    db.query<{ status: string; ok: string; count: number }>(
      `SELECT status, coalesce(ok::text, 'unknown') AS ok, count(*)::int AS count FROM verification_runs GROUP BY 1, 2 ORDER BY 1, 2`,
    ),
    db.query<{ count: number }>('SELECT count(*)::int AS count FROM findings'),
    db
      .query<{ name: string; count: number }>(
        `SELECT name, count(*)::int AS count FROM pgboss.job WHERE state IN ('created', 'retry') GROUP BY name ORDER BY name`,
      )
      .catch(() => ({ rows: [] })),
  ]);
  return {
    chains: lag.rows[0]?.chains ?? 0,
    chains_behind_checkpoint: lag.rows[0]?.behind ?? 0,
    max_events_behind_checkpoint: lag.rows[0]?.max_behind ?? 0,
    oldest_unsealed_day_age_days: sealed.rows[0]?.age ?? 0,
    verification_runs: runs.rows,
    findings: findings.rows[0]?.count ?? 0,
    queues: queues.rows,
  };
}
