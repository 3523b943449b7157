import { Hono } from 'hono';
import type pg from 'pg';
import { z } from 'zod';
import { listFindings, listRuns, queueRun, type ChainRow } from '../../store/verification.js';
import { requireScope } from '../auth.js';
import type { AppEnv } from '../context.js';
import { query } from '../input.js';
import { chainOf } from './chain.js';

export const runsQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(20) });

/** Starts a verification run of a chain now (a pg-boss job in the service). */
export type RequestVerification = (chain: ChainRow, runId: string) => Promise<unknown>;

/** Verification runs and findings of the caller's chain, and starting a run now. */
export function verifyRoutes(db: pg.Pool, requestVerification: RequestVerification) {
  const verify = requireScope('verify');
  return new Hono<AppEnv>()
    .post('/verify', verify, async (c) => {
      const { project, environment } = chainOf(c);
      const runId = await queueRun(db, environment, 'api');
      await requestVerification({ project_id: project, environment_id: environment }, runId);
      return c.json({ run_id: runId, status: 'queued' }, 202);
    })
    .get('/verify/runs', verify, async (c) => {
      const { environment } = chainOf(c);
      const { limit } = query(c, runsQuery);
      const [runs, findings] = await Promise.all([listRuns(db, environment, limit), listFindings(db, environment)]);
      return c.json({ runs, findings });
    });
}
