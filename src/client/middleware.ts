// Request auditing middleware: one event per HTTP request, queued on an audit log client without
// waiting, so a slow or unreachable ledger never fails or delays a response. This file holds the
// conventions (shared with ./hono.ts) and the Express middleware, typed structurally so that it
// needs no dependency on express.
//
// The event of a request:
// - action: `http.<method in lower case> <route pattern>`, e.g. `GET /users/42` routed by
//   `/users/:id` gives `http.get /users/:id`. The pattern, never the raw path: paths carry ids and
//   personal data and would make every action unique. A request no route matched is `*`
//   (`http.get *`); under Hono, one that only middleware registered after this one answered
//   gets that middleware's pattern (e.g. `/*`).
// - crud: GET and HEAD `r`, POST `c`, PUT and PATCH `u`, DELETE `d`; other methods none.
// - is_failure: status >= 400. A refused or invalid attempt (401, 403, 404, 409) is exactly what
//   an audit trail must show as not having happened, not only server errors.
// - fields.status: the status code, as a string (Retraced fields are strings).
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
  status: number;
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
    is_failure: status >= 400,
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

/** The parts of an Express request the middleware reads. */
export interface ExpressLikeRequest {
  method: string;
  /** The mount path of the router that matched. */
  baseUrl?: string;
  /** Set by Express once a route matched. */
  route?: { path: unknown };
  /** The client address, honouring Express's `trust proxy` setting. */
  ip?: string;
  socket?: { remoteAddress?: string };
}

/** The parts of an Express (Node) response the middleware reads. */
export interface ExpressLikeResponse {
  statusCode: number;
  once(event: 'finish' | 'close', listener: () => void): unknown;
}

/**
 * Express middleware (`app.use(expressAuditMiddleware({client}))`, before the routes). The event is
 * recorded when the response finishes, or when the connection closes first: an action whose
 * client went away still happened.
 */
export function expressAuditMiddleware<Request extends ExpressLikeRequest>(options: AuditMiddlewareOptions<Request>) {
  return (req: Request, res: ExpressLikeResponse, next: (error?: unknown) => void): void => {
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      recordRequest(options, () => ({
        method: req.method,
        route: req.route ? `${req.baseUrl ?? ''}${String(req.route.path)}` : '*',
        status: res.statusCode,
        actor: options.actor?.(req),
        sourceIp: options.sourceIp ? options.sourceIp(req) : (req.ip ?? req.socket?.remoteAddress),
      }));
    };
    res.once('finish', record);
    res.once('close', record);
    next();
  };
}
