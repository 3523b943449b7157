import type { Context, ErrorHandler, NotFoundHandler } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ChainHeadDamagedError, ConflictError, DayClosedError, isDatabaseUnavailable } from '../store/errors.js';
import type { AppEnv } from './context.js';

/** One problem with one field of the request, e.g. `{field: "events.3.actor.id", message: "required"}`. */
export interface FieldProblem {
  field: string;
  message: string;
}

/** An answer to a client mistake: `{error: {code, message, details?}}` with a 4xx status. */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function invalidFields(problems: FieldProblem[], code = 'invalid_request'): ApiError {
  const summary = problems.map((p) => `${p.field}: ${p.message}`).join('; ');
  return new ApiError(400, code, summary, problems);
}

export const notFound = (what = 'resource') => new ApiError(404, 'not_found', `${what} not found`);

export function errorResponse(c: Context, error: ApiError) {
  const body = { error: { code: error.code, message: error.message, ...(error.details ? { details: error.details } : {}) } };
  return c.json(body, error.status);
}

export const onError: ErrorHandler<AppEnv> = (error, c) => {
  if (error instanceof ApiError) return errorResponse(c, error);
  if (error instanceof ConflictError) {
    const details = error.field ? [{ field: error.field, message: error.message }] : undefined;
    return errorResponse(c, new ApiError(409, 'conflict', error.message, details));
  }
  if (error instanceof DayClosedError) {
    // 503, not 4xx: the request is fine and may be retried once the server's clock is; clients
    // (our SDK among them) keep and retry events on a 5xx, and drop them on a 4xx.
    c.get('log').error({ received_at: error.receivedAt, reason: error.reason }, 'append refused: its day takes no new events');
    return errorResponse(c, new ApiError(503, error.reason === 'sealed' ? 'day_sealed' : 'no_partition', error.message));
  }
  if (error instanceof ChainHeadDamagedError) {
    // Damage, not a fault of ours to trace: the reason is the evidence, and verification records it.
    c.get('log').error({ environment: error.environment, seq: error.seq, reason: error.problem }, 'chain head damaged');
    // A read gets 409 as for other damage; an append 503, so that a client keeps its events and
    // retries (our SDK does on a 5xx, and drops them on a 4xx) once the chain is repaired.
    const status = c.req.method === 'GET' || c.req.method === 'HEAD' ? 409 : 503;
    return errorResponse(c, new ApiError(status, 'chain_damaged', `the chain head is damaged (${error.problem}); run a verification`));
  }
  if (isDatabaseUnavailable(error)) {
    // The request may be fine: a client retries it (our SDK keeps and retries events on a 5xx).
    // Debug only: during an outage every request fails alike; serve's probe logs when the
    // database stops and starts answering (store/reachability.ts).
    c.get('log').debug({ err: error }, 'request failed: the database is unavailable');
    c.header('Retry-After', '5');
    return errorResponse(c, new ApiError(503, 'database_unavailable', 'the database is unavailable; retry later'));
  }
  c.get('log').error({ err: error }, 'request failed');
  return errorResponse(c, new ApiError(500, 'internal', `internal error (request id ${c.get('requestId')})`));
};

export const onNotFound: NotFoundHandler<AppEnv> = (c) =>
  errorResponse(c, new ApiError(404, 'not_found', `no route for ${c.req.method} ${c.req.path}`));
