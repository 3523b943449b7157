import type pg from 'pg';
import { appendLeaves, rangeRoot, type CompactRange } from '../ledger/compact-range.js';
import { createHash, randomFillSync } from 'node:crypto';
import { encodeCanonicalEvent, indexColumns, type AuditEvent, type Commitments } from '../ledger/event.js';
import { canonicalize } from '../ledger/jcs.js';
import { SALT_SIZE, splitPersonal, type PersonalPolicy } from '../ledger/personal.js';
import { extendTails, levelsCompleted, tileBytes, tileHashes, type FullTile, type TileTails } from '../ledger/tiles.js';
import { isUuid, uuidv7 } from '../ledger/uuid.js';
import { dayClosed } from './errors.js';
import { personalRows, type PersonalRow } from './personal.js';
import { readTails } from './tiles.js';

/**
 * One event to append: the event without its personal values, its canonical JSON, its
 * commitments and the values they commit to, and its idempotency key with the content digest.
 */
export interface AppendItem {
  event: AuditEvent;
  /** RFC 8785 form of `event`, computed before the chain lock is taken. */
  canonical: string;
  /** The body's `commitments` member; undefined when the event holds no personal value. */
  commitments?: Commitments | undefined;
  /** Its personal_values rows, one per data subject. */
  personal?: PersonalRow[] | undefined;
  key?: string | undefined;
  /** SHA-256 of the event as sent: what "the same event" means for an idempotency key. */
  digest?: Buffer | undefined;
}

/** How appends split personal data out of events: the chain's policy, and its subjects' keyed digest. */
export interface PersonalSplit {
  policy: PersonalPolicy;
  subjectDigest(subject: string): Buffer;
}

/**
 * Prepares an event for appending, before any lock: with `personal`, takes its personal values out
 * (fresh salts, commitments, keyed subject digests); then canonicalizes what is hashed. The
 * idempotency digest stays over the event as sent, so a retry matches whatever its salts.
 * Without `personal` (the ledger's own events), the event is stored whole.
 */
export function appendItem(event: AuditEvent, key?: string, personal?: PersonalSplit): AppendItem {
  const split = personal && splitPersonal(event, personal.policy, fillSalts);
  const canonical = canonicalize(split?.event ?? event);
  if (!split || split.values.length === 0) {
    return { event, canonical, key, digest: key === undefined ? undefined : createHash('sha256').update(canonical).digest() };
  }
  return {
    event: split.event,
    canonical,
    commitments: { map: split.commitments, canonical: canonicalize(split.commitments) },
    personal: personalRows(split.values, personal.subjectDigest),
    key,
    digest: key === undefined ? undefined : createHash('sha256').update(canonicalize(event)).digest(),
  };
}

// Salts come from a pool: one randomFillSync per event costs several times more (as uuid.ts's
// ids). Each salt is copied out and its bytes are used once: the pool is refilled before reuse.
const SALT_POOL = 256 * SALT_SIZE;
const saltPool = Buffer.alloc(SALT_POOL);
let saltOffset = SALT_POOL;

function fillSalts(buffer: Buffer): void {
  if (buffer.length > SALT_POOL) {
    randomFillSync(buffer);
    return;
  }
  if (saltOffset + buffer.length > SALT_POOL) {
    randomFillSync(saltPool);
    saltOffset = 0;
  }
  saltPool.copy(buffer, 0, saltOffset, saltOffset + buffer.length);
  saltOffset += buffer.length;
}

export interface Receipt {
  id: string;
  seq: number;
  hash: string;
  received_at: string;
}

export type AppendOutcome =
  | { ok: true; receipts: Receipt[]; stored: number; tree_size: number; root: string }
  /** An idempotency key already names a different event; nothing of the request was stored. */
  | { ok: false; conflict: { index: number; key: string } };

export interface ChainRef {
  project: string;
  environment: string;
}

/** A chain head as the append path reads and moves it. */
export interface Head {
  seq: number;
  hash: Buffer;
  range: CompactRange;
  lastReceivedAt: number;
  /**
   * The leaf hashes of the partial level-0 tile (C2SP tlog-tiles) end to end, when this process
   * knows them: an append that completes that tile then writes it without reading a row. At most
   * 8 KB per chain; levels above complete every 65,536 events and are read when they do.
   */
  tail?: Buffer | undefined;
}

/** What an append gives: each request's outcome, and the head it left (to start the next append from). */
export interface Appended {
  outcomes: AppendOutcome[];
  head: Head;
}

/**
 * Starts the transaction and locks the chain heads of `environments` in one round trip (a
 * simple-protocol query may hold several statements; the ids are UUIDs the caller checked, so they
 * are inlined safely). Heads are locked in id order, so that two transactions locking several
 * chains cannot deadlock; they are returned in the order of `environments`.
 */
async function beginAndLockHeads(client: pg.PoolClient, environments: readonly string[]): Promise<Head[]> {
  if (environments.length === 0) {
    await client.query('BEGIN');
    return [];
  }
  for (const environment of environments) if (!isUuid(environment)) throw new Error(`not a chain id: ${environment}`);
  const results = (await client.query(
    `BEGIN; SELECT environment_id, seq, hash, compact_range, last_received_at FROM chain_heads
      WHERE environment_id IN (${environments.map((e) => `'${e}'`).join(', ')}) ORDER BY environment_id FOR UPDATE`,
  )) as unknown as pg.QueryResult<{ environment_id: string; seq: number; hash: Buffer; compact_range: Buffer[]; last_received_at: Date | null }>[];
  const rows = new Map(results[1]!.rows.map((row) => [row.environment_id, row]));
  return environments.map((environment) => {
    const row = rows.get(environment.toLowerCase());
    if (!row) throw new Error(`no chain head for environment ${environment}`);
    return {
      seq: row.seq,
      hash: row.hash,
      range: { size: row.seq, hashes: row.compact_range },
      lastReceivedAt: row.last_received_at?.getTime() ?? 0,
    };
  });
}

interface KnownKey {
  digest: Buffer;
  receipt: Receipt;
}

async function findKeys(client: pg.PoolClient, environment: string, keys: string[]): Promise<Map<string, KnownKey>> {
  const known = new Map<string, KnownKey>();
  if (keys.length === 0) return known;
  const { rows } = await client.query<{ key: string; digest: Buffer; seq: number; id: string; hash: Buffer; received_at: Date }>(
    'SELECT key, digest, seq, id, hash, received_at FROM idempotency_keys WHERE environment_id = $1 AND key = ANY($2)',
    [environment, keys],
  );
  for (const r of rows) {
    known.set(r.key, {
      digest: r.digest,
      receipt: { id: r.id, seq: r.seq, hash: r.hash.toString('hex'), received_at: r.received_at.toISOString() },
    });
  }
  return known;
}

/** Column arrays for one multi-row INSERT ... SELECT FROM unnest(...). */
class EventRows {
  seq: number[] = [];
  id: string[] = [];
  hash: Buffer[] = [];
  canonical: Buffer[] = [];
  action: string[] = [];
  crud: (string | null)[] = [];
  actorId: (string | null)[] = [];
  targetId: (string | null)[] = [];
  groupId: (string | null)[] = [];
  created: (Date | null)[] = [];
  keys: { key: string; digest: Buffer; receipt: Receipt }[] = [];
  /** personal_values rows, each with the seq of its event. */
  personal: { seq: number; row: PersonalRow }[] = [];
}

/**
 * Appends the requests of one group commit to a chain: assign seq, prev and hash in Node, insert
 * every new event in one statement that also moves the head, commit. Each request is
 * all-or-nothing: one whose idempotency key names a different event is left out (its outcome says
 * so) while the others are stored.
 *
 * With `expected`, the head this process left after its last append, the statement goes alone,
 * in one round trip: it locks the head and writes only if the head is still `expected` and no
 * idempotency key of the requests is known yet. Otherwise (another process appended, a key
 * repeats, or there is no `expected`) a transaction locks the head first, looks the keys up and
 * then writes. Either way the head row lock serializes the chain's appends across processes.
 */
export async function appendToChain(
  db: pg.Pool,
  chain: ChainRef,
  requests: readonly AppendItem[][],
  now: number,
  expected?: Head,
): Promise<Appended> {
  if (expected) {
    const plan = planAppend(chain, expected, requests, new Map(), now);
    if (plan.rows.seq.length > 0 && plan.tiles && (await writeEvents(db, chain.environment, expected, plan))) return appended(plan);
  }
  const client = await db.connect();
  try {
    return await lockedTransaction(client, [chain.environment], async ([head]) => appended(await appendLocked(client, chain, head!, requests, now)));
  } finally {
    client.release();
  }
}

/**
 * Runs `work` in a transaction on `client` that holds the row locks of the heads of `environments`
 * from its start, given the heads as read under the locks (in that order); COMMIT when `work`
 * resolves, ROLLBACK when it throws.
 */
async function lockedTransaction<T>(client: pg.PoolClient, environments: readonly string[], work: (heads: Head[]) => Promise<T>): Promise<T> {
  try {
    const result = await work(await beginAndLockHeads(client, environments));
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** Appends `requests` on top of `head`, locked by the caller's transaction on `client`; the plan written. */
async function appendLocked(client: pg.PoolClient, chain: ChainRef, head: Head, requests: readonly AppendItem[][], now: number): Promise<AppendPlan> {
  const known = await findKeys(client, chain.environment, [
    ...new Set(requests.flatMap((items) => items.flatMap((i) => (i.key ? [i.key] : [])))),
  ]);
  let plan = planAppend(chain, head, requests, known, now);
  if (!plan.tiles) {
    // Tiles complete here and this process does not carry the tails they extend.
    const tails = await readTails(client, chain.environment, head.seq, levelsCompleted(head.seq, plan.next.seq));
    plan = { ...plan, ...planTiles(head, plan.leaves, plan.next, tails) };
  }
  if (plan.rows.seq.length > 0 && !(await writeEvents(client, chain.environment, head, plan))) {
    throw new Error(`chain head ${chain.environment} moved while locked`);
  }
  return plan;
}

/** Appends one request to one of the chains of an inChainsTransaction; its outcome. */
export type LockedChainAppend = (chain: ChainRef, items: AppendItem[]) => Promise<AppendOutcome>;

/**
 * Runs `work` in one transaction on `client` (the caller's connection, not in a transaction) that
 * holds the head locks of `chains` (none: a plain transaction) from its start, for a change that
 * must be ordered with the chains' appends and recorded by an event in each chain it concerns (an
 * erasure, a legal hold, a policy) in the same commit: `work` gets `append`, the append path of
 * appendToChain within that transaction for one of `chains`, and runs its own statements on
 * `client`. All or nothing: when any append fails (a day that takes no events), no chain keeps
 * its event and nothing `work` wrote stays. Appends of other transactions (and processes) wait
 * for the commit, so they come after everything `work` did; a process's GroupCommit then finds
 * its remembered head moved and locks the head for its next append.
 */
export function inChainsTransaction<T>(client: pg.PoolClient, chains: readonly ChainRef[], now: () => number, work: (append: LockedChainAppend) => Promise<T>): Promise<T> {
  return lockedTransaction(
    client,
    chains.map((chain) => chain.environment),
    (locked) => {
      const heads = new Map(chains.map((chain, i) => [chain.environment, locked[i]!]));
      return work(async (chain, items) => {
        const head = heads.get(chain.environment);
        if (!head) throw new Error(`chain ${chain.environment} is not locked by this transaction`);
        const plan = await appendLocked(client, chain, head, [items], now());
        const { outcomes, head: next } = appended(plan);
        heads.set(chain.environment, next);
        return outcomes[0]!;
      });
    },
  );
}

/** The receipt of an event appended for a change, with its chain (as the erasure, hold and policy routes answer). */
export type ChainReceipt = Receipt & { environment_id: string };

/**
 * Appends one of the ledger's own events (src/ledger/system-events.ts, a policy change), stored
 * whole, to each of `chains` in order within the caller's inChainsTransaction; their receipts.
 * Such an event has no idempotency key, so it cannot conflict.
 */
export async function appendToEach(
  append: LockedChainAppend,
  project: string,
  chains: readonly string[],
  eventOf: (environment: string) => AuditEvent | Promise<AuditEvent>,
): Promise<ChainReceipt[]> {
  const receipts: ChainReceipt[] = [];
  for (const environment of chains) {
    const event = await eventOf(environment);
    const outcome = await append({ project, environment }, [appendItem(event)]);
    if (!outcome.ok) throw new Error(`${event.action} has no idempotency key, so it cannot conflict`);
    receipts.push({ environment_id: environment, ...outcome.receipts[0]! });
  }
  return receipts;
}

/** The rows to write for a group of requests on top of `head`, and what each request gets. */
interface AppendPlan {
  rows: EventRows;
  /** A request's outcome when it stores nothing (a key conflict); undefined when it is accepted. */
  outcomes: (AppendOutcome | undefined)[];
  accepted: { receipts: Receipt[]; stored: number }[];
  /** The new events' leaf hashes, in seq order. */
  leaves: Buffer[];
  next: Head;
  /** The tiles the append completes; undefined when the head does not carry the tails they need. */
  tiles: FullTile[] | undefined;
}

/**
 * The tiles that `leaves` complete on top of `head`, and `next` with its tail after them. Tiles
 * are undefined when they need tails the head does not carry (its tail is unknown, or a level
 * above 0 completes), unless the tails were `read` from the database: those are all there is.
 */
function planTiles(head: Head, leaves: Buffer[], next: Head, read?: TileTails): { tiles: FullTile[] | undefined; next: Head } {
  const levels = levelsCompleted(head.seq, next.seq);
  if (levels === 0) return { tiles: [], next: { ...next, tail: head.tail && Buffer.concat([head.tail, ...leaves]) } };
  const tails = read ?? (levels === 1 && head.tail ? [tileHashes(head.tail)] : undefined);
  if (!tails) return { tiles: undefined, next };
  const extended = extendTails(head.seq, tails, leaves);
  return { tiles: extended.tiles, next: { ...next, tail: extended.tails[0] && tileBytes(extended.tails[0]) } };
}

// Decides each request against `known` (the chain's stored keys among the requests'), and builds
// the rows of the accepted ones from `head` on.
function planAppend(chain: ChainRef, head: Head, requests: readonly AppendItem[][], known: Map<string, KnownKey>, now: number): AppendPlan {
  // Never earlier than the event before it, even if the clock stepped back.
  const receivedAtMs = Math.max(now, head.lastReceivedAt);
  const receivedAtIso = new Date(receivedAtMs).toISOString();

  const rows = new EventRows();
  let { seq } = head;
  let prev = head.hash.toString('hex');
  const leaves: Buffer[] = [];
  const accepted: { receipts: Receipt[]; stored: number }[] = [];

  const outcomes = requests.map((items): AppendOutcome | undefined => {
    // Decide on the whole request before it takes any seq.
    const inRequest = new Map<string, Buffer>();
    for (const [index, item] of items.entries()) {
      if (!item.key) continue;
      const seen = known.get(item.key)?.digest ?? inRequest.get(item.key);
      if (seen && !seen.equals(item.digest!)) return { ok: false, conflict: { index, key: item.key } };
      inRequest.set(item.key, item.digest!);
    }
    const firstSeq = seq;
    const receipts = items.map((item) => {
      const repeated = item.key ? known.get(item.key) : undefined;
      if (repeated) return repeated.receipt;
      seq += 1;
      const id = uuidv7(receivedAtMs);
      const encoded = encodeCanonicalEvent(item.event, item.canonical, {
        project: chain.project,
        environment: chain.environment,
        seq,
        id,
        received_at: receivedAtIso,
        prev,
      }, item.commitments);
      for (const row of item.personal ?? []) rows.personal.push({ seq, row });
      const columns = indexColumns(item.event);
      rows.seq.push(seq);
      rows.id.push(id);
      rows.hash.push(encoded.hash);
      rows.canonical.push(encoded.canonical);
      rows.action.push(columns.action);
      rows.crud.push(columns.crud);
      rows.actorId.push(columns.actor_id);
      rows.targetId.push(columns.target_id);
      rows.groupId.push(columns.group_id);
      rows.created.push(columns.created === null ? null : new Date(columns.created));
      leaves.push(encoded.hash);
      prev = encoded.hash.toString('hex');
      const receipt = { id, seq, hash: prev, received_at: receivedAtIso };
      if (item.key) {
        rows.keys.push({ key: item.key, digest: item.digest!, receipt });
        known.set(item.key, { digest: item.digest!, receipt });
      }
      return receipt;
    });
    accepted.push({ receipts, stored: seq - firstSeq });
    return undefined;
  });

  const next = { seq, hash: Buffer.from(prev, 'hex'), range: appendLeaves(head.range, leaves), lastReceivedAt: receivedAtMs };
  return { rows, outcomes, accepted, leaves, ...planTiles(head, leaves, next) };
}

function appended({ outcomes, accepted, next }: AppendPlan): Appended {
  const root = rangeRoot(next.range).toString('hex');
  let i = 0;
  return {
    outcomes: outcomes.map((outcome) => outcome ?? { ok: true, ...accepted[i++]!, tree_size: next.seq, root }),
    head: next,
  };
}

const NO_SUBJECT = Buffer.alloc(32);

// An int[] or bigint[] parameter as PostgreSQL's array literal: node-postgres would quote and
// escape each element with two regular expressions.
function intArray(numbers: readonly number[]): string {
  return `{${numbers.join(',')}}`;
}

// personal_values rows as parameters: each row's seq, part, and where its bytes are in one binary
// parameter (its salts, then its pointer_values in UTF-8, end to end); the subject digests end to end.
function personalParameters(personal: EventRows['personal']): [string, string, string, string, string, Buffer, Buffer] {
  const seq: number[] = [];
  const part: number[] = [];
  const at: number[] = [];
  const saltsLength: number[] = [];
  const valuesLength: number[] = [];
  const bytes: Buffer[] = [];
  let offset = 0;
  for (let i = 0; i < personal.length; i++) {
    const { seq: rowSeq, row } = personal[i]!;
    const values = Buffer.from(row.values, 'utf8');
    seq.push(rowSeq);
    part.push(i > 0 && personal[i - 1]!.seq === rowSeq ? part[i - 1]! + 1 : 1);
    at.push(offset);
    saltsLength.push(row.salts.length);
    valuesLength.push(values.length);
    bytes.push(row.salts, values);
    offset += row.salts.length + values.length;
  }
  return [
    intArray(seq),
    intArray(part),
    intArray(at),
    intArray(saltsLength),
    intArray(valuesLength),
    // Zeros where a row has no subject: SQL reads them as NULL (no HMAC-SHA-256 is all zeros but with odds of 2^-256).
    Buffer.concat(personal.map(({ row }) => row.subjectDigest ?? NO_SUBJECT)),
    Buffer.concat(bytes, offset),
  ];
}

/**
 * Inserts the events, their personal values (the erasable store), their idempotency keys and the
 * tiles they complete, and moves the head, in one statement, if the head is still `head` and none
 * of the keys is stored yet; returns whether it wrote. The bytes travel as binary parameters that
 * SQL slices: the hashes end to end after the old head's hash (so row n's prev is hash n - 1), the
 * canonical bodies end to end, and the personal values' salts and text. A bytea[] parameter would
 * be hex text, twice the size and most of the append path's garbage. The personal rows' offsets
 * go as array literals: node-postgres escapes each element of an array parameter with two regular
 * expressions, which with text[] and int[] parameters for three values per event cost 7 µs of
 * Node CPU per event; one JSON parameter instead cost PostgreSQL 2 to 4 µs more per row
 * (json_to_recordset) than unnest of int[] literals and bytea slices. The statement is named: each
 * connection parses it once, and after a few runs PostgreSQL keeps one generic plan for it.
 * Planning it was 0.19 ms of PostgreSQL's 0.42 ms per append (pg_stat_statements, single events
 * on 16 chains).
 */
async function writeEvents(db: pg.Pool | pg.PoolClient, environment: string, head: Head, { rows, next, tiles = [] }: AppendPlan): Promise<boolean> {
  const canonicalAt: number[] = [];
  let at = 0;
  for (const canonical of rows.canonical) {
    canonicalAt.push(at);
    at += canonical.length;
  }
  const receivedAt = new Date(next.lastReceivedAt);
  const written = await db.query({
    name: 'append-events',
    text: `WITH head AS (
       SELECT environment_id FROM chain_heads
        WHERE environment_id = $1 AND seq = $23 AND hash = substring($13::bytea FROM 1 FOR 32)
          AND NOT EXISTS (SELECT FROM idempotency_keys WHERE environment_id = $1 AND key = ANY($15::text[]))
          FOR UPDATE),
     new_events AS (
       INSERT INTO events (environment_id, received_at, seq, id, prev, hash, canonical, action, crud, actor_id, target_id, group_id, created)
       SELECT $1, $2, r.seq, r.id, substring($13::bytea FROM r.n::int * 32 - 31 FOR 32), substring($13::bytea FROM r.n::int * 32 + 1 FOR 32),
              substring($14::bytea FROM r.canonical_at + 1 FOR r.canonical_length), r.action, r.crud, r.actor_id, r.target_id, r.group_id, r.created
         FROM unnest($3::bigint[], $4::uuid[], $5::int[], $6::int[], $7::text[], $8::"char"[], $9::text[], $10::text[], $11::text[],
                     $12::timestamptz[]) WITH ORDINALITY
              AS r(seq, id, canonical_at, canonical_length, action, crud, actor_id, target_id, group_id, created, n)
        WHERE EXISTS (SELECT FROM head)),
     new_keys AS (
       INSERT INTO idempotency_keys (environment_id, received_at, key, digest, seq, id, hash)
       SELECT $1, $2, * FROM unnest($15::text[], $16::bytea[], $17::bigint[], $18::uuid[], $19::bytea[])
        WHERE EXISTS (SELECT FROM head)),
     new_values AS (
       INSERT INTO personal_values (environment_id, seq, part, subject_digest, pointer_values, salts)
       SELECT $1, v.seq, v.part, NULLIF(substring($33::bytea FROM v.n::int * 32 - 31 FOR 32), decode(repeat('00', 32), 'hex')),
              convert_from(substring($34::bytea FROM v.at + v.salts_length + 1 FOR v.values_length), 'UTF8'),
              substring($34::bytea FROM v.at + 1 FOR v.salts_length)
         FROM unnest($28::bigint[], $29::smallint[], $30::int[], $31::int[], $32::int[]) WITH ORDINALITY AS v(seq, part, at, salts_length, values_length, n)
        WHERE EXISTS (SELECT FROM head)),
     new_tiles AS (
       INSERT INTO tiles (environment_id, level, tile_index, hashes, root)
       SELECT $1, t.level, t.tile_index, substring($26::bytea FROM t.n::int * 8192 - 8191 FOR 8192), substring($27::bytea FROM t.n::int * 32 - 31 FOR 32)
         FROM unnest($24::smallint[], $25::bigint[]) WITH ORDINALITY AS t(level, tile_index, n)
        WHERE EXISTS (SELECT FROM head))
     UPDATE chain_heads SET seq = $20, hash = $21, compact_range = $22, last_received_at = $2, updated_at = now()
      WHERE environment_id = (SELECT environment_id FROM head)`,
    values: [
      environment,
      receivedAt,
      rows.seq,
      rows.id,
      canonicalAt,
      rows.canonical.map((canonical) => canonical.length),
      rows.action,
      rows.crud,
      rows.actorId,
      rows.targetId,
      rows.groupId,
      rows.created,
      Buffer.concat([head.hash, ...rows.hash]),
      Buffer.concat(rows.canonical, at),
      rows.keys.map((k) => k.key),
      rows.keys.map((k) => k.digest),
      rows.keys.map((k) => k.receipt.seq),
      rows.keys.map((k) => k.receipt.id),
      rows.keys.map((k) => Buffer.from(k.receipt.hash, 'hex')),
      next.seq,
      next.hash,
      next.range.hashes,
      head.seq,
      tiles.map((t) => t.level),
      tiles.map((t) => t.index),
      Buffer.concat(tiles.map((t) => tileBytes(t.hashes))),
      Buffer.concat(tiles.map((t) => t.root)),
      ...personalParameters(rows.personal),
    ],
  }).catch((error: unknown) => {
    // A sealed or missing day partition: a clear refusal rather than a database error.
    throw dayClosed(error, receivedAt);
  });
  return written.rowCount === 1;
}
