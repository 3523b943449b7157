import { Client, computeHash, type Event, type EventNodeMask } from '@retracedhq/retraced';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retracedReceiptHash } from '../../src/api/routes/retraced.js';
import { verifyViewerToken, viewerTokenKey } from '../../src/api/viewer-token.js';
import { createTestApp, createTenant, type TestApp, type TestResponse } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startTestServer, type TestServer } from '../helpers/http.js';

type Tenant = Awaited<ReturnType<typeof createTenant>>;

describe('Retraced publisher API, driven by the official client', () => {
  let db: TestDatabase;
  let t: TestApp;
  let server: TestServer;
  let tenant: Tenant;
  beforeAll(async () => {
    db = await createTestDatabase();
    t = await createTestApp(db);
    server = await startTestServer(t);
    tenant = await createTenant(t, 'retraced');
  });
  afterAll(async () => {
    await server.close();
    await t.close();
    await db.drop();
  });

  const client = (who: Tenant, config: { component?: string; version?: string; projectId?: string } = {}) =>
    new Client({ endpoint: server.url, projectId: who.projectId, apiKey: who.token, ...config });
  const stored = async (who: Tenant, id: string) => {
    const res = await t.request('GET', `/v1/events/${id}?verify=true`, { token: who.token });
    expect(res.status).toBe(200);
    return res.json();
  };
  const chainSize = async (who: Tenant) => (await (await t.request('GET', '/v1/chain', { token: who.token })).json()).seq;
  /** Posts `body` as JSON, or as it is when it is JSON text already. */
  const post = (who: Tenant, path: string, body: unknown): Promise<TestResponse> =>
    fetch(`${server.url}/publisher/v1/project/${who.projectId}${path}`, {
      method: 'POST',
      headers: { authorization: `token=${who.token}`, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  describe('reporting events', () => {
    it('reportEvent: the client accepts our receipt hash, and the event is in the chain with every field', async () => {
      const created = new Date('2026-01-31T12:00:00.000Z');
      const event: Event = {
        action: 'invoice.paid',
        crud: 'u',
        group: { id: 'acme', name: 'Acme' },
        actor: { id: 'u-42', name: 'Ana', href: 'https://shop.example/u/42', fields: { role: 'admin' } },
        target: { id: 'inv-1', name: 'Invoice 1', type: 'invoice', fields: { amount: '12.50' } },
        source_ip: '203.0.113.9',
        description: 'Ana paid invoice 1',
        is_failure: false,
        is_anonymous: false,
        fields: { plan: 'pro' },
        external_id: 'ext-1',
        metadata: { trace: 'abc' },
        created,
      };
      // reportEvent recomputes the hash from the event and our id, and throws if ours differs.
      const id = await client(tenant, { component: 'billing', version: '1.2.3' }).reportEvent(event);
      const row = await stored(tenant, id);
      expect(row.verification.ok).toBe(true);
      expect(row.event).toEqual({ ...event, created: created.toISOString(), component: 'billing', version: '1.2.3' });
    });

    it('answers {id, hash} with 201, the hash being the one the client computes', async () => {
      const event = { action: 'user.login', actor: { id: 'u-1' } };
      const res = await post(tenant, '/event', event);
      expect(res.status).toBe(201);
      const receipt = await res.json();
      expect(Object.keys(receipt).sort()).toEqual(['hash', 'id']);
      expect(receipt.hash).toBe(computeHash(event, receipt.id).hashResult);
    });

    it('reportEvents: hashes match with :, %, = and ; in ids, fields, external_id and metadata', async () => {
      const events: Event[] = [
        {
          action: 'doc:share%',
          actor: { id: 'user:1%' },
          group: { id: '%% :: group :: %%' },
          fields: { 'k:1': 'v=1;', '%pct': '100%', 'a=b;c': 'x:y', Z: '' },
          external_id: 'ext:1%',
          metadata: { 'm=1': 'n;2:%' },
        },
        { action: 'plain', is_anonymous: true, fields: {} },
        { action: 'target.only', target: { id: 't;1=2' }, source_ip: '2001:db8::1', is_failure: true },
      ];
      const ids = await client(tenant).reportEvents(events);
      expect(ids).toHaveLength(3);
      const rows = await Promise.all(ids.map((id) => stored(tenant, id)));
      expect(rows.map((r) => r.event)).toEqual(events);
      expect(rows.map((r) => r.seq)).toEqual([rows[0].seq, rows[0].seq + 1, rows[0].seq + 2]);
    });

    it('a bulk is all or nothing: one bad event stores none', async () => {
      const size = await chainSize(tenant);
      const bad = [{ action: 'ok' }, { action: 'bad', actor: { id: 'u', displayName: 'Ana' } }] as Event[];
      await expect(client(tenant).reportEvents(bad)).rejects.toThrow(/400/);
      const res = await post(tenant, '/event/bulk', { events: bad });
      expect((await res.json()).error.details).toEqual([{ field: 'events.1.actor.displayName', message: 'unknown field' }]);
      expect(await chainSize(tenant)).toBe(size);
    });

    it('refuses non-string metadata and idempotency keys, which Retraced events do not have', async () => {
      const res = await post(tenant, '/event', { action: 'a', metadata: { n: 5 }, idempotency_key: 'k' });
      expect(res.status).toBe(400);
      expect((await res.json()).error.details.map((d: { field: string }) => d.field).sort()).toEqual(['idempotency_key', 'metadata.n']);
    });

    it('members named __proto__, constructor and prototype are stored, and the receipt hash is the client’s', async () => {
      // Sent as JSON text: the official client's HTTP library (axios) drops __proto__ members from
      // the body it sends, which no server can undo; what arrives is kept whole.
      const text =
        '{"action":"user.update","fields":{"__proto__":"value-a","k":"value-b"},"actor":{"id":"u","fields":{"constructor":"c"}},' +
        '"target":{"id":"t","fields":{"prototype":"p"}},"metadata":{"__proto__":"note","m":"y"}}';
      for (const [path, body] of [['/event', text], ['/event/bulk', `{"events":[${text}]}`]] as const) {
        const res = await post(tenant, path, body);
        expect(res.status).toBe(201);
        const answer = await res.json();
        const receipt = Array.isArray(answer) ? answer[0] : answer;
        const event = JSON.parse(text) as Event;
        expect(receipt.hash).toBe(computeHash(event, receipt.id).hashResult);
        const row = await stored(tenant, receipt.id);
        expect(row.verification.ok).toBe(true);
        expect(Object.keys(row.event.fields)).toEqual(['__proto__', 'k']);
        expect(row.event).toEqual(event);
        expect(row.canonical).toContain('"metadata":{"__proto__":"note","m":"y"}');
      }
    });

    it('a duplicate member is a 400 naming it, on the single and the bulk route', async () => {
      const size = await chainSize(tenant);
      const single = await post(tenant, '/event', '{"action":"a","metadata":{"m":"1","m":"2"}}');
      expect(single.status).toBe(400);
      expect((await single.json()).error.details).toEqual([{ field: 'metadata.m', message: expect.stringMatching(/given twice/) }]);
      const bulk = await post(tenant, '/event/bulk', '{"events":[{"action":"a","fields":{"__proto__":"1","__proto__":"2"}}]}');
      expect(bulk.status).toBe(400);
      expect((await bulk.json()).error.details).toEqual([{ field: 'events.0.fields.__proto__', message: expect.stringMatching(/given twice/) }]);
      expect(await chainSize(tenant)).toBe(size);
    });

    it('our receipt hash is the client’s for any event', () => {
      const text = fc.string({ unit: fc.constantFrom('a', 'Z', '0', ':', '%', '=', ';', ' ', '\\', 'é', '😀') });
      const id = fc.string({ unit: fc.constantFrom('a', ':', '%', '-'), minLength: 1 });
      const party = fc.record({ id });
      const event = fc.record(
        {
          action: id,
          target: party,
          actor: party,
          group: party,
          source_ip: fc.constantFrom('203.0.113.9', '2001:db8::1'),
          is_failure: fc.boolean(),
          is_anonymous: fc.boolean(),
          fields: fc.dictionary(text, text),
          external_id: text,
          metadata: fc.dictionary(text, text),
        },
        { requiredKeys: ['action'] },
      );
      fc.assert(fc.property(event, fc.uuid(), (e, eventId) => retracedReceiptHash(e, eventId) === computeHash(e, eventId).hashResult));
    });
  });

  describe('access', () => {
    it('a project id other than the token’s is a 404', async () => {
      const other = await createTenant(t, 'retraced-other');
      for (const projectId of [other.projectId, '01a00000-0000-7000-8000-000000000000', 'not-a-uuid']) {
        await expect(client(tenant, { projectId }).reportEvent({ action: 'a' }), projectId).rejects.toThrow(/404/);
      }
    });

    it('a read-only token cannot write (403) but can search; a write-only one cannot search', async () => {
      const readOnly = await createTenant(t, 'retraced-read-only', ['events:read']);
      await expect(client(readOnly).reportEvent({ action: 'a' })).rejects.toThrow(/403/);
      await expect(client(readOnly).reportEvents([{ action: 'a' }])).rejects.toThrow(/403/);
      expect((await client(readOnly).query({}, { id: true }, 5)).totalCount).toBe(0);
      const writeOnly = await createTenant(t, 'retraced-write-only', ['events:write']);
      await expect(client(writeOnly).query({}, { id: true }, 5)).rejects.toThrow(/403/);
    });

    it('a missing or unknown token is a 401', async () => {
      await expect(client({ ...tenant, token: 'alt_nope' }).reportEvent({ action: 'a' })).rejects.toThrow(/401/);
    });
  });

  describe('searching', () => {
    let pager: Tenant;
    beforeAll(async () => {
      pager = await createTenant(t, 'retraced-search');
      const events: Event[] = Array.from({ length: 7 }, (_, i) => ({
        action: `page.${i}`,
        crud: i % 2 ? 'r' : 'c',
        actor: { id: i < 4 ? 'alice' : 'bob', fields: { team: 'a' } },
        fields: { n: String(i) },
      }));
      await client(pager).reportEvents(events);
      await client(pager).reportEvent({ action: 'other.thing', actor: { id: 'alice' } });
    });
    const mask: EventNodeMask = { id: true, action: true, crud: true, actor: { id: true, fields: true }, fields: true, received: true };

    it('pages newest first with last/before until the total is reached', async () => {
      const conn = await client(pager).query({ action: 'page.*' }, mask, 3);
      expect(conn.totalCount).toBe(7);
      expect(conn.totalPages()).toBe(3);
      const pages = [conn.currentResults.map((e) => e.action)];
      while (conn.hasNextPage()) {
        await conn.nextPage();
        pages.push(conn.currentResults.map((e) => e.action));
      }
      expect(pages).toEqual([['page.6', 'page.5', 'page.4'], ['page.3', 'page.2', 'page.1'], ['page.0']]);
      expect(conn.currentResults[0]).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        action: 'page.0',
        crud: 'c',
        actor: { id: 'alice', fields: { team: 'a' } },
        fields: { n: '0' },
        received: expect.any(Date),
      });
    });

    it('filters by action, crud, actor.id and received', async () => {
      const actions = async (q: Parameters<Client['query']>[0]) =>
        (await client(pager).query(q, { action: true }, 100)).currentResults.map((e) => e.action);
      expect(await actions({ action: 'other.thing' })).toEqual(['other.thing']);
      expect(await actions({ action: 'page.*', crud: 'r' })).toEqual(['page.5', 'page.3', 'page.1']);
      expect(await actions({ actor_id: 'bob', crud: 'c' })).toEqual(['page.6', 'page.4']);
      // Several letters are any of them: Retraced's logs viewer searches crud:c,u,d.
      expect(await actions({ action: 'page.*', crud: 'r,c' })).toEqual(['page.6', 'page.5', 'page.4', 'page.3', 'page.2', 'page.1', 'page.0']);
      expect(await actions({ action: 'page.*', crud: 'u,d' })).toEqual([]);
      const now = Date.now();
      expect(await actions({ received_start: new Date(now - 60_000), received_end: new Date(now + 60_000) })).toHaveLength(8);
      expect(await actions({ received_start: new Date(now + 60_000) })).toEqual([]);
      expect(await actions({ received_end: new Date(now - 60_000) })).toEqual([]);
    });

    it('refuses what it cannot search for rather than ignoring it (400)', async () => {
      for (const q of [{ created_start: new Date() }, { actor_name: 'Ana' }, { description: 'paid' }, { crud: 'c,x' }]) {
        await expect(client(pager).query(q, mask, 3), JSON.stringify(q)).rejects.toThrow(/400/);
      }
    });

    it('refuses a term with an empty value (400 naming search.query), never searching every event', async () => {
      const search = (query: string) => post(pager, '/graphql', { query: 'query S($q: String) { search(query: $q, last: 20) { totalCount } }', variables: { q: query } });
      // An app that fills in an empty user id must not get everyone's events.
      for (const [query, key] of [
        ['actor.id:', 'actor.id'],
        ['actor.id:""', 'actor.id'],
        ["action:''", 'action'],
        ['action:', 'action'],
        ['crud: action:page.*', 'crud'],
        ['received:', 'received'],
        ['received:,', 'received'],
        ['received:"," crud:c', 'received'],
      ]) {
        const res = await search(query!);
        expect(res.status, query).toBe(400);
        const { error } = await res.json();
        expect(error.code, query).toBe('invalid_request');
        expect(error.details, query).toEqual([{ field: 'search.query', message: expect.stringContaining(`${key}: needs `) }]);
      }
      // One open end of a range is still a range.
      const open = await search(`received:,${new Date(Date.now() + 60_000).toISOString()}`);
      expect((await open.json()).data.search.totalCount).toBe(8);
    });

    it('answers only the fields selected, and refuses fields, fragments and aliases it does not have', async () => {
      const ok = await post(pager, '/graphql', {
        query: '{ search(query: "action:other.thing", first: 1) { totalCount edges { node { action group { id } } } } }',
      });
      expect(await ok.json()).toEqual({ data: { search: { totalCount: 1, edges: [{ node: { action: 'other.thing', group: null } }] } } });
      for (const query of [
        '{ search { edges { node { nope } } } }',
        '{ search { edges { node { ...on Event { id } } } } }',
        '{ search { total: totalCount } }',
        '{ search { edges } }',
        '{ search(query: "x", first: 1, last: 1) { totalCount } }',
      ]) {
        const res = await post(pager, '/graphql', { query });
        expect(res.status, query).toBe(400);
      }
    });
  });

  describe('viewer tokens', () => {
    const key = () => viewerTokenKey(t.keyring.current);

    it('are signed, read-only claims for one group, bound to the issuing token, that expire', async () => {
      const token = await client(tenant).getViewerToken('acme', 'u-42');
      const claims = verifyViewerToken(key(), token);
      expect(claims).toEqual({
        v: 1,
        token_id: tenant.tokenId,
        project_id: tenant.projectId,
        environment_id: tenant.environmentId,
        group_id: 'acme',
        actor_id: 'u-42',
        exp: expect.any(Number),
      });
      expect(verifyViewerToken(key(), token, (claims!.exp + 1) * 1000)).toBeUndefined();
      expect(verifyViewerToken(key(), token.replace(/^alv_./, 'alv_A'))).toBeUndefined();
    });

    it("read only their group's events, write nothing, and die with the token that issued them", async () => {
      const issuer = await createTenant(t, 'viewer-issuer');
      const events = [
        { action: 'doc.read', group: { id: 'acme' }, actor: { id: 'a1' } },
        { action: 'doc.read', group: { id: 'globex' }, actor: { id: 'g1' } },
        { action: 'doc.edit', group: { id: 'acme' }, actor: { id: 'a2' } },
      ];
      const stored = await (await t.request('POST', '/v1/events', { token: issuer.token, body: { events } })).json();
      const viewer = await client(issuer).getViewerToken('acme', 'a1');

      const page = await (await t.request('GET', '/v1/events', { token: viewer })).json();
      expect((await t.request('GET', '/v1/events?group_id=globex', { token: viewer })).status).toBe(403);
      expect(page.events.map((e: { event: { actor: { id: string } } }) => e.event.actor.id)).toEqual(['a1', 'a2']);
      expect((await t.request('GET', `/v1/events/${stored.events[0].id}`, { token: viewer })).status).toBe(200);
      expect((await t.request('GET', `/v1/events/${stored.events[1].id}`, { token: viewer })).status).toBe(404);
      const exported = await (await t.request('GET', '/v1/events/export', { token: viewer })).text();
      expect(exported.trimEnd().split('\n')).toHaveLength(2);
      expect((await t.request('POST', '/v1/events', { token: viewer, body: { action: 'x' } })).status).toBe(403);
      expect((await t.request('GET', '/v1/projects', { token: viewer })).status).toBe(403);
      // Another chain's events stay out of reach.
      expect((await t.request('GET', `/v1/events/${stored.events[0].id}`, { token: await client(tenant).getViewerToken('acme', 'x') })).status).toBe(404);

      await t.request('DELETE', `/v1/tokens/${issuer.tokenId}`, { token: t.adminToken });
      expect((await t.request('GET', '/v1/events', { token: viewer })).status).toBe(401);
    });

    it('refuses is_admin=true: nothing here grants more than reading', async () => {
      await expect(client(tenant).getViewerToken('acme', 'u-42', true)).rejects.toThrow(/400/);
    });
  });
});
