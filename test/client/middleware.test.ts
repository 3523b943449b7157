import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import express4 from 'express4';
import express5 from 'express5';
import { Hono, type Context } from 'hono';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/ledger/event.js';
import { createAuditLogClient, DeliveryError, type AuditLogClient, type Receipt, type StoredEvent } from '../../src/client/client.js';
import { honoAuditMiddleware } from '../../src/client/hono.js';
import { expressAuditMiddleware, type AuditMiddlewareOptions } from '../../src/client/middleware.js';
import type { RunningCli } from '../helpers/cli.js';
import { closedPort, serveProcess, tokenOverHttp } from '../helpers/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const ADMIN = `middleware-test-admin-token-${'x'.repeat(20)}`;
const UNREACHABLE_RETRY = { attempts: 2, baseDelayMs: 5, maxDelayMs: 10 };

/**
 * The same routes in each framework: plain, with parameters, a router under an `app.use` prefix,
 * routers nested under parameterised mount paths, middleware under a mount path, a handler that
 * throws, and one that answers 403 only after its client hung up.
 */
interface Routes {
  /** Resolves when the request to /slow/:id reached its handler. */
  slowArrived: Promise<void>;
  /** Resolves once that handler answered, after the client hung up. */
  slowAnswered: Promise<void>;
}

/** The signals of the /slow/:id handler: `arrived` and `answered` resolve Routes' promises. */
function signals() {
  let arrived = () => {};
  let answered = () => {};
  const routes: Routes = {
    slowArrived: new Promise((resolve) => (arrived = resolve)),
    slowAnswered: new Promise((resolve) => (answered = resolve)),
  };
  return { arrived, answered, routes };
}

/** The routes on Express (4 or 5: the same API), audited by the middleware. */
function expressApp(express: typeof express5, options: AuditMiddlewareOptions<express5.Request>) {
  const { arrived, answered, routes } = signals();
  const app = express();
  app.set('env', 'test'); // no stack traces from Express's final handler on stderr
  app.use(expressAuditMiddleware(options));
  app.get('/health', (_req, res) => void res.json({ ok: true }));
  app.get('/users/:id', (req, res) => void res.json({ id: req.params.id }));
  const api = express.Router();
  api.post('/items', (_req, res) => void res.status(201).json({}));
  app.use('/api', api);
  const projects = express.Router();
  projects.get('/members/:memberId', (_req, res) => void res.json({}));
  projects.delete('/', (_req, res) => void res.status(403).json({ error: 'forbidden' }));
  const orgs = express.Router();
  orgs.use('/projects/:projectId', projects);
  orgs.get('/boom', () => {
    throw new Error('boom');
  });
  orgs.use('/static', (_req, res) => void res.send('file'));
  app.use('/orgs/:orgId', orgs);
  app.get('/slow/:id', (_req, res) => {
    res.once('close', () => {
      res.status(403).json({ error: 'forbidden' });
      answered();
    });
    arrived();
  });
  return { app, ...routes };
}

/** The same routes on Hono, sub-apps mounted with app.route. */
function honoApp(options: AuditMiddlewareOptions<Context>) {
  const { arrived, answered, routes } = signals();
  const projects = new Hono().get('/members/:memberId', (c) => c.json({})).delete('/', (c) => c.json({ error: 'forbidden' }, 403));
  const orgs = new Hono()
    .route('/projects/:projectId', projects)
    .get('/boom', () => {
      throw new Error('boom');
    })
    .use('/static/*', async (c) => c.text('file'));
  const app = new Hono()
    .use(honoAuditMiddleware(options))
    .get('/health', (c) => c.json({ ok: true }))
    .get('/users/:id', (c) => c.json({ id: c.req.param('id') }))
    .route('/api', new Hono().post('/items', (c) => c.json({}, 201)))
    .route('/orgs/:orgId', orgs)
    .get('/slow/:id', async (c) => {
      const outgoing = (c.env as { outgoing: http.ServerResponse }).outgoing;
      arrived();
      await new Promise((resolve) => outgoing.once('close', resolve));
      answered();
      return c.json({ error: 'forbidden' }, 403);
    });
  app.onError((_error, c) => c.json({ error: 'internal' }, 500));
  return { app, ...routes };
}

/** A running server on 127.0.0.1 and an ephemeral port. */
interface Served extends Routes {
  url: string;
  close(): Promise<void>;
}

async function listen(handler: http.RequestListener, routes: Routes): Promise<Served> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { ...routes, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => closeServer(server) };
}

async function closeServer(server: http.Server | ServerType): Promise<void> {
  (server as http.Server).closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
}

const FRAMEWORKS: { name: string; start(client: AuditMiddlewareOptions<never>['client']): Promise<Served> }[] = [
  { name: 'Express 4', start: (client) => expressServer(express4, client) },
  { name: 'Express 5', start: (client) => expressServer(express5, client) },
  {
    name: 'Hono',
    start: async (client) => {
      const { app, ...routes } = honoApp({ client });
      const server = await new Promise<ServerType>((resolve) => {
        const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
      });
      return { ...routes, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => closeServer(server) };
    },
  },
];

function expressServer(express: typeof express5, client: AuditMiddlewareOptions<never>['client']): Promise<Served> {
  const { app, ...routes } = expressApp(express, { client });
  return listen(app, routes);
}

/** A request whose client hangs up once the handler has it, before any response. */
async function hangUp(served: Served, path: string): Promise<void> {
  const request = http.get(`${served.url}${path}`);
  request.on('error', () => {}); // the reset the hang-up causes
  await served.slowArrived;
  request.destroy();
  await served.slowAnswered;
}

/** Every case, in every framework: how it is routed, the request, what must be recorded. */
const CASES: { name: string; method: string; path: string; action: string; status: string; hangUp?: true }[] = [
  { name: 'a plain route', method: 'GET', path: '/health', action: 'http.get /health', status: '200' },
  { name: 'route parameters', method: 'GET', path: '/users/42', action: 'http.get /users/:id', status: '200' },
  { name: 'a router under an app.use prefix', method: 'POST', path: '/api/items', action: 'http.post /api/items', status: '201' },
  {
    name: 'routers nested under parameterised mount paths',
    method: 'GET',
    path: '/orgs/42/projects/7/members/9',
    action: 'http.get /orgs/:orgId/projects/:projectId/members/:memberId',
    status: '200',
  },
  {
    name: 'the same id in every part',
    method: 'GET',
    path: '/orgs/7/projects/7/members/7',
    action: 'http.get /orgs/:orgId/projects/:projectId/members/:memberId',
    status: '200',
  },
  { name: "a nested router's root route, refused", method: 'DELETE', path: '/orgs/42/projects/7', action: 'http.delete /orgs/:orgId/projects/:projectId', status: '403' },
  { name: 'a handler that throws', method: 'GET', path: '/orgs/42/boom', action: 'http.get /orgs/:orgId/boom', status: '500' },
  { name: 'middleware under a mount path', method: 'GET', path: '/orgs/42/static/a.txt', action: 'http.get /orgs/:orgId/static/*', status: '200' },
  { name: 'no route (404), also after entering a router', method: 'GET', path: '/orgs/42/nowhere', action: 'http.get *', status: '404' },
  { name: 'a client that hung up before the response', method: 'GET', path: '/slow/5', action: 'http.get /slow/:id', status: 'aborted', hangUp: true },
];

describe.each(FRAMEWORKS)('$name: the middleware records what really happened', ({ start }) => {
  const events: AuditEvent[] = [];
  const client = {
    createEvent: (event: AuditEvent) => {
      events.push(event);
      return Promise.resolve({} as Receipt); // the middleware never reads the receipt
    },
  };
  let served: Served;
  beforeAll(async () => {
    served = await start(client);
  });
  afterAll(() => served.close());

  it.each(CASES)('$name: $method $path is $action, status $status', async ({ method, path, action, status, hangUp: hangsUp }) => {
    events.length = 0;
    if (hangsUp) await hangUp(served, path);
    else expect((await fetch(`${served.url}${path}`, { method })).status).toBe(Number(status));
    // Another request, recorded after it: the one of the case is recorded once and only once.
    await fetch(`${served.url}/health`);
    await vi.waitFor(() => expect(events.map((e) => e.action)).toContain('http.get /health'), { timeout: 5000 });
    expect(events[0]).toMatchObject({ action, source_ip: '127.0.0.1', is_failure: status === 'aborted' || Number(status) >= 400, fields: { status } });
    expect(events.filter((e) => e.action === action)).toHaveLength(action === 'http.get /health' ? 2 : 1);
  });
});

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

      await expect(client.flush()).rejects.toBeInstanceOf(DeliveryError); // still queued, retried until close()
      expect(errors).not.toContainEqual(expect.any(DeliveryError));
      await client.close();
      expect(errors).toContainEqual(expect.any(DeliveryError)); // the first request's event, rejected by close()
    });
  });

  describe('Express', () => {
    const serveExpress = (client: AuditLogClient, onError?: (error: unknown) => void) => {
      const { app, ...routes } = expressApp(express5, { client, actor: (req) => (req.get('x-user') ? { id: req.get('x-user')! } : undefined), onError });
      return listen(app, routes);
    };

    it('records into the ledger: pattern, crud, actor, status, source ip; a request whose client hung up as aborted', async () => {
      const client = createAuditLogClient({ url, token: await newToken() });
      const served = await serveExpress(client);
      expect((await fetch(`${served.url}/orgs/42/projects/7/members/9`, { headers: { 'x-user': 'u-9' } })).status).toBe(200);
      expect((await fetch(`${served.url}/orgs/42/projects/7`, { method: 'DELETE' })).status).toBe(403);
      await hangUp(served, '/slow/5');
      await served.close();

      const common = { is_anonymous: true, source_ip: '127.0.0.1', created: expect.any(String) };
      expect(await recorded(client)).toEqual([
        {
          action: 'http.get /orgs/:orgId/projects/:projectId/members/:memberId',
          crud: 'r',
          actor: { id: 'u-9' },
          source_ip: '127.0.0.1',
          is_failure: false,
          fields: { status: '200' },
          created: expect.any(String),
        },
        { action: 'http.delete /orgs/:orgId/projects/:projectId', crud: 'd', ...common, is_failure: true, fields: { status: '403' } },
        { action: 'http.get /slow/:id', crud: 'r', ...common, is_failure: true, fields: { status: 'aborted' } },
      ]);
      await client.close();
    });

    it('with the ledger unreachable, the response is not held up; errors go to onError', async () => {
      const errors: unknown[] = [];
      const client = createAuditLogClient({ url: `http://127.0.0.1:${await closedPort()}`, token: 'alt_x', retry: UNREACHABLE_RETRY });
      const served = await serveExpress(client, (error) => errors.push(error));
      const started = performance.now();
      const res = await fetch(`${served.url}/users/42`);
      expect(performance.now() - started).toBeLessThan(1000);
      expect(await res.json()).toEqual({ id: '42' });
      await served.close();
      await client.close();
      expect(errors).toEqual([expect.any(DeliveryError)]); // its event, rejected by close(): until then it was retried
    });
  });
});
