import type { MiddlewareHandler } from 'hono';
import type { Scope } from '../store/tokens.js';
import type { AppEnv } from './context.js';
import type { Authenticator } from './credentials.js';
import { ApiError } from './errors.js';

/**
 * The token from `Authorization`: `Bearer <t>`, the forms the Retraced client sends,
 * `token=<t>` and `Token token=<t>`, or the bare token, as Retraced's logs viewer sends its session.
 */
export function presentedToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^(?:Bearer\s+|Token\s+token=|token=)?(\S+)\s*$/i.exec(header.trim());
  return match?.[1];
}

/** The same answer for a missing, unknown, expired or revoked token: nothing to learn from it. */
const unauthorized = () => new ApiError(401, 'unauthorized', 'a valid token is required (Authorization: Bearer <token>)');

export function authenticate(credentials: Authenticator): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = presentedToken(c.req.header('authorization'));
    const principal = token ? await credentials.authenticate(token) : undefined;
    if (!principal) throw unauthorized();
    c.set('principal', principal);
    await next();
  };
}

export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.get('principal').kind !== 'admin') throw new ApiError(403, 'forbidden', 'this route needs the admin token');
  await next();
};

/** Reading events: an events:read token, or a viewer token (whose reads are narrowed to its group). */
export const requireEventsRead: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.get('principal').kind === 'viewer') return next();
  return requireScope('events:read')(c, next);
};

export function requireScope(scope: Scope): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const principal = c.get('principal');
    if (principal.kind !== 'token') throw new ApiError(403, 'forbidden', 'this route needs an environment token');
    if (!principal.scopes.includes(scope)) throw new ApiError(403, 'forbidden', `this token lacks the scope ${scope}`);
    await next();
  };
}
