import type pg from 'pg';
import type { StoredEvent } from '../ledger/verify-events.js';
import { withSessionLock } from './database.js';
import { eventColumnsSql, toStored, type EventRow } from './events.js';

/** Sealed bundles, the partitions due for sealing, and the events a bundle is built from. */

export interface SealRow {
  id: string;
  environment_id: string;
  partition: string;
  first_seq: number;
  last_seq: number;
  root: Buffer;
  end_range: Buffer[];
  last_hash: Buffer;
  manifest: string;
  manifest_sha256: Buffer;
  archive_location: string;
  archive_key: string;
  version_id: string | null;
  sha256: Buffer;
  bytes: number;
  created_at: Date;
}

const SEAL_COLUMNS = `id, environment_id, to_char(partition, 'YYYY-MM-DD') AS partition, first_seq, last_seq, root, end_range,
  last_hash, manifest, manifest_sha256, archive_location, archive_key, version_id, sha256, bytes, created_at`;

/** Days that have a partition, are not sealed, and are on or before `through` (YYYY-MM-DD). */
export async function unsealedDays(db: pg.Pool, through: string): Promise<string[]> {
  const { rows } = await db.query<{ day: string }>(
    `SELECT to_char(day, 'YYYY-MM-DD') AS day FROM (
       SELECT to_date(substr(c.relname, 8), 'YYYYMMDD') AS day
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_[0-9]{8}$') d
      WHERE day <= $1::date AND NOT EXISTS (SELECT FROM sealed_partitions s WHERE s.partition = d.day)
      ORDER BY day`,
    [through],
  );
  return rows.map((r) => r.day);
}

export interface ChainDay {
  environment_id: string;
  project_id: string;
  first_seq: number;
  last_seq: number;
  count: number;
}

/** The chains with events on `day`, and the seq range each has there. */
export async function chainsOnDay(db: pg.Pool, day: string): Promise<ChainDay[]> {
  const { rows } = await db.query<ChainDay>(
    `SELECT ev.environment_id, e.project_id, min(ev.seq) AS first_seq, max(ev.seq) AS last_seq, count(*)::int AS count
       FROM events ev JOIN environments e ON e.id = ev.environment_id
      WHERE ev.received_at >= $1::date AND ev.received_at < $1::date + 1
      GROUP BY ev.environment_id, e.project_id ORDER BY ev.environment_id`,
    [day],
  );
  return rows;
}

/** Up to `limit` events of a chain on `day` from seq `from`, in seq order. */
export async function eventsOnDay(db: pg.Pool, environment: string, day: string, from: number, limit: number): Promise<StoredEvent[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT ${eventColumnsSql} FROM events
      WHERE environment_id = $1 AND received_at >= $2::date AND received_at < $2::date + 1 AND seq >= $3
      ORDER BY seq LIMIT $4`,
    [environment, day, from, limit],
  );
  return rows.map(toStored);
}

/** How many bundles of the chain's `day` are sealed. */
export async function sealsOfDay(db: pg.Pool, environment: string, day: string): Promise<number> {
  const { rows } = await db.query<{ count: number }>('SELECT count(*)::int AS count FROM seals WHERE environment_id = $1 AND partition = $2', [
    environment,
    day,
  ]);
  return rows[0]!.count;
}

/** How many bundles all chains have of `day`. */
export async function bundlesOfDay(db: pg.Pool, day: string): Promise<number> {
  const { rows } = await db.query<{ count: number }>('SELECT count(*)::int AS count FROM seals WHERE partition = $1', [day]);
  return rows[0]!.count;
}

/** The chain's newest seal on or before `day`: the bundle the next one continues. */
export async function previousSeal(db: pg.Pool, environment: string, day: string): Promise<SealRow | undefined> {
  const { rows } = await db.query<SealRow>(
    `SELECT ${SEAL_COLUMNS} FROM seals WHERE environment_id = $1 AND partition <= $2 ORDER BY last_seq DESC LIMIT 1`,
    [environment, day],
  );
  return rows[0];
}

/** The seal holding `seq` of the chain, if that event is sealed. */
export async function sealOfSeq(db: pg.Pool, environment: string, seq: number): Promise<SealRow | undefined> {
  const { rows } = await db.query<SealRow>(
    `SELECT ${SEAL_COLUMNS} FROM seals WHERE environment_id = $1 AND first_seq <= $2 AND last_seq >= $2`,
    [environment, seq],
  );
  return rows[0];
}

/**
 * The chain's bundles of its `limit` newest sealed days before `beforeDay`, newest first: whole
 * days, so that paging by day never cuts a day of several bundles (bounded bundles) in two.
 */
export async function listSeals(db: pg.Pool, environment: string, limit: number, beforeDay?: string): Promise<SealRow[]> {
  const { rows } = await db.query<SealRow>(
    `SELECT ${SEAL_COLUMNS} FROM seals WHERE environment_id = $1 AND partition IN (
       SELECT DISTINCT partition FROM seals WHERE environment_id = $1 AND ($2::date IS NULL OR partition < $2)
        ORDER BY partition DESC LIMIT $3)
      ORDER BY partition DESC, first_seq DESC`,
    [environment, beforeDay ?? null, limit],
  );
  return rows;
}

export async function getSeal(db: pg.Pool, environment: string, id: string): Promise<SealRow | undefined> {
  const { rows } = await db.query<SealRow>(`SELECT ${SEAL_COLUMNS} FROM seals WHERE environment_id = $1 AND id = $2`, [environment, id]);
  return rows[0];
}

export async function insertSeal(db: pg.Pool, seal: Omit<SealRow, 'created_at'>): Promise<void> {
  await db.query(
    `INSERT INTO seals (id, environment_id, partition, first_seq, last_seq, root, end_range, last_hash, manifest, manifest_sha256,
                        archive_location, archive_key, version_id, sha256, bytes)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (environment_id, first_seq) DO NOTHING`,
    [
      seal.id,
      seal.environment_id,
      seal.partition,
      seal.first_seq,
      seal.last_seq,
      seal.root,
      seal.end_range,
      seal.last_hash,
      seal.manifest,
      seal.manifest_sha256,
      seal.archive_location,
      seal.archive_key,
      seal.version_id,
      seal.sha256,
      seal.bytes,
    ],
  );
}

/** Records the day sealed and makes its partition refuse new rows. */
export async function markDaySealed(db: pg.Pool, day: string, bundles: number): Promise<void> {
  await db.query('SELECT auditledger_seal_partition($1::date, $2)', [day, bundles]);
}

/** The first checkpoint at or after `size`: sealing checks its range against it before signing. */
export async function checkpointFrom(db: pg.Pool, environment: string, size: number) {
  const { rows } = await db.query<{ tree_size: number; root: Buffer; note: string }>(
    'SELECT tree_size, root, note FROM checkpoints WHERE environment_id = $1 AND tree_size >= $2 ORDER BY tree_size LIMIT 1',
    [environment, size],
  );
  return rows[0];
}

const SEAL_LOCK = 0x6175646974736c6bn; // "auditslk"

/**
 * Runs `work` holding the seal lock, so one seal runs at a time across processes (the job and
 * `auditledger seal`). Returns undefined without running when another holds it.
 */
export function withSealLock<T>(db: pg.Pool, work: () => Promise<T>): Promise<T | undefined> {
  return withSessionLock(db, SEAL_LOCK, work, { wait: false });
}
