import { Hono } from 'hono';
import type pg from 'pg';
import { z } from 'zod';
import { listFindings, listRuns, type ChainRow, type RunLimit, type RunRequest } from '../../store/verification.js';
import { requireScope } from '../auth.js';
import type { AppEnv } from '../context.js';
import type { Principal } from '../credentials.js';
import { ApiError, errorResponse } from '../errors.js';
import { query, readOptionalJson, validate } from '../input.js';
import { queryInt } from '../schemas.js';
import { chainOf } from './chain.js';

export const runsQuery = z.strictObject({ limit: queryInt(1, 1000).default(20) });

/** POST /v1/verify takes no options: no body, or `{}`; any member is refused (400 naming it), not ignored. */
export const verifyRequest = z.strictObject({});

/**
 * Asks for a verification run of a chain for an API token, within `limit` (see queueRun: one
 * queued run per chain, `limit.runs` per token and window). A pg-boss job in the service.
 */
export type RequestVerification = (chain: ChainRow, tokenId: string, limit: RunLimit) => Promise<RunRequest>;

/**
 * Verification runs and findings of the caller's chain, and starting a run now: 202 with the
 * queued run (`deduplicated` when it was queued already), or 429 with Retry-After (seconds) once
 * the token started `limit.runs` runs within `limit.windowSeconds`.
 */
export function verifyRoutes(db: pg.Pool, requestVerification: RequestVerification, limit: RunLimit) {
  const verify = requireScope('verify');
  return new Hono<AppEnv>()
    .post('/verify', verify, async (c) => {
      const { project, environment } = chainOf(c);
      const body = await readOptionalJson(c);
      if (body !== undefined) validate(verifyRequest, body);
      const principal = c.get('principal') as Extract<Principal, { kind: 'token' }>; // requireScope checked it
      const request = await requestVerification({ project_id: project, environment_id: environment }, principal.tokenId, limit);
      if ('retry_after_seconds' in request) {
        c.header('Retry-After', String(request.retry_after_seconds));
        const message =
          `this token started ${limit.runs} verification run(s) in the last ${limit.windowSeconds} s ` +
          `(AUDITLEDGER_VERIFY_RATE, AUDITLEDGER_VERIFY_RATE_WINDOW); retry in ${request.retry_after_seconds} s`;
        return errorResponse(c, new ApiError(429, 'rate_limited', message));
      }
      return c.json({ run_id: request.run_id, status: 'queued', deduplicated: request.deduplicated }, 202);
    })
    .get('/verify/runs', verify, async (c) => {
      const { environment } = chainOf(c);
      const { limit } = query(c, runsQuery);
      const [runs, findings] = await Promise.all([listRuns(db, environment, limit), listFindings(db, environment)]);
      return c.json({ runs, findings });
    });
}
