import { to as copyTo } from 'pg-copy-streams';
import { describe, expect, it } from 'vitest';
import { CopyBinaryReader, copyEventsBySeq } from '../../src/store/event-copy.js';
import { queryEvents } from '../../src/store/events.js';
import { createTenant, useTestApp } from '../helpers/app.js';
import { readChain } from '../helpers/database.js';

describe('reading a chain with COPY (FORMAT binary)', () => {
  const ctx = useTestApp();

  // Every column filled and every nullable one empty, non-ASCII text, times before and after 2000.
  const events = [
    { action: 'user.login', crud: 'r', actor: { id: 'ä-1' }, target: { id: 't' }, group: { id: 'g' }, created: '2026-01-02T03:04:05.678Z' },
    { action: 'ünïcode.€vent' },
    { action: 'old.event', created: '1999-12-31T23:59:59.998Z', metadata: { nested: { deep: [1, 2, 3] } } },
    { action: 'bulk.event', description: 'x'.repeat(4000) },
  ];

  async function appendedChain() {
    const tenant = await createTenant(ctx.t, `copy-${Math.random()}`);
    const res = await ctx.t.request('POST', '/v1/events', { token: tenant.token, body: { events } });
    expect(res.status, await res.text()).toBe(201);
    return tenant;
  }

  async function rawCopy(environment: string): Promise<Buffer> {
    const client = await ctx.db.pools.app.connect();
    try {
      const chunks: Buffer[] = [];
      const sql = `COPY (SELECT seq::int8, id::text, received_at::timestamptz, prev, hash, canonical, action::text, crud::text,
        actor_id::text, target_id::text, group_id::text, created::timestamptz FROM events WHERE environment_id = '${environment}'
        ORDER BY seq) TO STDOUT (FORMAT binary)`;
      for await (const chunk of client.query(copyTo(sql))) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    } finally {
      client.release();
    }
  }

  it('gives exactly the rows a SELECT gives', async () => {
    const tenant = await appendedChain();
    const selected = await queryEvents(ctx.db.pools.app, tenant.environmentId, { order: 'asc', limit: 100 });
    const copied = await readChain(ctx.db.pools.app, tenant.environmentId, events.length);
    expect(copied).toHaveLength(events.length);
    expect(copied).toEqual(selected);
    expect(copied[2]!.columns.created).toBe(Date.parse('1999-12-31T23:59:59.998Z'));
  });

  it('reads only the seqs asked for', async () => {
    const tenant = await appendedChain();
    const client = await ctx.db.pools.app.connect();
    try {
      const seqs: number[] = [];
      for await (const rows of copyEventsBySeq(client, tenant.environmentId, 2, 3)) seqs.push(...rows.map((r) => r.seq));
      expect(seqs).toEqual([2, 3]);
    } finally {
      client.release();
    }
  });

  it('decodes the same rows whichever way the stream is cut', async () => {
    const tenant = await appendedChain();
    const bytes = await rawCopy(tenant.environmentId);
    const whole = new CopyBinaryReader();
    const expected = whole.push(bytes);
    whole.end();
    expect(expected.map((r) => r.seq)).toEqual([1, 2, 3, 4]);

    const byteByByte = new CopyBinaryReader();
    const rows = [];
    for (let i = 0; i < bytes.length; i++) rows.push(...byteByByte.push(bytes.subarray(i, i + 1)));
    byteByByte.end();
    expect(rows).toEqual(expected);
  });

  it('refuses a stream that stops before its trailer', async () => {
    const tenant = await appendedChain();
    const bytes = await rawCopy(tenant.environmentId);
    const reader = new CopyBinaryReader();
    reader.push(bytes.subarray(0, bytes.length - 10));
    expect(() => reader.end()).toThrow(/before its trailer/);
    expect(() => new CopyBinaryReader().push(Buffer.from('seq\tid\n1\tx\n'.repeat(3)))).toThrow(/binary format/);
  });

  it('writes nothing but a UUID and integers into the statement', async () => {
    const client = await ctx.db.pools.app.connect();
    try {
      await expect(copyEventsBySeq(client, "x' OR true --", 1, 2).next()).rejects.toThrow(/bad chain range/);
      await expect(copyEventsBySeq(client, '0195a3b2-0000-7000-8000-000000000002', 1.5, 2).next()).rejects.toThrow(/bad chain range/);
    } finally {
      client.release();
    }
  });
});
