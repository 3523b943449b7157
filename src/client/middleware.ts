// Request auditing middleware: one event per HTTP request, queued on an audit log client without
// waiting, so a slow or unreachable ledger never fails or delays a response. This file holds the
// conventions (shared with ./hono.ts) and the Express middleware, typed structurally so that it
// needs no dependency on express.
//
// The event of a request:
// - action: `http.<method in lower case> <route pattern>`, e.g. `GET /orgs/7/users/42` routed by
//   `/orgs/:orgId` and `/users/:id` gives `http.get /orgs/:orgId/users/:id`: the whole pattern,
//   mount paths included, never the raw path: paths carry ids and personal data and would make
//   every action unique. A request no route matched is `*` (`http.get *`); one that middleware
//   under a mount path answered is that path followed by `/*` (under Hono: that middleware's pattern).
// - crud: GET and HEAD `r`, POST `c`, PUT and PATCH `u`, DELETE `d`; other methods none.
// - is_failure: status >= 400, or aborted. A refused or invalid attempt (401, 403, 404, 409) is
//   exactly what an audit trail must show as not having happened, not only server errors.
// - fields.status: the status code sent, as a string (Retraced fields are strings), or `aborted`
//   when the client hung up before any status was sent (whatever the handler did afterwards).
// - actor: from the `actor` callback; without one (or when it returns undefined) the event is
//   `is_anonymous: true`.
// - source_ip: the peer address (an IPv4-mapped IPv6 address as IPv4), or the `sourceIp`
//   callback's answer behind a proxy; an address the ledger would refuse is left out.
// - created: the time the event is queued (set by the client).
import { isIP } from 'node:net';
import type { AuditEvent, Crud, Party } from '../ledger/event.js';
import type { AuditLogClient } from './client.js';

export interface AuditMiddlewareOptions<Request> {
  /** Where events go; only createEvent is used. */
  client: Pick<AuditLogClient, 'createEvent'>;
  /** Who made the request; undefined records it as anonymous. */
  actor?: (request: Request) => Party | undefined;
  /** The client's address, when the peer address is a proxy's. */
  sourceIp?: (request: Request) => string | undefined;
  /** Gets every error of recording an event (never thrown into the request). Default console.error. */
  onError?: (error: unknown) => void;
}

/** What a request is audited by. */
export interface RequestFacts {
  method: string;
  route: string;
  /** The status sent, or `aborted` when the client hung up before one was. */
  status: number | 'aborted';
  actor: Party | undefined;
  sourceIp: string | undefined;
}

const CRUD_OF_METHOD: Record<string, Crud> = { GET: 'r', HEAD: 'r', POST: 'c', PUT: 'u', PATCH: 'u', DELETE: 'd' };

/** The audit event of a request, by the conventions above. */
function requestEvent({ method, route, status, actor, sourceIp }: RequestFacts): AuditEvent {
  const crud = CRUD_OF_METHOD[method.toUpperCase()];
  const ip = ledgerIp(sourceIp);
  return {
    action: `http.${method.toLowerCase()} ${route}`,
    ...(crud ? { crud } : {}),
    ...(actor ? { actor } : { is_anonymous: true }),
    ...(ip ? { source_ip: ip } : {}),
    is_failure: status === 'aborted' || status >= 400,
    fields: { status: String(status) },
  };
}

/** The address as the ledger accepts it: `::ffff:a.b.c.d` as IPv4, no zone id; undefined if not an IP. */
function ledgerIp(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const ip = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '').replace(/%.*$/, '');
  return isIP(ip) ? ip : undefined;
}

/** Builds and queues the event; whatever goes wrong is handed to onError, never to the request. */
export function recordRequest<Request>(options: AuditMiddlewareOptions<Request>, facts: () => RequestFacts): void {
  const onError = options.onError ?? ((error: unknown) => console.error('auditledger middleware:', error));
  try {
    options.client.createEvent(requestEvent(facts())).catch(onError);
  } catch (error) {
    onError(error);
  }
}

/** The parts of a Node response (`http.ServerResponse`) that tell how it ended. */
export interface NodeResponseLike {
  statusCode: number;
  headersSent: boolean;
  once(event: 'finish' | 'close', listener: () => void): unknown;
}

/**
 * Calls `ended` once, when the response was written in full (`finish`) or the connection closed
 * first (`close`): with the status sent, or `aborted` if the client hung up before it was.
 */
export function whenResponseEnds(res: NodeResponseLike, ended: (status: number | 'aborted') => void): void {
  let done = false;
  const end = () => {
    if (done) return;
    done = true;
    ended(res.headersSent ? res.statusCode : 'aborted');
  };
  res.once('finish', end);
  res.once('close', end);
}

/** The parts of an Express request the middleware reads. */
export interface ExpressLikeRequest {
  method: string;
  /** The Express application (`app._router` in Express 4, `app.router` in 5). */
  app?: unknown;
  /** The raw path prefix the routers entered so far were mounted at. */
  baseUrl?: string;
  /** The client address, honouring Express's `trust proxy` setting. */
  ip?: string;
  socket?: { remoteAddress?: string };
}

/**
 * Express middleware (`app.use(expressAuditMiddleware({client}))` on the top-level app, before
 * the routes). The event is recorded once the response ends (see whenResponseEnds): an action
 * whose client went away still happened.
 */
export function expressAuditMiddleware<Request extends ExpressLikeRequest>(options: AuditMiddlewareOptions<Request>) {
  return (req: Request, res: NodeResponseLike, next: (error?: unknown) => void): void => {
    const trail = followRouting(req);
    // Read now: once the client hung up, the socket no longer knows its peer.
    const peer = req.ip ?? req.socket?.remoteAddress;
    whenResponseEnds(res, (status) =>
      recordRequest(options, () => ({
        method: req.method,
        route: trail.route(),
        status,
        actor: options.actor?.(req),
        sourceIp: options.sourceIp ? options.sourceIp(req) : peer,
      })),
    );
    next();
  };
}

// Route patterns under Express. Express only keeps the last route's own path (`req.route.path`)
// and the raw prefix (`req.baseUrl`, ids included); the patterns of the mount paths in between
// live on the router's layers. So, like OpenTelemetry's Express instrumentation, the middleware
// wraps the layers' request handler (once per Express copy) and, for audited requests only,
// notes the pattern of each mounted router or route a request enters, forgetting it again when
// that layer passes the request on with next().

/** A router layer of Express 4 (router/layer.js) or of Express 5's `router` package. */
interface Layer {
  /** Set on a route's layer. */
  route?: { path: unknown };
  /** Express 5 (router >= 2.3): the path the layer was made with. */
  rawPath?: unknown;
  /** Express 5: one matcher per path. */
  matchers?: ((path: string) => unknown)[];
  /** Express 4: the compiled path and its parameters, in order (`*` gets a number as name). */
  regexp?: RegExp;
  keys?: { name: string | number }[];
}
type Next = (error?: unknown) => void;
type HandleRequest = (this: Layer, req: unknown, res: unknown, next: Next) => unknown;

/** The routing of one request: the pieces of pattern entered so far, each with its raw base URL. */
interface RoutingTrail {
  /** The base URL where the middleware met the request (empty on the top-level app). */
  rootUrl: string;
  entries: { baseUrl: string; pattern: string; isRoute: boolean }[];
  /** Set once a layer passed an error on: the request stays recorded under the route that failed. */
  failed: boolean;
}

const TRAIL = Symbol('auditledger.routingTrail');
const wrappedLayers = new WeakSet<object>();

/** Starts following the request through the routers; route() is its pattern so far. */
function followRouting(req: ExpressLikeRequest): { route: () => string } {
  const holder = req as { [TRAIL]?: RoutingTrail };
  // A second audit middleware on the way (a sub-app's) follows the same routing.
  const trail = (holder[TRAIL] ??= { rootUrl: req.baseUrl ?? '', entries: [], failed: false });
  wrapLayers(req.app);
  return {
    route: () => {
      const pattern = joinPaths(trail.entries.map((entry) => entry.pattern));
      if (trail.entries.at(-1)?.isRoute) return pattern;
      return trail.entries.length > 0 ? `${pattern}/*` : '*';
    },
  };
}

/** Wraps the request handler of the app's Layer class, once per copy of Express. */
function wrapLayers(app: unknown): void {
  const expressApp = app as { _router?: { stack?: object[] }; router?: { stack?: object[] } } | undefined;
  // Express 4 keeps the router in _router; its `router` getter throws.
  const layer = (expressApp?._router ?? expressApp?.router)?.stack?.[0];
  const proto = layer && (Object.getPrototypeOf(layer) as Record<string, unknown>);
  if (!proto || wrappedLayers.has(proto)) return;
  wrappedLayers.add(proto);
  const name = typeof proto.handleRequest === 'function' ? 'handleRequest' : 'handle_request';
  const original = proto[name] as HandleRequest | undefined;
  if (typeof original !== 'function') return;
  proto[name] = function (this: Layer, req: unknown, res: unknown, next: Next) {
    const trail = (req as { [TRAIL]?: RoutingTrail })[TRAIL];
    if (!trail || trail.failed) return original.call(this, req, res, next);
    const depth = trail.entries.length;
    enterLayer(trail, this, (req as ExpressLikeRequest).baseUrl ?? '');
    return original.call(this, req, res, (error?: unknown) => {
      if (error && error !== 'route' && error !== 'router') trail.failed = true;
      else trail.entries.length = depth;
      next(error);
    });
  };
}

/** Notes the layer's pattern if it is a route, or a mounted router whose prefix was just trimmed. */
function enterLayer(trail: RoutingTrail, layer: Layer, baseUrl: string): void {
  if (layer.route) {
    trail.entries.push({ baseUrl, pattern: String(layer.route.path), isRoute: true });
    return;
  }
  const parentUrl = trail.entries.at(-1)?.baseUrl ?? trail.rootUrl;
  // Middleware without a path, and the handlers inside a route, leave the base URL as it was.
  if (baseUrl.length <= parentUrl.length) return;
  trail.entries.push({ baseUrl, pattern: mountPattern(layer, baseUrl.slice(parentUrl.length)), isRoute: false });
}

/** The pattern a layer matched `matched` (the raw prefix it trimmed) with; `*` when Express hides it. */
function mountPattern(layer: Layer, matched: string): string {
  const { rawPath, matchers, regexp, keys } = layer;
  if (typeof rawPath === 'string') return rawPath;
  if (Array.isArray(rawPath) && matchers) {
    const path: unknown = rawPath[matchers.findIndex((match) => match(matched))];
    if (typeof path === 'string') return path;
  }
  if (regexp && keys) {
    // Express 4 does not keep the path: put each parameter's name over the text it matched.
    const spans = new RegExp(regexp.source, `${regexp.flags.replace('g', '')}d`).exec(matched)?.indices;
    if (spans && spans.length === keys.length + 1) {
      let pattern = matched;
      for (let i = keys.length; i >= 1; i--) {
        const span = spans[i];
        const name = keys[i - 1]!.name;
        if (span) pattern = pattern.slice(0, span[0]) + (typeof name === 'number' ? '*' : `:${name}`) + pattern.slice(span[1]);
      }
      return pattern;
    }
  }
  return '*';
}

/** `/orgs/:orgId` + `/` + `/users/:id/` → `/orgs/:orgId/users/:id`. */
function joinPaths(parts: string[]): string {
  const path = parts.join('/').replace(/\/{2,}/g, '/').replace(/(.)\/$/, '$1');
  return path.startsWith('/') ? path : `/${path}`;
}
