// The auditledger client SDK: appends audit events in batches, retries without ever duplicating
// (each event carries an idempotency key from the moment it is queued), bounds its backlog,
// optionally spools to disk so events survive a ledger outage and a client restart, reads events
// back, and checks that the ledger still extends the trees its receipts named.
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError, openCheckpoint, type Checkpoint } from '../ledger/checkpoint.js';
import type { AuditEvent, Crud } from '../ledger/event.js';
import { decodeBase64, parseVerifierKey, type VerifierKey } from '../ledger/keys.js';
import { NoteError } from '../ledger/note.js';
import { ProofError, verifyConsistency } from '../ledger/proof.js';

/** An event to append. Without an `idempotency_key` one is generated; without `created`, the time it was queued. */
export type NewEvent = AuditEvent & { idempotency_key?: string };

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

/** An event as GET /v1/events returns it. */
export interface StoredEvent {
  seq: number;
  id: string;
  received_at: string;
  hash: string;
  prev: string;
  /** The exact stored bytes: RFC 8785 JSON of the ledger body. */
  canonical: string;
  event: AuditEvent | null;
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
}

export interface RetryPolicy {
  /** Tries per request, the first included. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface AuditLogClientOptions {
  /** Base URL of the ledger, e.g. `https://audit.example.com`. */
  url: string;
  /** An environment token (`alt_…`). */
  token: string;
  /** Most events per POST /v1/events (the server takes at most 1000). Default 100. */
  batchSize?: number;
  /** How long the first event of a batch waits for more before the batch is sent. Default 200. */
  flushIntervalMs?: number;
  /** Most events queued and not yet acknowledged; beyond it createEvent rejects. Default 10 000. */
  maxBacklog?: number;
  /** Folder of the on-disk spool; without it, queued events live in memory only. */
  spoolDir?: string;
  /** Default `{attempts: 5, baseDelayMs: 100, maxDelayMs: 5000}`. */
  retry?: Partial<RetryPolicy>;
  /** Timeout of each HTTP request. Default 10 000. */
  timeoutMs?: number;
  /** The ledger's verifier key(s), as GET /v1/keys publishes them: needed by checkConsistency. */
  vkey?: string | readonly string[];
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

export interface VerifyRun {
  run_id: string;
  status: string;
}

export interface AuditLogClient {
  /** Queues an event; resolves with its receipt once the ledger acknowledged its batch. */
  createEvent(event: NewEvent): Promise<Receipt>;
  /** Queues the events (none of them when the backlog has no room for all); resolves with their receipts. */
  createEvents(events: readonly NewEvent[]): Promise<Receipt[]>;
  /** Every matching event, fetching page after page through next_cursor. */
  query(filters?: EventFilters): AsyncIterable<StoredEvent>;
  /** Starts a verification run of the chain (POST /v1/verify). */
  verify(): Promise<VerifyRun>;
  /**
   * Sends everything queued so far and waits for the ledger. Rejects with DeliveryError if any of
   * it was not delivered, or, with a spool, as soon as the ledger is unreachable (the events stay
   * spooled and are retried in the background).
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
}

/** The backlog is full: the event was not queued. */
export class BacklogFullError extends Error {
  override name = 'BacklogFullError';
  constructor(readonly limit: number) {
    super(`the audit event backlog is full (${limit} events wait for the ledger): the event was not queued`);
  }
}

/** The ledger refused a request (4xx), or kept failing (5xx). */
export class LedgerHttpError extends Error {
  override name = 'LedgerHttpError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: { field: string; message: string }[] = [],
  ) {
    super(`auditledger answered ${status} ${code}: ${message}`);
  }
}

/** Events that did not reach the ledger. `spooled`: they are safe in the spool and a later client sends them. */
export class DeliveryError extends Error {
  override name = 'DeliveryError';
  constructor(
    message: string,
    readonly spooled: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class ClientClosedError extends Error {
  override name = 'ClientClosedError';
  constructor() {
    super('the audit log client is closed: the event was not queued');
  }
}

export function createAuditLogClient(options: AuditLogClientOptions): AuditLogClient {
  return new Client(options);
}

// ---- HTTP ----

const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseDelayMs: 100, maxDelayMs: 5000 };

/** Requests to the ledger: bearer token, timeout, and retries of network errors and 5xx answers. */
class Http {
  constructor(
    private readonly base: string,
    private readonly token: string,
    private readonly retry: RetryPolicy,
    private readonly timeoutMs: number,
    private readonly fetch: typeof globalThis.fetch,
  ) {}

  /** The first answer below 500; throws the last failure once the attempts are used up. */
  async request(method: 'GET' | 'POST', route: string, json?: string): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (json !== undefined) headers['content-type'] = 'application/json';
    const init = { method, headers, body: json };
    for (let attempt = 1; ; attempt++) {
      let failure: Error;
      try {
        const res = await this.fetch(`${this.base}${route}`, { ...init, signal: AbortSignal.timeout(this.timeoutMs) });
        if (res.status < 500) return res;
        failure = await httpError(res);
      } catch (error) {
        failure = error instanceof Error ? error : new Error(String(error));
      }
      if (attempt >= this.retry.attempts) throw failure;
      await sleep(backoff(this.retry, attempt));
    }
  }

  async json<T>(method: 'GET' | 'POST', route: string): Promise<T> {
    const res = await this.request(method, route);
    if (!res.ok) throw await httpError(res);
    return (await res.json()) as T;
  }
}

async function httpError(res: Response): Promise<LedgerHttpError> {
  const text = await res.text().catch(() => '');
  let error: { code?: string; message?: string; details?: { field: string; message: string }[] } = {};
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error ?? {};
  } catch {
    // Not the ledger's JSON (a proxy's page, say): the text itself is the best message.
  }
  const details = Array.isArray(error.details) ? error.details : [];
  return new LedgerHttpError(res.status, error.code ?? 'http_error', error.message ?? (text.slice(0, 200) || res.statusText), details);
}

/** Exponential, half of it random so that clients that failed together do not retry together. */
function backoff({ baseDelayMs, maxDelayMs }: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---- Spool ----

type QueuedEvent = AuditEvent & { idempotency_key: string; created: string };

const SPOOL_SUFFIX = '.jsonl';
const REJECTED_SUFFIX = '.rejected';

/**
 * One batch's spool file: its events as JSON lines, appended and fsynced as they are queued, so
 * an event is on disk moments after createEvent, long before the batch is sent. Deleted after
 * the ledger's ack; a crash mid-append leaves at most a torn last line, which recovery skips.
 */
class SpoolFile {
  /** False once a write failed: some events of this batch exist in memory only. */
  durable = true;
  private lines: string[] = [];
  private scheduled = false;

  constructor(
    readonly file: string,
    private writes: Promise<unknown>,
    private readonly onError: (error: Error) => void,
    private exists = false,
  ) {}

  add(json: string): void {
    this.lines.push(`${json}\n`);
    if (this.scheduled) return;
    this.scheduled = true;
    // Events queued while a write is under way go out together in the next one: one fsync for all.
    this.writes = this.writes.then(() => this.writeQueued());
  }

  /** Resolves once every added event was written (or its write failed and was reported). */
  async written(): Promise<void> {
    await this.writes;
  }

  private async writeQueued(): Promise<void> {
    this.scheduled = false;
    const text = this.lines.join('');
    this.lines = [];
    try {
      await appendDurably(this.file, text, !this.exists);
      this.exists = true;
    } catch (error) {
      this.durable = false;
      this.onError(new Error(`auditledger spool: could not write ${this.file}; its events are kept in memory only`, { cause: error }));
    }
  }
}

async function appendDurably(file: string, text: string, isNew: boolean): Promise<void> {
  const handle = await open(file, 'a', 0o600);
  try {
    await handle.appendFile(text);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  // A new file's directory entry must be durable too, or a crash could lose the whole file.
  if (isNew) {
    const dir = await open(path.dirname(file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** The spool folder: one file per batch, named so that they sort in the order they were queued. */
class Spool {
  /** The files an earlier client left, listed before this one writes any. */
  private readonly leftOver: Promise<string[]>;
  private count = 0;

  constructor(
    private readonly dir: string,
    private readonly onError: (error: Error) => void,
  ) {
    this.leftOver = mkdir(dir, { recursive: true, mode: 0o700 })
      .then(() => readdir(dir))
      .then(
        (names) => names.filter((name) => name.endsWith(SPOOL_SUFFIX)).sort(),
        (error: unknown) => {
          onError(new Error(`auditledger spool: cannot use ${dir}`, { cause: error }));
          return [];
        },
      );
  }

  newFile(): SpoolFile {
    const name = `${String(Date.now()).padStart(15, '0')}-${String(this.count++).padStart(9, '0')}-${randomUUID()}${SPOOL_SUFFIX}`;
    return new SpoolFile(path.join(this.dir, name), this.leftOver, this.onError);
  }

  /** The batches an earlier client spooled and the ledger never acknowledged. */
  async recover(): Promise<{ spool: SpoolFile; entries: Entry[] }[]> {
    const batches = [];
    for (const name of await this.leftOver) {
      const file = path.join(this.dir, name);
      try {
        batches.push({ spool: new SpoolFile(file, Promise.resolve(), this.onError, true), entries: this.parse(file, await readFile(file, 'utf8')) });
      } catch (error) {
        this.onError(new Error(`auditledger spool: cannot read ${file}`, { cause: error }));
      }
    }
    return batches;
  }

  async remove(spool: SpoolFile): Promise<void> {
    await unlink(spool.file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') this.onError(new Error(`auditledger spool: cannot delete ${spool.file}`, { cause: error }));
    });
  }

  /** Keeps a batch the ledger refused some of for a person to look at; its idempotency keys make re-sending it harmless. */
  async keepRejected(spool: SpoolFile): Promise<void> {
    await rename(spool.file, `${spool.file}${REJECTED_SUFFIX}`).catch((error: unknown) =>
      this.onError(new Error(`auditledger spool: cannot rename ${spool.file}`, { cause: error })),
    );
  }

  private parse(file: string, text: string): Entry[] {
    const entries: Entry[] = [];
    // Only lines that ended in a newline were written whole.
    for (const json of text.slice(0, text.lastIndexOf('\n') + 1).split('\n')) {
      if (json === '') continue;
      try {
        entries.push({ json, key: (JSON.parse(json) as QueuedEvent).idempotency_key });
      } catch (error) {
        this.onError(new Error(`auditledger spool: skipped a damaged line of ${file}`, { cause: error }));
      }
    }
    return entries;
  }
}

// ---- The client ----

interface Settle {
  resolve(receipt: Receipt): void;
  reject(error: Error): void;
}

/** A queued event as JSON, sent byte for byte the same on every attempt. Events recovered from the spool have no one waiting. */
interface Entry {
  json: string;
  key: string;
  settle?: Settle;
}

interface Batch {
  entries: Entry[];
  spool?: SpoolFile;
  /** Why some of its events were not delivered. */
  failure?: Error;
}

interface AppendAnswer {
  events: Omit<Receipt, 'tree_size' | 'root'>[];
  tree_size: number;
  root: string;
}

class Client implements AuditLogClient {
  private readonly http: Http;
  private readonly spool: Spool | undefined;
  private readonly batchSize: number;
  private readonly flushIntervalMs: number;
  private readonly maxBacklog: number;
  private readonly pauseMs: number;
  private readonly verifiers: VerifierKey[];
  private readonly onError: (error: Error) => void;
  private readonly recovered: Promise<void>;

  /** The batch collecting events; `ready` are sealed and sent in order, one request at a time. */
  private open: Batch | undefined;
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

  constructor(options: AuditLogClientOptions) {
    const retry = { ...DEFAULT_RETRY, ...options.retry };
    this.batchSize = integer('batchSize', options.batchSize ?? 100, 1, 1000);
    this.flushIntervalMs = integer('flushIntervalMs', options.flushIntervalMs ?? 200, 0);
    this.maxBacklog = integer('maxBacklog', options.maxBacklog ?? 10_000, 1);
    integer('retry.attempts', retry.attempts, 1);
    this.pauseMs = retry.maxDelayMs;
    const vkeys = typeof options.vkey === 'string' ? [options.vkey] : (options.vkey ?? []);
    this.verifiers = vkeys.map(parseVerifierKey);
    this.onError = options.onError ?? ((error) => console.error('auditledger client:', error));
    const base = options.url.replace(/\/+$/, '');
    this.http = new Http(base, options.token, retry, options.timeoutMs ?? 10_000, options.fetch ?? globalThis.fetch);
    this.spool = options.spoolDir === undefined ? undefined : new Spool(options.spoolDir, this.onError);
    this.recovered = this.recover();
  }

  get lastReceipt(): Receipt | undefined {
    return this.last;
  }

  createEvent(event: NewEvent): Promise<Receipt> {
    const refusal = this.refusal(1);
    if (refusal) return Promise.reject(refusal);
    return new Promise((resolve, reject) => this.enqueue(event, { resolve, reject }));
  }

  createEvents(events: readonly NewEvent[]): Promise<Receipt[]> {
    const refusal = this.refusal(events.length);
    if (refusal) return Promise.reject(refusal);
    return Promise.all(events.map((event) => new Promise<Receipt>((resolve, reject) => this.enqueue(event, { resolve, reject }))));
  }

  async *query(filters: EventFilters = {}): AsyncIterable<StoredEvent> {
    let cursor: string | null = null;
    do {
      const page: { events: StoredEvent[]; next_cursor: string | null } = await this.http.json('GET', `/v1/events?${queryString(filters, cursor)}`);
      yield* page.events;
      cursor = page.next_cursor;
    } while (cursor);
  }

  verify(): Promise<VerifyRun> {
    return this.http.json('POST', '/v1/verify');
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
      checkpoint = await this.latestCheckpoint();
      const head = await this.http.json<{ tree_size: number }>('GET', '/v1/chain');
      const largest = Math.max(receipt.tree_size, checkpoint.size);
      if (head.tree_size < largest) {
        return result(`the chain has ${head.tree_size} events, fewer than the ${largest} it acknowledged: its tail was removed`);
      }
      await this.proveConsistent(receipt, checkpoint);
      return result(null);
    } catch (error) {
      if (!isInconsistency(error)) throw error;
      return result(error.message);
    }
  }

  /** The latest signed checkpoint, its signature checked with the ledger's key. */
  private async latestCheckpoint(): Promise<Checkpoint> {
    const { note } = await this.http.json<{ note: string }>('GET', '/v1/checkpoints/latest');
    const { checkpoint } = openCheckpoint(note, this.verifiers, this.origin);
    this.origin ??= checkpoint.origin;
    return checkpoint;
  }

  /** RFC 9162 consistency of the receipt's tree and the checkpoint's, whichever is older. */
  private async proveConsistent(receipt: Pick<Receipt, 'tree_size' | 'root'>, checkpoint: Checkpoint): Promise<void> {
    // Receipts carry hex roots; checkpoints and proofs base64.
    const ours = { size: receipt.tree_size, root: Buffer.from(receipt.root, 'hex') };
    const [older, newer] = ours.size <= checkpoint.size ? [ours, checkpoint] : [checkpoint, ours];
    let proof: Uint8Array[] = [];
    if (older.size < newer.size) {
      const answer = await this.http.json<{ proof: string[] }>('GET', `/v1/consistency?from=${older.size}&to=${newer.size}`);
      proof = answer.proof.map((hash, i) => {
        const bytes = decodeBase64(hash);
        if (!bytes) throw new ProofError(`proof[${i}] is not base64`);
        return bytes;
      });
    }
    verifyConsistency(older.size, newer.size, proof, older.root, newer.root);
  }

  private refusal(events: number): Error | undefined {
    if (this.closed) return new ClientClosedError();
    if (this.backlog + events > this.maxBacklog) return new BacklogFullError(this.maxBacklog);
    return undefined;
  }

  private enqueue(event: NewEvent, settle: Settle): void {
    // The key is fixed now, so every retry, and a re-send from the spool, is recognized by the ledger.
    // Serializing here also makes an event JSON cannot hold fail its own call, not a batch.
    const key = event.idempotency_key ?? randomUUID();
    const json = JSON.stringify({ ...event, created: event.created ?? new Date().toISOString(), idempotency_key: key } satisfies QueuedEvent);
    const batch = (this.open ??= { entries: [], spool: this.spool?.newFile() });
    batch.entries.push({ json, key, settle });
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

  /** Sends a batch until each event is acknowledged or refused; returns the failure that leaves it spooled for later. */
  private async send(batch: Batch): Promise<DeliveryError | undefined> {
    await batch.spool?.written();
    while (batch.entries.length > 0) {
      let answer: AppendAnswer | LedgerHttpError;
      try {
        answer = await this.post(batch.entries);
      } catch (error) {
        const stuck = this.unreachable(batch, error as Error);
        if (stuck) return stuck;
        continue;
      }
      if (answer instanceof LedgerHttpError) this.refuse(batch, answer);
      else this.acknowledge(batch.entries.splice(0), answer);
    }
    if (batch.spool) await (batch.failure ? this.spool!.keepRejected(batch.spool) : this.spool!.remove(batch.spool));
    return undefined;
  }

  /** POST /v1/events with retries; a 4xx comes back as the error rather than thrown. */
  private async post(entries: Entry[]): Promise<AppendAnswer | LedgerHttpError> {
    const res = await this.http.request('POST', '/v1/events', `{"events":[${entries.map((entry) => entry.json).join(',')}]}`);
    if (!res.ok) return httpError(res);
    const answer = (await res.json()) as AppendAnswer;
    // Something in between (a proxy, say) answered: the events cannot count as acknowledged.
    if (answer?.events?.length !== entries.length) throw new Error(`POST /v1/events answered ${res.status} without a receipt for each event`);
    return answer;
  }

  /**
   * The retries are used up. A durably spooled batch stays queued for later (the failure is
   * returned); anything else is rejected now rather than held in memory indefinitely.
   */
  private unreachable(batch: Batch, error: Error): DeliveryError | undefined {
    const spooled = batch.spool?.durable === true;
    const failure = new DeliveryError(`the ledger is unreachable: ${error.message}`, spooled, { cause: error });
    if (spooled) return failure;
    batch.failure = failure;
    for (const entry of batch.entries.splice(0)) this.reject(entry, failure);
    return undefined;
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
   * The ledger refused the request. When its details name events of it (`events.3.source_ip`),
   * only those are rejected and the rest go in the next request; otherwise all are.
   */
  private refuse(batch: Batch, error: LedgerHttpError): void {
    const indexes = error.details.map((detail) => Number(/^events\.(\d+)\./.exec(detail.field)?.[1]));
    const namesEvents = indexes.length > 0 && indexes.every((index) => index < batch.entries.length);
    batch.failure ??= error;
    const kept: Entry[] = [];
    batch.entries.forEach((entry, i) => (namesEvents && !indexes.includes(i) ? kept.push(entry) : this.reject(entry, error)));
    batch.entries = kept;
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
    for (const { spool, entries } of (await this.spool?.recover()) ?? []) {
      if (entries.length === 0) await this.spool!.remove(spool);
      else recovered.push({ entries, spool });
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
  }
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

function integer(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  return value;
}
