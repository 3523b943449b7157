import { Hono, type Context } from 'hono';
import type pg from 'pg';
import { z } from 'zod';
import type { AuditEvent } from '../../ledger/event.js';
import { checkChainEnd, verifyStoredEvents } from '../../ledger/verify-events.js';
import { eventHashes, getChainEnd, getChainHead, getEvent, queryEvents } from '../../store/events.js';
import type { GroupCommit } from '../../store/group-commit.js';
import { personalFailures, showEvents, type ShownEvent } from '../../store/personal.js';
import { chainNames } from '../../store/tenants.js';
import { listFindings } from '../../store/verification.js';
import type { AppendMetrics } from '../metrics.js';
import type { PersonalPolicies } from '../personal.js';
import type { SealedBundles } from '../sealed.js';
import { requireEventsRead, requireScope } from '../auth.js';
import type { AppEnv } from '../context.js';
import { ApiError, invalidFields, notFound } from '../errors.js';
import { crudSchema, eventSchemas, splitInput, type EventLimits } from '../event-schema.js';
import { pathId, query, readJson, validate } from '../input.js';
import { dateTimeParam, queryInt, storableString } from '../schemas.js';
import { chainOf, inView, withinView } from './chain.js';

export interface EventDeps {
  db: pg.Pool;
  groupCommit: GroupCommit;
  limits: EventLimits;
  sealed: SealedBundles;
  metrics: AppendMetrics;
  policies: PersonalPolicies;
}

const filters = {
  action: storableString(1024).min(1).optional(),
  crud: crudSchema.optional(),
  actor_id: storableString(4096).optional(),
  target_id: storableString(4096).optional(),
  group_id: storableString(4096).optional(),
  from: dateTimeParam.optional(),
  to: dateTimeParam.optional(),
  seq_from: queryInt(1).optional(),
  seq_to: queryInt(1).optional(),
  order: z.enum(['asc', 'desc']).default('asc'),
};

export const listQuery = z.strictObject({
  ...filters,
  limit: queryInt(1, 1000).default(100),
  cursor: z
    .string()
    .transform((s, ctx) => decodeCursor(s) ?? (ctx.addIssue({ code: 'custom', message: 'must be a cursor returned by an earlier page' }), z.NEVER))
    .optional(),
  verify: z.enum(['true', 'false']).default('false'),
});

export const exportQuery = z.strictObject({ ...filters, format: z.enum(['ndjson', 'csv']).default('ndjson') });

const EXPORT_PAGE = 1000;
const CSV_COLUMNS = ['seq', 'id', 'received_at', 'action', 'crud', 'actor_id', 'target_id', 'group_id', 'hash', 'prev', 'canonical', 'event'] as const;

// A cell a spreadsheet would read as a formula (CWE-1236): OWASP's "CSV Injection" characters.
const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * One CSV cell: a value beginning with =, +, -, @, tab or carriage return gets a leading `'` so a
 * spreadsheet shows it as text (OWASP "CSV Injection"), then RFC 4180 quoting. `canonical` always
 * begins with `{`, so its bytes are never changed.
 */
function csvField(value: string | number | null): string {
  const plain = value === null ? '' : String(value);
  const text = FORMULA_START.test(plain) ? `'${plain}` : plain;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * One exported event. NDJSON keeps the exact canonical bytes and hash, so an export verifies, and
 * the event with its personal values put back (erased ones as markers), as queries show it.
 */
function exportLine(shown: ShownEvent, format: 'ndjson' | 'csv'): string {
  const { seq, id, received_at, hash, prev, canonical, event } = present(shown);
  if (format === 'ndjson') return `${JSON.stringify({ seq, id, received_at, hash, prev, canonical, event })}\n`;
  const c = shown.row.columns;
  const values = [seq, id, received_at, c.action, c.crud, c.actor_id, c.target_id, c.group_id, hash, prev, canonical, JSON.stringify(event)];
  return `${values.map(csvField).join(',')}\r\n`;
}

export const verifyQuery = z.strictObject({ verify: z.enum(['true', 'false']).default('false') });

/**
 * An event as the API shows it: ledger fields, the exact stored bytes (which hold commitments in
 * place of personal values), and the event with its personal values put back (showEvents).
 */
function present({ row, event }: ShownEvent) {
  return {
    seq: row.seq,
    id: row.id,
    received_at: row.received_at.toISOString(),
    hash: row.hash.toString('hex'),
    prev: row.prev.toString('hex'),
    canonical: row.canonical.toString('utf8'),
    event,
  };
}

/** Cursors are opaque to clients: the order and the last seq of the page. */
const encodeCursor = (order: string, seq: number) => Buffer.from(`${order}.${seq}`).toString('base64url');
function decodeCursor(cursor: string): { order: 'asc' | 'desc'; seq: number } | undefined {
  const match = /^(asc|desc)\.(\d{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString());
  return match ? { order: match[1] as 'asc' | 'desc', seq: Number(match[2]) } : undefined;
}

/** The seqs a page answers for, inclusive; `to` is Infinity when nothing bounds it below the head. */
interface PageScope {
  from: number;
  to: number;
}

/**
 * A page's scope: from where the page before it ended (or the query's start) to where the next
 * page starts (or the query's end). Filters other than seq_from/seq_to do not narrow it: an
 * event missing anywhere in it could have been one the query asked for. `next` is the seq the
 * next page continues after, undefined on the query's last page.
 */
function pageScope(q: Pick<z.output<typeof listQuery>, 'seq_from' | 'seq_to' | 'cursor'>, order: 'asc' | 'desc', next: number | undefined): PageScope {
  let from = q.seq_from ?? 1;
  let to = q.seq_to ?? Infinity;
  if (order === 'asc') {
    if (q.cursor) from = Math.max(from, q.cursor.seq + 1);
    if (next !== undefined) to = next;
  } else {
    if (q.cursor) to = Math.min(to, q.cursor.seq - 1);
    if (next !== undefined) from = next;
  }
  return { from, to };
}

export function eventRoutes({ db, groupCommit, limits, sealed, metrics, policies }: EventDeps) {
  const schemas = eventSchemas(limits);
  const headerKey = storableString(255).min(1, 'must not be empty');

  /** The request's events, each with its idempotency key, validated whole before anything is stored. */
  async function readEvents(c: Context<AppEnv>): Promise<{ events: { event: AuditEvent; key: string | undefined }[]; fieldOf: (index: number) => string }> {
    const body = await readJson(c);
    const header = c.req.header('idempotency-key');
    const isBatch = typeof body === 'object' && body !== null && !Array.isArray(body) && 'events' in body;
    const inputs = isBatch ? validate(schemas.batch, body).events : [validate(schemas.event, body)];
    const fieldOf = (index: number) => (isBatch ? `events.${index}.idempotency_key` : 'idempotency_key');
    if (header !== undefined) {
      if (isBatch) throw invalidFields([{ field: 'Idempotency-Key', message: 'is for single events; give each event an idempotency_key' }]);
      validate(headerKey, header, 'Idempotency-Key');
      if (inputs[0]!.idempotency_key !== undefined && inputs[0]!.idempotency_key !== header) {
        throw invalidFields([{ field: 'idempotency_key', message: 'differs from the Idempotency-Key header' }]);
      }
      inputs[0]!.idempotency_key = header;
    }
    return { events: inputs.map(splitInput), fieldOf };
  }

  /**
   * Checks a page of events (see "verify=true" in README.md). Beyond the page's own events: when
   * its scope reaches the chain's end, the head must be the last stored event; and what scheduled
   * verification recorded within the scope (and, at the end, beyond it) stays reported, even if it
   * no longer shows.
   */
  async function verification(chain: { project: string; environment: string }, shown: ShownEvent[], scope: PageScope) {
    const rows = shown.map((s) => s.row);
    const have = new Map(rows.map((r) => [r.seq, r.hash]));
    const missing = rows.map((r) => r.seq - 1).filter((s) => s >= 1 && !have.has(s));
    for (const [seq, hash] of await eventHashes(db, chain.environment, missing)) have.set(seq, hash);
    const verification = verifyStoredEvents(rows, chain, have);
    // Sealed events are also held to their bundle, which is checked against its signed root.
    const failures = [...verification.failures, ...personalFailures(shown), ...(await sealed.check(chain.environment, rows))];
    const end = await getChainEnd(db, chain.environment);
    // Up to the head, or holding the last stored event: the page says nothing follows it.
    const reachesEnd = !end || scope.to >= Math.min(end.head.seq, end.last?.seq ?? 0);
    // The head row is made with the environment and never deleted: without it, nothing bounds the chain.
    if (!end) failures.push({ seq: 0, reason: 'the chain head is missing' });
    else if (reachesEnd) failures.push(...checkChainEnd(end));
    const recorded = await listFindings(db, chain.environment, { from: scope.from, to: reachesEnd ? Number.MAX_SAFE_INTEGER : scope.to });
    for (const finding of recorded) {
      const seq = finding.seq ?? 0;
      if (!failures.some((f) => f.seq === seq && f.reason === finding.reason)) failures.push({ seq, reason: finding.reason });
    }
    failures.sort((a, b) => a.seq - b.seq);
    return { ...verification, ok: failures.length === 0, failures };
  }

  return new Hono<AppEnv>()
    .post('/events', requireScope('events:write'), async (c) => {
      const chain = chainOf(c);
      const { events, fieldOf } = await readEvents(c);
      const started = performance.now();
      const outcome = await policies.append(groupCommit, chain, events);
      metrics.latency.observe((performance.now() - started) / 1000);
      if (!outcome.ok) {
        const field = fieldOf(outcome.conflict.index);
        throw new ApiError(409, 'idempotency_conflict', `${field}: the key "${outcome.conflict.key}" was used for a different event`, [
          { field, message: 'was used for a different event' },
        ]);
      }
      const { receipts, tree_size, root } = outcome;
      metrics.events.inc(outcome.stored);
      metrics.batches.inc();
      return c.json({ events: receipts, tree_size, root }, outcome.stored > 0 ? 201 : 200);
    })
    // Before /events/:id, which would take "export" for an id.
    .get('/events/export', requireEventsRead, (c) => {
      const { environment } = chainOf(c);
      const { format, ...asked } = query(c, exportQuery);
      const q = withinView(c, asked);
      const encoder = new TextEncoder();
      let afterSeq: number | undefined;
      let header = format === 'csv' ? `${CSV_COLUMNS.join(',')}\r\n` : '';
      // A page at a time, as the client reads: memory stays bounded by one page.
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const rows = await queryEvents(db, environment, { ...q, limit: EXPORT_PAGE, after_seq: afterSeq });
          const text = header + (await showEvents(db, environment, rows)).map((shown) => exportLine(shown, format)).join('');
          header = '';
          if (text) controller.enqueue(encoder.encode(text));
          if (rows.length < EXPORT_PAGE) controller.close();
          else afterSeq = rows[rows.length - 1]!.seq;
        },
      });
      const type = format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson';
      return c.body(body, 200, { 'content-type': type, 'content-disposition': `attachment; filename="events.${format}"` });
    })
    .get('/events', requireEventsRead, async (c) => {
      const chain = chainOf(c);
      const q = withinView(c, query(c, listQuery));
      const order = q.cursor?.order ?? q.order;
      const rows = await queryEvents(db, chain.environment, { ...q, order, after_seq: q.cursor?.seq });
      const last = rows.at(-1);
      const next = rows.length === q.limit && last ? last.seq : undefined;
      const shown = await showEvents(db, chain.environment, rows);
      return c.json({
        events: shown.map(present),
        next_cursor: next === undefined ? null : encodeCursor(order, next),
        ...(q.verify === 'true' ? { verification: await verification(chain, shown, pageScope(q, order, next)) } : {}),
      });
    })
    .get('/events/:id', requireEventsRead, async (c) => {
      const chain = chainOf(c);
      const { verify } = query(c, verifyQuery);
      const row = await getEvent(db, chain.environment, pathId(c, 'id', 'event'));
      if (!row || !inView(c, row.columns)) throw notFound('event');
      const shown = await showEvents(db, chain.environment, [row]);
      return c.json({ ...present(shown[0]!), ...(verify === 'true' ? { verification: await verification(chain, shown, { from: row.seq, to: row.seq }) } : {}) });
    })
    .get('/chain', requireScope('events:read'), async (c) => {
      const head = await getChainHead(db, chainOf(c).environment);
      if (!head) throw notFound('chain');
      return c.json({ seq: head.seq, hash: head.hash, tree_size: head.tree_size, root: head.root });
    })
    // Which chain the token writes to, for any environment token (a write-only one too): how the
    // client's setContext checks it was given the token of the chain it names.
    .get('/token', async (c) => {
      const principal = c.get('principal');
      if (principal.kind !== 'token') throw new ApiError(403, 'forbidden', 'this route needs an environment token');
      const names = await chainNames(db, principal.environmentId);
      if (!names) throw notFound('chain');
      return c.json({ token_id: principal.tokenId, scopes: principal.scopes, ...names });
    });
}
