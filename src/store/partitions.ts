import type pg from 'pg';

const DAY_MS = 86_400_000;

/** UTC days from `days` before to `days` after `now`, as YYYY-MM-DD. */
function days(now: Date, from: number, to: number): string[] {
  const today = Math.floor(now.getTime() / DAY_MS);
  const out: string[] = [];
  for (let d = today + from; d <= today + to; d++) out.push(new Date(d * DAY_MS).toISOString().slice(0, 10));
  return out;
}

/**
 * Creates the events partitions for yesterday through `daysAhead` days from `now`, so an
 * append never meets a missing day. Yesterday covers a clock that steps back around midnight.
 */
export async function ensurePartitions(db: pg.Pool, now: Date, daysAhead: number): Promise<string[]> {
  const { rows } = await db.query<{ name: string }>(
    'SELECT auditledger_ensure_partition(day::date) AS name FROM unnest($1::text[]) AS day',
    [days(now, -1, daysAhead)],
  );
  return rows.map((r) => r.name);
}
