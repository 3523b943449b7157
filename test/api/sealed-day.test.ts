import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, createTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const DAY_MS = 86_400_000;

describe('an append whose day takes no more events', () => {
  let db: TestDatabase;
  /** An app whose clock is shifted, as AUDITLEDGER_CLOCK_OFFSET does; `offset` moves it. */
  let shifted: TestApp;
  let offset = -9 * DAY_MS;
  /** An app on the same database with the true clock. */
  let real: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase();
    shifted = await createTestApp(db, {}, () => Date.now() + offset);
    real = await createTestApp(db);
  });
  afterAll(async () => {
    await shifted?.close();
    await real?.close();
    await db?.drop();
  });

  const append = (t: TestApp, token: string, action = 'user.login') => t.request('POST', '/v1/events', { token, body: { action } });

  it('answers 503 day_sealed naming the day, writes nothing, and leaves the chain usable', async () => {
    const tenant = await createTenant(shifted, 'sealed-day');
    const first = await append(shifted, tenant.token);
    expect(first.status).toBe(201);
    const day = (await first.json()).events[0].received_at.slice(0, 10);
    await db.pools.owner.query('SELECT auditledger_seal_partition($1::date, 1)', [day]);

    // Several at once, so that they share a group commit; and through Retraced's route.
    const answers = await Promise.all([
      append(shifted, tenant.token, 'a'),
      append(shifted, tenant.token, 'b'),
      append(shifted, tenant.token, 'c'),
      shifted.request('POST', `/publisher/v1/project/${tenant.projectId}/event`, { token: tenant.token, body: { action: 'd' } }),
    ]);
    for (const res of answers) {
      expect(res.status).toBe(503);
      const { error } = await res.json();
      expect(error.code).toBe('day_sealed');
      expect(error.message).toContain(day);
      expect(error.message).toMatch(/sealed/);
      expect(error.message).toMatch(/AUDITLEDGER_CLOCK_OFFSET/);
    }
    const stored = await db.pools.owner.query('SELECT count(*)::int AS n FROM events WHERE environment_id = $1', [tenant.environmentId]);
    expect(stored.rows[0].n).toBe(1);
    expect((await (await shifted.request('GET', '/v1/chain', { token: tenant.token })).json()).seq).toBe(1);

    // With a true clock the same chain, and any other, appends again.
    const next = await append(real, tenant.token);
    expect(next.status).toBe(201);
    expect((await next.json()).events[0].seq).toBe(2);
    const other = await createTenant(real, 'other-chain');
    expect((await append(real, other.token)).status).toBe(201);
  });

  it('a policy change, a hold placed or lifted that cannot record its events changes nothing', async () => {
    offset = -8 * DAY_MS;
    const admin = (method: string, path: string, body?: unknown) => shifted.request(method, path, { token: shifted.adminToken, body });
    const tenant = await createTenant(shifted, 'sealed-writes');
    // A second chain: nothing may be recorded in either.
    const second = await admin('POST', `/v1/projects/${tenant.projectId}/environments`, { name: 'staging' });
    expect(second.status).toBe(201);
    const first = await append(shifted, tenant.token);
    expect(first.status).toBe(201);
    const day = (await first.json()).events[0].received_at.slice(0, 10);
    const held = await admin('POST', `/v1/projects/${tenant.projectId}/holds`, { reason: 'case 1' });
    expect(held.status).toBe(201);
    const hold = await held.json();
    await db.pools.owner.query('SELECT auditledger_seal_partition($1::date, 1)', [day]);
    const events = async () =>
      (await db.pools.owner.query('SELECT count(*)::int AS n FROM events e JOIN environments v ON v.id = e.environment_id WHERE v.project_id = $1', [tenant.projectId])).rows[0].n;
    const before = await events();

    const policyPath = `/v1/projects/${tenant.projectId}/personal-data-policy`;
    const policy = { subjects: [{ subject: '/actor/id', paths: ['/source_ip'] }] };
    const refused = [
      await admin('PUT', policyPath, policy),
      await admin('POST', `/v1/projects/${tenant.projectId}/holds`, { reason: 'case 2' }),
      await admin('DELETE', `/v1/projects/${tenant.projectId}/holds/${hold.id}`),
    ];
    for (const res of refused) {
      expect(res.status).toBe(503);
      expect((await res.json()).error.code).toBe('day_sealed');
    }
    expect(await events()).toBe(before);
    expect((await (await admin('GET', policyPath)).json()).source).toBe('default');
    const holds = (await (await admin('GET', `/v1/projects/${tenant.projectId}/holds`)).json()).holds;
    expect(holds).toHaveLength(1);
    expect(holds[0]).toMatchObject({ id: hold.id, lifted_at: null });

    // The same requests, once the clock is true, do it all once.
    const put = await real.request('PUT', policyPath, { token: real.adminToken, body: policy });
    expect(put.status).toBe(200);
    expect((await put.json()).events).toHaveLength(2);
    expect((await real.request('DELETE', `/v1/projects/${tenant.projectId}/holds/${hold.id}`, { token: real.adminToken })).status).toBe(200);
  });

  it('answers 503 no_partition for a day that has no partition', async () => {
    const tenant = await createTenant(shifted, 'no-partition');
    offset = -400 * DAY_MS;
    const res = await append(shifted, tenant.token);
    expect(res.status).toBe(503);
    const { error } = await res.json();
    expect(error.code).toBe('no_partition');
    expect(error.message).toContain(new Date(Date.now() + offset).toISOString().slice(0, 10));
  });
});
