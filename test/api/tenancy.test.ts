import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, createTenant, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

/**
 * The tenant-isolation matrix: a token of environment A reaches nothing of environment B of the
 * same project, nor of another project; what it cannot see answers 404, never 403.
 */
describe('tenant isolation', () => {
  let db: TestDatabase;
  let t: TestApp;
  const tenants: Record<'a' | 'sibling' | 'foreign', { token: string; eventId: string; environmentId: string }> = {} as never;

  beforeAll(async () => {
    db = await createTestDatabase();
    t = await createTestApp(db);
    const a = await createTenant(t, 'project-one');
    // A second environment of the same project.
    const envRes = await t.request('POST', `/v1/projects/${a.projectId}/environments`, { token: t.adminToken, body: { name: 'staging' } });
    const sibling = (await envRes.json()) as { id: string };
    const tokenRes = await t.request('POST', `/v1/projects/${a.projectId}/environments/${sibling.id}/tokens`, {
      token: t.adminToken,
      body: { name: 'staging-app' },
    });
    const siblingToken = ((await tokenRes.json()) as { token: string }).token;
    const foreign = await createTenant(t, 'project-two');

    for (const [name, token, environmentId] of [
      ['a', a.token, a.environmentId],
      ['sibling', siblingToken, sibling.id],
      ['foreign', foreign.token, foreign.environmentId],
    ] as const) {
      const res = await t.request('POST', '/v1/events', { token, body: { action: `${name}.event`, actor: { id: `${name}-actor` } } });
      const eventId = (await res.json()).events[0].id as string;
      tenants[name] = { token, eventId, environmentId };
    }
  });
  afterAll(async () => {
    await t.close();
    await db.drop();
  });

  for (const other of ['sibling', 'foreign'] as const) {
    describe(`a token of A against ${other === 'sibling' ? 'another environment of its project' : 'another project'}`, () => {
      it("cannot read the other's event by id: 404", async () => {
        for (const q of ['', '?verify=true']) {
          const res = await t.request('GET', `/v1/events/${tenants[other].eventId}${q}`, { token: tenants.a.token });
          expect(res.status).toBe(404);
        }
      });

      it("never lists the other's events, whatever the filter", async () => {
        for (const q of ['', `?actor_id=${other}-actor`, `?action=${other}.*`, '?seq_from=1&seq_to=10']) {
          const res = await t.request('GET', `/v1/events${q}`, { token: tenants.a.token });
          const { events } = await res.json();
          const environments = events.map((e: { canonical: string }) => JSON.parse(e.canonical).environment);
          expect(environments.filter((env: string) => env !== tenants.a.environmentId)).toEqual([]);
          expect(events.map((e: { id: string }) => e.id)).not.toContain(tenants[other].eventId);
        }
      });

      it('writes only to its own chain', async () => {
        const before = await (await t.request('GET', '/v1/chain', { token: tenants[other].token })).json();
        await t.request('POST', '/v1/events', { token: tenants.a.token, body: { action: 'a.only' } });
        const after = await (await t.request('GET', '/v1/chain', { token: tenants[other].token })).json();
        expect(after).toEqual(before);
      });
    });
  }

  it('each chain counts its own seqs from 1', async () => {
    for (const name of ['sibling', 'foreign'] as const) {
      const res = await t.request('GET', `/v1/events/${tenants[name].eventId}`, { token: tenants[name].token });
      expect((await res.json()).seq).toBe(1);
    }
  });

  it('scopes: a read-only token cannot write, a write-only token cannot read (403)', async () => {
    const reader = await createTenant(t, 'scoped-reader', ['events:read']);
    const writer = await createTenant(t, 'scoped-writer', ['events:write']);
    expect((await t.request('POST', '/v1/events', { token: reader.token, body: { action: 'x' } })).status).toBe(403);
    expect((await t.request('GET', '/v1/events', { token: reader.token })).status).toBe(200);
    expect((await t.request('POST', '/v1/events', { token: writer.token, body: { action: 'x' } })).status).toBe(201);
    for (const path of ['/v1/events', '/v1/chain', `/v1/events/${tenants.a.eventId}`]) {
      expect((await t.request('GET', path, { token: writer.token })).status, path).toBe(403);
    }
  });

  it('the admin token is not an environment token: 403 on event routes', async () => {
    expect((await t.request('POST', '/v1/events', { token: t.adminToken, body: { action: 'x' } })).status).toBe(403);
    expect((await t.request('GET', '/v1/events', { token: t.adminToken })).status).toBe(403);
  });

  it('no token at all: 401 on every event route', async () => {
    for (const [method, path] of [
      ['POST', '/v1/events'],
      ['GET', '/v1/events'],
      ['GET', `/v1/events/${tenants.a.eventId}`],
      ['GET', '/v1/chain'],
    ] as const) {
      expect((await t.request(method, path, { body: method === 'POST' ? { action: 'x' } : undefined })).status).toBe(401);
    }
  });
});
