// The auditledger client SDK: appends audit events in batches, retries without ever duplicating
// (each event carries an idempotency key from the moment it is queued), bounds its backlog,
// optionally spools to disk so events survive a ledger outage and a client restart, reads events
// back, and checks that the ledger still extends the trees its receipts named.
import { randomUUID } from 'node:crypto';
import { CheckpointError, openCheckpoint, type Checkpoint } from '../ledger/checkpoint.js';
import type { AuditEvent, Crud } from '../ledger/event.js';
import { decodeBase64, parseVerifierKey, type VerifierKey } from '../ledger/keys.js';
import { NoteError } from '../ledger/note.js';
import type { ErasedMarker, MismatchMarker } from '../ledger/personal.js';
import { HASH_SIZE } from '../ledger/hash.js';
import { ProofError, verifyConsistency } from '../ledger/proof.js';
import { tileHashes, tilePath } from '../ledger/tiles.js';
import { inclusionDocumentFromTiles, inclusionTiles, verifyInclusionDocument } from '../ledger/verify-proof.js';
import { BacklogFullError, ClientClosedError, ContextError, CreateEventsError, DeliveryError, LedgerHttpError, VerificationError } from './errors.js';
import { Http, httpError, isNonRetryable, type Bearer, type RetryPolicy } from './http.js';
import { isPlainObject, strictJson } from './json.js';
import { checkHttpOptions, integer, MAX_TIMER_MS, optional, retryPolicy } from './options.js';
import { checkSpoolDir, Spool, type ChainContext, type SpooledEntry, type SpoolFile } from './spool.js';

export { BacklogFullError, ClientClosedError, ContextError, CreateEventsError, DeliveryError, LedgerHttpError, LegalHoldError, VerificationError } from './errors.js';
export type { ChainContext } from './spool.js';
export type { RetryPolicy } from './http.js';
export { isErased, isMismatch, type ErasedMarker, type MismatchMarker } from '../ledger/personal.js';

/**
 * An event to append. Without an `idempotency_key` one is generated, and a missing `created` is
 * the time it was queued (with the caller's own key, the event is sent as given, so that calling
 * again with it finds the first); a Date `created` is sent as its ISO 8601 string. It must be JSON as it is (see
 * createEvent): a member whose value is undefined is left out, anything JSON cannot hold is refused.
 */
export type NewEvent = Omit<AuditEvent, 'created'> & { created?: string | Date; idempotency_key?: string };

/** What createEvents takes: an array of events, or `{ events: [...] }`. */
export type NewEvents = readonly NewEvent[] | { readonly events: readonly NewEvent[] };

/** The ledger's acknowledgement of one event, with the tree the append left behind. */
export interface Receipt {
  id: string;
  seq: number;
  /** Hex event hash. */
  hash: string;
  received_at: string;
  /** Size of the chain's Merkle tree after the append that acknowledged the event (at least seq). */
  tree_size: number;
  /** Hex Merkle root of that tree. */
  root: string;
}

/**
 * A value a personal data policy can name, as reads return it (README "Personal data and
 * erasure"): the value, or in its place an ErasedMarker (its subject was erased; GDPR Art. 17) or
 * a MismatchMarker (the stored value does not match the commitment in the hashed event). Tell
 * them apart with isErased and isMismatch.
 */
export type Erasable<T> = T | ErasedMarker | MismatchMarker;

/** An actor or target as reads return it: its id stays clear, the rest a policy may name. */
export interface ReadParty {
  id: string;
  name?: Erasable<string>;
  href?: Erasable<string>;
  /** The whole map, or any of its values, may be a marker. */
  fields?: Erasable<Record<string, Erasable<string>>>;
}

/**
 * An event as reads return it: what was sent, except that each member a personal data policy can
 * name may be a marker instead. Clear, as policies may not name them: action, crud, created,
 * is_failure, is_anonymous, the ids of actor, target and group, and target.type.
 */
export interface ReadEvent extends Omit<AuditEvent, 'group' | 'actor' | 'target' | 'source_ip' | 'description' | 'fields' | 'external_id' | 'component' | 'version' | 'metadata'> {
  group?: { id: string; name?: Erasable<string> };
  actor?: ReadParty;
  target?: ReadParty & { type?: string };
  source_ip?: Erasable<string>;
  description?: Erasable<string>;
  /** The whole map, or any of its values, may be a marker. */
  fields?: Erasable<Record<string, Erasable<string>>>;
  external_id?: Erasable<string>;
  component?: Erasable<string>;
  version?: Erasable<string>;
  /** The whole object may be a marker; so may any value in it (`unknown` already asks for a check). */
  metadata?: Erasable<Record<string, unknown>>;
}

/** An event as GET /v1/events returns it. */
export interface StoredEvent {
  seq: number;
  id: string;
  received_at: string;
  hash: string;
  prev: string;
  /** The exact stored bytes: RFC 8785 JSON of the ledger body. */
  canonical: string;
  /** The event with its personal values put back, or markers where they were erased. */
  event: ReadEvent | null;
}

/** GET /v1/events filters; `pageSize` is the server's `limit` (1-1000, default 100). */
export interface EventFilters {
  action?: string;
  crud?: Crud;
  actor_id?: string;
  target_id?: string;
  group_id?: string;
  from?: Date | string;
  to?: Date | string;
  seq_from?: number;
  seq_to?: number;
  order?: 'asc' | 'desc';
  pageSize?: number;
  /**
   * Ask the ledger to recompute each page (verify=true): a page that does not verify rejects the
   * iteration with a VerificationError listing what failed. Default: the validateOnQuery option.
   */
  verify?: boolean;
}

/**
 * Whom erase() erases: the data subject's id as events name it (`actor.id`, `target.id`), or its
 * keyed digest as an earlier Erasure gave it (`subject_digest`, 64 lowercase hex digits).
 */
export type ErasureRequest = { subject: string; subject_digest?: never } | { subject_digest: string; subject?: never };

/** POST /v1/erasures' answer: what was erased of one subject, chain by chain (here the token's chain). */
export interface Erasure {
  project_id: string;
  /** Hex HMAC-SHA-256 keyed digest of the subject: how the ledger names it, never by its id. */
  subject_digest: string;
  /** ISO 8601: the first erasure of the subject in the project. */
  requested_at: string;
  /** ISO 8601: the latest one. */
  updated_at: string;
  chains: {
    environment_id: string;
    /** Values erased by every erasure of the subject in this chain, in total. */
    values_erased: number;
    /** The chain's newest `auditledger.subject.erased` event. */
    receipt: Omit<Receipt, 'tree_size' | 'root'>;
  }[];
}

export interface AuditLogClientOptions {
  /** Base URL of the ledger, e.g. `https://audit.example.com`. */
  url: string;
  /** An environment token (`alt_…`). */
  token: string;
  /** Most events per POST /v1/events (the server takes at most 1000). Default 100. */
  batchSize?: number;
  /**
   * Most bytes of one POST /v1/events body: a batch is sent before an event would take it past
   * this. Default 1 MiB (1 048 576); the server takes up to AUDITLEDGER_MAX_BODY_BYTES (default 5 MiB).
   * An event larger than this goes alone.
   */
  maxBatchBytes?: number;
  /** How long the first event of a batch waits for more before the batch is sent. Default 200. */
  flushIntervalMs?: number;
  /** Most events queued and not yet acknowledged; beyond it createEvent rejects. Default 10 000. */
  maxBacklog?: number;
  /** Most events one createEvents call takes; more rejects with a RangeError naming `events`, none queued. Default 1000, as in library mode. */
  maxBulkEvents?: number;
  /** query() verifies each page unless its filters say `verify: false`. Default false. */
  validateOnQuery?: boolean;
  /** Folder of the on-disk spool; without it, queued events live in memory only. */
  spoolDir?: string;
  /**
   * Retries of one request (network errors and 5xx), with exponential backoff and jitter. Default
   * `{attempts: 5, baseDelayMs: 100, maxDelayMs: 5000}`. A batch whose attempts are spent stays
   * queued and is tried again every maxDelayMs until delivered or close().
   */
  retry?: Partial<RetryPolicy>;
  /** Timeout of each HTTP request, in ms. Default 10 000. */
  timeoutMs?: number;
  /** The ledger's verifier key(s), as GET /v1/keys publishes them: needed by checkConsistency. */
  vkey?: string | readonly string[];
  /**
   * The fetch requests go through. An error it throws with `retryable: false` is final: the
   * request is not retried, and the events of its batch reject with that error.
   */
  fetch?: typeof fetch;
  /** Problems no promise can carry: spool I/O, refused events recovered from the spool. Default console.error. */
  onError?: (error: Error) => void;
}

export interface ConsistencyResult {
  ok: boolean;
  /** The receipt's tree size. */
  tree_size: number;
  /** The latest signed checkpoint's size, once one was read. */
  checkpoint_tree_size: number | null;
  /** The verified checkpoint's origin, once one was read. */
  origin: string | null;
  /** Why the ledger is not consistent with the receipt; null when ok. */
  reason: string | null;
}

export interface InclusionResult {
  ok: boolean;
  /** The receipt's seq (its leaf is seq - 1). */
  seq: number;
  /** The latest signed checkpoint's size, once one was read. */
  checkpoint_tree_size: number | null;
  /** The verified checkpoint's origin, once one was read. */
  origin: string | null;
  /** True when the latest checkpoint was signed before the event: try again after the next one. */
  pending: boolean;
  /** Why the event is not proven in the signed tree; null when ok. */
  reason: string | null;
}

export interface VerifyRun {
  run_id: string;
  status: string;
  /** True when the chain's run already waiting was answered rather than a new one queued. */
  deduplicated: boolean;
}

export interface AuditLogClient {
  /**
   * Selects the chain the events created from now on go to: `project` is a project's id or name,
   * `environment` an environment's id or name within it. Synchronous; returns the client.
   * Library mode: resolved when the first batch is sent; a name not found is created, an id not
   * found rejects the events with a ContextError. Events created before any setContext reject.
   * HTTP mode: the token decides the chain; its project and environment are checked once against
   * these (GET /v1/token), and events for another chain reject with a ContextError. Without
   * setContext, the token's chain is used unchecked.
   */
  setContext(project: string, environment: string): AuditLogClient;
  /**
   * Queues an event; resolves with its receipt once the ledger acknowledged its batch. An event
   * JSON cannot hold as it is (NaN, ±Infinity, undefined in an array, a function, a bigint, a
   * Map, Set or other class instance but Date, a cycle) rejects at once with a TypeError naming
   * the field (`event.metadata.n: NaN is not a JSON number`), nothing queued.
   */
  createEvent(event: NewEvent): Promise<Receipt>;
  /**
   * Queues the events, given as an array or as `{events}` (none of them when the backlog has no
   * room for all, when they are more than maxBulkEvents, or when one is not JSON as it is: a
   * TypeError naming it, `events[3].metadata.n: …`); resolves with their receipts. When the
   * ledger stores some and refuses others, rejects with a CreateEventsError naming the first
   * refused by its index and holding each event's receipt or error; when it stores none, with
   * the first reason.
   */
  createEvents(events: NewEvents): Promise<Receipt[]>;
  /** Every matching event, fetching page after page through next_cursor. */
  query(filters?: EventFilters): AsyncIterable<StoredEvent>;
  /**
   * Starts a verification run of the chain (POST /v1/verify), or answers the one waiting. Rejects
   * with a LedgerHttpError `rate_limited` (429) beyond the token's AUDITLEDGER_VERIFY_RATE.
   */
  verify(): Promise<VerifyRun>;
  /**
   * Erases a data subject's personal values in the chain (GDPR Art. 17; POST /v1/erasures, a token
   * with the `erase` scope): from then on they read as ErasedMarker. Idempotent. Rejects with a
   * LegalHoldError (409 `legal_hold`, nothing erased) when a legal hold covers the subject, a
   * LedgerHttpError otherwise (403 without the scope, 400 naming the field), and a TypeError when
   * `request` is not an object.
   */
  erase(request: ErasureRequest): Promise<Erasure>;
  /**
   * Sends everything queued so far and waits for the ledger. Rejects with DeliveryError if the
   * ledger refused some of it, or as soon as the ledger is unreachable: then the events stay
   * queued (in the spool when `spooled` is true, else in memory) and are retried in the
   * background until delivered or close().
   */
  flush(): Promise<void>;
  /** Flushes, then stops; events still undelivered are rejected with DeliveryError (spooled ones stay on disk). */
  close(): Promise<void>;
  /** The receipt with the largest tree size seen so far. */
  readonly lastReceipt: Receipt | undefined;
  /**
   * Checks with the ledger's key that the latest signed checkpoint and the receipt's tree (the
   * last receipt by default) are one log: a truncated or rewritten tail shows as ok: false.
   * Throws when the ledger cannot be asked.
   */
  checkConsistency(receipt?: Pick<Receipt, 'tree_size' | 'root'>): Promise<ConsistencyResult>;
  /**
   * Proves, as any C2SP tlog-tiles client would, that the receipt's event (the last receipt by
   * default) is in the ledger's latest signed checkpoint: the checkpoint from /v1/tlog/checkpoint,
   * its signature checked with the ledger's key, and the O(log n) tiles the RFC 9162 inclusion
   * proof needs from /v1/tlog/tile/…, the proof checked against the signed root. A tile that lies
   * shows as ok: false. Throws when the ledger cannot be asked.
   */
  checkInclusion(receipt?: Pick<Receipt, 'seq' | 'hash'>): Promise<InclusionResult>;
}

/**
 * The HTTP client. Throws TypeError or RangeError naming the option when one is unknown or wrong
 * (`token: required, …`, `url: must be an http(s) URL, …`), never repeating the token or URL.
 */
export function createAuditLogClient(options: AuditLogClientOptions): AuditLogClient {
  checkHttpOptions(options);
  return new Client(options);
}

/**
 * The client's options, and what library mode adds (src/library.ts): how a context becomes a
 * bearer token. Internal: `new Client` does not check `url`, `token` or unknown options, as
 * createAuditLogClient does.
 */
export interface ClientOptions extends AuditLogClientOptions {
  /**
   * Library mode: the bearer token of a context's chain (resolving, or creating, its names).
   * A ContextError it throws rejects the events; any other failure is retried like a network error.
   * Without it, HTTP mode: `token` is the bearer of every request.
   */
  authorize?: (context: ChainContext) => Promise<string>;
  /** Runs once close() has drained the client: library mode stops its jobs and pools there. */
  afterClose?: () => Promise<void>;
}

/** GET /v1/token: the chain of the token. */
interface TokenInfo {
  project: { id: string; name: string };
  environment: { id: string; name: string };
}


interface Settle {
  resolve(receipt: Receipt): void;
  reject(error: Error): void;
}

/** A queued event as JSON, sent byte for byte the same on every attempt. Events recovered from the spool have no one waiting. */
interface Entry extends SpooledEntry {
  settle?: Settle;
}

interface Batch {
  entries: Entry[];
  /** setContext's chain when the batch was opened: each batch goes to one chain. */
  context?: ChainContext | undefined;
  spool?: SpoolFile;
  /** Why some of its events were not delivered. */
  failure?: Error;
}

/** A queued event's JSON, built and checked when it is created. */
interface Prepared {
  json: string;
  key: string;
}

/** `{"events":[` and `]}`: a batch's body is these, its events' JSON, and a comma between each two. */
const BODY_FRAME_BYTES = 13;

interface AppendAnswer {
  events: Omit<Receipt, 'tree_size' | 'root'>[];
  tree_size: number;
  root: string;
}

/** The one client of both modes: HTTP, or (with `authorize`) the ledger's app in-process. */
export class Client implements AuditLogClient {
  private readonly http: Http;
  private readonly maxBulkEvents: number;
  private readonly validateOnQuery: boolean;
  private readonly authorize: ClientOptions['authorize'];
  private readonly afterClose: ClientOptions['afterClose'];
  private context: ChainContext | undefined;
  /** HTTP mode: the check of each context named so far against the token's chain. */
  private readonly checked = new Map<string, Promise<void>>();
  private readonly spool: Spool | undefined;
  private readonly batchSize: number;
  private readonly maxBatchBytes: number;
  private readonly flushIntervalMs: number;
  private readonly maxBacklog: number;
  private readonly pauseMs: number;
  private readonly verifiers: VerifierKey[];
  private readonly onError: (error: Error) => void;
  private readonly recovered: Promise<void>;

  /** The batch collecting events; `ready` are sealed and sent in order, one request at a time. */
  private open: Batch | undefined;
  /** The open batch's events' bytes, a comma each. */
  private openBytes = 0;
  private readonly ready: Batch[] = [];
  private backlog = 0;
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> | undefined;
  private wakeSender = () => {};
  private waiters: ((stuck: Error | undefined) => void)[] = [];
  private closed = false;
  private stopped = false;
  private closing: Promise<void> | undefined;
  private last: Receipt | undefined;
  /** The first verified checkpoint's origin: later ones must be of the same log. */
  private origin: string | undefined;

  constructor(options: ClientOptions) {
    const retry = retryPolicy(options.retry);
    this.batchSize = integer('batchSize', options.batchSize ?? 100, 1, 1000);
    this.maxBatchBytes = integer('maxBatchBytes', options.maxBatchBytes ?? 1024 * 1024, 1);
    this.flushIntervalMs = integer('flushIntervalMs', options.flushIntervalMs ?? 200, 0, MAX_TIMER_MS);
    this.maxBacklog = integer('maxBacklog', options.maxBacklog ?? 10_000, 1);
    this.maxBulkEvents = integer('maxBulkEvents', options.maxBulkEvents ?? 1000, 1);
    this.validateOnQuery = optional('validateOnQuery', options.validateOnQuery, 'boolean', false);
    this.authorize = options.authorize;
    this.afterClose = options.afterClose;
    this.pauseMs = retry.maxDelayMs;
    this.verifiers = verifierKeys(options.vkey);
    this.onError = optional('onError', options.onError, 'function', (error: Error) => console.error(`auditledger client: ${error.message}`));
    const timeoutMs = integer('timeoutMs', options.timeoutMs ?? 10_000, 1, MAX_TIMER_MS);
    const base = options.url.replace(/\/+$/, '');
    this.http = new Http(base, options.token, retry, timeoutMs, optional('fetch', options.fetch, 'function', globalThis.fetch));
    const spoolDir = optional<string | undefined>('spoolDir', options.spoolDir, 'string', undefined);
    if (spoolDir !== undefined) checkSpoolDir(spoolDir);
    this.spool = spoolDir === undefined ? undefined : new Spool(spoolDir, this.onError);
    this.recovered = this.recover();
  }

  get lastReceipt(): Receipt | undefined {
    return this.last;
  }

  setContext(project: string, environment: string): this {
    for (const [name, value] of [
      ['project', project],
      ['environment', environment],
    ] as const) {
      if (typeof value !== 'string' || value.trim() === '') throw new TypeError(`setContext: ${name} must be a non-empty string (an id or a name)`);
    }
    if (this.context?.project === project && this.context.environment === environment) return this;
    // The open batch holds the previous context's events.
    this.seal();
    this.context = { project, environment };
    return this;
  }

  createEvent(event: NewEvent): Promise<Receipt> {
    const refusal = this.refusal(1);
    if (refusal) return Promise.reject(refusal);
    let prepared: Prepared;
    try {
      prepared = prepare(event, 'event');
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return new Promise((resolve, reject) => this.enqueue(prepared, { resolve, reject }));
  }

  createEvents(events: NewEvents): Promise<Receipt[]> {
    const list = isEventArray(events) ? events : events?.events;
    if (!Array.isArray(list)) return Promise.reject(new TypeError('events: createEvents takes an array of events, or { events: [...] }'));
    if (list.length > this.maxBulkEvents) {
      return Promise.reject(new RangeError(`events: ${list.length} events in one createEvents call, more than maxBulkEvents (${this.maxBulkEvents}); none was queued`));
    }
    const refusal = this.refusal(list.length);
    if (refusal) return Promise.reject(refusal);
    let prepared: Prepared[];
    try {
      // Every event is checked before any is queued: one that is not JSON queues none of them.
      prepared = list.map((event: NewEvent, i) => prepare(event, `events[${i}]`));
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const queued = prepared.map((event) => new Promise<Receipt>((resolve, reject) => this.enqueue(event, { resolve, reject })));
    return Promise.allSettled(queued).then((results) => {
      if (results.every((r) => r.status === 'fulfilled')) return results.map((r) => (r as PromiseFulfilledResult<Receipt>).value);
      // Some stored, some not: the caller must learn which. None stored: the first reason is all.
      if (results.some((r) => r.status === 'fulfilled')) throw new CreateEventsError(results);
      throw (results[0] as PromiseRejectedResult).reason;
    });
  }

  async *query(filters: EventFilters = {}): AsyncIterable<StoredEvent> {
    const asked = { ...filters, verify: (filters.verify ?? this.validateOnQuery) || undefined };
    const bearer = await this.requestBearer();
    let cursor: string | null = null;
    do {
      const page: { events: StoredEvent[]; next_cursor: string | null; verification?: { ok: boolean; failures: { seq: number; reason: string }[] } } =
        await this.http.json('GET', `/v1/events?${queryString(asked, cursor)}`, bearer);
      if (page.verification && !page.verification.ok) throw new VerificationError(page.verification.failures);
      yield* page.events;
      cursor = page.next_cursor;
    } while (cursor);
  }

  async verify(): Promise<VerifyRun> {
    return this.http.json('POST', '/v1/verify', await this.requestBearer());
  }

  async erase(request: ErasureRequest): Promise<Erasure> {
    if (!isPlainObject(request)) throw new TypeError('erase: takes {subject} or {subject_digest}');
    return this.http.json('POST', '/v1/erasures', await this.requestBearer(), strictJson(request, 'erase'));
  }

  async flush(): Promise<void> {
    await this.recovered;
    this.seal();
    const waitingFor = [...this.ready];
    this.wakeSender();
    while (waitingFor.some((batch) => this.ready.includes(batch))) {
      const stuck = await new Promise<Error | undefined>((resolve) => this.waiters.push(resolve));
      if (stuck) throw stuck;
    }
    const failed = waitingFor.filter((batch) => batch.failure);
    if (failed.length > 0) {
      throw new DeliveryError(`${failed.length} batch(es) were not wholly delivered: ${failed[0]!.failure!.message}`, false, { cause: failed[0]!.failure });
    }
  }

  close(): Promise<void> {
    return (this.closing ??= this.shutDown());
  }

  async checkConsistency(receipt = this.last): Promise<ConsistencyResult> {
    if (this.verifiers.length === 0) throw new Error("checkConsistency needs the ledger's verifier key: pass the vkey option (GET /v1/keys)");
    if (!receipt) throw new Error('checkConsistency needs a receipt: append an event first, or pass one');
    let checkpoint: Checkpoint | undefined;
    const result = (reason: string | null): ConsistencyResult => ({
      ok: reason === null,
      tree_size: receipt.tree_size,
      checkpoint_tree_size: checkpoint?.size ?? null,
      origin: checkpoint?.origin ?? null,
      reason,
    });
    try {
      const bearer = await this.requestBearer();
      checkpoint = await this.latestCheckpoint(bearer);
      const head = await this.http.json<{ tree_size: number }>('GET', '/v1/chain', bearer);
      const largest = Math.max(receipt.tree_size, checkpoint.size);
      if (head.tree_size < largest) {
        return result(`the chain has ${head.tree_size} events, fewer than the ${largest} it acknowledged: its tail was removed`);
      }
      await this.proveConsistent(receipt, checkpoint, bearer);
      return result(null);
    } catch (error) {
      if (!isInconsistency(error)) throw error;
      return result(error.message);
    }
  }

  async checkInclusion(receipt: Pick<Receipt, 'seq' | 'hash'> | undefined = this.last): Promise<InclusionResult> {
    if (this.verifiers.length === 0) throw new Error("checkInclusion needs the ledger's verifier key: pass the vkey option (GET /v1/keys)");
    if (!receipt) throw new Error('checkInclusion needs a receipt: append an event first, or pass one');
    if (!Number.isSafeInteger(receipt.seq) || receipt.seq < 1) throw new TypeError(`receipt.seq: must be a whole number from 1, got ${JSON.stringify(receipt.seq)}`);
    if (typeof receipt.hash !== 'string' || !/^[0-9a-f]{64}$/.test(receipt.hash)) throw new TypeError('receipt.hash: must be the event hash, 64 lowercase hex digits');
    let checkpoint: Checkpoint | undefined;
    const result = (reason: string | null, pending = false): InclusionResult => ({
      ok: reason === null,
      seq: receipt.seq,
      checkpoint_tree_size: checkpoint?.size ?? null,
      origin: checkpoint?.origin ?? null,
      pending,
      reason,
    });
    try {
      const bearer = await this.requestBearer();
      const note = await (await this.http.ok('GET', '/v1/tlog/checkpoint', bearer)).text();
      checkpoint = this.openLatest(note);
      if (receipt.seq > checkpoint.size) return result(`the latest checkpoint covers ${checkpoint.size} events, not yet event ${receipt.seq}`, true);
      const index = receipt.seq - 1;
      const read = inclusionTiles(index, checkpoint.size).map(async (tile) => {
        const bytes = new Uint8Array(await (await this.http.ok('GET', `/v1/tlog/${tilePath({ ...tile, kind: 'hash' })}`, bearer)).arrayBuffer());
        if (bytes.length !== tile.width * HASH_SIZE) throw new ProofError(`tile ${tile.level}/${tile.index} has ${bytes.length} bytes, not ${tile.width * HASH_SIZE}`);
        return [`${tile.level}/${tile.index}`, tileHashes(bytes)] as const;
      });
      const proof = inclusionDocumentFromTiles(note, checkpoint.size, index, new Map(await Promise.all(read)));
      // The tiles give the leaf too: it must be the receipt's event, and the proof reach the signed root.
      if (Buffer.from(proof.leaf_hash, 'base64').toString('hex') !== receipt.hash) return result(`leaf ${index} of the signed tree is not the receipt's event hash`);
      verifyInclusionDocument(proof, this.verifiers);
      return result(null);
    } catch (error) {
      if (!isInconsistency(error)) throw error;
      return result(error.message);
    }
  }

  /** A checkpoint note, its signature checked with the ledger's key and its origin with the first one seen. */
  private openLatest(note: string): Checkpoint {
    const { checkpoint } = openCheckpoint(note, this.verifiers, this.origin);
    this.origin ??= checkpoint.origin;
    return checkpoint;
  }

  /** The latest signed checkpoint, its signature checked with the ledger's key. */
  private async latestCheckpoint(bearer: Bearer | undefined): Promise<Checkpoint> {
    const { note } = await this.http.json<{ note: string }>('GET', '/v1/checkpoints/latest', bearer);
    return this.openLatest(note);
  }

  /** RFC 9162 consistency of the receipt's tree and the checkpoint's, whichever is older. */
  private async proveConsistent(receipt: Pick<Receipt, 'tree_size' | 'root'>, checkpoint: Checkpoint, bearer: Bearer | undefined): Promise<void> {
    // Receipts carry hex roots; checkpoints and proofs base64.
    const ours = { size: receipt.tree_size, root: Buffer.from(receipt.root, 'hex') };
    const [older, newer] = ours.size <= checkpoint.size ? [ours, checkpoint] : [checkpoint, ours];
    let proof: Uint8Array[] = [];
    if (older.size < newer.size) {
      const answer = await this.http.json<{ proof: string[] }>('GET', `/v1/consistency?from=${older.size}&to=${newer.size}`, bearer);
      proof = answer.proof.map((hash, i) => {
        const bytes = decodeBase64(hash);
        if (!bytes) throw new ProofError(`proof[${i}] is not base64`);
        return bytes;
      });
    }
    verifyConsistency(older.size, newer.size, proof, older.root, newer.root);
  }

  /**
   * The bearer of a read's or verify's request, for the current context: library mode's for its
   * chain; HTTP mode's token (undefined), once checked against the context (ContextError).
   */
  private async requestBearer(): Promise<Bearer | undefined> {
    if (!this.authorize && this.context) await this.checkToken(this.context);
    return this.bearer(this.context);
  }

  /** Library mode's bearer of `context`'s chain; undefined in HTTP mode (the token). */
  private bearer(context: ChainContext | undefined): Bearer | undefined {
    const authorize = this.authorize;
    if (!authorize) return undefined;
    return () => (context ? authorize(context) : Promise.reject(noContext()));
  }

  /**
   * HTTP mode: that the token's chain is `context`'s (ids or names), asked once per context
   * (GET /v1/token). Rejects with a ContextError when it is not; a failure to ask is asked again next time.
   */
  private checkToken(context: ChainContext): Promise<void> {
    const key = JSON.stringify([context.project, context.environment]);
    let check = this.checked.get(key);
    if (!check) {
      check = this.http.json<TokenInfo>('GET', '/v1/token').then(({ project, environment }) => {
        const names = (named: string, actual: { id: string; name: string }) => named === actual.id || named === actual.name;
        if (names(context.project, project) && names(context.environment, environment)) return;
        throw new ContextError(
          `setContext(${JSON.stringify(context.project)}, ${JSON.stringify(context.environment)}): the token is for project ${JSON.stringify(project.name)} (${project.id}), environment ${JSON.stringify(environment.name)} (${environment.id}); in HTTP mode the token decides the chain, so use that chain's token`,
        );
      });
      check.catch((error: unknown) => {
        if (!(error instanceof ContextError)) this.checked.delete(key);
      });
      this.checked.set(key, check);
    }
    return check;
  }

  private refusal(events: number): Error | undefined {
    if (this.closed) return new ClientClosedError();
    if (this.authorize && !this.context) return noContext();
    if (this.backlog + events > this.maxBacklog) return new BacklogFullError(this.maxBacklog);
    return undefined;
  }

  private enqueue({ json, key }: Prepared, settle: Settle): void {
    const bytes = Buffer.byteLength(json);
    // The batch's body would grow past maxBatchBytes: send it as it is, this event starts the next.
    if (this.open && BODY_FRAME_BYTES + this.openBytes + bytes > this.maxBatchBytes) this.seal();
    const batch = (this.open ??= { entries: [], context: this.context, spool: this.spool?.newFile(this.context) });
    batch.entries.push({ json, key, settle });
    this.openBytes += bytes + 1;
    batch.spool?.add(json);
    this.backlog++;
    if (batch.entries.length >= this.batchSize) this.seal();
    else this.timer ??= setTimeout(() => this.seal(), this.flushIntervalMs);
  }

  /** Moves the open batch to the send queue. */
  private seal(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.open) return;
    this.ready.push(this.open);
    this.open = undefined;
    this.openBytes = 0;
    this.startSending();
  }

  private startSending(): void {
    this.sending ??= this.sendAll().finally(() => {
      this.sending = undefined;
      // A batch sealed while the loop was finishing must not wait for the next one.
      if (this.ready.length > 0 && !this.stopped) this.startSending();
    });
  }

  private async sendAll(): Promise<void> {
    await this.recovered;
    for (let batch = this.ready[0]; batch && !this.stopped; batch = this.ready[0]) {
      const stuck = await this.send(batch);
      if (!stuck) this.ready.shift();
      for (const wake of this.waiters.splice(0)) wake(stuck);
      // The ledger is unreachable and the batch is spooled: try again later, or when flush asks.
      if (stuck) await this.pause();
    }
  }

  /**
   * Sends a batch until each event is acknowledged or refused. When the ledger is unreachable
   * (the retries of a request are spent) returns why: the batch stays queued, in memory and in
   * its spool file if it has one, and is tried again later; the backlog bound limits the memory.
   */
  private async send(batch: Batch): Promise<DeliveryError | undefined> {
    await batch.spool?.written();
    // Events per request: all, until the ledger finds a body too large (413); then halves of it.
    let size = batch.entries.length;
    while (batch.entries.length > 0) {
      const part = batch.entries.slice(0, size);
      let answer: AppendAnswer | Error;
      try {
        answer = await this.post(part, batch.context);
      } catch (error) {
        const spooled = batch.spool?.durable === true;
        const where = spooled ? 'in the spool' : 'in memory';
        return new DeliveryError(`the ledger is unreachable: ${(error as Error).message}; the events are still queued (${where}) and retried until delivered or close()`, spooled, {
          cause: error,
        });
      }
      if (!(answer instanceof Error)) {
        this.acknowledge(batch.entries.splice(0, part.length), answer);
      } else if (isTooLarge(answer) && part.length > 1) {
        // Too large together is no refusal of the events: each half is sent on its own.
        size = Math.ceil(part.length / 2);
      } else {
        this.refuse(batch, part.length, isTooLarge(answer) ? tooLargeEvent(part[0]!, answer) : answer);
      }
    }
    if (batch.spool) await (batch.failure ? this.spool!.keepRejected(batch.spool) : this.spool!.remove(batch.spool));
    return undefined;
  }

  /**
   * POST /v1/events of `entries` to `context`'s chain, with retries; a refusal (a 4xx, a
   * ContextError, an error marked `retryable: false`) comes back as the error rather than thrown.
   */
  private async post(entries: Entry[], context: ChainContext | undefined): Promise<AppendAnswer | Error> {
    let res: Response;
    try {
      if (!this.authorize && context) await this.checkToken(context);
      res = await this.http.request('POST', '/v1/events', `{"events":[${entries.map((entry) => entry.json).join(',')}]}`, this.bearer(context));
    } catch (error) {
      if (isNonRetryable(error) || (error instanceof LedgerHttpError && error.status < 500)) return error as Error;
      throw error;
    }
    if (!res.ok) return httpError(res);
    const answer = (await res.json()) as AppendAnswer;
    // Something in between (a proxy, say) answered: the events cannot count as acknowledged.
    if (answer?.events?.length !== entries.length) throw new Error(`POST /v1/events answered ${res.status} without a receipt for each event`);
    return answer;
  }

  private acknowledge(entries: Entry[], answer: AppendAnswer): void {
    entries.forEach((entry, i) => {
      const receipt: Receipt = { ...answer.events[i]!, tree_size: answer.tree_size, root: answer.root };
      this.backlog--;
      entry.settle?.resolve(receipt);
    });
    if (!this.last || answer.tree_size > this.last.tree_size) {
      this.last = { ...answer.events.at(-1)!, tree_size: answer.tree_size, root: answer.root };
    }
  }

  /**
   * The ledger refused the request of the batch's first `count` events. When its details name
   * events of it (`events.3.source_ip`), only those are rejected, each with a LedgerHttpError
   * naming its own fields (`source_ip: …`), and the rest go in the next request; otherwise all are.
   */
  private refuse(batch: Batch, count: number, error: Error): void {
    const http = error instanceof LedgerHttpError ? error : undefined;
    const named = http && problemsByEvent(http.details, count);
    batch.failure ??= error;
    const kept: Entry[] = [];
    batch.entries.slice(0, count).forEach((entry, i) => {
      const problems = named?.get(i);
      if (!named) this.reject(entry, error);
      else if (problems) this.reject(entry, new LedgerHttpError(http!.status, http!.code, fieldsMessage(problems), problems));
      else kept.push(entry);
    });
    batch.entries.splice(0, count, ...kept);
  }

  private reject(entry: Entry, error: Error): void {
    this.backlog--;
    if (entry.settle) entry.settle.reject(error);
    else this.onError(new Error(`a spooled event (idempotency_key ${entry.key}) was not delivered: ${error.message}`, { cause: error }));
  }

  private pause(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.pauseMs);
      this.wakeSender = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Queues the batches an earlier client spooled, ahead of anything this one queued meanwhile. */
  private async recover(): Promise<void> {
    const recovered: Batch[] = [];
    for (const { spool, entries, context } of (await this.spool?.recover()) ?? []) {
      if (entries.length === 0) await this.spool!.remove(spool);
      else recovered.push({ entries, spool, context });
      this.backlog += entries.length;
    }
    this.ready.unshift(...recovered);
  }

  private async shutDown(): Promise<void> {
    this.closed = true;
    await this.flush().catch(() => {
      // What was not delivered is rejected below, or already was.
    });
    this.stopped = true;
    this.wakeSender();
    await this.sending;
    for (const batch of this.ready.splice(0)) {
      await batch.spool?.written();
      const spooled = batch.spool?.durable === true;
      const error = new DeliveryError(
        spooled
          ? 'the client closed before the ledger acknowledged the event; it is kept in the spool, and the next client started with this spoolDir sends it'
          : 'the client closed before the ledger acknowledged the event: it was not delivered',
        spooled,
      );
      for (const entry of batch.entries) entry.settle?.reject(error);
    }
    await this.afterClose?.();
  }
}

/**
 * The event's JSON and idempotency key, fixed now so that every retry, and a re-send from the
 * spool, is recognized by the ledger. Throws a TypeError naming the field (under `path`) when the
 * event is not JSON as it is: that fails its own call, not a batch.
 */
function prepare(event: NewEvent, path: string): Prepared {
  if (!isPlainObject(event)) throw new TypeError(`${path}: must be an object`);
  // An event with the caller's own key is sent as given: a `created` filled in here would differ
  // between two calls of it, and the ledger would answer the second with idempotency_conflict.
  if (event.idempotency_key !== undefined) return { json: strictJson(event, path), key: event.idempotency_key };
  const key = randomUUID();
  return { json: strictJson({ ...event, created: event.created ?? new Date(), idempotency_key: key }, path), key };
}

/** The ledger's problems grouped by the event they name (`events.3.x` → 3: `x`); undefined unless each names one of the first `count`. */
function problemsByEvent(details: LedgerHttpError['details'], count: number): Map<number, LedgerHttpError['details']> | undefined {
  const byEvent = new Map<number, LedgerHttpError['details']>();
  for (const { field, message } of details) {
    const named = /^events\.(\d+)(?:\.(.+))?$/.exec(field);
    const index = Number(named?.[1]);
    if (!named || index >= count) return undefined;
    byEvent.set(index, [...(byEvent.get(index) ?? []), { field: named[2] ?? 'event', message }]);
  }
  return byEvent.size > 0 ? byEvent : undefined;
}

function fieldsMessage(problems: LedgerHttpError['details']): string {
  return problems.map(({ field, message }) => `${field}: ${message}`).join('; ');
}

function isTooLarge(error: Error): error is LedgerHttpError {
  return error instanceof LedgerHttpError && error.status === 413;
}

/** A 413 for one event alone: the event itself is larger than the ledger takes. */
function tooLargeEvent(entry: Entry, error: LedgerHttpError): LedgerHttpError {
  const bytes = Buffer.byteLength(entry.json);
  return new LedgerHttpError(
    error.status,
    error.code,
    `the event's JSON is ${bytes} bytes, too large for the ledger even alone in a request (its body limit is the server's AUDITLEDGER_MAX_BODY_BYTES, default 5 MiB)`,
  );
}

/** The `vkey` option's keys, checked: TypeError naming `vkey` when one is not a verifier key. */
function verifierKeys(vkey: unknown): VerifierKey[] {
  const keys = typeof vkey === 'string' ? [vkey] : (vkey ?? []);
  if (!Array.isArray(keys)) throw new TypeError('vkey: must be a verifier key (GET /v1/keys) or an array of them');
  return keys.map((key: unknown, i) => {
    try {
      return parseVerifierKey(key as string);
    } catch (error) {
      throw new TypeError(`vkey${Array.isArray(vkey) ? `[${i}]` : ''}: ${(error as Error).message}`);
    }
  });
}

function noContext(): ContextError {
  return new ContextError('no context: call setContext(project, environment) before creating events or reading; library mode writes to the chain it names');
}

function isEventArray(events: NewEvents): events is readonly NewEvent[] {
  return Array.isArray(events);
}

/** A ledger answer that shows the log is not what the receipt and checkpoint say: not a transport problem. */
function isInconsistency(error: unknown): error is Error {
  return (
    error instanceof ProofError ||
    error instanceof NoteError ||
    error instanceof CheckpointError ||
    // A proof over leaves the chain no longer has.
    (error instanceof LedgerHttpError && error.code === 'chain_damaged')
  );
}

function queryString(filters: EventFilters, cursor: string | null): string {
  const { pageSize, from, to, ...rest } = filters;
  const iso = (date: Date | string | undefined) => (date instanceof Date ? date.toISOString() : date);
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...rest, limit: pageSize, from: iso(from), to: iso(to), cursor })) {
    if (value !== undefined && value !== null) params.set(name, String(value));
  }
  return params.toString();
}
