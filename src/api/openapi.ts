import { z } from 'zod';
import type { Config } from '../config.js';
import { eventSchemas, type EventLimits } from './event-schema.js';
import { adminSchemas } from './routes/admin.js';
import { policySchema } from './routes/personal-data.js';
import { DEFAULT_POLICY } from '../ledger/personal.js';
import { bundlesQuery } from './routes/bundles.js';
import { DOCS_PATHS } from './routes/docs.js';
import { exportQuery, listQuery, verifyQuery } from './routes/events.js';
import { graphqlRequest, retracedSchemas, viewerSessionRequest, viewerTokenQuery } from './routes/retraced.js';
import { VIEWER_PATH } from './routes/viewer.js';
import { checkpointsQuery, consistencyQuery, proofQuery } from './routes/proofs.js';
import { runsQuery, verifyRequest } from './routes/verify.js';
import { pageQuery } from './schemas.js';
import { erasureSchemas } from './routes/erasures.js';
import { SCOPES } from '../store/tokens.js';

/**
 * The OpenAPI 3.1 document. Request bodies and query parameters come from the very zod schemas
 * the routes validate with; responses are described here, each with an example. A test checks
 * that every route the app registers is in it.
 */

type Auth = 'none' | 'admin' | 'environment' | 'events:write' | 'events:read' | 'verify' | 'erase' | 'events:read or viewer' | 'viewer';

interface Route {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  path: string;
  summary: string;
  tag: string;
  auth: Auth;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** The body may be left out (POST /v1/verify). */
  bodyOptional?: true;
  status: number;
  /** Other success statuses, answered with the same body, with what each means. */
  alsoOk?: Record<number, string>;
  /** Error statuses beyond the ones every route of its kind has, with what they mean. */
  errors?: Record<number, string>;
  response?: z.ZodType;
  example?: unknown;
  /** The media type of the answer; JSON unless said. */
  type?: string;
}

const id = z.uuid();
const hex = z.string().regex(/^[0-9a-f]{64}$/);
const time = z.iso.datetime();
const error = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.union([z.array(z.object({ field: z.string(), message: z.string() })), z.object({ hold: id, reason: z.string() }).describe('code legal_hold: the hold that refused')]).optional(),
  }),
});
const project = z.object({ id, name: z.string(), created_at: time, updated_at: time });
const environment = project.extend({ project_id: id });
const token = z.object({
  id,
  name: z.string(),
  scopes: z.array(z.enum(SCOPES)),
  expires_at: time.nullable(),
  revoked_at: time.nullable(),
  last_used_at: time.nullable(),
  created_at: time,
});
const receipt = z.object({ id, seq: z.number().int(), hash: hex, received_at: time });
const chainReceipt = receipt.extend({ environment_id: id });
const appended = z.object({ events: z.array(receipt), tree_size: z.number().int(), root: hex });
const verification = z.object({
  ok: z.boolean(),
  checked: z.number().int(),
  first_seq: z.number().int().nullable(),
  last_seq: z.number().int().nullable(),
  failures: z.array(z.object({ seq: z.number().int(), reason: z.string() })),
});
const event = z.object({
  seq: z.number().int(),
  id,
  received_at: time,
  hash: hex,
  prev: hex,
  canonical: z.string().describe('the exact stored RFC 8785 bytes (personal values as commitments)'),
  event: z
    .record(z.string(), z.unknown())
    .nullable()
    .describe('the event with its personal values put back and checked; an erased one reads {"erased": true, "commitment": "<hex>"}'),
  verification: verification.optional(),
});
const checkpoint = z.object({ tree_size: z.number().int(), root: z.string(), key_id: z.string(), note: z.string(), created_at: time });
const policyAnswer = z.object({
  project_id: id,
  environment_id: id.nullable(),
  policy: policySchema,
  source: z.enum(['environment', 'project', 'default']),
  changed_at: time.nullable(),
});
const policyChange = policyAnswer.extend({ events: z.array(chainReceipt) });
const b64 = z.string().describe('base64');
const proof = z.object({
  leaf_index: z.number().int(),
  tree_size: z.number().int(),
  leaf_hash: b64,
  proof: z.array(b64),
  root: b64.optional(),
  checkpoint: z.string().nullable(),
  canonical: z.string(),
  source: z.literal('bundle').optional(),
});
const bundle = z.object({
  id,
  partition: z.iso.date(),
  first_seq: z.number().int(),
  last_seq: z.number().int(),
  count: z.number().int(),
  root: b64,
  archive: z.object({ location: z.string(), key: z.string(), version_id: z.string().nullable(), sha256: hex, bytes: z.number().int() }),
  created_at: time,
});
const run = z.object({
  id,
  requested_by: z.string(),
  status: z.enum(['queued', 'running', 'done', 'error']),
  from_seq: z.number().int().nullable(),
  to_seq: z.number().int().nullable(),
  ok: z.boolean().nullable(),
  checked: z.number().int().nullable(),
  duration_ms: z.number().int().nullable(),
  first_failure: z.object({ seq: z.number().int(), reason: z.string() }).nullable(),
  created_at: time,
  finished_at: time.nullable(),
});
const erasure = z.object({
  project_id: id,
  subject_digest: hex.describe("the subject's keyed digest (HMAC-SHA-256 under the subject key)"),
  requested_at: time,
  updated_at: time,
  chains: z.array(
    z.object({
      environment_id: id,
      values_erased: z.number().int().describe("every erasure of the subject in this chain, in total (the receipt's event counts only its own)"),
      receipt: receipt.describe("the chain's newest auditledger.subject.erased event"),
    }),
  ),
});
const hold = z.object({ id, project_id: id, environment_id: id.nullable(), subject_digest: hex.nullable(), reason: z.string(), placed_at: time, lifted_at: time.nullable() });
const retracedReceipt = z.object({ id, hash: z.string().describe("Retraced's receipt hash (hex SHA-256)") });
const list = <K extends string>(key: K, item: z.ZodType) => z.object({ [key]: z.array(item), next_cursor: z.string().nullable() });

const EXAMPLE_ID = '01a21911-bccf-7f99-a4ac-49a982af437f';
const EXAMPLE_HASH = '3f0c1d8e6b2a4c5d7e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678901';
const exampleProject = { id: EXAMPLE_ID, name: 'shop', created_at: '2026-11-26T18:15:22.575Z', updated_at: '2026-11-26T18:15:22.575Z' };
const exampleReceipt = { id: EXAMPLE_ID, seq: 1, hash: EXAMPLE_HASH, received_at: '2026-11-26T18:20:00.123Z' };

function routes(config: Config, limits: EventLimits): Route[] {
  const admin = adminSchemas(config.AUDITLEDGER_MAX_NAME_LENGTH);
  const events = eventSchemas(limits);
  const retraced = retracedSchemas(limits);
  const erasing = erasureSchemas(limits.maxStringLength);
  const underHold = { 409: 'legal_hold: an active hold covers the erasure (details name it); nothing was erased' };
  const R = '/publisher/v1/project/{projectId}';
  const P = '/v1/projects/{projectId}';
  const E = `${P}/environments/{environmentId}`;
  return [
    { method: 'get', path: '/healthz', summary: 'The process is up', tag: 'operations', auth: 'none', status: 200, example: { status: 'ok' } },
    { method: 'get', path: '/readyz', summary: 'The database answers and its schema is current', tag: 'operations', auth: 'none', status: 200, example: { status: 'ready', schema_version: 5 } },
    { method: 'get', path: '/metrics', summary: 'Prometheus metrics (text format)', tag: 'operations', auth: 'none', status: 200, type: 'text/plain', example: 'auditledger_appended_events_total 42\n' },
    { method: 'get', path: '/openapi.json', summary: 'This document', tag: 'operations', auth: 'none', status: 200 },
    ...Object.entries(DOCS_PATHS).map(
      ([path, type]): Route => ({
        method: 'get', path, summary: path === '/docs' ? 'Interactive API reference' : 'A file of the interactive API reference', tag: 'operations', auth: 'none', status: 200, type,
      }),
    ),
    { method: 'get', path: VIEWER_PATH, summary: 'The <auditledger-viewer> web component, one ES module', tag: 'operations', auth: 'none', status: 200, type: 'text/javascript; charset=utf-8' },
    { method: 'post', path: '/v1/projects', summary: 'Create a project', tag: 'admin', auth: 'admin', body: admin.named, status: 201, response: project, example: exampleProject },
    { method: 'get', path: '/v1/projects', summary: 'List projects', tag: 'admin', auth: 'admin', query: pageQuery, status: 200, response: list('projects', project), example: { projects: [exampleProject], next_cursor: null } },
    { method: 'get', path: P, summary: 'Read a project', tag: 'admin', auth: 'admin', status: 200, response: project, example: exampleProject },
    { method: 'patch', path: P, summary: 'Rename a project', tag: 'admin', auth: 'admin', body: admin.named, status: 200, response: project, example: exampleProject },
    { method: 'delete', path: P, summary: 'Delete a project without events (409 otherwise)', tag: 'admin', auth: 'admin', status: 204 },
    { method: 'post', path: `${P}/environments`, summary: 'Create an environment (and its chain)', tag: 'admin', auth: 'admin', body: admin.named, status: 201, response: environment, example: { ...exampleProject, name: 'production', project_id: EXAMPLE_ID } },
    { method: 'get', path: `${P}/environments`, summary: 'List environments', tag: 'admin', auth: 'admin', query: pageQuery, status: 200, response: list('environments', environment) },
    { method: 'get', path: E, summary: 'Read an environment', tag: 'admin', auth: 'admin', status: 200, response: environment },
    { method: 'patch', path: E, summary: 'Rename an environment', tag: 'admin', auth: 'admin', body: admin.named, status: 200, response: environment },
    { method: 'delete', path: E, summary: 'Delete an environment without events (409 otherwise)', tag: 'admin', auth: 'admin', status: 204 },
    {
      method: 'post', path: `${E}/tokens`, summary: 'Create an API token (shown only here)', tag: 'admin', auth: 'admin', body: admin.newToken, status: 201,
      response: token.extend({ token: z.string(), project_id: id, environment_id: id }),
      example: { id: EXAMPLE_ID, token: 'alt_01a21911bccf7f99a4ac49a982af437f_…', name: 'checkout', scopes: ['events:write'], expires_at: null },
    },
    { method: 'get', path: `${E}/tokens`, summary: 'List tokens (no secrets)', tag: 'admin', auth: 'admin', query: pageQuery, status: 200, response: list('tokens', token) },
    { method: 'delete', path: '/v1/tokens/{tokenId}', summary: 'Revoke a token', tag: 'admin', auth: 'admin', status: 204 },
    ...[P, E].flatMap((scope): Route[] => {
      const whose = scope === P ? "a project's" : "an environment's";
      return [
        { method: 'get', path: `${scope}/personal-data-policy`, summary: `The personal data policy in force for ${whose} chains`, tag: 'admin', auth: 'admin', status: 200, response: policyAnswer, example: { project_id: EXAMPLE_ID, environment_id: null, policy: DEFAULT_POLICY, source: 'default', changed_at: null } },
        { method: 'put', path: `${scope}/personal-data-policy`, summary: `Set ${whose} personal data policy (recorded in each chain it changes)`, tag: 'admin', auth: 'admin', body: policySchema, status: 200, response: policyChange },
        { method: 'delete', path: `${scope}/personal-data-policy`, summary: `Remove ${whose} personal data policy (recorded in each chain it changes)`, tag: 'admin', auth: 'admin', status: 200, response: policyChange },
      ];
    }),
    {
      method: 'post', path: `${P}/erasures`, summary: "Erase a data subject's personal values in every chain of the project (201; 200 for a repeat that found nothing new)", tag: 'admin', auth: 'admin',
      body: erasing.erasure, status: 201, alsoOk: { 200: 'A repeat that found nothing new: the same answer, nothing appended' }, response: erasure, errors: underHold,
    },
    { method: 'post', path: `${P}/holds`, summary: 'Place a legal hold (refuses the erasures it covers)', tag: 'admin', auth: 'admin', body: erasing.hold, status: 201, response: hold.extend({ events: z.array(chainReceipt) }) },
    { method: 'get', path: `${P}/holds`, summary: 'List legal holds', tag: 'admin', auth: 'admin', query: pageQuery, status: 200, response: list('holds', hold) },
    { method: 'delete', path: `${P}/holds/{holdId}`, summary: 'Lift a legal hold (again: a no-op)', tag: 'admin', auth: 'admin', status: 200, response: hold.extend({ events: z.array(chainReceipt) }) },
    {
      method: 'post', path: '/v1/erasures', summary: "Erase a data subject's personal values in the token's chain (201; 200 for a repeat that found nothing new)", tag: 'events', auth: 'erase',
      body: erasing.erasure, status: 201, alsoOk: { 200: 'A repeat that found nothing new: the same answer, nothing appended' }, response: erasure, errors: underHold,
    },
    {
      method: 'post', path: '/v1/events', summary: 'Append one event, or {"events": [...]} all or nothing', tag: 'events', auth: 'events:write',
      body: z.union([events.event, events.batch]), status: 201, alsoOk: { 200: 'Every event was already stored under its idempotency key (a retry): their receipts, nothing appended' }, response: appended,
      example: { events: [exampleReceipt], tree_size: 1, root: EXAMPLE_HASH },
    },
    { method: 'get', path: '/v1/events', summary: 'Query events (verify=true recomputes them)', tag: 'events', auth: 'events:read or viewer', query: listQuery, status: 200, response: z.object({ events: z.array(event), next_cursor: z.string().nullable(), verification: verification.optional() }) },
    { method: 'get', path: '/v1/events/export', summary: 'Export events as NDJSON or CSV (streamed)', tag: 'events', auth: 'events:read or viewer', query: exportQuery, status: 200, example: '{"seq":1,"id":"…","received_at":"…","hash":"…","prev":"…","canonical":"{…}","event":{…}}\n' },
    { method: 'get', path: '/v1/events/{id}', summary: 'One event', tag: 'events', auth: 'events:read or viewer', query: verifyQuery, status: 200, response: event },
    {
      method: 'get', path: '/v1/chain', summary: 'The chain head', tag: 'events', auth: 'events:read', status: 200,
      response: z.object({ seq: z.number().int(), hash: hex, tree_size: z.number().int(), root: hex }), example: { seq: 1, hash: EXAMPLE_HASH, tree_size: 1, root: EXAMPLE_HASH },
      errors: { 409: 'chain_damaged: the stored chain head is damaged; run a verification' },
    },
    {
      method: 'get', path: '/v1/token', summary: 'The calling token: its scopes and the chain it writes to', tag: 'events', auth: 'environment', status: 200,
      response: z.object({ token_id: id, scopes: z.array(z.string()), project: z.object({ id, name: z.string() }), environment: z.object({ id, name: z.string() }) }),
    },
    { method: 'get', path: '/v1/keys', summary: 'Verifier keys of checkpoints and bundles', tag: 'proofs', auth: 'none', status: 200, response: z.object({ origin: z.string(), keys: z.array(z.object({ name: z.string(), key_id: z.string(), vkey: z.string(), status: z.enum(['current', 'retired']) })) }) },
    { method: 'get', path: '/v1/checkpoints/latest', summary: 'The newest signed checkpoint', tag: 'proofs', auth: 'events:read', status: 200, response: checkpoint },
    { method: 'get', path: '/v1/checkpoints', summary: 'Signed checkpoints, newest first', tag: 'proofs', auth: 'events:read', query: checkpointsQuery, status: 200, response: z.object({ checkpoints: z.array(checkpoint) }) },
    { method: 'get', path: '/v1/events/{id}/proof', summary: 'RFC 9162 inclusion proof', tag: 'proofs', auth: 'events:read or viewer', query: proofQuery, status: 200, response: proof },
    { method: 'get', path: '/v1/consistency', summary: 'RFC 9162 consistency proof', tag: 'proofs', auth: 'events:read', query: consistencyQuery, status: 200, response: z.object({ from: z.number().int(), to: z.number().int(), proof: z.array(b64), roots: z.object({ from: b64, to: b64 }), checkpoints: z.object({ from: z.string().nullable(), to: z.string().nullable() }) }) },
    { method: 'get', path: '/v1/tlog/checkpoint', summary: 'The latest signed checkpoint as a C2SP tlog-checkpoint note: the root of a C2SP tlog-tiles log', tag: 'proofs', auth: 'events:read', status: 200, type: 'text/plain', example: 'auditledger.example/…/…\n700\nq5kR…=\n\n— auditledger.example Ab3x…\n' },
    {
      method: 'get', path: '/v1/tlog/tile/{path}', summary: 'A C2SP tlog-tiles tile of the latest checkpoint\'s tree: tile/<L>/<N>[.p/<W>] (hashes) or tile/entries/<N>[.p/<W>] (events\' canonical bytes, uint16-length-prefixed)',
      tag: 'proofs', auth: 'events:read', status: 200, type: 'application/octet-stream',
    },
    { method: 'get', path: '/v1/bundles', summary: 'Sealed bundles, newest day first', tag: 'archive', auth: 'events:read', query: bundlesQuery, status: 200, response: z.object({ bundles: z.array(bundle), next_before: z.iso.date().nullable() }) },
    { method: 'get', path: '/v1/bundles/{id}', summary: 'One bundle with its signed manifest', tag: 'archive', auth: 'events:read', status: 200, response: bundle.extend({ manifest: z.record(z.string(), z.unknown()) }) },
    { method: 'post', path: '/v1/verify', summary: 'Start a verification run of the chain (no body, or {})', tag: 'verification', auth: 'verify', body: verifyRequest, bodyOptional: true, status: 202, response: z.object({ run_id: id, status: z.literal('queued'), deduplicated: z.boolean() }), example: { run_id: EXAMPLE_ID, status: 'queued', deduplicated: false } },
    {
      method: 'post', path: `${R}/event`, summary: 'Retraced: report one event', tag: 'retraced', auth: 'events:write', body: retraced.event, status: 201,
      response: retracedReceipt, example: { id: EXAMPLE_ID, hash: EXAMPLE_HASH },
    },
    { method: 'post', path: `${R}/event/bulk`, summary: 'Retraced: report events, all or nothing', tag: 'retraced', auth: 'events:write', body: retraced.bulk, status: 201, response: z.array(retracedReceipt) },
    { method: 'post', path: `${R}/graphql`, summary: "Retraced: the client's search query", tag: 'retraced', auth: 'events:read', body: graphqlRequest, status: 200, response: z.object({ data: z.record(z.string(), z.unknown()) }) },
    { method: 'post', path: '/viewer/v1/viewersession', summary: "Retraced's logs viewer: a session for a viewer token (given in the body)", tag: 'retraced', auth: 'none', body: viewerSessionRequest, status: 200, response: z.object({ token: z.string(), project_id: id, environment_id: id, group_id: z.string() }) },
    { method: 'post', path: '/viewer/v1/graphql', summary: "Retraced's logs viewer: search the viewer token's group", tag: 'retraced', auth: 'viewer', body: graphqlRequest, status: 200, response: z.object({ data: z.record(z.string(), z.unknown()) }) },
    { method: 'get', path: `${R}/viewertoken`, summary: 'Retraced: a short-lived read-only viewer token', tag: 'retraced', auth: 'events:read', query: viewerTokenQuery, status: 201, response: z.object({ token: z.string(), expires_at: time }) },
    { method: 'get', path: '/v1/verify/runs', summary: 'Verification runs and findings', tag: 'verification', auth: 'verify', query: runsQuery, status: 200, response: z.object({ runs: z.array(run), findings: z.array(z.object({ id, run_id: id, seq: z.number().int().nullable(), reason: z.string(), created_at: time })) }) },
  ];
}

const jsonSchema = (schema: z.ZodType) => {
  const { $schema: _, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

function operation(route: Route) {
  const errorResponse = (description: string) => ({ description, content: { 'application/json': { schema: jsonSchema(error) } } });
  const params = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
  const shape = route.query?.shape ?? {};
  const queryParams = Object.entries(shape).map(([name, schema]) => ({
    name,
    in: 'query',
    required: !(schema as z.ZodType).safeParse(undefined).success,
    schema: jsonSchema(schema as z.ZodType),
  }));
  const ok: Record<string, unknown> = { description: route.summary };
  if (route.status !== 204) {
    const type = route.type ?? 'application/json';
    ok.content = { [type]: { ...(route.response ? { schema: jsonSchema(route.response) } : {}), ...(route.example !== undefined ? { example: route.example } : {}) } };
  }
  return {
    summary: route.summary,
    tags: [route.tag],
    ...(route.auth === 'none' ? { security: [] } : { security: [{ bearer: [] }], description: `Needs ${route.auth === 'admin' ? 'the admin token' : route.auth === 'environment' ? 'an environment token (any scope)' : route.auth === 'viewer' ? 'a viewer token (alv_…)' : route.auth === 'events:read or viewer' ? 'an environment token with scope events:read, or a viewer token (alv_…, the events of its group)' : `an environment token with scope ${route.auth}`}.` }),
    parameters: [...params, ...queryParams],
    ...(route.body ? { requestBody: { required: !route.bodyOptional, content: { 'application/json': { schema: jsonSchema(route.body) } } } } : {}),
    responses: {
      [route.status]: ok,
      ...Object.fromEntries(Object.entries(route.alsoOk ?? {}).map(([status, description]) => [status, { ...ok, description }])),
      ...(route.body || route.query ? { 400: errorResponse('A bad field, named in details') } : {}),
      ...(route.body ? { 415: errorResponse('A body that is not UTF-8 JSON, or a Content-Encoding other than identity') } : {}),
      ...(route.auth !== 'none' ? { 401: errorResponse('Missing, unknown, expired or revoked token'), 403: errorResponse('Wrong kind of token or missing scope') } : {}),
      ...(route.path.includes('{') ? { 404: errorResponse('No such resource for this caller') } : {}),
      ...Object.fromEntries(Object.entries(route.errors ?? {}).map(([status, description]) => [status, errorResponse(description)])),
    },
  };
}

export function openApiDocument(config: Config, limits: EventLimits) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes(config, limits)) (paths[route.path] ??= {})[route.method] = operation(route);
  return {
    openapi: '3.1.0',
    info: {
      title: 'auditledger',
      version: '1',
      description: 'Tamper-evident, append-only audit-event ledger: append, query with verification, signed checkpoints, Merkle proofs, sealed bundles.',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <token> (also token=<t> and Token token=<t>)' } } },
    paths,
  };
}
