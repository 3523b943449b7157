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
    expect(rows[0]).toBe('seq,id,received_at,action,crud,actor_id,target_id,group_id,hash,prev,canonical,event');
    expect(rows).toHaveLength(6); // seqs 2, 4, 6, 8, 10
    // The actor's name is personal (the default policy): a commitment in canonical, the value in event.
    expect(rows[1]).toMatch(/^2,[0-9a-f-]{36},[^,]+,doc\.read,,"u,1",,,[0-9a-f]{64},[0-9a-f]{64},"\{""commitments""/);
    expect(rows[1]!.endsWith(`,"${JSON.stringify({ action: 'doc.read', actor: { id: 'u,1', name: 'Ana "the admin"' } }).replaceAll('"', '""')}"`)).toBe(true);
  });

  it('neutralises CSV cells a spreadsheet would evaluate, and leaves NDJSON and canonical as they are', async () => {
    const risky = await createTenant(ctx.t, 'export-formulas');
    const event = {
      action: '=HYPERLINK("http://example.com/x","click")',
      actor: { id: '@SUM(1+1)' },
      target: { id: '+1+1' },
      group: { id: '-2+3' },
    };
    const tabbed = { action: '\tcmd', actor: { id: '\r=1+1' } };
    await ctx.t.request('POST', '/v1/events', { token: risky.token, body: { events: [event, tabbed] } });

    const ndjson = (await (await ctx.t.request('GET', '/v1/events/export', { token: risky.token })).text()).trimEnd().split('\n');
    const lines = ndjson.map((l) => JSON.parse(l) as { canonical: string });
    expect(JSON.parse(lines[0]!.canonical).event).toMatchObject(event);

    const csv = await (await ctx.t.request('GET', '/v1/events/export?format=csv', { token: risky.token })).text();
    const rows = csv.split('\r\n');
    const cells = (row: string) => row.split(',').slice(3, 8);
    expect(cells(rows[1]!)).toEqual([`"'=HYPERLINK(""http://example.com/x""`, `""click"")"`, '', "'@SUM(1+1)", "'+1+1"]);
    expect(rows[1]).toContain(`,'-2+3,`);
    expect(rows[2]).toContain(`,'\tcmd,,"'\r=1+1",`);
    // The canonical column is each NDJSON line's canonical, byte for byte, RFC 4180-quoted.
    for (const [i, line] of lines.entries()) expect(rows[i + 1]).toContain(`,"${line.canonical.replaceAll('"', '""')}"`);
  });

  it('checks its parameters and its scope', async () => {
    expect((await ctx.t.request('GET', '/v1/events/export?format=xml', { token: tenant.token })).status).toBe(400);
    const writer = await createTenant(ctx.t, 'export-writer', ['events:write']);
    expect((await ctx.t.request('GET', '/v1/events/export', { token: writer.token })).status).toBe(403);
  });
});
