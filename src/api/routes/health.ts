import { Hono } from 'hono';
import type pg from 'pg';
import { withDeadline } from '../../deadline.js';
import { appliedVersion } from '../../store/migrate.js';
import type { AppEnv } from '../context.js';

/**
 * Liveness and readiness. /healthz fails (503) once the database has not answered for longer
 * than `unreachableMs` allows (the service's probe): a supervisor then restarts a process that
 * could not serve anyway. /readyz asks the database now: reachable, schema up to date, and an
 * answer within `timeoutMs` (a database that stopped answering gets a 503, not a hung probe).
 */
export function healthRoutes(db: pg.Pool, expectedVersion: number, timeoutMs: number, unreachable?: { unansweredMs(): number; limitMs: number }) {
  return new Hono<AppEnv>()
    .get('/healthz', (c) => {
      const unanswered = unreachable?.unansweredMs() ?? 0;
      if (unreachable && unanswered > unreachable.limitMs) {
        return c.json({ status: 'unhealthy', reason: `database unreachable for ${Math.round(unanswered / 1000)} s` }, 503);
      }
      return c.json({ status: 'ok' });
    })
    .get('/readyz', async (c) => {
      try {
        const version = await withDeadline(appliedVersion(db), timeoutMs, 'the database');
        if (version < expectedVersion) {
          return c.json({ status: 'not ready', reason: `schema at version ${version}, expected ${expectedVersion}` }, 503);
        }
        return c.json({ status: 'ready', schema_version: version });
      } catch (error) {
        return c.json({ status: 'not ready', reason: `database unreachable: ${(error as Error).message}` }, 503);
      }
    });
}
