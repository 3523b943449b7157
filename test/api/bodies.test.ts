// What every route that takes a request body refuses before reading it, and POST /v1/verify's
// body. The JSON rules themselves are in events-bad-input.test.ts and json.test.ts.
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTenant, useTestApp } from '../helpers/app.js';

describe('request bodies', () => {
  const ctx = useTestApp();
  let tenant: Awaited<ReturnType<typeof createTenant>>;
  let viewer: string;
  beforeAll(async () => {
    tenant = await createTenant(ctx.t, 'bodies', ['events:write', 'events:read', 'verify', 'erase']);
    const issued = await ctx.t.request('GET', `/publisher/v1/project/${tenant.projectId}/viewertoken?group_id=acme&actor_id=u-1`, { token: tenant.token });
    viewer = (await issued.json()).token;
  });
  const chainSize = async () => (await (await ctx.t.request('GET', '/v1/chain', { token: tenant.token })).json()).seq;

  /** Every route the app registered with a method that carries a body, with its ids filled in and the token it takes. */
  const bodyRoutes = () => {
    const seen = new Set<string>();
    return ctx.t.routes
      .filter(({ method, path }) => ['POST', 'PUT', 'PATCH'].includes(method) && !seen.has(`${method} ${path}`) && seen.add(`${method} ${path}`))
      .map(({ method, path }) => {
        const filled = path.replace(':projectId', tenant.projectId).replace(':environmentId', tenant.environmentId);
        const token = path.startsWith('/v1/projects') ? ctx.t.adminToken : path === '/viewer/v1/graphql' ? viewer : path === '/viewer/v1/viewersession' ? undefined : tenant.token;
        return { method, path: filled, token };
      });
  };

  it('a Content-Encoding other than identity is a 415 naming the header on every route with a body, and nothing is stored', async () => {
    const before = await chainSize();
    const routes = bodyRoutes();
    expect(routes.length).toBeGreaterThanOrEqual(15);
    const plain = '{"action":"a"}';
    // A gzip body was a 400 "not valid UTF-8"; a plain body labelled br was stored.
    for (const [encoding, body] of [['gzip', new Uint8Array(gzipSync(plain))], ['br', plain], ['GZIP, identity', plain]] as const) {
      for (const { method, path, token } of routes) {
        const res = await ctx.t.request(method, path, { token, body, headers: { 'content-type': 'application/json', 'content-encoding': encoding } });
        const at = `${encoding}: ${method} ${path}`;
        expect(res.status, at).toBe(415);
        expect(res.headers.get('accept-encoding'), at).toBe('identity');
        const { error } = await res.json();
        expect(error.code, at).toBe('unsupported_media_type');
        expect(error.details, at).toEqual([{ field: 'Content-Encoding', message: expect.stringContaining(JSON.stringify(encoding)) }]);
      }
    }
    expect(await chainSize()).toBe(before);
  });

  it('identity, in any case, is a body as it is', async () => {
    for (const encoding of ['identity', 'Identity ']) {
      const res = await ctx.t.request('POST', '/v1/events', { token: tenant.token, body: { action: 'coded.not' }, headers: { 'content-encoding': encoding } });
      expect(res.status, encoding).toBe(201);
    }
  });

  describe('POST /v1/verify', () => {
    const post = (body?: unknown, headers?: Record<string, string>) => ctx.t.request('POST', '/v1/verify', { token: tenant.token, body, headers });

    it('takes no body, or {}, as its documentation says', async () => {
      expect((await post()).status).toBe(202);
      expect((await post({})).status).toBe(202);
      expect((await post('', { 'content-type': 'application/json' })).status).toBe(202);
    });

    it('refuses anything else, naming the field, rather than ignoring it', async () => {
      const cases: [unknown, number, unknown][] = [
        [{ x: 1 }, 400, [{ field: 'x', message: 'unknown field' }]],
        [{ from_seq: 1, full: true }, 400, [{ field: 'from_seq', message: 'unknown field' }, { field: 'full', message: 'unknown field' }]],
        [[], 400, [{ field: 'body', message: expect.any(String) }]],
      ];
      for (const [body, status, details] of cases) {
        const res = await post(body);
        expect(res.status, JSON.stringify(body)).toBe(status);
        expect((await res.json()).error.details, JSON.stringify(body)).toEqual(details);
      }
      expect((await post('{"x":', { 'content-type': 'application/json' })).status).toBe(400);
      expect((await post('x=1', { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(415);
    });
  });
});
