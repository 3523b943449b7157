import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type pg from 'pg';

/**
 * How often pg-boss fails jobs past their expiry (among its upkeep): the run of a process that died
 * frees its queue's place only then. pg-boss's default is 120 s.
 */
const BOSS_SUPERVISION_SECONDS = 30;

/**
 * pg-boss on the owner pool, in its own schema: jobs need the owner's rights (DDL, pruning). Its
 * first start creates that schema, and createQueue creates tables: processes starting together
 * run both under STARTUP_LOCK (see startService). `sendOnly`: no maintenance and no schedules here.
 */
export async function startBoss(owner: pg.Pool, log: Logger, options: { sendOnly?: boolean } = {}): Promise<PgBoss> {
  const boss = new PgBoss({
    db: { executeSql: (text, values) => owner.query(text, values) },
    schema: 'pgboss',
    // A process that only sends jobs leaves pg-boss's upkeep and cron to the one that works them.
    ...(options.sendOnly ? { supervise: false, schedule: false } : { maintenanceIntervalSeconds: BOSS_SUPERVISION_SECONDS }),
  });
  boss.on('error', (error) => log.error({ err: error }, 'job system error'));
  await boss.start();
  return boss;
}
