import { describe, expect, it } from 'vitest';
import { PUBLIC_ROUTES } from '../../src/api/app.js';
import { presentedToken } from '../../src/api/auth.js';
import { createTenant, useTestApp } from '../helpers/app.js';

describe('authentication', () => {
  const ctx = useTestApp({ AUDITLEDGER_TOKEN_CACHE_SECONDS: '0' });

  it('reads Bearer, token= and Token token= headers', () => {
    expect(presentedToken('Bearer abc')).toBe('abc');
    expect(presentedToken('bearer   abc ')).toBe('abc');
    expect(presentedToken('token=abc')).toBe('abc');
    expect(presentedToken('Token token=abc')).toBe('abc');
    // Bare, as Retraced's logs viewer sends its session token.
    expect(presentedToken(' abc ')).toBe('abc');
    expect(presentedToken('Basic abc')).toBeUndefined();
    expect(presentedToken('Bearer a b')).toBeUndefined();
    expect(presentedToken(undefined)).toBeUndefined();
  });

  it('denies every registered route without a token, except the listed public ones', async () => {
    const answered = new Map<string, number>();
    for (const { method, path } of ctx.t.routes) {
      const res = await ctx.t.request(method, path.replace(/:\w+/g, '01a21911-bccf-7f99-a4ac-49a982af437f'));
      answered.set(`${method} ${path}`, res.status);
      if (res.status === 401) expect((await res.json()).error.code).toBe('unauthorized');
    }
    const open = [...answered].filter(([, status]) => status !== 401).map(([route]) => route);
    expect(open.sort()).toEqual([...PUBLIC_ROUTES].sort());
    expect(answered.size).toBeGreaterThan(PUBLIC_ROUTES.size + 20);
  });

  it('answers an unknown path 401 without a token and a JSON 404 with one', async () => {
    for (const [method, path] of [['GET', '/v1/nothing'], ['POST', '/v1/keys'], ['GET', '/docs/other.js'], ['DELETE', '/healthz']] as const) {
      expect((await ctx.t.request(method, path)).status, `${method} ${path}`).toBe(401);
      const res = await ctx.t.request(method, path, { token: ctx.t.adminToken });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect((await res.json()).error.code).toBe('not_found');
    }
  });

  it('accepts the admin token in each header form', async () => {
    for (const header of [`Bearer ${ctx.t.adminToken}`, `token=${ctx.t.adminToken}`, `Token token=${ctx.t.adminToken}`]) {
      const res = await ctx.t.request('GET', '/v1/projects', { headers: { authorization: header } });
      expect(res.status, header).toBe(200);
    }
  });

  it('answers 401 alike for a missing, malformed, unknown, expired or revoked token', async () => {
    const expired = await createTenant(ctx.t, 'expired');
    await ctx.db.pools.owner.query(`UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, [expired.tokenId]);
    const revoked = await createTenant(ctx.t, 'revoked');
    await ctx.t.request('DELETE', `/v1/tokens/${revoked.tokenId}`, { token: ctx.t.adminToken });
    const unknown = expired.token.replace(/_[\w-]{43}$/, `_${'A'.repeat(43)}`); // right id, wrong secret

    const answers = [];
    for (const headers of [
      {},
      { authorization: 'Bearer' },
      { authorization: 'Bearer nonsense' },
      { authorization: `Bearer ${unknown}` },
      { authorization: `Bearer ${expired.token}` },
      { authorization: `Bearer ${revoked.token}` },
    ]) {
      const res = await ctx.t.request('GET', '/v1/projects', { headers });
      expect(res.status).toBe(401);
      answers.push((await res.json()).error);
    }
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
  });

  it('keeps environment tokens out of admin routes with 403', async () => {
    const tenant = await createTenant(ctx.t, 'no-admin');
    for (const [method, path] of [
      ['GET', '/v1/projects'],
      ['POST', '/v1/projects'],
      ['GET', `/v1/projects/${tenant.projectId}`],
      ['GET', `/v1/projects/${tenant.projectId}/environments/${tenant.environmentId}/tokens`],
      ['DELETE', `/v1/tokens/${tenant.tokenId}`],
    ] as const) {
      const res = await ctx.t.request(method, path, { token: tenant.token, body: method === 'POST' ? { name: 'x' } : undefined });
      expect(res.status, `${method} ${path}`).toBe(403);
    }
  });

  it('records last_used_at in one batched write, not per request', async () => {
    const tenant = await createTenant(ctx.t, 'usage');
    const lastUsed = async () =>
      (await ctx.db.pools.owner.query('SELECT last_used_at FROM api_tokens WHERE id = $1', [tenant.tokenId])).rows[0].last_used_at;
    for (let i = 0; i < 5; i++) await ctx.t.request('GET', '/v1/projects', { token: tenant.token });
    expect(await lastUsed()).toBeNull();
    await ctx.t.credentials.flushUsage();
    const first = await lastUsed();
    expect(first).toBeInstanceOf(Date);
    expect(Date.now() - first.getTime()).toBeLessThan(60_000);
  });
});
