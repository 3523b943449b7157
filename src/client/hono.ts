// Hono middleware recording one audit event per request, by the conventions in ./middleware.ts.
import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { recordRequest, type AuditMiddlewareOptions } from './middleware.js';

export type { AuditMiddlewareOptions } from './middleware.js';

/**
 * `app.use(honoAuditMiddleware({client}))` before the routes. The event is queued after the
 * handler ran, without waiting for the ledger.
 */
export function honoAuditMiddleware(options: AuditMiddlewareOptions<Context>): MiddlewareHandler {
  return async (c, next) => {
    const ownRoute = c.req.routeIndex;
    let escaped = true;
    try {
      await next();
      escaped = false;
    } finally {
      recordRequest(options, () => ({
        method: c.req.method,
        // After next(), the route index is that of the handler that answered; still ours if none did.
        route: c.req.routeIndex === ownRoute ? '*' : routePath(c),
        // An error that escaped next() becomes a 500 further out.
        status: escaped ? 500 : c.res.status,
        actor: options.actor?.(c),
        sourceIp: options.sourceIp ? options.sourceIp(c) : peerAddress(c),
      }));
    }
  };
}

/** The socket's peer address under @hono/node-server, which passes Node's request as `env.incoming`. */
function peerAddress(c: Context): string | undefined {
  return (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket?.remoteAddress;
}
