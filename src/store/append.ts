import type pg from 'pg';
import { appendLeaves, rangeRoot, type CompactRange } from '../ledger/compact-range.js';
import { hash, randomFillSync } from 'node:crypto';
import { encodeCanonicalEvent, indexColumns, type AuditEvent, type Commitments } from '../ledger/event.js';
import { canonicalize } from '../ledger/jcs.js';
import { SALT_SIZE, splitPersonal, type PersonalPolicy } from '../ledger/personal.js';
import { extendTails, levelsCompleted, tileBytes, tileHashes, TileNodes, type FullTile, type TileTails } from '../ledger/tiles.js';
import { isUuid, uuidv7 } from '../ledger/uuid.js';
import { dayClosed, PolicyChangedError } from './errors.js';
import { headRange } from './events.js';
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
  /** The chain's policy_seq when its personal data policy was read to split the event (samePolicy); undefined for the ledger's own events. */
  policySeq?: number | undefined;
}

/** How appends split personal data out of events: the chain's policy, and its subjects' keyed digest. */
export interface PersonalSplit {
  policy: PersonalPolicy;
  /** The chain's policy_seq read with `policy`: appends are fenced by it. */
  policySeq: number;
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
    return { event, canonical, key, digest: key === undefined ? undefined : hash('sha256', canonical, 'buffer'), policySeq: personal?.policySeq };
  }
  return {
    event: split.event,
    canonical,
    commitments: { map: split.commitments, canonical: canonicalize(split.commitments) },
    personal: personalRows(split.values, personal.subjectDigest),
    key,
    digest: key === undefined ? undefined : hash('sha256', canonicalize(event), 'buffer'),
    policySeq: personal.policySeq,
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
  /** The seq of the chain's latest policy change (chain_heads.policy_seq). */
  policySeq: number;
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
  /** Whether the chain's head was not the one expected: another process appended since (appendToChain). */
  moved?: boolean;
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
    `BEGIN; SELECT environment_id, seq, hash, compact_range, last_received_at, policy_seq FROM chain_heads
      WHERE environment_id IN (${environments.map((e) => `'${e}'`).join(', ')}) ORDER BY environment_id FOR UPDATE`,
  )) as unknown as pg.QueryResult<HeadRow & { environment_id: string }>[];
  const rows = new Map(results[1]!.rows.map((row) => [row.environment_id, row]));
  return environments.map((environment) => {
    const row = rows.get(environment.toLowerCase());
    if (!row) throw new Error(`no chain head for environment ${environment}`);
    return headOf(environment, row);
  });
}

/** A chain_heads row as the append path reads it. */
interface HeadRow {
  seq: number;
  hash: Buffer;
  compact_range: Buffer[];
  last_received_at: Date | null;
  policy_seq: number;
}

/** The Head of a chain_heads row; its tail is unknown. */
// Throws ChainHeadDamagedError when the row's compact range does not fit its seq: no event is
// appended to a tree that cannot be extended.
function headOf(environment: string, row: HeadRow): Head {
  return {
    seq: row.seq,
    hash: row.hash,
    range: headRange(environment, row.seq, row.compact_range),
    lastReceivedAt: row.last_received_at?.getTime() ?? 0,
    policySeq: Number(row.policy_seq),
  };
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
 * `lockFirst` skips the first try: a caller whose last append found the head moved expects
 * another process to have moved it again, and would plan on `expected` for nothing. The result
 * says whether the head was `expected` (`moved`).
 */
export async function appendToChain(
  db: pg.Pool,
  chain: ChainRef,
  requests: readonly AppendItem[][],
  now: number,
  expected?: Head,
  lockFirst = false,
): Promise<Appended> {
  // A head whose policy is not the requests' one cannot be trusted to be the chain's: locked, it is.
  if (expected && !lockFirst && samePolicy(requests, expected)) {
    const plan = planAppend(chain, expected, requests, new Map(), now);
    if (writable(plan) && (await writeEvents(db, [{ environment: chain.environment, head: expected, plan }]))[0]!.written) return appended(plan);
  }
  const client = await db.connect();
  try {
    return await lockedTransaction(client, [chain.environment], async ([head]) => ({
      ...appended(await appendLocked(client, chain, head!, requests, now)),
      moved: expected !== undefined && head!.seq !== expected.seq,
    }));
  } finally {
    client.release();
  }
}

/** One chain's requests for appendToChains, and the head this process last left on it, if it knows one. */
export interface ChainAppend {
  chain: ChainRef;
  requests: readonly AppendItem[][];
  expected?: Head | undefined;
}

/**
 * What appendToChains did with a part: appended it; or not, with the head it found on the chain
 * (the chain's stored head, locked when read: `head.seq` differs from the expected one when the
 * head moved, and not when a key of the part is stored), or none when the part was left out of
 * the statement (it stores nothing, completes tiles whose tails `expected` lacks, or its events
 * were split under a policy other than `expected`'s: samePolicy).
 */
export type ChainAppended = { appended: Appended } | { appended?: undefined; head?: Head };

// What a part without an expected head expects: no head has seq -1, so the statement writes
// nothing of it and returns its head.
const UNKNOWN_HEAD: Head = { seq: -1, hash: Buffer.alloc(32), range: { size: 0, hashes: [] }, lastReceivedAt: 0, policySeq: 0 };

/**
 * Appends to several chains (each at most once) in one statement: one round trip and one commit
 * for them all, each part's requests on top of its `expected` head as appendToChain's first try
 * does. A part is written only if its chain's head is still `expected` and none of its
 * idempotency keys is stored yet; the others are not, whatever becomes of them, and a part
 * without `expected` never is: the statement only finds its head. Returns what became of each
 * part, in order: the caller appends the parts not written again (on the head found, or with
 * appendToChain without `expected`, which locks the head). Throws the database's error when the
 * statement fails (a sealed day partition in one of the chains), having written none.
 */
export async function appendToChains(db: pg.Pool, parts: readonly ChainAppend[], now: number): Promise<ChainAppended[]> {
  const plans = parts.map(({ chain, requests, expected }) => {
    if (!expected) {
      const plan: AppendPlan = { rows: new EventRows(), outcomes: [], accepted: [], leaves: [], nodes: new TileNodes(), next: UNKNOWN_HEAD, tiles: [] };
      return { environment: chain.environment, head: UNKNOWN_HEAD, plan };
    }
    if (!samePolicy(requests, expected)) return undefined;
    const plan = planAppend(chain, expected, requests, new Map(), now);
    return writable(plan) ? { environment: chain.environment, head: expected, plan } : undefined;
  });
  const writes = plans.filter((write) => write !== undefined);
  const results = writes.length > 0 ? await writeEvents(db, writes) : [];
  let w = 0;
  return plans.map((write) => {
    if (!write) return {};
    const result = results[w++]!;
    return result.written ? { appended: appended(write.plan) } : { head: result.head };
  });
}

/**
 * Whether every event of `requests` was split under the policy `head` follows: the ledger's own
 * events (no policySeq) always are. A policy change moves the head, so a head this process
 * expects is as old as its policy; a locked head is the chain's.
 */
function samePolicy(requests: readonly AppendItem[][], head: Head): boolean {
  return requests.every((items) => items.every((item) => item.policySeq === undefined || item.policySeq === head.policySeq));
}

/** Whether a plan made without looking up keys or tails can be written as it is: it stores events and has its tiles. */
function writable(plan: AppendPlan): boolean {
  return plan.rows.seq.length > 0 && plan.tiles !== undefined;
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
  if (!samePolicy(requests, head)) throw new PolicyChangedError(chain.environment);
  const known = await findKeys(client, chain.environment, [
    ...new Set(requests.flatMap((items) => items.flatMap((i) => (i.key ? [i.key] : [])))),
  ]);
  let plan = planAppend(chain, head, requests, known, now);
  if (!plan.tiles) {
    // Tiles complete here and this process does not carry the tails they extend.
    const tails = await readTails(client, chain.environment, head.seq, levelsCompleted(head.seq, plan.next.seq));
    plan = { ...plan, ...planTiles(head, plan.leaves, plan.next, plan.nodes, tails) };
  }
  if (plan.rows.seq.length > 0 && !(await writeEvents(client, [{ environment: chain.environment, head, plan }]))[0]!.written) {
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
  /** The tile-level nodes `next.range` computed on top of `head.range`: the roots of the tiles completed. */
  nodes: TileNodes;
  next: Head;
  /** The tiles the append completes; undefined when the head does not carry the tails they need. */
  tiles: FullTile[] | undefined;
}

/**
 * The tiles that `leaves` complete on top of `head`, and `next` with its tail after them. Tiles
 * are undefined when they need tails the head does not carry (its tail is unknown, or a level
 * above 0 completes), unless the tails were `read` from the database: those are all there is.
 */
function planTiles(head: Head, leaves: Buffer[], next: Head, nodes: TileNodes, read?: TileTails): { tiles: FullTile[] | undefined; next: Head } {
  const levels = levelsCompleted(head.seq, next.seq);
  if (levels === 0) return { tiles: [], next: { ...next, tail: head.tail && Buffer.concat([head.tail, ...leaves]) } };
  const tails = read ?? (levels === 1 && head.tail ? [tileHashes(head.tail)] : undefined);
  if (!tails) return { tiles: undefined, next };
  const extended = extendTails(head.seq, tails, leaves, nodes);
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

  const nodes = new TileNodes();
  const next = { seq, hash: Buffer.from(prev, 'hex'), range: appendLeaves(head.range, leaves, nodes.onNode), lastReceivedAt: receivedAtMs, policySeq: head.policySeq };
  return { rows, outcomes, accepted, leaves, nodes, ...planTiles(head, leaves, next, nodes) };
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

/** What writeEvents did with a write: wrote it, or found (and locked) the chain's head at `head`. */
type WriteResult = { written: true } | { written: false; head?: Head };

/** One chain's part of writeEvents: the head it expects and the plan built on it. */
interface ChainWrite {
  environment: string;
  head: Head;
  plan: AppendPlan;
}

// The writes' values of one of their columns end to end: concat, since flatMap costs several
// times more per element. One write's are its own.
function column<T>(writes: readonly ChainWrite[], of: (plan: AppendPlan) => readonly T[]): T[] {
  return writes.length === 1 ? (of(writes[0]!.plan) as T[]) : ([] as T[]).concat(...writes.map(({ plan }) => of(plan)));
}

/** The ordinal (from 1) of its write for each of the elements that `of` gives for each write, end to end. */
function ordinals(writes: readonly ChainWrite[], of: (plan: AppendPlan) => readonly unknown[]): string {
  const ordinal: number[] = [];
  for (let k = 0; k < writes.length; k++) for (let i = of(writes[k]!.plan).length; i > 0; i--) ordinal.push(k + 1);
  return intArray(ordinal);
}

// personal_values rows as parameters: each row's chain (its write's ordinal), seq, part, and
// where its bytes are in one binary parameter (its salts, then its pointer_values in UTF-8, end
// to end); the subject digests end to end.
function personalParameters(writes: readonly ChainWrite[]): [string, string, string, string, string, string, Buffer, Buffer] {
  const chain: number[] = [];
  const seq: number[] = [];
  const part: number[] = [];
  const at: number[] = [];
  const saltsLength: number[] = [];
  const valuesLength: number[] = [];
  const bytes: Buffer[] = [];
  const subjects: Buffer[] = [];
  let offset = 0;
  for (const [k, { plan }] of writes.entries()) {
    const personal = plan.rows.personal;
    for (let i = 0; i < personal.length; i++) {
      const { seq: rowSeq, row } = personal[i]!;
      const values = Buffer.from(row.values, 'utf8');
      chain.push(k + 1);
      seq.push(rowSeq);
      part.push(i > 0 && personal[i - 1]!.seq === rowSeq ? part[part.length - 1]! + 1 : 1);
      at.push(offset);
      saltsLength.push(row.salts.length);
      valuesLength.push(values.length);
      bytes.push(row.salts, values);
      // Zeros where a row has no subject: SQL reads them as NULL (no HMAC-SHA-256 is all zeros but with odds of 2^-256).
      subjects.push(row.subjectDigest ?? NO_SUBJECT);
      offset += row.salts.length + values.length;
    }
  }
  return [
    intArray(chain),
    intArray(seq),
    intArray(part),
    intArray(at),
    intArray(saltsLength),
    intArray(valuesLength),
    Buffer.concat(subjects),
    Buffer.concat(bytes, offset),
  ];
}

/**
 * Inserts the events of `writes` (each a different chain's), their personal values (the erasable
 * store), their idempotency keys and the tiles they complete, and moves the heads, in one
 * statement: chains share its round trip and its commit. It locks the heads in ascending chain
 * id order, as every transaction locking several heads does (beginAndLockHeads), so that
 * concurrent processes cannot deadlock; it writes a chain's rows only if that chain's head is
 * still its write's `head` and none of its keys is stored yet. Returns, in order, whether it
 * wrote each write, and for one it did not write the head it found, as locked (the newest, which
 * the caller may append on). Throws when the statement fails, having written nothing: with one
 * write a sealed or missing day partition as a DayClosedError; with several the database's error
 * as it is (the caller retries each chain alone, which then names its day).
 *
 * Each row names its chain by its write's ordinal (from 1), which indexes the chains' arrays
 * (their ids, received_at, new seqs...). The bytes travel as binary parameters that SQL slices:
 * each chain's old head hash then its events' hashes, chain after chain (so the event of ordinal
 * n in chain k has its hash at 32-byte slot n + k and its prev at n + k - 1), the canonical
 * bodies end to end, the chains' compact ranges end to end, and the personal values' salts and
 * text. A bytea[] parameter would be hex text, twice the size and most of the append path's
 * garbage. Integers, the new events' ids and the chains' timestamps go as array literals:
 * node-postgres escapes each element of an
 * array parameter with two regular expressions, which with text[] and int[] parameters for three
 * values per event cost 7 µs of Node CPU per event; one JSON parameter instead cost PostgreSQL 2
 * to 4 µs more per row (json_to_recordset) than unnest of int[] literals and bytea slices. The
 * statement is named: each connection parses it once, and after a few runs PostgreSQL keeps one
 * generic plan for it. Planning it was 0.19 ms of PostgreSQL's 0.42 ms per append
 * (pg_stat_statements, single events on 16 chains, when it wrote one chain). The chains and keys
 * the head check reads come through scalar subqueries, (SELECT $n): a custom plan would know
 * their length and cost its index probes lower than the generic plan does, so PostgreSQL would
 * plan every run again (pg_prepared_statements: 0 generic plans in 13 runs with stored keys).
 */
async function writeEvents(db: pg.Pool | pg.PoolClient, writes: readonly ChainWrite[]): Promise<WriteResult[]> {
  const canonicalAt: number[] = [];
  let at = 0;
  for (const { plan } of writes) {
    for (const canonical of plan.rows.canonical) {
      canonicalAt.push(at);
      at += canonical.length;
    }
  }
  const rows = <T>(of: (rows: EventRows) => readonly T[]): T[] => column(writes, (plan) => of(plan.rows));
  const keys = rows((r) => r.keys);
  const tiles = column(writes, (plan) => plan.tiles ?? []);
  const ranges = column(writes, (plan) => plan.next.range.hashes);
  // Where each chain's compact range starts among them all (in hashes, from 0); each chain's old
  // head hash then its events' hashes.
  const rangeAt: number[] = [];
  let rangeLength = 0;
  const hashes: Buffer[] = [];
  for (const { head, plan } of writes) {
    rangeAt.push(rangeLength);
    rangeLength += plan.next.range.hashes.length;
    hashes.push(head.hash);
    for (const hash of plan.rows.hash) hashes.push(hash);
  }
  const locked = await db.query<{ n: string; expected: boolean } & HeadRow>({
    name: 'append-events',
    text: `WITH known AS (
       SELECT k.chain FROM unnest((SELECT $23::text[]), (SELECT $24::int[])) AS k(key, chain)
        WHERE EXISTS (SELECT FROM idempotency_keys i WHERE i.environment_id = ($1::uuid[])[k.chain] AND i.key = k.key)),
     locked AS (
       SELECT c.n, h.environment_id, h.seq, h.hash, h.compact_range, h.last_received_at, h.policy_seq,
              h.seq = c.seq AND h.hash = substring($7::bytea FROM c.n::int * 32 - 31 FOR 32) AND c.n NOT IN (SELECT chain FROM known) AS expected
         FROM chain_heads h JOIN unnest((SELECT $1::uuid[]), (SELECT $3::bigint[])) WITH ORDINALITY AS c(environment_id, seq, n)
                                 ON c.environment_id = h.environment_id
        ORDER BY h.environment_id FOR UPDATE OF h),
     head AS (SELECT n, environment_id FROM locked WHERE expected),
     written AS (
       SELECT array_agg(l.expected IS TRUE ORDER BY g.n) AS chains
         FROM generate_series(1, cardinality((SELECT $1::uuid[]))) AS g(n) LEFT JOIN locked l ON l.n = g.n),
     new_events AS (
       INSERT INTO events (environment_id, received_at, seq, id, prev, hash, canonical, action, crud, actor_id, target_id, group_id, created)
       SELECT ($1::uuid[])[r.chain], ($2::timestamptz[])[r.chain], r.seq, r.id, substring($21::bytea FROM (r.n::int + r.chain) * 32 - 63 FOR 32),
              substring($21::bytea FROM (r.n::int + r.chain) * 32 - 31 FOR 32), substring($22::bytea FROM r.canonical_at + 1 FOR r.canonical_length),
              r.action, r.crud, r.actor_id, r.target_id, r.group_id, r.created
         FROM unnest($10::int[], $11::bigint[], $12::uuid[], $13::int[], $14::int[], $15::text[], $16::"char"[], $17::text[], $18::text[], $19::text[],
                     $20::timestamptz[]) WITH ORDINALITY
              AS r(chain, seq, id, canonical_at, canonical_length, action, crud, actor_id, target_id, group_id, created, n)
        WHERE ((SELECT chains FROM written)::bool[])[r.chain]),
     new_keys AS (
       INSERT INTO idempotency_keys (environment_id, received_at, key, digest, seq, id, hash)
       SELECT ($1::uuid[])[k.chain], ($2::timestamptz[])[k.chain], k.key, k.digest, k.seq, k.id, k.hash
         FROM unnest($23::text[], $24::int[], $25::bytea[], $26::bigint[], $27::uuid[], $28::bytea[]) AS k(key, chain, digest, seq, id, hash)
        WHERE ((SELECT chains FROM written)::bool[])[k.chain]),
     new_tiles AS (
       INSERT INTO tiles (environment_id, level, tile_index, hashes, root)
       SELECT ($1::uuid[])[t.chain], t.level, t.tile_index, substring($32::bytea FROM t.n::int * 8192 - 8191 FOR 8192), substring($33::bytea FROM t.n::int * 32 - 31 FOR 32)
         FROM unnest($29::int[], $30::smallint[], $31::bigint[]) WITH ORDINALITY AS t(chain, level, tile_index, n)
        WHERE ((SELECT chains FROM written)::bool[])[t.chain]),
     new_values AS (
       INSERT INTO personal_values (environment_id, seq, part, subject_digest, pointer_values, salts)
       SELECT ($1::uuid[])[v.chain], v.seq, v.part, NULLIF(substring($40::bytea FROM v.n::int * 32 - 31 FOR 32), decode(repeat('00', 32), 'hex')),
              convert_from(substring($41::bytea FROM v.at + v.salts_length + 1 FOR v.values_length), 'UTF8'),
              substring($41::bytea FROM v.at + 1 FOR v.salts_length)
         FROM unnest($34::int[], $35::bigint[], $36::smallint[], $37::int[], $38::int[], $39::int[]) WITH ORDINALITY
              AS v(chain, seq, part, at, salts_length, values_length, n)
        WHERE ((SELECT chains FROM written)::bool[])[v.chain]),
     moved AS (
       UPDATE chain_heads h
          SET seq = ($4::bigint[])[c.n], hash = substring($8::bytea FROM c.n::int * 32 - 31 FOR 32),
              compact_range = ARRAY(SELECT substring($9::bytea FROM (($5::int[])[c.n] + i) * 32 + 1 FOR 32) FROM generate_series(0, ($6::int[])[c.n] - 1) AS i ORDER BY i),
              last_received_at = ($2::timestamptz[])[c.n],
              updated_at = now()
         FROM head c WHERE h.environment_id = c.environment_id)
     SELECT n, expected, CASE WHEN NOT expected THEN seq END AS seq, CASE WHEN NOT expected THEN hash END AS hash,
            CASE WHEN NOT expected THEN compact_range END AS compact_range, CASE WHEN NOT expected THEN last_received_at END AS last_received_at,
            CASE WHEN NOT expected THEN policy_seq END AS policy_seq
       FROM locked`,
    values: [
      // The chains.
      writes.map(({ environment }) => environment),
      `{${writes.map(({ plan }) => new Date(plan.next.lastReceivedAt).toISOString()).join(',')}}`,
      intArray(writes.map(({ head }) => head.seq)),
      intArray(writes.map(({ plan }) => plan.next.seq)),
      intArray(rangeAt),
      intArray(writes.map(({ plan }) => plan.next.range.hashes.length)),
      Buffer.concat(writes.map(({ head }) => head.hash)),
      Buffer.concat(writes.map(({ plan }) => plan.next.hash)),
      Buffer.concat(ranges),
      // Their events.
      ordinals(writes, (plan) => plan.rows.seq),
      intArray(rows((r) => r.seq)),
      // Ids this process made (uuidv7): nothing to escape.
      `{${rows((r) => r.id).join(',')}}`,
      intArray(canonicalAt),
      intArray(rows((r) => r.canonical.map((canonical) => canonical.length))),
      rows((r) => r.action),
      rows((r) => r.crud),
      rows((r) => r.actorId),
      rows((r) => r.targetId),
      rows((r) => r.groupId),
      rows((r) => r.created),
      Buffer.concat(hashes),
      Buffer.concat(rows((r) => r.canonical), at),
      // Their idempotency keys.
      keys.map((k) => k.key),
      ordinals(writes, (plan) => plan.rows.keys),
      keys.map((k) => k.digest),
      keys.map((k) => k.receipt.seq),
      keys.map((k) => k.receipt.id),
      keys.map((k) => Buffer.from(k.receipt.hash, 'hex')),
      // The tiles they complete.
      ordinals(writes, (plan) => plan.tiles ?? []),
      intArray(tiles.map((t) => t.level)),
      intArray(tiles.map((t) => t.index)),
      Buffer.concat(tiles.map((t) => tileBytes(t.hashes))),
      Buffer.concat(tiles.map((t) => t.root)),
      // Their personal values.
      ...personalParameters(writes),
    ],
  }).catch((error: unknown) => {
    // A sealed or missing day partition: a clear refusal rather than a database error.
    throw writes.length === 1 ? dayClosed(error, new Date(writes[0]!.plan.next.lastReceivedAt)) : error;
  });
  // A chain without a head row (none is deleted while its environment lives) is not written either.
  const results = new Array<WriteResult>(writes.length).fill({ written: false });
  for (const row of locked.rows) results[Number(row.n) - 1] = row.expected ? { written: true } : { written: false, head: headOf(writes[Number(row.n) - 1]!.environment, row) };
  return results;
}
