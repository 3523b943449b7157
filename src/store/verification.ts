import type pg from 'pg';
import type { Failure } from '../ledger/verify-events.js';
import { uuidv7 } from '../ledger/uuid.js';
import { GENESIS_POINT, type VerifiedPoint } from './chain-verify.js';
import { withTransaction } from './database.js';

/** Verification runs, their findings, and how far each chain is verified. */

export interface ChainRow {
  environment_id: string;
  project_id: string;
}

export async function allChains(db: pg.Pool): Promise<ChainRow[]> {
  const { rows } = await db.query<ChainRow>(
    'SELECT h.environment_id, e.project_id FROM chain_heads h JOIN environments e ON e.id = h.environment_id ORDER BY e.project_id, h.environment_id',
  );
  return rows;
}

export async function verifiedPoint(db: pg.Pool, environment: string): Promise<VerifiedPoint> {
  const { rows } = await db.query<{ verified_seq: number; verified_hash: Buffer; verified_range: Buffer[] }>(
    'SELECT verified_seq, verified_hash, verified_range FROM chain_verification WHERE environment_id = $1',
    [environment],
  );
  const row = rows[0];
  return row ? { seq: row.verified_seq, hash: row.verified_hash, range: { size: row.verified_seq, hashes: row.verified_range } } : GENESIS_POINT;
}

export async function saveVerifiedPoint(db: pg.Pool, environment: string, point: VerifiedPoint): Promise<void> {
  await db.query(
    `INSERT INTO chain_verification (environment_id, verified_seq, verified_hash, verified_range) VALUES ($1, $2, $3, $4)
     ON CONFLICT (environment_id) DO UPDATE SET verified_seq = $2, verified_hash = $3, verified_range = $4, updated_at = now()
      WHERE chain_verification.verified_seq < $2`,
    [environment, point.seq, point.hash, point.range.hashes],
  );
}

/** How many runs one token may start: `runs` in any `windowSeconds`. */
export interface RunLimit {
  runs: number;
  windowSeconds: number;
}

/** What asking for a run gave: a run waiting for a worker (new, or the one already waiting), or a wait in seconds. */
export type RunRequest = { run_id: string; deduplicated: boolean } | { retry_after_seconds: number };

/**
 * Queues a run of `environment`'s chain for the API token `tokenId`. While one is queued (not yet
 * started), that one is answered (`deduplicated`): a unique index keeps one queued run per chain
 * across processes, so a flood of requests costs one run. Otherwise, if the token started
 * `limit.runs` runs in the last `limit.windowSeconds`, nothing is queued and the answer is the
 * seconds until it may start one again. A new run is handed to `dispatch` inside the transaction
 * that records it, so a run is never recorded without its job (or the reverse).
 */
export async function queueRun(
  db: pg.Pool,
  environment: string,
  tokenId: string,
  limit: RunLimit,
  dispatch: (runId: string, client: pg.PoolClient) => Promise<unknown>,
): Promise<RunRequest> {
  return withTransaction(db, async (client) => {
    const request = await queueInTransaction(client, environment, tokenId, limit);
    if ('run_id' in request && !request.deduplicated) await dispatch(request.run_id, client);
    return request;
  });
}

async function queueInTransaction(client: pg.PoolClient, environment: string, tokenId: string, limit: RunLimit): Promise<RunRequest> {
  for (;;) {
    const queued = await client.query<{ id: string }>(`SELECT id FROM verification_runs WHERE environment_id = $1 AND status = 'queued'`, [
      environment,
    ]);
    if (queued.rows[0]) return { run_id: queued.rows[0].id, deduplicated: true };
    // The limit-th newest run within the window: the token may start another once it leaves the window.
    const oldest = await client.query<{ retry_after: number }>(
      `SELECT ceil(extract(epoch FROM created_at + make_interval(secs => $2) - now()))::int AS retry_after
         FROM verification_runs WHERE environment_id = $4 AND token_id = $1 AND created_at > now() - make_interval(secs => $2)
        ORDER BY created_at DESC OFFSET $3 LIMIT 1`,
      [tokenId, limit.windowSeconds, limit.runs - 1, environment],
    );
    if (oldest.rows[0]) return { retry_after_seconds: Math.max(1, oldest.rows[0].retry_after) };
    const id = uuidv7();
    const inserted = await client.query(
      `INSERT INTO verification_runs (id, environment_id, requested_by, token_id, status) VALUES ($1, $2, 'api', $3, 'queued')
       ON CONFLICT (environment_id) WHERE status = 'queued' DO NOTHING`,
      [id, environment, tokenId],
    );
    if (inserted.rowCount) return { run_id: id, deduplicated: false };
    // Another request queued one since the SELECT: the next round answers that one.
  }
}

/**
 * Marks a queued run running, so that a new request queues a run of its own rather than joining
 * one that may have read the chain already. False when the run has ended (nothing to do). A run
 * left running by a crashed worker is claimed again by the job's retry.
 */
export async function claimRun(db: pg.Pool, environment: string, id: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE verification_runs SET status = 'running' WHERE environment_id = $1 AND id = $2 AND status IN ('queued', 'running')`,
    [environment, id],
  );
  return rowCount === 1;
}

/** Closes a queued run that will never run (its job was lost), so that the chain can queue another. */
export async function abandonRun(db: pg.Pool, environment: string, id: string, reason: string): Promise<void> {
  await db.query(
    `UPDATE verification_runs SET status = 'error', first_failure = jsonb_build_object('seq', 0, 'reason', $3::text), finished_at = now()
      WHERE environment_id = $1 AND id = $2 AND status = 'queued'`,
    [environment, id, reason],
  );
}

export interface RunResult {
  status: 'done' | 'error';
  from_seq: number | null;
  to_seq: number | null;
  ok: boolean | null;
  checked: number | null;
  duration_ms: number;
  first_failure: Failure | null;
}

/** Records a run's outcome (creating the run if it was not queued). */
export async function finishRun(db: pg.Pool, id: string, environment: string, requestedBy: string, result: RunResult): Promise<void> {
  await db.query(
    `INSERT INTO verification_runs (id, environment_id, requested_by, status, from_seq, to_seq, ok, checked, duration_ms, first_failure, finished_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
     ON CONFLICT (environment_id, id) DO UPDATE SET status = $4, from_seq = $5, to_seq = $6, ok = $7, checked = $8, duration_ms = $9,
       first_failure = $10, finished_at = now()`,
    [id, environment, requestedBy, result.status, result.from_seq, result.to_seq, result.ok, result.checked, result.duration_ms, result.first_failure],
  );
}

/** Stores failures as findings; returns those not found before (the ones to alert on). */
export async function recordFindings(db: pg.Pool, environment: string, runId: string, failures: Failure[]): Promise<Failure[]> {
  if (failures.length === 0) return [];
  const { rows } = await db.query<{ seq: number | null; reason: string }>(
    `INSERT INTO findings (id, environment_id, run_id, seq, reason)
     SELECT id, $1, $2, seq, reason FROM unnest($3::uuid[], $4::bigint[], $5::text[]) AS f(id, seq, reason)
     ON CONFLICT DO NOTHING RETURNING seq, reason`,
    [environment, runId, failures.map(() => uuidv7()), failures.map((f) => f.seq), failures.map((f) => f.reason)],
  );
  return rows.map((r) => ({ seq: r.seq ?? 0, reason: r.reason }));
}

/** Whether `failure` is a finding of the chain already (findings_once: its seq and reason). */
export async function isFindingRecorded(db: pg.Pool, environment: string, failure: Failure): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM findings WHERE environment_id = $1 AND coalesce(seq, -1) = $2 AND reason = $3', [
    environment,
    failure.seq,
    failure.reason,
  ]);
  return rowCount !== 0;
}

export interface RunRow {
  id: string;
  requested_by: string;
  status: string;
  from_seq: number | null;
  to_seq: number | null;
  ok: boolean | null;
  checked: number | null;
  duration_ms: number | null;
  first_failure: Failure | null;
  created_at: Date;
  finished_at: Date | null;
}

export async function listRuns(db: pg.Pool, environment: string, limit: number): Promise<RunRow[]> {
  const { rows } = await db.query<RunRow>(
    `SELECT id, requested_by, status, from_seq, to_seq, ok, checked, duration_ms, first_failure, created_at, finished_at
       FROM verification_runs WHERE environment_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`,
    [environment, limit],
  );
  return rows;
}

export interface FindingRow {
  id: string;
  run_id: string;
  seq: number | null;
  reason: string;
  created_at: Date;
}

/** The chain's findings, optionally only those about seqs in [from, to]. */
export async function listFindings(db: pg.Pool, environment: string, range?: { from: number; to: number }): Promise<FindingRow[]> {
  const { rows } = await db.query<FindingRow>(
    `SELECT id, run_id, seq, reason, created_at FROM findings
      WHERE environment_id = $1 AND ($2::bigint IS NULL OR seq BETWEEN $2 AND $3) ORDER BY seq NULLS FIRST, created_at`,
    [environment, range?.from ?? null, range?.to ?? null],
  );
  return rows;
}
