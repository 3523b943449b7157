import type pg from 'pg';
import { rangeProblem, rangeRoot, type CompactRange } from '../ledger/compact-range.js';
import type { Crud, IndexColumns } from '../ledger/event.js';
import type { ChainEnd, StoredEvent } from '../ledger/verify-events.js';
import { ChainHeadDamagedError } from './errors.js';

/** Reading events and chain heads. Every query is scoped to one environment (one chain). */

export interface EventFilters {
  /** Exact action, or a prefix when it ends in `*` (`user.*`). */
  action?: string | undefined;
  /** One crud letter, or any of several. */
  crud?: Crud | readonly Crud[] | undefined;
  actor_id?: string | undefined;
  target_id?: string | undefined;
  group_id?: string | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
  seq_from?: number | undefined;
  seq_to?: number | undefined;
}

export interface EventQuery extends EventFilters {
  limit: number;
  order: 'asc' | 'desc';
  /** Continue after this seq (in `order`). */
  after_seq?: number | undefined;
}

/** An events row as a SELECT of eventColumnsSql gives it: a StoredEvent with its columns inline. */
export type EventRow = Omit<StoredEvent, 'columns'> & Omit<IndexColumns, 'created'> & { created: Date | null };

export const eventColumnsSql = 'seq, id, received_at, prev, hash, canonical, action, crud, actor_id, target_id, group_id, created';

export function toStored(row: EventRow): StoredEvent {
  return {
    seq: row.seq,
    id: row.id,
    received_at: row.received_at,
    prev: row.prev,
    hash: row.hash,
    canonical: row.canonical,
    columns: {
      action: row.action,
      crud: row.crud,
      actor_id: row.actor_id,
      target_id: row.target_id,
      group_id: row.group_id,
      created: row.created?.getTime() ?? null,
    },
  };
}

/** `LIKE` pattern for a literal prefix. */
function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** The WHERE clause and parameters of a chain's filters ($1 is the chain). */
function filterSql(environment: string, q: EventFilters): { where: string[]; params: unknown[] } {
  const params: unknown[] = [environment];
  const where = ['environment_id = $1'];
  const add = (sql: (p: string) => string, value: unknown) => {
    params.push(value);
    where.push(sql(`$${params.length}`));
  };
  if (q.action !== undefined) {
    if (q.action.endsWith('*')) add((p) => `action LIKE ${p}`, likePrefix(q.action.slice(0, -1)));
    else add((p) => `action = ${p}`, q.action);
  }
  if (typeof q.crud === 'string') add((p) => `crud = ${p}`, q.crud);
  else if (q.crud) add((p) => `crud = ANY(${p}::"char"[])`, q.crud);
  if (q.actor_id !== undefined) add((p) => `actor_id = ${p}`, q.actor_id);
  if (q.target_id !== undefined) add((p) => `target_id = ${p}`, q.target_id);
  if (q.group_id !== undefined) add((p) => `group_id = ${p}`, q.group_id);
  if (q.from) add((p) => `received_at >= ${p}`, q.from);
  if (q.to) add((p) => `received_at < ${p}`, q.to);
  if (q.seq_from !== undefined) add((p) => `seq >= ${p}`, q.seq_from);
  if (q.seq_to !== undefined) add((p) => `seq <= ${p}`, q.seq_to);
  return { where, params };
}

export async function queryEvents(db: pg.Pool, environment: string, q: EventQuery): Promise<StoredEvent[]> {
  const { where, params } = filterSql(environment, q);
  if (q.after_seq !== undefined) {
    params.push(q.after_seq);
    where.push(`seq ${q.order === 'asc' ? '>' : '<'} $${params.length}`);
  }
  params.push(q.limit);
  const { rows } = await db.query<EventRow>(
    `SELECT ${eventColumnsSql} FROM events WHERE ${where.join(' AND ')}
      ORDER BY seq ${q.order === 'asc' ? 'ASC' : 'DESC'} LIMIT $${params.length}`,
    params,
  );
  return rows.map(toStored);
}

/** How many events of a chain match the filters (Retraced's search answers with a total). */
export async function countEvents(db: pg.Pool, environment: string, filters: EventFilters): Promise<number> {
  const { where, params } = filterSql(environment, filters);
  const { rows } = await db.query<{ count: number }>(`SELECT count(*) AS count FROM events WHERE ${where.join(' AND ')}`, params);
  return rows[0]!.count;
}

export async function getEvent(db: pg.Pool, environment: string, id: string): Promise<StoredEvent | undefined> {
  const { rows } = await db.query<EventRow>(`SELECT ${eventColumnsSql} FROM events WHERE environment_id = $1 AND id = $2`, [
    environment,
    id,
  ]);
  return rows[0] && toStored(rows[0]);
}

/** The stored hashes of the given seqs of a chain (for checking the links of a page). */
export async function eventHashes(db: pg.Pool, environment: string, seqs: number[]): Promise<Map<number, Buffer>> {
  const wanted = seqs.filter((s) => s >= 1);
  if (wanted.length === 0) return new Map();
  const { rows } = await db.query<{ seq: number; hash: Buffer }>(
    'SELECT seq, hash FROM events WHERE environment_id = $1 AND seq = ANY($2::bigint[])',
    [environment, wanted],
  );
  return new Map(rows.map((r) => [r.seq, r.hash]));
}

/** The canonical bytes of seqs [from, to] of a chain, in seq order (missing seqs are absent). */
export async function canonicalBySeq(db: pg.Pool, environment: string, from: number, to: number): Promise<{ seq: number; canonical: Buffer }[]> {
  const { rows } = await db.query<{ seq: number; canonical: Buffer }>(
    'SELECT seq, canonical FROM events WHERE environment_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq',
    [environment, from, to],
  );
  return rows;
}

/** A chain's head as stored: its last seq and hash (hex), and its tree (size, root in hex, compact range). */
export interface ChainHead {
  seq: number;
  hash: string;
  tree_size: number;
  root: string;
  /** The compact range of the tree of tree_size leaves (RFC 9162 section 2.1.1): its right edge. */
  range: CompactRange;
}

/**
 * The compact range of a chain_heads row (`seq`, `compact_range`). Throws ChainHeadDamagedError
 * when it does not fit the seq (rangeProblem): a tree that cannot be extended or rooted is damage.
 */
export function headRange(environment: string, seq: number, hashes: Buffer[]): CompactRange {
  const range = { size: seq, hashes };
  const problem = rangeProblem(range);
  if (problem !== undefined) throw new ChainHeadDamagedError(environment, seq, problem);
  return range;
}

/** The chain's head as stored, undefined when the chain has none. Throws ChainHeadDamagedError when its compact range does not fit its seq. */
export async function getChainHead(db: pg.Pool, environment: string): Promise<ChainHead | undefined> {
  const { rows } = await db.query<{ seq: number; hash: Buffer; compact_range: Buffer[] }>(
    'SELECT seq, hash, compact_range FROM chain_heads WHERE environment_id = $1',
    [environment],
  );
  const row = rows[0];
  if (!row) return undefined;
  const range = headRange(environment, row.seq, row.compact_range);
  return { seq: row.seq, hash: row.hash.toString('hex'), tree_size: row.seq, root: rangeRoot(range).toString('hex'), range };
}

/**
 * The chain's end as stored (see ChainEnd), read in one statement and so in one snapshot: an
 * append moves the head and stores its events in one transaction, so they agree unless tampered with.
 */
export async function getChainEnd(db: pg.Pool, environment: string): Promise<ChainEnd | undefined> {
  const { rows } = await db.query<{ head_seq: number; head_hash: Buffer; last_seq: number | null; last_hash: Buffer | null; checkpoint: number }>(
    `SELECT h.seq AS head_seq, h.hash AS head_hash, e.seq AS last_seq, e.hash AS last_hash,
            (SELECT coalesce(max(tree_size), 0) FROM checkpoints c WHERE c.environment_id = h.environment_id) AS checkpoint
       FROM chain_heads h
       LEFT JOIN LATERAL (SELECT seq, hash FROM events WHERE environment_id = h.environment_id ORDER BY seq DESC LIMIT 1) e ON true
      WHERE h.environment_id = $1`,
    [environment],
  );
  const row = rows[0];
  if (!row) return undefined;
  return {
    head: { seq: row.head_seq, hash: row.head_hash },
    last: row.last_seq === null ? null : { seq: row.last_seq, hash: row.last_hash! },
    checkpoint: row.checkpoint,
  };
}
