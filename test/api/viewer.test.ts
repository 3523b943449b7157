// What the embedded viewers need of the server, over HTTP in process: the component's bundle,
// CORS on what it reads, proofs for viewer tokens, and Retraced's viewer API (/viewer/v1).
// The browser side is test/viewer/viewer.test.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildViewer } from '../../scripts/build-viewer.mjs';
import { runCheckpoints } from '../../src/jobs/checkpoints.js';
import { createTestApp, createTenant, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

describe('the viewers on the server', () => {
  const ctx = {} as { db: TestDatabase; t: TestApp; dir: string };
  let tenant: Awaited<ReturnType<typeof createTenant>>;
  let viewer: string;
  let ids: string[];
  beforeAll(async () => {
    // A bundle of its own: dist/ is rebuilt by the packages test meanwhile.
    ctx.dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-viewer-'));
    const bundle = path.join(ctx.dir, 'auditledger-viewer.js');
    await buildViewer([bundle]);
    ctx.db = await createTestDatabase();
    ctx.t = await createTestApp(ctx.db, {}, Date.now, undefined, { viewerBundle: bundle });
    tenant = await createTenant(ctx.t, 'viewer-api');
    const events = [
      { action: 'doc.read', crud: 'r', group: { id: 'acme' } },
      { action: 'doc.edit', crud: 'u', group: { id: 'globex' } },
      { action: 'doc.make', crud: 'c', group: { id: 'acme' } },
    ];
    ids = (await (await ctx.t.request('POST', '/v1/events', { token: tenant.token, body: { events } })).json()).events.map((e: { id: string }) => e.id);
    const { db } = ctx;
    await runCheckpoints({ db: db.pools.owner, key: ctx.t.keyring.current, origin: ctx.t.keyring.origin, log: pino({ level: 'silent' }) });
    const issued = await ctx.t.request('GET', `/publisher/v1/project/${tenant.projectId}/viewertoken?group_id=acme&actor_id=u-1`, { token: tenant.token });
    viewer = (await issued.json()).token;
  });

  afterAll(async () => {
    await ctx.t?.close();
    await ctx.db?.drop();
    await rm(ctx.dir, { recursive: true, force: true });
  });

  it('serves the web component without a token, as JavaScript anyone may load, revalidated by its ETag', async () => {
    const res = await ctx.t.request('GET', '/viewer/auditledger-viewer.js');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('cache-control')).toBe('public, max-age=3600');
    const etag = res.headers.get('etag')!;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]{43}"$/);
    expect(await res.text()).toContain('auditledger-viewer');
    const again = await ctx.t.request('GET', '/viewer/auditledger-viewer.js', { headers: { 'if-none-match': `"other", ${etag}` } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    // Weak comparison: the W/ form a cache may send matches too.
    const weak = await ctx.t.request('GET', '/viewer/auditledger-viewer.js', { headers: { 'if-none-match': `W/${etag}` } });
    expect(weak.status).toBe(304);
  });

  it('a query parameter given twice is refused, naming it: a viewer token is never minted for the first of two groups', async () => {
    const minted = await ctx.t.request('GET', `/publisher/v1/project/${tenant.projectId}/viewertoken?group_id=acme&group_id=globex`, { token: tenant.token });
    expect(minted.status).toBe(400);
    expect((await minted.json()).error.details).toEqual([{ field: 'query.group_id', message: 'is given more than once' }]);
    const listed = await ctx.t.request('GET', '/v1/events?action=a&action=b', { token: tenant.token });
    expect(listed.status).toBe(400);
    expect((await listed.json()).error.details).toEqual([{ field: 'query.action', message: 'is given more than once' }]);
  });

  it("answers the viewer's preflights before authentication, for reading only", async () => {
    const preflight = (path: string, method: string) =>
      ctx.t.request('OPTIONS', path, {
        headers: { origin: 'https://app.example', 'access-control-request-method': method, 'access-control-request-headers': 'authorization' },
      });
    const read = await preflight('/v1/events', 'GET');
    expect(read.status).toBe(204);
    expect(read.headers.get('access-control-allow-origin')).toBe('*');
    expect(read.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
    expect(read.headers.get('access-control-allow-methods')).toBe('GET');
    expect((await preflight(`/v1/events/${ids[0]}/proof`, 'GET')).status).toBe(204);
    // No CORS beyond the viewer's reads: the admin API stays closed to pages.
    expect((await preflight('/v1/projects', 'GET')).status).toBe(401);
    const listed = await ctx.t.request('GET', '/v1/events', { token: viewer, headers: { origin: 'https://app.example' } });
    expect(listed.headers.get('access-control-allow-origin')).toBe('*');
    // Appending is not for pages: no CORS headers on it.
    const appended = await ctx.t.request('POST', '/v1/events', { token: tenant.token, headers: { origin: 'https://app.example' }, body: { action: 'cors.checked' } });
    expect(appended.status).toBe(201);
    expect(appended.headers.get('access-control-allow-origin')).toBeNull();
  });

  it("holds a viewer token to its group and target: a query naming another is a 403 naming it, never answered with the token's own", async () => {
    const actions = async (path: string, token = viewer) => {
      const res = await ctx.t.request('GET', path, { token });
      expect(res.status, path).toBe(200);
      return (await res.json()).events.map((e: { event: { action: string } }) => e.event.action);
    };
    const refused = async (path: string, token: string, field: string) => {
      const res = await ctx.t.request('GET', path, { token });
      expect(res.status, path).toBe(403);
      const { error } = await res.json();
      expect(error.code, path).toBe('forbidden');
      expect(error.details, path).toEqual([{ field, message: expect.stringContaining('not this viewer token') }]);
    };
    for (const route of ['/v1/events', '/v1/events/export']) await refused(`${route}?group_id=globex`, viewer, 'query.group_id');
    // Its own group is no change; an environment token's group_id filters as before.
    expect(await actions('/v1/events?group_id=acme')).toEqual(['doc.read', 'doc.make']);
    expect(await actions('/v1/events?group_id=globex', tenant.token)).toEqual(['doc.edit']);

    // Events of a group of their own: the tests below read all of acme's.
    const mint = async (query: string) => {
      const issued = await ctx.t.request('GET', `/publisher/v1/project/${tenant.projectId}/viewertoken?group_id=initech&actor_id=u-1${query}`, { token: tenant.token });
      return (await issued.json()).token as string;
    };
    const body = { events: [{ action: 'doc.share', group: { id: 'initech' }, target: { id: 'doc-1' } }, { action: 'doc.drop', group: { id: 'initech' }, target: { id: 'doc-2' } }] };
    expect((await ctx.t.request('POST', '/v1/events', { token: tenant.token, body })).status).toBe(201);
    const one = await mint('&target_id=doc-1');
    for (const route of ['/v1/events', '/v1/events/export']) await refused(`${route}?target_id=doc-2`, one, 'query.target_id');
    expect(await actions('/v1/events?target_id=doc-1', one)).toEqual(['doc.share']);
    // A token without a target lets the query pick one within its group.
    expect(await actions('/v1/events?target_id=doc-2', await mint(''))).toEqual(['doc.drop']);
  });

  it('proves events of the viewer token group, and no other', async () => {
    const proof = await ctx.t.request('GET', `/v1/events/${ids[2]}/proof`, { token: viewer });
    expect(proof.status).toBe(200);
    expect(await proof.json()).toMatchObject({ leaf_index: 2, tree_size: 3, checkpoint: expect.stringContaining('\n— ') });
    expect((await ctx.t.request('GET', `/v1/events/${ids[1]}/proof`, { token: viewer })).status).toBe(404);
    // Proofs need nothing else of the chain: checkpoints and consistency stay with API tokens.
    expect((await ctx.t.request('GET', '/v1/checkpoints/latest', { token: viewer })).status).toBe(403);
  });

  describe("Retraced's viewer API", () => {
    const graphql = (token: string, query: string) =>
      ctx.t.request('POST', '/viewer/v1/graphql?skipViewLogEvent=true', {
        headers: { authorization: token },
        body: { query: 'query S($query: String!, $last: Int) { search(query: $query, last: $last) { totalCount edges { node { action group { id } } } } }', variables: { query, last: 20 } },
      });

    it('trades a viewer token for a session, and refuses anything else (401)', async () => {
      const res = await ctx.t.request('POST', '/viewer/v1/viewersession', { body: { token: viewer } });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ token: viewer, project_id: tenant.projectId, environment_id: tenant.environmentId, group_id: 'acme' });
      for (const token of [tenant.token, ctx.t.adminToken, `${viewer}x`]) {
        const refused = await ctx.t.request('POST', '/viewer/v1/viewersession', { body: { token } });
        expect(refused.status).toBe(401);
      }
      const bad = await ctx.t.request('POST', '/viewer/v1/viewersession', { body: { token: 5 } });
      expect(bad.status).toBe(400);
      expect((await bad.json()).error.message).toMatch(/^token: /);
    });

    it("searches the token's group with the bare session token, crud:c,u,d as any of them", async () => {
      const res = await graphql(viewer, 'crud:c,u,d');
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ data: { search: { totalCount: 1, edges: [{ node: { action: 'doc.make', group: { id: 'acme' } } }] } } });
      const all = await (await graphql(viewer, '')).json();
      expect(all.data.search.edges.map((e: { node: { action: string } }) => e.node.action)).toEqual(['doc.make', 'doc.read']);
      expect((await graphql(tenant.token, '')).status).toBe(403);
      expect((await graphql('', '')).status).toBe(401);
    });

    it('refuses a search term with an empty value, as the publisher API does', async () => {
      for (const query of ['actor.id:', 'crud:c,u,d action:""', 'received:,']) {
        const res = await graphql(viewer, query);
        expect(res.status, query).toBe(400);
        expect((await res.json()).error.details, query).toEqual([{ field: 'search.query', message: expect.stringContaining(': needs ') }]);
      }
    });
  });
});
