import { beforeAll, describe, expect, it } from 'vitest';
import { eventHash, GENESIS_PREV } from '../../src/ledger/event.js';
import { createTenant, useTestApp } from '../helpers/app.js';

describe('GET /v1/events/export', () => {
  const ctx = useTestApp();
  let tenant: Awaited<ReturnType<typeof createTenant>>;
  beforeAll(async () => {
    tenant = await createTenant(ctx.t, 'export');
    for (let batch = 0; batch < 3; batch++) {
      const events = Array.from({ length: 800 }, (_, i) => ({
        action: i % 2 ? 'doc.read' : 'user.login',
        actor: { id: `u,${i}`, name: 'Ana "the admin"' },
      }));
      await ctx.t.request('POST', '/v1/events', { token: tenant.token, body: { events } });
    }
  });

  it('streams NDJSON across pages, each line verifiable from its own bytes', async () => {
    const res = await ctx.t.request('GET', '/v1/events/export', { token: tenant.token });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = (await res.text()).trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2400);
    let prev = GENESIS_PREV;
    for (const [i, line] of lines.entries()) {
      expect(line.seq).toBe(i + 1);
      expect(eventHash(Buffer.from(line.canonical)).toString('hex')).toBe(line.hash);
      expect(line.prev).toBe(prev);
      prev = line.hash;
    }
  });

  it('applies the query filters and writes CSV with escaping', async () => {
    const res = await ctx.t.request('GET', '/v1/events/export?format=csv&action=doc.*&seq_to=10', { token: tenant.token });
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    const rows = (await res.text()).trimEnd().split('\r\n');
    expect(rows[0]).toBe('seq,id,received_at,action,crud,actor_id,target_id,group_id,hash,prev,canonical');
    expect(rows).toHaveLength(6); // seqs 2, 4, 6, 8, 10
    expect(rows[1]).toMatch(/^2,[0-9a-f-]{36},[^,]+,doc\.read,,"u,1",,,[0-9a-f]{64},[0-9a-f]{64},"\{""environment""/);
  });

  it('checks its parameters and its scope', async () => {
    expect((await ctx.t.request('GET', '/v1/events/export?format=xml', { token: tenant.token })).status).toBe(400);
    const writer = await createTenant(ctx.t, 'export-writer', ['events:write']);
    expect((await ctx.t.request('GET', '/v1/events/export', { token: writer.token })).status).toBe(403);
  });
});
