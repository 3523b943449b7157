import { createHash } from 'node:crypto';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import type pg from 'pg';
import { z } from 'zod';
import type { AuditEvent } from '../../ledger/event.js';
import { markersAsText } from '../../ledger/personal.js';
import type { GroupCommit } from '../../store/group-commit.js';
import { countEvents, queryEvents, type EventFilters } from '../../store/events.js';
import { showEvents, type ShownEvent } from '../../store/personal.js';
import type { PersonalPolicies } from '../personal.js';
import { requireScope } from '../auth.js';
import type { AppEnv } from '../context.js';
import type { Authenticator, Principal } from '../credentials.js';
import { ApiError, invalidFields, notFound } from '../errors.js';
import { argumentValues, GraphqlReader, graphqlTokens, project } from '../retraced-graphql.js';
import { eventSchemas, jsonRecord, type EventLimits } from '../event-schema.js';
import { pathId, query, readJson, validate } from '../input.js';
import { dateTimeParam, storableString } from '../schemas.js';
import { issueViewerToken, VIEWER_TOKEN_SECONDS } from '../viewer-token.js';
import { chainOf, viewerFilter } from './chain.js';

/** What a viewer token's reads are held to (viewerFilter). */
type ViewerScope = Pick<EventFilters, 'group_id' | 'target_id'>;

/** The filters Retraced's structured search maps to. */
type SearchFilters = Pick<EventFilters, 'action' | 'crud' | 'actor_id' | 'from' | 'to'>;

/**
 * Retraced's publisher API, mounted at /publisher/v1, so that apps using the official client
 * `@retracedhq/retraced` move to this ledger by changing its endpoint. The project in the path
 * must be the token's; the token's environment is the chain, as for /v1/events.
 */

export interface RetracedDeps {
  db: pg.Pool;
  groupCommit: GroupCommit;
  limits: EventLimits;
  /** MAC key of viewer tokens (viewerTokenKey). */
  viewerTokenKey: Buffer;
  policies: PersonalPolicies;
}

// ---- Events in ----

/**
 * The events the client sends. Retraced's fields are ours one for one; anything else is refused,
 * never dropped, as on POST /v1/events: an unknown field (say the `displayName` and `url` of the
 * client's README example, or Retraced's deprecated `displayTitle`) is a 400 naming it, since an
 * audit record that silently lost a field is worse than a loud error. Unlike POST /v1/events:
 * no `idempotency_key` (Retraced has none), and `metadata` values must be strings, as the client
 * declares them, because the receipt hash covers metadata as text, where 5 and "5", or any two
 * objects ("[object Object]"), hash alike. Like POST /v1/events, and unlike Retraced's server,
 * `crud` and `actor` are optional.
 */
export function retracedSchemas(limits: EventLimits) {
  const { event } = eventSchemas(limits);
  const textMetadata = event.shape.metadata
    .unwrap()
    .pipe(jsonRecord(z.string(), z.string({ error: 'must be a string (Retraced metadata is text)' })));
  const retracedEvent = event.omit({ idempotency_key: true }).extend({ metadata: textMetadata.optional() });
  const bulk = z.strictObject({
    events: z
      .array(retracedEvent)
      .min(1, 'must hold at least one event')
      .max(limits.maxBatchEvents, `must hold at most ${limits.maxBatchEvents} events per request`),
  });
  return { event: retracedEvent, bulk };
}

type RetracedEvent = z.infer<ReturnType<typeof retracedSchemas>['event']>;

const escapeSeparators = (s: string) => s.replace(/%/g, '%25').replace(/:/g, '%3A');
const escapePairPart = (s: string) => escapeSeparators(s).replace(/=/g, '%3D').replace(/;/g, '%3B');
const hashPairs = (map: Record<string, string>) =>
  Object.keys(map)
    .sort()
    .map((key) => `${escapePairPart(key)}=${escapePairPart(map[key]!)};`)
    .join('');

/**
 * Retraced's receipt hash, byte for byte as the official client recomputes it to check our answer
 * (it throws on a mismatch): computeHash and buildHashTarget in
 * node_modules/@retracedhq/retraced/lib/event.js (v0.7.23). The hex SHA-256 of
 *
 *   id:action:target.id:actor.id:group.id:source_ip:is_failure:is_anonymous:FIELDS[:external_id][:METADATA]
 *
 * where absent parts are empty, the flags are 1 or 0, values have % and : escaped (%25, %3A), and
 * FIELDS (a lone ":" when there are no fields) and METADATA are `key=value;` pairs in code-unit
 * order of the keys, = and ; escaped too (%3D, %3B). It covers only these: not crud, names,
 * description, created, component or version; the ledger's own hash covers the whole event.
 */
export function retracedReceiptHash(event: RetracedEvent, id: string): string {
  const parts = [id, event.action, event.target?.id, event.actor?.id, event.group?.id, event.source_ip];
  let text = `${parts.map((part) => (part ? escapeSeparators(part) : '')).join(':')}:`;
  text += `${event.is_failure ? 1 : 0}:${event.is_anonymous ? 1 : 0}:`;
  text += event.fields ? hashPairs(event.fields) : ':';
  if (event.external_id) text += `:${escapeSeparators(event.external_id)}`;
  if (event.metadata) text += `:${hashPairs(event.metadata)}`;
  return createHash('sha256').update(text).digest('hex');
}

// ---- Search: Retraced's query string ----

const searchProblem = (message: string) => invalidFields([{ field: 'search.query', message }]);

/**
 * Retraced's structured search (`action:"user.*" crud:c actor.id:u1 received:START,END`), split as
 * Retraced's parser (search-query-parser) splits it: `key:value`, `key:"…"` or `key:'…'` with
 * backslash escapes, commas separating values, a keyword given twice collecting both.
 */
const SEARCH_TERM = /\S+:'(?:[^'\\]|\\.)*'|\S+:"(?:[^"\\]|\\.)*"|\S+/g;

function searchTerms(search: string): Map<string, string[]> {
  const terms = new Map<string, string[]>();
  for (const [term] of search.matchAll(SEARCH_TERM)) {
    const colon = term.indexOf(':');
    if (colon < 0) throw searchProblem(`free-text search ("${term}") is not supported; use keyword:value`);
    const value = term
      .slice(colon + 1)
      .replace(/^"|"$|^'|'$/g, '')
      .replace(/\\(.?)/g, '$1');
    const key = term.slice(0, colon);
    // search-query-parser skips a term with an empty value, so `actor.id:` (an app's unset user
    // id) would search every event: refused instead, as any term it cannot answer.
    if (value === '') throw searchProblem(`${key}: needs a value (an empty one would match every event)`);
    terms.set(key, [...(terms.get(key) ?? []), ...value.split(',')]);
  }
  return terms;
}

const crudLetter = z.enum(['c', 'r', 'u', 'd'], { error: 'must be one of c, r, u, d' });

function oneValue(key: string, values: string[]): string {
  if (values.length !== 1) throw searchProblem(`${key}: takes one value here`);
  return values[0]!;
}

/** `received:START,END` is [START, END); unlike Retraced, either end may be left open, not both. */
function receivedRange(values: string[]): SearchFilters {
  if (values.length !== 2) throw searchProblem('received: takes START,END');
  if (values.every((value) => value === '')) throw searchProblem('received: needs START, END or both (an empty range would match every event)');
  const [from, to] = values.map((value, i) => (value === '' ? undefined : validate(dateTimeParam, value, `search.query.received.${i}`)));
  return { from, to };
}

/** The keywords queryEvents can answer, each as its filters. */
const SEARCH_KEYWORDS: Record<string, (values: string[]) => SearchFilters> = {
  // A trailing * is a prefix, in Retraced as in queryEvents.
  action: (values) => ({ action: oneValue('action', values) }),
  // Several letters are any of them (Retraced's logs viewer searches crud:c,u,d by default).
  crud: (values) => ({ crud: values.map((value) => validate(crudLetter, value, 'search.query.crud')) }),
  'actor.id': (values) => ({ actor_id: oneValue('actor.id', values) }),
  received: receivedRange,
};

/** The search as filters; what they cannot express is refused (400), not ignored. */
function searchFilters(search: string): SearchFilters {
  let filters: SearchFilters = {};
  for (const [key, values] of searchTerms(search)) {
    const filter = Object.hasOwn(SEARCH_KEYWORDS, key) ? SEARCH_KEYWORDS[key] : undefined;
    if (!filter) throw searchProblem(`${key}: not supported here (action, crud, actor.id and received are)`);
    filters = { ...filters, ...filter(values) };
  }
  return filters;
}

// ---- Search: answering ----

/** Cursors are opaque to clients: a seq of the chain. */
const encodeCursor = (seq: number) => Buffer.from(`seq:${seq}`).toString('base64url');
function decodeCursor(cursor: string): number | undefined {
  const match = /^seq:(\d{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString());
  return match ? Number(match[1]) : undefined;
}

const pageSize = z.number().int().min(1).max(1000).nullish();
// The client's first page sends `before: ""`: no cursor.
const cursor = z
  .string()
  .nullish()
  .transform((s, ctx) =>
    s ? (decodeCursor(s) ?? (ctx.addIssue({ code: 'custom', message: 'must be a cursor returned by an earlier page' }), z.NEVER)) : undefined,
  );
const searchArguments = z
  .strictObject({ query: storableString(4096).nullish(), first: pageSize, after: cursor, last: pageSize, before: cursor })
  .refine(
    (a) => !((a.first != null || a.after !== undefined) && (a.last != null || a.before !== undefined)),
    'page forward with first/after or backward with last/before, not both',
  );

/** Elasticsearch's default page size, which Retraced's search gets when given neither first nor last. */
const DEFAULT_PAGE_SIZE = 10;

/**
 * GraphQL has no maps: Retraced's fields are lists of {key, value}. Non-string metadata is shown as
 * JSON. A whole map erased (a policy path such as `/metadata`) is its marker text under an empty key.
 */
const keyValues = (map: Record<string, unknown> | string | undefined) => {
  if (typeof map === 'string') return [{ key: '', value: map }];
  return map && Object.entries(map).map(([key, value]) => ({ key, value: typeof value === 'string' ? value : JSON.stringify(value) }));
};

/**
 * A stored event as Retraced's Event. canonical_time is Retraced's: created, else received. There
 * are no display templates or GeoIP data here, so display, country and loc_subdiv1/2 are null.
 * Retraced types every value a policy can make personal a String: an erased or mismatched value
 * reads as ERASED_TEXT or MISMATCH_TEXT (personal.ts markersAsText), not as our marker object.
 */
function eventNode({ row, event: shown, erased, mismatched }: ShownEvent) {
  // {} when the stored bytes do not parse (GET /v1/events?verify=true says why).
  const event: Partial<AuditEvent> = shown ? markersAsText({ event: shown, erased, mismatched }) : {};
  const received = row.received_at.toISOString();
  return {
    ...event,
    id: row.id,
    received,
    canonical_time: event.created ?? received,
    actor: event.actor && { ...event.actor, fields: keyValues(event.actor.fields) },
    target: event.target && { ...event.target, fields: keyValues(event.target.fields) },
    fields: keyValues(event.fields),
    metadata: keyValues(event.metadata),
  };
}

/**
 * Retraced's search connection: `last` pages from the newest event back (`before` the cursor of a
 * page's last edge), `first` from the oldest on (`after`). totalCount counts the whole search, not
 * what remains: the client divides it by the page size to know how many pages there are.
 */
async function searchEvents(db: pg.Pool, environment: string, args: z.infer<typeof searchArguments>, withTotal: boolean, scope: ViewerScope) {
  const filters = { ...searchFilters(args.query ?? ''), ...scope };
  const backward = args.last != null || args.before !== undefined;
  const size = args.last ?? args.first ?? DEFAULT_PAGE_SIZE;
  const rows = await queryEvents(db, environment, {
    ...filters,
    order: backward ? 'desc' : 'asc',
    limit: size + 1, // one more tells whether another page follows
    after_seq: backward ? args.before : args.after,
  });
  const more = rows.length > size;
  return {
    totalCount: withTotal ? await countEvents(db, environment, filters) : null,
    pageInfo: { hasNextPage: !backward && more, hasPreviousPage: backward && more },
    edges: (await showEvents(db, environment, rows.slice(0, size))).map((shown) => ({ cursor: encodeCursor(shown.row.seq), node: eventNode(shown) })),
  };
}

export const graphqlRequest = z.strictObject({ query: z.string(), variables: z.record(z.string(), z.unknown()).nullish() });

/** Answers a GraphQL search (POST …/graphql) for the caller's chain, a viewer token's within its group. */
async function answerGraphql(db: pg.Pool, c: Context<AppEnv>) {
  const request = validate(graphqlRequest, await readJson(c));
  const selection = new GraphqlReader(graphqlTokens(request.query)).operation();
  // QUERY has one field, and a selection set at least one.
  const search = selection.get('search')!;
  const args = validate(searchArguments, argumentValues(search.args, request.variables ?? {}), 'search');
  const connection = await searchEvents(db, chainOf(c).environment, args, search.selection!.has('totalCount'), viewerFilter(c));
  return c.json({ data: project({ search: connection }, selection) });
}

// ---- Viewer tokens ----

export const viewerTokenQuery = z.strictObject({
  group_id: storableString(4096).min(1, 'must not be empty'),
  actor_id: storableString(4096).min(1, 'must not be empty'),
  is_admin: z.enum(['false'], { error: 'must be false: viewer tokens here are read-only' }).optional(),
  target_id: storableString(4096).min(1, 'must not be empty').optional(),
  view_log_action: storableString(4096).min(1, 'must not be empty').optional(),
});

// ---- Routes ----

/** The path's project must be the token's: 404 otherwise, as for any id of another tenant. */
const ownProject: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (pathId(c, 'projectId', 'project') !== chainOf(c).project) throw notFound('project');
  await next();
};

export function retracedRoutes({ db, groupCommit, limits, viewerTokenKey: viewerKey, policies }: RetracedDeps) {
  const schemas = retracedSchemas(limits);

  /** Appends the events as one all-or-nothing request through the group commit; Retraced receipts. */
  async function append(c: Context<AppEnv>, events: RetracedEvent[]) {
    const chain = chainOf(c);
    const outcome = await policies.append(groupCommit, chain, events.map((event) => ({ event })));
    // Only idempotency keys conflict, and Retraced events carry none.
    if (!outcome.ok) throw new Error('a Retraced append conflicted without an idempotency key');
    return outcome.receipts.map(({ id }, i) => ({ id, hash: retracedReceiptHash(events[i]!, id) }));
  }

  return new Hono<AppEnv>()
    .use('/project/:projectId/*', ownProject)
    .post('/project/:projectId/event', requireScope('events:write'), async (c) => {
      const [receipt] = await append(c, [validate(schemas.event, await readJson(c))]);
      return c.json(receipt, 201);
    })
    .post('/project/:projectId/event/bulk', requireScope('events:write'), async (c) => {
      const { events } = validate(schemas.bulk, await readJson(c));
      return c.json(await append(c, events), 201);
    })
    .post('/project/:projectId/graphql', requireScope('events:read'), (c) => answerGraphql(db, c))
    .get('/project/:projectId/viewertoken', requireScope('events:read'), (c) => {
      const q = query(c, viewerTokenQuery);
      // requireScope let only environment tokens through.
      const { tokenId, projectId, environmentId } = c.get('principal') as Extract<Principal, { kind: 'token' }>;
      const exp = Math.floor(Date.now() / 1000) + VIEWER_TOKEN_SECONDS;
      const token = issueViewerToken(viewerKey, {
        v: 1,
        token_id: tokenId,
        project_id: projectId,
        environment_id: environmentId,
        group_id: q.group_id,
        actor_id: q.actor_id,
        target_id: q.target_id,
        view_log_action: q.view_log_action,
        exp,
      });
      return c.json({ token, expires_at: new Date(exp * 1000).toISOString() }, 201);
    });
}

// ---- Retraced's viewer API, for its logs viewer ----

export const viewerSessionRequest = z.strictObject({ token: z.string().max(8192) });

/**
 * The API of Retraced's own embeddable viewer (`@retracedhq/logs-viewer`), mounted at /viewer/v1
 * (the widget's `host`). The widget trades its viewer token for a session (POST /viewersession,
 * no Authorization header, so the route is public and checks the token itself), then sends
 * `session.token` as the bare Authorization header to POST /graphql. The session token here is
 * the viewer token itself: it is already short-lived and bound to its group.
 */
export function retracedViewerRoutes({ db, credentials }: { db: pg.Pool; credentials: Authenticator }) {
  return new Hono<AppEnv>()
    .post('/viewersession', async (c) => {
      const { token } = validate(viewerSessionRequest, await readJson(c));
      const principal = await credentials.authenticate(token);
      if (principal?.kind !== 'viewer') throw new ApiError(401, 'unauthorized', 'a valid viewer token is required (alv_…); it may have expired');
      return c.json({ token, project_id: principal.projectId, environment_id: principal.environmentId, group_id: principal.groupId });
    })
    .post('/graphql', async (c) => {
      if (c.get('principal').kind !== 'viewer') throw new ApiError(403, 'forbidden', 'this route needs a viewer token');
      return answerGraphql(db, c);
    });
}
