import { describe, expect, it } from 'vitest';
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
    expect(text).toMatch(/^auditledger_db_pool_connections\{pool="app",state="total"\} \d+$/m);
    // Every sample line belongs to a declared metric.
    const declared = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) {
      const name = line.split(/[{ ]/)[0]!.replace(/_(bucket|sum|count)$/, '');
      expect(declared.has(name) || declared.has(line.split(/[{ ]/)[0]), line).toBe(true);
    }
  });
});
