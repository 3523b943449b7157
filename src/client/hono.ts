// Hono middleware recording one audit event per request, by the conventions in ./middleware.ts.
import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { recordRequest, whenResponseEnds, type AuditMiddlewareOptions, type NodeResponseLike } from './middleware.js';

export type { AuditMiddlewareOptions } from './middleware.js';

/**
 * `app.use(honoAuditMiddleware({client}))` before the routes. Under @hono/node-server the event
 * is queued once the response ends (see whenResponseEnds), so a client that hung up before the
 * status was sent is recorded as `aborted`; elsewhere, after the handler ran, with its status
 * (a runtime that gives no Node response cannot tell an abort). Never waits for the ledger.
 */
export function honoAuditMiddleware(options: AuditMiddlewareOptions<Context>): MiddlewareHandler {
  return async (c, next) => {
    const ownRoute = c.req.routeIndex;
    const node = c.env as NodeEnv | undefined;
    // Read now: once the client hung up, the socket no longer knows its peer.
    const peer = node?.incoming?.socket?.remoteAddress;
    const record = (status: number | 'aborted') =>
      recordRequest(options, () => ({
        method: c.req.method,
        // The route index is that of the handler running or that answered; still ours if none did.
        route: c.req.routeIndex === ownRoute ? '*' : routePath(c),
        status,
        actor: options.actor?.(c),
        sourceIp: options.sourceIp ? options.sourceIp(c) : peer,
      }));
    const outgoing = node?.outgoing;
    // Listening before the handler runs: the client may hang up while it does.
    if (outgoing) whenResponseEnds(outgoing, record);
    let escaped = true;
    try {
      await next();
      escaped = false;
    } finally {
      // An error that escaped next() becomes a 500 further out.
      if (!outgoing) record(escaped ? 500 : c.res.status);
    }
  };
}

/** Node's request and response, which @hono/node-server passes as `env.incoming` and `env.outgoing`. */
interface NodeEnv {
  incoming?: { socket?: { remoteAddress?: string } };
  outgoing?: NodeResponseLike;
}
