import { createHash } from 'node:crypto';
import type pg from 'pg';
import { erasureEvent, holdEvent } from '../ledger/system-events.js';
import { uuidv7 } from '../ledger/uuid.js';
import { appendToEach, inChainsTransaction, type ChainReceipt, type ChainRef, type Receipt } from './append.js';
import { withSessionLock } from './database.js';
import { readPersonalRow } from './personal.js';

/**
 * Erasure of a data subject's personal values (GDPR Art. 17) and legal holds (README "Personal
 * data and erasure"). A subject is named only by its keyed digest (src/ledger/personal.ts
 * subjectDigest); its id is never stored. Every function takes ids already checked as UUIDs.
 */

/** A legal hold as the API shows it; `subject_digest` is lowercase hex. */
export interface Hold {
  id: string;
  project_id: string;
  /** The one chain it holds; null: every chain of the project. */
  environment_id: string | null;
  /** The one subject it holds; null: every subject. */
  subject_digest: string | null;
  reason: string;
  placed_at: Date;
  lifted_at: Date | null;
}

/** One chain's part of an erasure: the values it erased so far and its latest erasure event. */
export interface ChainErasure {
  environment_id: string;
  values_erased: number;
  receipt: Receipt;
}

/** What was erased of one subject in one project, chain by chain. */
export interface Erasure {
  project_id: string;
  subject_digest: string;
  requested_at: Date;
  updated_at: Date;
  chains: ChainErasure[];
}


const HOLD_COLUMNS = "id, project_id, environment_id, encode(subject_digest, 'hex') AS subject_digest, reason, placed_at, lifted_at";

/**
 * The advisory lock under which a project's erasures and hold changes run one at a time, so an
 * erasure never runs past a hold placed while it runs: the first 64 bits of
 * SHA-256("auditledger-erasure" || 0x00 || project id), as a signed bigint.
 */
function projectLock(project: string): bigint {
  return createHash('sha256').update(`auditledger-erasure\0${project}`).digest().readBigInt64BE();
}

/** The ids of a project's chains (or only `environment`, when it is one of them), oldest first. */
async function projectChains(client: pg.PoolClient, project: string, environment?: string): Promise<string[]> {
  const { rows } = await client.query<{ id: string }>(
    'SELECT id FROM environments WHERE project_id = $1 AND ($2::uuid IS NULL OR id = $2) ORDER BY id',
    [project, environment ?? null],
  );
  return rows.map((r) => r.id);
}

/**
 * The oldest active hold of the project that covers an erasure of `subjectDigest` in `environment`
 * (every chain of the project when absent): one on the project, on that chain (any chain when
 * absent), or on that subject.
 */
async function coveringHold(client: pg.PoolClient, project: string, subjectDigest: Buffer, environment: string | undefined): Promise<Hold | undefined> {
  const { rows } = await client.query<Hold>(
    `SELECT ${HOLD_COLUMNS} FROM legal_holds
      WHERE project_id = $1 AND lifted_at IS NULL
        AND (subject_digest IS NULL OR subject_digest = $2)
        AND ($3::uuid IS NULL OR environment_id IS NULL OR environment_id = $3)
      ORDER BY id LIMIT 1`,
    [project, subjectDigest, environment ?? null],
  );
  return rows[0];
}

interface ErasureRow {
  /** Whether this request made the record (the subject's first erasure in the project). */
  made: boolean;
  project_id: string;
  subject_digest: string;
  requested_at: Date;
  updated_at: Date;
  counts: Record<string, number>;
  receipts: Record<string, Receipt>;
}

/**
 * The erasure record of a subject, made (empty, requested at `now`: the server clock the erasure
 * events get) if there is none yet.
 */
async function erasureRecord(client: pg.PoolClient, project: string, subjectDigest: Buffer, now: Date): Promise<ErasureRow> {
  const { rows } = await client.query<ErasureRow>(
    `WITH made AS (INSERT INTO erasures (project_id, subject_digest, requested_at, updated_at) VALUES ($1, $2, $3, $3) ON CONFLICT DO NOTHING RETURNING *)
     SELECT true AS made, project_id, encode(subject_digest, 'hex') AS subject_digest, requested_at, updated_at, counts, receipts FROM made
     UNION ALL
     SELECT false, project_id, encode(subject_digest, 'hex'), requested_at, updated_at, counts, receipts FROM erasures WHERE project_id = $1 AND subject_digest = $2`,
    [project, subjectDigest, now],
  );
  return rows[0]!;
}

/**
 * Deletes a subject's personal values in one chain, and the idempotency keys of the events they
 * were in (a key's digest covers the event as sent, values included). Returns how many values
 * were deleted, by RFC 6901 pointer.
 */
async function deleteSubjectValues(client: pg.PoolClient, environment: string, subjectDigest: Buffer): Promise<Record<string, number>> {
  const { rows } = await client.query<{ pointer_values: string; salts: Buffer }>(
    `WITH gone AS (DELETE FROM personal_values WHERE environment_id = $1 AND subject_digest = $2 RETURNING seq, pointer_values, salts),
     keys AS (DELETE FROM idempotency_keys WHERE environment_id = $1 AND seq IN (SELECT seq FROM gone))
     SELECT pointer_values, salts FROM gone`,
    [environment, subjectDigest],
  );
  // A Map, not an object: a pointer may be /metadata/__proto__.
  const counts = new Map<string, number>();
  for (const row of rows) {
    for (const [pointer] of readPersonalRow(row.pointer_values, row.salts)) counts.set(pointer, (counts.get(pointer) ?? 0) + 1);
  }
  return Object.fromEntries([...counts].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * Adds a chain's erased values to the subject's record and keeps the chain's newest erasure event,
 * updated at the event's received_at (the server clock, as requested_at).
 */
async function recordChainErasure(client: pg.PoolClient, project: string, subjectDigest: Buffer, environment: string, erased: number, receipt: Receipt): Promise<void> {
  await client.query(
    `UPDATE erasures
        SET counts = counts || jsonb_build_object($3::text, coalesce((counts ->> $3::text)::bigint, 0) + $4),
            receipts = receipts || jsonb_build_object($3::text, $5::jsonb), updated_at = $6
      WHERE project_id = $1 AND subject_digest = $2`,
    [project, subjectDigest, environment, erased, JSON.stringify(receipt), receipt.received_at],
  );
}

/** The record as the API shows it, limited to `chains`. */
function presentErasure(row: ErasureRow, chains: readonly string[]): Erasure {
  return {
    project_id: row.project_id,
    subject_digest: row.subject_digest,
    requested_at: row.requested_at,
    updated_at: row.updated_at,
    chains: chains.flatMap((id) => {
      const receipt = row.receipts[id];
      return receipt ? [{ environment_id: id, values_erased: row.counts[id] ?? 0, receipt }] : [];
    }),
  };
}

export interface ErasureRequest {
  project: string;
  /** The subject's keyed digest (subjectDigest of the project and the subject's id). */
  subjectDigest: Buffer;
  /** Only this chain of the project (a token with the `erase` scope); every chain when absent. */
  environment?: string | undefined;
  /** Who asked: the erasure events' actor id. */
  requestedBy: string;
  /** The server clock, ms since the epoch. */
  now: () => number;
}

export type ErasureOutcome =
  /**
   * `appended`: how many chains got an erasure event (0: a repeat that found nothing new, or a
   * project without chains); `created`: whether this request made the subject's erasure record.
   */
  | { ok: true; appended: number; created: boolean; erasure: Erasure }
  /** An active hold covers the erasure: nothing was erased. */
  | { ok: false; hold: Hold };

/**
 * Erases a subject's personal values in a project's chains (or one chain), refused whole while a
 * legal hold covers it. Each chain is erased in one transaction that holds its head lock: the
 * subject's values there and the idempotency keys of their events are deleted, and an erasure
 * event (src/ledger/system-events.ts) naming the subject by its digest, with the counts, is
 * appended; so every value of the subject in an event before the erasure event is gone, and the
 * chain's later events are new data. A chain gets an event when it had values of the subject, or
 * when it has none from an earlier request: a repeat that finds nothing new appends nothing and
 * answers with the stored receipts. A request cut short (a crash, a day that takes no events)
 * leaves whole chains erased and the rest for a repeat to finish.
 */
export async function eraseSubject(db: pg.Pool, request: ErasureRequest): Promise<ErasureOutcome> {
  const { project, subjectDigest, environment } = request;
  // Everything on the lock's connection: a second one per request could exhaust the pool.
  return withSessionLock(db, projectLock(project), async (client) => {
    const hold = await coveringHold(client, project, subjectDigest, environment);
    if (hold) return { ok: false, hold };
    const chains = await projectChains(client, project, environment);
    const earlier = await erasureRecord(client, project, subjectDigest, new Date(request.now()));
    const digestHex = subjectDigest.toString('hex');
    let appended = 0;
    for (const id of chains) {
      appended += await inChainsTransaction(client, refs(project, [id]), request.now, async (append) => {
        const byPointer = await deleteSubjectValues(client, id, subjectDigest);
        const erased = Object.values(byPointer).reduce((sum, n) => sum + n, 0);
        if (erased === 0 && earlier.receipts[id]) return 0;
        const [receipt] = await appendToEach(append, project, [id], () => erasureEvent({ subjectDigest: digestHex, requestedBy: request.requestedBy, byPointer }));
        await recordChainErasure(client, project, subjectDigest, id, erased, receipt!);
        return 1;
      });
    }
    const record = await erasureRecord(client, project, subjectDigest, new Date(request.now()));
    return { ok: true, appended, created: earlier.made, erasure: presentErasure(record, chains) };
  });
}

/** The chains of `chains` as inChainsTransaction takes them. */
function refs(project: string, chains: readonly string[]): ChainRef[] {
  return chains.map((environment) => ({ project, environment }));
}

export interface NewHold {
  project: string;
  /** Hold only this chain; every chain of the project when absent. */
  environment?: string | undefined;
  /** Hold only this subject (its keyed digest); every subject when absent. */
  subjectDigest?: Buffer | undefined;
  reason: string;
  /** Who placed it: the hold events' actor id. */
  placedBy: string;
  now: () => number;
}

/**
 * Places a legal hold and appends an `auditledger.hold.placed` event to each chain it covers (the
 * environment's, or every chain of the project), all in one transaction: when an append fails (a
 * day that takes no events), no hold is placed and no chain records one. Undefined when the
 * environment is not one of the project's.
 */
export async function placeHold(db: pg.Pool, hold: NewHold): Promise<{ hold: Hold; events: ChainReceipt[] } | undefined> {
  return withSessionLock(db, projectLock(hold.project), async (client) => {
    const chains = await projectChains(client, hold.project, hold.environment);
    if (hold.environment && chains.length === 0) return undefined;
    return inChainsTransaction(client, refs(hold.project, chains), hold.now, async (append) => {
      const { rows } = await client.query<Hold>(
        `INSERT INTO legal_holds (id, project_id, environment_id, subject_digest, reason, placed_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${HOLD_COLUMNS}`,
        [uuidv7(), hold.project, hold.environment ?? null, hold.subjectDigest ?? null, hold.reason, new Date(hold.now())],
      );
      const placed = rows[0]!;
      return { hold: placed, events: await appendToEach(append, hold.project, chains, () => holdEvent({ action: 'placed', hold: placed, by: hold.placedBy })) };
    });
  });
}

/**
 * Lifts a hold of the project and appends an `auditledger.hold.lifted` event to each chain it
 * covered, all in one transaction (as placeHold). Lifting a lifted hold changes nothing and
 * appends nothing (`events` is empty). Undefined when the project has no such hold.
 */
export async function liftHold(db: pg.Pool, project: string, id: string, liftedBy: string, now: () => number): Promise<{ hold: Hold; events: ChainReceipt[] } | undefined> {
  return withSessionLock(db, projectLock(project), async (client) => {
    // Holds change only under the project's lock, which this holds: the row read stays as read.
    const { rows } = await client.query<Hold>(`SELECT ${HOLD_COLUMNS} FROM legal_holds WHERE project_id = $1 AND id = $2`, [project, id]);
    const held = rows[0];
    if (!held) return undefined;
    if (held.lifted_at) return { hold: held, events: [] };
    const chains = await projectChains(client, project, held.environment_id ?? undefined);
    return inChainsTransaction(client, refs(project, chains), now, async (append) => {
      const lifted = await client.query<Hold>(`UPDATE legal_holds SET lifted_at = $3 WHERE project_id = $1 AND id = $2 RETURNING ${HOLD_COLUMNS}`, [
        project,
        id,
        new Date(now()),
      ]);
      const hold = lifted.rows[0]!;
      return { hold, events: await appendToEach(append, project, chains, () => holdEvent({ action: 'lifted', hold, by: liftedBy })) };
    });
  });
}

/** A project's holds, oldest first, a page at a time (ids are UUIDv7). */
export async function listHolds(db: pg.Pool, project: string, page: { limit: number; after?: string | undefined }): Promise<Hold[]> {
  const { rows } = await db.query<Hold>(
    `SELECT ${HOLD_COLUMNS} FROM legal_holds WHERE project_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3`,
    [project, page.after ?? null, page.limit],
  );
  return rows;
}
