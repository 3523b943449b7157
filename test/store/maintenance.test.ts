import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMaintenance } from '../../src/jobs/maintenance.js';
import { createTestApp, createTenant } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

describe('maintenance job', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  it('creates the partitions for the days ahead, so no append meets a missing day', async () => {
    const now = Date.UTC(2031, 4, 30, 12);
    await runMaintenance(db.pools.owner, { partitionDaysAhead: 3, idempotencyHours: 24, now: () => now }, pino({ level: 'silent' }));
    const { rows } = await db.pools.owner.query<{ name: string }>(
      `SELECT relname AS name FROM pg_class WHERE relname LIKE 'events_2031%' AND relkind = 'r' ORDER BY relname`,
    );
    expect(rows.map((r) => r.name)).toEqual(['events_20310529', 'events_20310530', 'events_20310531', 'events_20310601', 'events_20310602']);
  });

  it('forgets idempotency keys older than the configured hours, and only those', async () => {
    const t = await createTestApp(db);
    try {
      const tenant = await createTenant(t, 'keys');
      await t.request('POST', '/v1/events', { token: tenant.token, body: { action: 'a' }, headers: { 'idempotency-key': 'k1' } });
      const keys = async () => (await db.pools.owner.query('SELECT key FROM idempotency_keys')).rows.map((r) => r.key);
      const options = { partitionDaysAhead: 1, idempotencyHours: 24 };
      await runMaintenance(db.pools.owner, { ...options, now: () => Date.now() + 23 * 3_600_000 }, pino({ level: 'silent' }));
      expect(await keys()).toEqual(['k1']);
      await runMaintenance(db.pools.owner, { ...options, now: () => Date.now() + 25 * 3_600_000 }, pino({ level: 'silent' }));
      expect(await keys()).toEqual([]);
    } finally {
      await t.close();
    }
  });
});
