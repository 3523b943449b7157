import { Hono } from 'hono';
import type pg from 'pg';
import { appliedVersion } from '../../store/migrate.js';
import type { AppEnv } from '../context.js';

/** Liveness (the process answers) and readiness (database reachable, schema up to date). */
export function healthRoutes(db: pg.Pool, expectedVersion: number) {
  return new Hono<AppEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }))
    .get('/readyz', async (c) => {
      try {
        const version = await appliedVersion(db);
        if (version < expectedVersion) {
          return c.json({ status: 'not ready', reason: `schema at version ${version}, expected ${expectedVersion}` }, 503);
        }
        return c.json({ status: 'ready', schema_version: version });
      } catch (error) {
        return c.json({ status: 'not ready', reason: `database unreachable: ${(error as Error).message}` }, 503);
      }
    });
}
