import { Hono } from 'hono';
import pino from 'pino';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AppEnv } from '../../src/api/context.js';
import { onError } from '../../src/api/errors.js';
import { AppendMetrics } from '../../src/api/metrics.js';
import { healthRoutes } from '../../src/api/routes/health.js';
import { metricsRoutes } from '../../src/api/routes/metrics.js';
import { createPools, type Pools } from '../../src/store/database.js';
import { createTenant, useTestApp } from '../helpers/app.js';

describe('GET /metrics', () => {
  const ctx = useTestApp();

  it('scrapes in Prometheus text format with append, lag, verification, queue and pool figures', async () => {
    const tenant = await createTenant(ctx.t, 'metrics');
    await Promise.all(Array.from({ length: 5 }, () => ctx.t.request('POST', '/v1/events', { token: tenant.token, body: { events: [{ action: 'a' }, { action: 'b' }] } })));
    const res = await ctx.t.request('GET', '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toMatch(/^auditledger_appended_events_total 10$/m);
    expect(text).toMatch(/^auditledger_append_requests_total 5$/m);
    expect(text).toMatch(/^auditledger_append_seconds_count 5$/m);
    expect(text).toMatch(/^auditledger_group_commit_events_bucket\{le="\+Inf"\} [1-5]$/m);
    expect(text).toMatch(/^auditledger_chains 1$/m);
    expect(text).toMatch(/^auditledger_checkpoint_lag_events 10$/m);
    expect(text).toMatch(/^auditledger_findings 0$/m);
    expect(text).toMatch(/^auditledger_database_up 1$/m);
    expect(text).toMatch(/^auditledger_db_pool_connections\{pool="app",state="total"\} \d+$/m);
    // Every sample line belongs to a declared metric.
    const declared = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) {
      const name = line.split(/[{ ]/)[0]!.replace(/_(bucket|sum|count)$/, '');
      expect(declared.has(name) || declared.has(line.split(/[{ ]/)[0]), line).toBe(true);
    }
  });
});

describe('probes while the database does not answer', () => {
  // A "database" that accepts connections and never says a word: a stopped or partitioned server.
  let silent: Server;
  let pools: Pools;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    silent = createServer((socket) => sockets.add(socket)).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    pools = createPools(`postgres://nobody:x@127.0.0.1:${(silent.address() as AddressInfo).port}/none`, undefined, 1, 2000); // connections give up after 2 s, the probes after 0.3
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    silent.close();
    await pools.end().catch(() => undefined);
  });

  it('/readyz answers 503 and /metrics answers without the ledger figures, within the probe timeout', async () => {
    const app = new Hono().route('/', healthRoutes(pools.app, 1, 300)).route('/', metricsRoutes(pools, new AppendMetrics(), 300));
    const ready = await app.request('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'not ready', reason: 'database unreachable: the database did not answer within 300 ms' });
    const metrics = await app.request('/metrics');
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    expect(text).toMatch(/^auditledger_database_up 0$/m);
    expect(text).toMatch(/^auditledger_append_requests_total 0$/m);
    expect(text).not.toMatch(/^auditledger_chains /m);
  });

  it('a request that needs a connection the database does not complete gets a 503 to retry, not a 500 or no answer', async () => {
    const app = new Hono<AppEnv>()
      .use((c, next) => {
        c.set('log', pino({ level: 'silent' }));
        return next();
      })
      .get('/q', async (c) => c.json((await pools.app.query('SELECT 1')).rows));
    app.onError(onError);
    const res = await app.request('/q');
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(((await res.json()) as { error: unknown }).error).toEqual({ code: 'database_unavailable', message: 'the database is unavailable; retry later' });
  });
});
