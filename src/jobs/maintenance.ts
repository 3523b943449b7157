import type PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type pg from 'pg';
import { pruneIdempotencyKeys } from '../store/idempotency.js';
import { ensurePartitions } from '../store/partitions.js';

export const MAINTENANCE_QUEUE = 'auditledger-maintenance';

export interface MaintenanceOptions {
  partitionDaysAhead: number;
  idempotencyHours: number;
  now: () => number;
}

/** One upkeep pass: partitions for the days ahead, and expired idempotency keys forgotten. */
export async function runMaintenance(owner: pg.Pool, options: MaintenanceOptions, log: Logger): Promise<void> {
  const now = new Date(options.now());
  const partitions = await ensurePartitions(owner, now, options.partitionDaysAhead);
  const pruned = await pruneIdempotencyKeys(owner, new Date(now.getTime() - options.idempotencyHours * 3_600_000));
  log.info({ partitions: partitions.length, pruned }, 'maintenance done');
}

/**
 * Hourly, so that a missed run (a process down over midnight) is made up long before a partition
 * is needed; partitions are created days ahead anyway. Singleton: one run at a time cluster-wide.
 */
export async function scheduleMaintenance(boss: PgBoss, owner: pg.Pool, options: MaintenanceOptions, log: Logger) {
  await boss.createQueue(MAINTENANCE_QUEUE, { name: MAINTENANCE_QUEUE, policy: 'singleton' });
  await boss.schedule(MAINTENANCE_QUEUE, '7 * * * *', {}, { tz: 'UTC' });
  await boss.work(MAINTENANCE_QUEUE, async () => runMaintenance(owner, options, log));
}
