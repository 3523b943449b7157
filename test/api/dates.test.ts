import { beforeAll, describe, expect, it } from 'vitest';
import { createTenant, useTestApp, type TestResponse } from '../helpers/app.js';

/** Dates PostgreSQL or JavaScript cannot hold, or that do not exist: each a 400, never a 500. */
const REFUSED = [
  '0000-01-01',
  '0000-01-01T00:00:00Z',
  '0001-01-01T00:00:00+14:00', // year 0 in UTC
  '9999-12-31T23:59:59-14:00', // year 10000 in UTC
  '+275760-09-13',
  '+275760-09-13T00:00:00Z',
  '-000001-01-01T00:00:00Z',
  '2026-02-30',
  '2026-02-30T00:00:00Z',
  '2026-13-01T00:00:00Z',
  '',
];
/** The ends of the range: accepted. */
const EDGES = { date: ['0001-01-01', '9999-12-31'], 'date-time': ['0001-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59Z'] };

describe('date and time parameters', () => {
  const ctx = useTestApp();
  let tenant: Awaited<ReturnType<typeof createTenant>>;
  beforeAll(async () => {
    tenant = await createTenant(ctx.t, 'dates');
  });

  async function expectRefused(res: TestResponse, field: string, what: string) {
    expect(res.status, what).toBe(400);
    const body = await res.json();
    // One message for the field: a malformed value is not also said to be out of range.
    expect(body.error.details.filter((d: { field: string }) => d.field === field), what).toHaveLength(1);
  }

  it('range-checks every date and date-time query parameter of every route (found in the OpenAPI document)', async () => {
    const doc = await (await ctx.t.request('GET', '/openapi.json')).json();
    const found: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, { parameters: any[] }>>)) {
      for (const [method, op] of Object.entries(ops)) {
        for (const param of op.parameters.filter((p) => p.in === 'query' && ['date', 'date-time'].includes(p.schema.format))) {
          found.push(`${method} ${path} ${param.name}`);
          const url = (value: string) => `${path}?${new URLSearchParams({ [param.name]: value })}`;
          for (const value of REFUSED) {
            await expectRefused(await ctx.t.request(method, url(value), { token: tenant.token }), `query.${param.name}`, `${path} ${param.name}=${value}`);
          }
          for (const value of EDGES[param.schema.format as 'date' | 'date-time']) {
            const res = await ctx.t.request(method, url(value), { token: tenant.token });
            expect(res.status, `${path} ${param.name}=${value}: ${await res.clone().text()}`).toBe(200);
          }
        }
      }
    }
    expect(found.sort()).toEqual(
      ['get /v1/bundles before', 'get /v1/events from', 'get /v1/events to', 'get /v1/events/export from', 'get /v1/events/export to'].sort(),
    );
  });

  it("range-checks Retraced's received:START,END search", async () => {
    const search = (query: string) =>
      ctx.t.request('POST', `/publisher/v1/project/${tenant.projectId}/graphql`, {
        token: tenant.token,
        body: { query: `{ search(query: ${JSON.stringify(query)}, first: 1) { totalCount } }` },
      });
    for (const value of REFUSED.filter(Boolean)) {
      await expectRefused(await search(`received:${value},`), 'search.query.received.0', value);
      await expectRefused(await search(`received:,${value}`), 'search.query.received.1', value);
    }
    for (const value of EDGES['date-time']) expect((await search(`received:${value},`)).status, value).toBe(200);
  });

  it('range-checks the dates of request bodies: an event\'s created, a token\'s expires_at', async () => {
    const tokens = `/v1/projects/${tenant.projectId}/environments/${tenant.environmentId}/tokens`;
    for (const value of REFUSED) {
      const event = { action: 'dates.test', created: value };
      await expectRefused(await ctx.t.request('POST', '/v1/events', { token: tenant.token, body: event }), 'created', value);
      await expectRefused(
        await ctx.t.request('POST', `/publisher/v1/project/${tenant.projectId}/event`, { token: tenant.token, body: event }),
        'created',
        value,
      );
      await expectRefused(await ctx.t.request('POST', tokens, { token: ctx.t.adminToken, body: { name: 'x', expires_at: value } }), 'expires_at', value);
    }
    for (const created of EDGES['date-time']) {
      expect((await ctx.t.request('POST', '/v1/events', { token: tenant.token, body: { action: 'dates.test', created } })).status, created).toBe(201);
    }
    const res = await ctx.t.request('POST', tokens, { token: ctx.t.adminToken, body: { name: 'far', expires_at: '9999-12-31T23:59:59Z' } });
    expect(res.status).toBe(201);
  });
});
