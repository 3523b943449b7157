import type pg from 'pg';
import type { Failure } from '../ledger/verify-events.js';
import { uuidv7 } from '../ledger/uuid.js';
import { GENESIS_POINT, type VerifiedPoint } from './chain-verify.js';

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

/** A run waiting for the job, so its id can be answered at once. */
export async function queueRun(db: pg.Pool, environment: string, requestedBy: string): Promise<string> {
  const id = uuidv7();
  await db.query(`INSERT INTO verification_runs (id, environment_id, requested_by, status) VALUES ($1, $2, $3, 'queued')`, [
    id,
    environment,
    requestedBy,
  ]);
  return id;
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
     ON CONFLICT (id) DO UPDATE SET status = $4, from_seq = $5, to_seq = $6, ok = $7, checked = $8, duration_ms = $9,
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
