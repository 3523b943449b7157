import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type pg from 'pg';
import { JOB_SYSTEM_LOCK, withSessionLock } from '../store/database.js';

/**
 * pg-boss on the owner pool, in its own schema: jobs need the owner's rights (DDL, pruning). It
 * starts under a lock: its first start creates that schema, and processes starting together on a
 * new database would otherwise race there (a deadlock, a duplicate schema).
 */
export async function startBoss(owner: pg.Pool, log: Logger): Promise<PgBoss> {
  const boss = new PgBoss({
    db: { executeSql: (text, values) => owner.query(text, values) },
    schema: 'pgboss',
  });
  boss.on('error', (error) => log.error({ err: error }, 'job system error'));
  await withSessionLock(owner, JOB_SYSTEM_LOCK, () => boss.start());
  return boss;
}
