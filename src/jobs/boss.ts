import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type pg from 'pg';

/**
 * pg-boss on the owner pool, in its own schema: jobs need the owner's rights (DDL, pruning). Its
 * first start creates that schema, and createQueue creates tables: processes starting together
 * run both under STARTUP_LOCK (see startService).
 */
export async function startBoss(owner: pg.Pool, log: Logger): Promise<PgBoss> {
  const boss = new PgBoss({
    db: { executeSql: (text, values) => owner.query(text, values) },
    schema: 'pgboss',
  });
  boss.on('error', (error) => log.error({ err: error }, 'job system error'));
  await boss.start();
  return boss;
}
