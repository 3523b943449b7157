import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditLogClient, DeliveryError, type AuditLogClient, type StoredEvent } from '../../src/client/client.js';
import { honoAuditMiddleware } from '../../src/client/hono.js';
import { expressAuditMiddleware, type ExpressLikeRequest } from '../../src/client/middleware.js';
import type { RunningCli } from '../helpers/cli.js';
import { closedPort, serveProcess, tokenOverHttp } from '../helpers/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const ADMIN = `middleware-test-admin-token-${'x'.repeat(20)}`;
const UNREACHABLE_RETRY = { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 };

/** A response as Express's, reduced to what the middleware reads. */
class FakeResponse extends EventEmitter {
  statusCode = 200;
}

type FakeRequest = ExpressLikeRequest & { headers: Record<string, string> };

describe('request auditing middleware', () => {
  let db: TestDatabase;
  let dataDir: string;
  let server: RunningCli;
  let url: string;

  const newToken = async () => (await tokenOverHttp(url, ADMIN)).token;

  async function recorded(client: AuditLogClient): Promise<NonNullable<StoredEvent['event']>[]> {
    await client.flush();
    const events = [];
    for await (const stored of client.query({ action: 'http.*' })) events.push(stored.event!);
    return events;
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-middleware-'));
    ({ cli: server, url } = await serveProcess({ DATABASE_URL: db.ownerUrl, AUDITLEDGER_DATA_DIR: dataDir, AUDITLEDGER_ADMIN_TOKEN: ADMIN }));
  });
  afterAll(async () => {
    server.child.kill('SIGTERM');
    await server.exited;
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  describe('Hono', () => {
    const app = (client: AuditLogClient, onError?: (error: unknown) => void) =>
      new Hono()
        .use(
          honoAuditMiddleware({
            client,
            actor: (c) => {
              const user = c.req.header('x-user');
              if (user === 'explode') throw new Error('the actor callback failed');
              return user ? { id: user, name: 'Ana' } : undefined;
            },
            onError,
          }),
        )
        .get('/users/:id', (c) => c.json({ id: c.req.param('id') }))
        .delete('/users/:id', (c) => c.json({ error: 'forbidden' }, 403));
    // @hono/node-server hands handlers Node's request as env.incoming.
    const fromPeer = (remoteAddress: string) => ({ incoming: { socket: { remoteAddress } } });

    it('records one event per request: action from method and route, crud, actor, status, source ip', async () => {
      const client = createAuditLogClient({ url, token: await newToken() });
      const hono = app(client);
      expect((await hono.request('/users/42', { headers: { 'x-user': 'u-1' } }, fromPeer('::ffff:203.0.113.9'))).status).toBe(200);
      expect((await hono.request('/users/7', { method: 'DELETE' }, fromPeer('2001:db8::1'))).status).toBe(403);
      expect((await hono.request('/nowhere', {}, fromPeer('198.51.100.4'))).status).toBe(404);

      expect(await recorded(client)).toEqual([
        {
          action: 'http.get /users/:id',
          crud: 'r',
          actor: { id: 'u-1', name: 'Ana' },
          source_ip: '203.0.113.9',
          is_failure: false,
          fields: { status: '200' },
          created: expect.any(String),
        },
        {
          action: 'http.delete /users/:id',
          crud: 'd',
          is_anonymous: true,
          source_ip: '2001:db8::1',
          is_failure: true,
          fields: { status: '403' },
          created: expect.any(String),
        },
        { action: 'http.get *', crud: 'r', is_anonymous: true, source_ip: '198.51.100.4', is_failure: true, fields: { status: '404' }, created: expect.any(String) },
      ]);
      await client.close();
    });

    it('with the ledger unreachable, answers at once and unchanged; errors go to onError', async () => {
      const errors: unknown[] = [];
      const client = createAuditLogClient({ url: `http://127.0.0.1:${await closedPort()}`, token: 'alt_x', retry: UNREACHABLE_RETRY });
      const hono = app(client, (error) => errors.push(error));

      const started = performance.now();
      const res = await hono.request('/users/42', { headers: { 'x-user': 'u-1' } });
      expect(performance.now() - started).toBeLessThan(200);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ id: '42' });

      // A failing actor callback does not fail the request either.
      expect((await hono.request('/users/1', { headers: { 'x-user': 'explode' } })).status).toBe(200);
      expect(errors).toContainEqual(expect.objectContaining({ message: 'the actor callback failed' }));

      await expect(client.flush()).rejects.toBeInstanceOf(DeliveryError);
      expect(errors).toContainEqual(expect.any(DeliveryError)); // the first request's event, once the retries were used up
      await client.close();
    });
  });

  describe('Express', () => {
    /** Runs a request through the middleware the way Express does: middleware, routing, handler, response. */
    function handle(
      middleware: ReturnType<typeof expressAuditMiddleware<FakeRequest>>,
      req: FakeRequest,
      route: { baseUrl: string; path: string } | undefined,
      status: number,
      events: ('finish' | 'close')[] = ['finish', 'close'],
    ) {
      const res = new FakeResponse();
      let nextCalled = false;
      middleware(req, res, () => (nextCalled = true));
      expect(nextCalled).toBe(true); // synchronously: the request is not held up
      if (route) Object.assign(req, { baseUrl: route.baseUrl, route: { path: route.path } });
      res.statusCode = status;
      for (const event of events) res.emit(event);
    }
    const audited = (client: AuditLogClient, onError?: (error: unknown) => void) =>
      expressAuditMiddleware<FakeRequest>({ client, actor: (req) => (req.headers['x-user'] ? { id: req.headers['x-user'] } : undefined), onError });

    it('records one event per request, also when the client went away before the response', async () => {
      const client = createAuditLogClient({ url, token: await newToken() });
      const middleware = audited(client);
      handle(middleware, { method: 'POST', headers: { 'x-user': 'u-9' }, ip: '::ffff:192.0.2.10' }, { baseUrl: '/api', path: '/users/:id' }, 201);
      handle(middleware, { method: 'PATCH', headers: {}, socket: { remoteAddress: '192.0.2.11' } }, { baseUrl: '', path: '/orders/:id' }, 500, ['close']);
      handle(middleware, { method: 'OPTIONS', headers: {}, ip: 'garbage' }, undefined, 404);

      expect(await recorded(client)).toEqual([
        { action: 'http.post /api/users/:id', crud: 'c', actor: { id: 'u-9' }, source_ip: '192.0.2.10', is_failure: false, fields: { status: '201' }, created: expect.any(String) },
        { action: 'http.patch /orders/:id', crud: 'u', is_anonymous: true, source_ip: '192.0.2.11', is_failure: true, fields: { status: '500' }, created: expect.any(String) },
        { action: 'http.options *', is_anonymous: true, is_failure: true, fields: { status: '404' }, created: expect.any(String) },
      ]);
      await client.close();
    });

    it('with the ledger unreachable, the response is not held up; errors go to onError', async () => {
      const errors: unknown[] = [];
      const client = createAuditLogClient({ url: `http://127.0.0.1:${await closedPort()}`, token: 'alt_x', retry: UNREACHABLE_RETRY });
      const started = performance.now();
      handle(audited(client, (error) => errors.push(error)), { method: 'GET', headers: {}, ip: '192.0.2.1' }, { baseUrl: '', path: '/health' }, 200);
      expect(performance.now() - started).toBeLessThan(200);
      await expect(client.flush()).rejects.toBeInstanceOf(DeliveryError);
      expect(errors).toEqual([expect.any(DeliveryError)]);
      await client.close();
    });
  });
});
