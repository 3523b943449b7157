import { beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, createTenant, useTestApp } from '../helpers/app.js';

describe('admin API', () => {
  const ctx = useTestApp({ AUDITLEDGER_MAX_NAME_LENGTH: '40' });

  const admin = (method: string, path: string, body?: unknown) => ctx.t.request(method, path, { token: ctx.t.adminToken, body });

  it('creates, reads, renames and lists projects', async () => {
    const created = await admin('POST', '/v1/projects', { name: 'billing' });
    expect(created.status).toBe(201);
    const project = await created.json();
    expect(project).toMatchObject({ name: 'billing', id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(Date.parse(project.created_at)).not.toBeNaN();

    expect(await (await admin('GET', `/v1/projects/${project.id}`)).json()).toEqual(project);
    const renamed = await admin('PATCH', `/v1/projects/${project.id}`, { name: 'billing-eu' });
    expect(renamed.status).toBe(200);
    expect((await renamed.json()).name).toBe('billing-eu');

    const list = await (await admin('GET', '/v1/projects')).json();
    expect(list.projects.map((p: { id: string }) => p.id)).toContain(project.id);
  });

  it('pages lists with limit and cursor', async () => {
    for (const name of ['page-a', 'page-b', 'page-c']) await admin('POST', '/v1/projects', { name });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await admin('GET', `/v1/projects?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      const body = (await res.json()) as { projects: { name: string }[]; next_cursor: string | null };
      expect(body.projects.length).toBeLessThanOrEqual(2);
      seen.push(...body.projects.map((p) => p.name));
      cursor = body.next_cursor;
    } while (cursor);
    expect(seen).toEqual(expect.arrayContaining(['page-a', 'page-b', 'page-c']));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('refuses a duplicate project name with 409', async () => {
    await admin('POST', '/v1/projects', { name: 'dup' });
    const res = await admin('POST', '/v1/projects', { name: 'dup' });
    expect(res.status).toBe(409);
    expect((await res.json()).error).toMatchObject({ code: 'conflict', details: [{ field: 'name' }] });
  });

  it('manages environments within their project only', async () => {
    const p1 = await (await admin('POST', '/v1/projects', { name: 'env-owner' })).json();
    const p2 = await (await admin('POST', '/v1/projects', { name: 'env-other' })).json();
    const res = await admin('POST', `/v1/projects/${p1.id}/environments`, { name: 'staging' });
    expect(res.status).toBe(201);
    const env = await res.json();
    expect(env).toMatchObject({ name: 'staging', project_id: p1.id });

    expect((await admin('GET', `/v1/projects/${p1.id}/environments/${env.id}`)).status).toBe(200);
    // The same environment id under another project does not exist.
    expect((await admin('GET', `/v1/projects/${p2.id}/environments/${env.id}`)).status).toBe(404);
    expect((await admin('PATCH', `/v1/projects/${p2.id}/environments/${env.id}`, { name: 'x' })).status).toBe(404);
    expect((await admin('DELETE', `/v1/projects/${p2.id}/environments/${env.id}`)).status).toBe(404);
    expect((await admin('POST', `/v1/projects/${p2.id}/environments/${env.id}/tokens`, { name: 'x' })).status).toBe(404);

    const renamed = await admin('PATCH', `/v1/projects/${p1.id}/environments/${env.id}`, { name: 'qa' });
    expect((await renamed.json()).name).toBe('qa');
    const list = await (await admin('GET', `/v1/projects/${p1.id}/environments`)).json();
    expect(list.environments.map((e: { name: string }) => e.name)).toEqual(['qa']);
    expect((await admin('POST', `/v1/projects/${p1.id}/environments`, { name: 'qa' })).status).toBe(409);
    // Same name in another project is fine.
    expect((await admin('POST', `/v1/projects/${p2.id}/environments`, { name: 'qa' })).status).toBe(201);
  });

  it('shows a token once and lists tokens without secrets', async () => {
    const p = await (await admin('POST', '/v1/projects', { name: 'tokens' })).json();
    const env = await (await admin('POST', `/v1/projects/${p.id}/environments`, { name: 'prod' })).json();
    const expires = new Date(Date.now() + 86_400_000).toISOString();
    const res = await admin('POST', `/v1/projects/${p.id}/environments/${env.id}/tokens`, {
      name: 'reader',
      scopes: ['events:read'],
      expires_at: expires,
    });
    expect(res.status).toBe(201);
    const token = await res.json();
    expect(token).toMatchObject({ name: 'reader', scopes: ['events:read'], expires_at: expires });
    expect(token.token).toMatch(/^alt_[0-9a-f]{32}_[\w-]{43}$/);

    const defaults = await (await admin('POST', `/v1/projects/${p.id}/environments/${env.id}/tokens`, { name: 'all' })).json();
    expect(defaults.scopes).toEqual(['events:write', 'events:read', 'verify']);
    expect(defaults.expires_at).toBeNull();

    const list = await (await admin('GET', `/v1/projects/${p.id}/environments/${env.id}/tokens`)).json();
    expect(list.tokens).toHaveLength(2);
    const text = JSON.stringify(list);
    expect(text).not.toContain(token.token);
    expect(text).not.toContain('digest');

    // Only the SHA-256 digest is stored.
    const stored = await ctx.db.pools.owner.query('SELECT digest FROM api_tokens WHERE id = $1', [token.id]);
    expect(stored.rows[0].digest).toHaveLength(32);
    expect(JSON.stringify(await ctx.db.pools.owner.query('SELECT * FROM api_tokens'))).not.toContain(token.token.slice(37));
  });

  it('revokes a token with DELETE /v1/tokens/:id', async () => {
    const tenant = await createTenant(ctx.t, 'revoke-me');
    expect((await ctx.t.request('GET', '/v1/projects', { token: tenant.token })).status).toBe(403);
    expect((await admin('DELETE', `/v1/tokens/${tenant.tokenId}`)).status).toBe(204);
    expect((await ctx.t.request('GET', '/v1/projects', { token: tenant.token })).status).toBe(401);
    expect((await admin('DELETE', `/v1/tokens/${tenant.tokenId}`)).status).toBe(204); // idempotent
    expect((await admin('DELETE', '/v1/tokens/01a00000-0000-7000-8000-000000000000')).status).toBe(404);
    const list = await (await admin('GET', `/v1/projects/${tenant.projectId}/environments/${tenant.environmentId}/tokens`)).json();
    expect(list.tokens[0].revoked_at).not.toBeNull();
  });

  it('deletes an empty environment and project, but never one that holds events', async () => {
    const empty = await createTenant(ctx.t, 'deletable');
    const full = await createTenant(ctx.t, 'holds-events');
    // Simulate an appended event: the chain head has moved.
    await ctx.db.pools.owner.query('UPDATE chain_heads SET seq = 1 WHERE environment_id = $1', [full.environmentId]);

    const envConflict = await admin('DELETE', `/v1/projects/${full.projectId}/environments/${full.environmentId}`);
    expect(envConflict.status).toBe(409);
    expect((await envConflict.json()).error.message).toMatch(/audit events/);
    expect((await admin('DELETE', `/v1/projects/${full.projectId}`)).status).toBe(409);
    expect((await admin('GET', `/v1/projects/${full.projectId}/environments/${full.environmentId}`)).status).toBe(200);

    expect((await admin('DELETE', `/v1/projects/${empty.projectId}/environments/${empty.environmentId}`)).status).toBe(204);
    expect((await ctx.t.request('GET', '/v1/projects', { token: empty.token })).status).toBe(401);
    expect((await admin('DELETE', `/v1/projects/${empty.projectId}`)).status).toBe(204);
    expect((await admin('GET', `/v1/projects/${empty.projectId}`)).status).toBe(404);
  });

  describe('bad input', () => {
    let projectId: string;
    let environmentId: string;
    beforeAll(async () => {
      ({ projectId, environmentId } = await createTenant(ctx.t, 'bad-input'));
    });

    const bodies: [string, unknown, RegExp][] = [
      ['missing name', {}, /^name: /],
      ['empty name', { name: '   ' }, /name: must not be empty/],
      ['white space around the name', { name: ' shop ' }, /name: must not begin or end with white space/],
      ['name too long', { name: 'x'.repeat(41) }, /name: must be at most 40 characters/],
      ['name of the wrong type', { name: 42 }, /^name: /],
      ['NUL in name', { name: 'a\u0000b' }, /name: must not contain NUL/],
      ['lone surrogate', { name: 'a\ud800b' }, /name: must not contain a lone UTF-16 surrogate/],
      ['unknown field', { name: 'ok', color: 'red' }, /color: unknown field/],
      ['not an object', ['name'], /body: /],
    ];
    const namedRoutes = () => [
      ['POST', '/v1/projects'],
      ['PATCH', `/v1/projects/${projectId}`],
      ['POST', `/v1/projects/${projectId}/environments`],
      ['PATCH', `/v1/projects/${projectId}/environments/${environmentId}`],
      ['POST', `/v1/projects/${projectId}/environments/${environmentId}/tokens`],
    ];

    it.each(bodies)('%s: 400 naming the field on every route that takes a name', async (_, body, message) => {
      for (const [method, path] of namedRoutes()) {
        const res = await admin(method!, path!, body);
        expect(res.status, `${method} ${path}`).toBe(400);
        const { error } = await res.json();
        expect(error.code).toBe('invalid_request');
        expect(error.message).toMatch(message);
        expect(error.details.length).toBeGreaterThan(0);
      }
    });

    it('malformed JSON is a 400 and another media type a 415, on every route with a body', async () => {
      for (const [method, path] of namedRoutes()) {
        const malformed = await ctx.t.request(method!, path!, { token: ctx.t.adminToken, body: '{"name": ' });
        expect(malformed.status).toBe(400);
        expect((await malformed.json()).error.code).toBe('invalid_json');
        const text = await ctx.t.request(method!, path!, {
          token: ctx.t.adminToken,
          body: 'name=x',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
        expect(text.status).toBe(415);
      }
    });

    it('bytes that are not UTF-8, a duplicate member and another charset are refused, on every route with a body', async () => {
      for (const [method, path] of namedRoutes()) {
        const send = (body: string | Uint8Array, type = 'application/json') =>
          ctx.t.request(method!, path!, { token: ctx.t.adminToken, body, headers: { 'content-type': type } });
        const bytes = await send(Buffer.concat([Buffer.from('{"name":"a'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]));
        expect(bytes.status, `${method} ${path}`).toBe(400);
        expect((await bytes.json()).error.message).toBe('the body is not valid UTF-8');
        const twice = await send('{"name":"a","name":"b"}');
        expect(twice.status).toBe(400);
        expect((await twice.json()).error.details).toEqual([{ field: 'name', message: expect.stringMatching(/given twice/) }]);
        expect((await send('{"name":"a"}', 'application/json; charset=latin1')).status).toBe(415);
      }
    });

    it('a body over the limit is a 413', async () => {
      const small = await createTestApp(ctx.db, { AUDITLEDGER_MAX_BODY_BYTES: '64' });
      try {
        const res = await small.request('POST', '/v1/projects', { token: small.adminToken, body: { name: 'x'.repeat(100) } });
        expect(res.status).toBe(413);
        expect((await res.json()).error.code).toBe('payload_too_large');
      } finally {
        await small.close();
      }
    });

    it('token fields: bad scopes and expiry are named', async () => {
      const path = `/v1/projects/${projectId}/environments/${environmentId}/tokens`;
      const cases: [unknown, RegExp][] = [
        [{ name: 'a', scopes: ['events:delete'] }, /scopes\.0: /],
        [{ name: 'a', scopes: [] }, /scopes: must name at least one scope/],
        [{ name: 'a', scopes: ['verify', 'verify'] }, /scopes: must not repeat a scope/],
        [{ name: 'a', expires_at: 'tomorrow' }, /expires_at: /],
        [{ name: 'a', expires_at: '2001-01-01T00:00:00Z' }, /expires_at: must be in the future/],
      ];
      for (const [body, message] of cases) {
        const res = await admin('POST', path, body);
        expect(res.status).toBe(400);
        expect((await res.json()).error.message).toMatch(message);
      }
    });

    it('list paging parameters are checked', async () => {
      for (const q of ['limit=0', 'limit=1001', 'limit=abc', 'cursor=nope', 'colour=red']) {
        const res = await admin('GET', `/v1/projects?${q}`);
        expect(res.status, q).toBe(400);
        expect((await res.json()).error.message).toMatch(/^query\./);
      }
    });

    it('unknown or malformed ids are 404 on every route', async () => {
      const unknown = '01a00000-0000-7000-8000-000000000000';
      for (const id of [unknown, 'not-a-uuid']) {
        for (const [method, path] of [
          ['GET', `/v1/projects/${id}`],
          ['PATCH', `/v1/projects/${id}`],
          ['DELETE', `/v1/projects/${id}`],
          ['GET', `/v1/projects/${id}/environments`],
          ['POST', `/v1/projects/${id}/environments`],
          ['GET', `/v1/projects/${projectId}/environments/${id}`],
          ['DELETE', `/v1/projects/${projectId}/environments/${id}`],
          ['GET', `/v1/projects/${projectId}/environments/${id}/tokens`],
          ['POST', `/v1/projects/${projectId}/environments/${id}/tokens`],
          ['DELETE', `/v1/tokens/${id}`],
        ] as const) {
          const res = await admin(method, path, method === 'POST' || method === 'PATCH' ? { name: 'n' } : undefined);
          expect(res.status, `${method} ${path}`).toBe(404);
          expect((await res.json()).error.code).toBe('not_found');
        }
      }
    });

    it('every error carries a request id and the JSON error shape', async () => {
      const res = await admin('GET', '/v1/nowhere');
      expect(res.status).toBe(404);
      expect(res.headers.get('x-request-id')).toBeTruthy();
      expect(await res.json()).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
    });
  });
});
