import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { LocalArchive } from '../../src/archive/local.js';
import { runCheckpoints } from '../../src/jobs/checkpoints.js';
import { appendLeaves, emptyRange } from '../../src/ledger/compact-range.js';
import { GENESIS_PREV } from '../../src/ledger/event.js';
import { merkleRoot } from '../../src/ledger/tree.js';
import { createTenant, createTestApp, useTestApp } from '../helpers/app.js';
import { asSuperuser } from '../helpers/database.js';

type Tenant = Awaited<ReturnType<typeof createTenant>>;

describe('events API', () => {
  const ctx = useTestApp();

  const post = (tenant: Tenant, body: unknown, headers?: Record<string, string>) =>
    ctx.t.request('POST', '/v1/events', { token: tenant.token, body, headers });
  const get = async (tenant: Tenant, path: string) => {
    const res = await ctx.t.request('GET', path, { token: tenant.token });
    expect(res.status, path).toBe(200);
    return res.json();
  };

  describe('appending', () => {
    let tenant: Tenant;
    beforeAll(async () => {
      tenant = await createTenant(ctx.t, 'append');
    });

    it('stores one event and answers with its receipt, the tree size and root', async () => {
      const res = await post(tenant, { action: 'user.login', crud: 'create', actor: { id: 'u1', name: 'Ana' } });
      expect(res.status).toBe(201);
      const body = await res.json();
      expect(body.tree_size).toBe(1);
      expect(body.events).toEqual([
        { id: expect.stringMatching(/^[0-9a-f-]{36}$/), seq: 1, hash: expect.stringMatching(/^[0-9a-f]{64}$/), received_at: expect.any(String) },
      ]);
      expect(body.root).toBe(body.events[0].hash); // a one-leaf tree's root is its leaf

      const stored = await get(tenant, `/v1/events/${body.events[0].id}`);
      expect(stored).toMatchObject({ seq: 1, hash: body.events[0].hash, prev: GENESIS_PREV });
      expect(stored.event).toEqual({ action: 'user.login', crud: 'c', actor: { id: 'u1', name: 'Ana' } });
      const canonical = JSON.parse(stored.canonical);
      // The default policy: the actor's name is committed to in the hashed body, not held there.
      expect(canonical).toMatchObject({ v: 2, project: tenant.projectId, environment: tenant.environmentId, seq: 1 });
      expect(canonical.commitments).toEqual({ '/actor/name': expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(canonical.event).toEqual({ action: 'user.login', crud: 'c', actor: { id: 'u1' } });
    });

    it('stores a batch with gapless seqs, each linked to the one before', async () => {
      const res = await post(tenant, { events: [{ action: 'a.1' }, { action: 'a.2' }, { action: 'a.3' }] });
      expect(res.status).toBe(201);
      const { events, tree_size, root } = await res.json();
      expect(events.map((e: { seq: number }) => e.seq)).toEqual([2, 3, 4]);
      expect(tree_size).toBe(4);
      const page = await get(tenant, '/v1/events');
      const hashes = page.events.map((e: { hash: string }) => e.hash);
      for (let i = 1; i < page.events.length; i++) expect(page.events[i].prev).toBe(hashes[i - 1]);
      expect(root).toBe(merkleRoot(hashes.map((h: string) => Buffer.from(h, 'hex'))).toString('hex'));
      expect(await get(tenant, '/v1/chain')).toEqual({ seq: 4, hash: hashes[3], tree_size: 4, root });
    });

    it('keeps received_at from going backwards when the clock steps back', async () => {
      let clock = Date.now();
      const stepping = await createTestApp(ctx.db, {}, () => clock);
      try {
        const other = await createTenant(stepping, 'clock');
        const first = await (await stepping.request('POST', '/v1/events', { token: other.token, body: { action: 'x' } })).json();
        clock -= 3_600_000;
        const second = await (await stepping.request('POST', '/v1/events', { token: other.token, body: { action: 'y' } })).json();
        expect(Date.parse(second.events[0].received_at)).toBe(Date.parse(first.events[0].received_at));
        clock += 7_200_000;
        const third = await (await stepping.request('POST', '/v1/events', { token: other.token, body: { action: 'z' } })).json();
        expect(Date.parse(third.events[0].received_at)).toBeGreaterThan(Date.parse(first.events[0].received_at));
      } finally {
        await stepping.close();
      }
    });

    it('appends across a UTC day boundary into the next partition', async () => {
      const midnight = Math.ceil(Date.now() / 86_400_000) * 86_400_000;
      let clock = midnight - 1;
      const crossing = await createTestApp(ctx.db, {}, () => clock);
      try {
        const other = await createTenant(crossing, 'midnight');
        const before = await (await crossing.request('POST', '/v1/events', { token: other.token, body: { action: 'late' } })).json();
        clock = midnight + 1;
        const after = await (await crossing.request('POST', '/v1/events', { token: other.token, body: { action: 'early' } })).json();
        expect(before.events[0].received_at.slice(0, 10)).not.toBe(after.events[0].received_at.slice(0, 10));
        const { rows } = await ctx.db.pools.owner.query(
          `SELECT tableoid::regclass::text AS partition FROM events WHERE environment_id = $1 ORDER BY seq`,
          [other.environmentId],
        );
        expect(new Set(rows.map((r) => r.partition)).size).toBe(2);
      } finally {
        await crossing.close();
      }
    });
  });

  describe('idempotency', () => {
    let tenant: Tenant;
    beforeAll(async () => {
      tenant = await createTenant(ctx.t, 'idempotency');
    });
    const head = async () => (await get(tenant, '/v1/chain')).seq;

    it('a repeated Idempotency-Key returns the original receipt (200) and stores nothing', async () => {
      const event = { action: 'invoice.paid', target: { id: 'inv-1' } };
      const first = await post(tenant, event, { 'idempotency-key': 'pay-1' });
      expect(first.status).toBe(201);
      const size = await head();
      const again = await post(tenant, event, { 'idempotency-key': 'pay-1' });
      expect(again.status).toBe(200);
      expect((await again.json()).events).toEqual((await first.json()).events);
      expect(await head()).toBe(size);
    });

    it('the same key with a different body is a 409 and stores nothing', async () => {
      await post(tenant, { action: 'a' }, { 'idempotency-key': 'k-409' });
      const size = await head();
      const res = await post(tenant, { action: 'b' }, { 'idempotency-key': 'k-409' });
      expect(res.status).toBe(409);
      expect((await res.json()).error).toMatchObject({ code: 'idempotency_conflict', details: [{ field: 'idempotency_key' }] });
      expect(await head()).toBe(size);
    });

    it('per-event keys in a batch: repeats answered from the original, new ones stored', async () => {
      const first = await (await post(tenant, { events: [{ action: 'e1', idempotency_key: 'b-1' }, { action: 'e2', idempotency_key: 'b-2' }] })).json();
      const size = await head();
      const res = await post(tenant, {
        events: [
          { action: 'e1', idempotency_key: 'b-1' },
          { action: 'e3', idempotency_key: 'b-3' },
          { action: 'e3', idempotency_key: 'b-3' }, // the same key twice in one request: stored once
        ],
      });
      expect(res.status).toBe(201);
      const { events } = await res.json();
      expect(events[0]).toEqual(first.events[0]);
      expect(events[1]).toEqual(events[2]);
      expect(events[1].seq).toBe(size + 1);
      expect(await head()).toBe(size + 1);
    });

    it('a conflicting key anywhere in a batch rejects the whole batch', async () => {
      await post(tenant, { action: 'x' }, { 'idempotency-key': 'c-1' });
      const size = await head();
      const res = await post(tenant, { events: [{ action: 'fresh', idempotency_key: 'c-2' }, { action: 'not-x', idempotency_key: 'c-1' }] });
      expect(res.status).toBe(409);
      expect((await res.json()).error.details).toEqual([{ field: 'events.1.idempotency_key', message: expect.any(String) }]);
      expect(await head()).toBe(size);
      // c-2 was not stored: it can be used now for any event.
      expect((await post(tenant, { action: 'later' }, { 'idempotency-key': 'c-2' })).status).toBe(201);
    });

    it('keys are per chain', async () => {
      const other = await createTenant(ctx.t, 'idempotency-other');
      await post(tenant, { action: 'one' }, { 'idempotency-key': 'shared' });
      const res = await post(other, { action: 'two' }, { 'idempotency-key': 'shared' });
      expect(res.status).toBe(201);
    });

    it('rejects a header on a batch and a header that contradicts the body', async () => {
      const batch = await post(tenant, { events: [{ action: 'a' }] }, { 'idempotency-key': 'h' });
      expect(batch.status).toBe(400);
      expect((await batch.json()).error.details[0].field).toBe('Idempotency-Key');
      const both = await post(tenant, { action: 'a', idempotency_key: 'x' }, { 'idempotency-key': 'y' });
      expect(both.status).toBe(400);
    });
  });

  describe('reading', () => {
    let tenant: Tenant;
    const ids: string[] = [];
    beforeAll(async () => {
      tenant = await createTenant(ctx.t, 'reading');
      const events = [
        { action: 'user.login', crud: 'r', actor: { id: 'alice' }, group: { id: 'g1' } },
        { action: 'user.logout', crud: 'r', actor: { id: 'bob' }, group: { id: 'g1' } },
        { action: 'document.create', crud: 'c', actor: { id: 'alice' }, target: { id: 'doc-1', type: 'doc' } },
        { action: 'document.update', crud: 'u', actor: { id: 'bob' }, target: { id: 'doc-1' } },
        { action: 'user_login', crud: 'r', actor: { id: 'carol' } }, // `_` must not match as a wildcard
        { action: 'document.delete', crud: 'd', actor: { id: 'alice' }, target: { id: 'doc-2' }, group: { id: 'g2' } },
      ];
      const res = await (await post(tenant, { events })).json();
      ids.push(...res.events.map((e: { id: string }) => e.id));
    });
    const actions = async (q: string) => (await get(tenant, `/v1/events?${q}`)).events.map((e: { event: { action: string } }) => e.event.action);

    it('filters by exact action and by prefix', async () => {
      expect(await actions('action=user.login')).toEqual(['user.login']);
      expect(await actions('action=user.*')).toEqual(['user.login', 'user.logout']);
      expect(await actions('action=document.*&crud=update')).toEqual(['document.update']);
    });

    it('filters by crud, actor, target, group and seq range', async () => {
      expect(await actions('crud=d')).toEqual(['document.delete']);
      expect(await actions('actor_id=alice')).toEqual(['user.login', 'document.create', 'document.delete']);
      expect(await actions('target_id=doc-1')).toEqual(['document.create', 'document.update']);
      expect(await actions('group_id=g1')).toEqual(['user.login', 'user.logout']);
      expect(await actions('seq_from=2&seq_to=3')).toEqual(['user.logout', 'document.create']);
      expect(await actions('actor_id=nobody')).toEqual([]);
    });

    it('filters by received_at', async () => {
      const all = await get(tenant, '/v1/events');
      const at = all.events[0].received_at;
      expect((await actions(`from=${at}`)).length).toBe(6);
      expect(await actions(`to=${at}`)).toEqual([]);
    });

    it('pages with an opaque cursor that is stable under concurrent appends', async () => {
      const seen: number[] = [];
      let cursor: string | null = null;
      do {
        const page: { events: { seq: number }[]; next_cursor: string | null } = await get(
          tenant,
          `/v1/events?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        );
        seen.push(...page.events.map((e) => e.seq));
        cursor = page.next_cursor;
        if (seen.length === 2) await post(tenant, { action: 'appended.meanwhile' });
      } while (cursor);
      expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7]);
      const desc = await get(tenant, '/v1/events?order=desc&limit=3');
      expect(desc.events.map((e: { seq: number }) => e.seq)).toEqual([7, 6, 5]);
      const next = await get(tenant, `/v1/events?limit=3&cursor=${desc.next_cursor}`);
      expect(next.events.map((e: { seq: number }) => e.seq)).toEqual([4, 3, 2]);
    });

    it('verify=true checks hashes, links (the first event on the page too) and columns', async () => {
      const page = await get(tenant, '/v1/events?seq_from=3&limit=2&verify=true');
      expect(page.verification).toEqual({ ok: true, checked: 2, first_seq: 3, last_seq: 4, failures: [] });
      const one = await get(tenant, `/v1/events/${ids[2]}?verify=true`);
      expect(one.verification).toMatchObject({ ok: true, checked: 1 });
    });

    it('verify=true reports tampering at the right seq', async () => {
      await asSuperuser(ctx.db, async (su) => {
        await su.query(
          `UPDATE events SET canonical = convert_to(replace(convert_from(canonical, 'UTF8'), 'bob', 'eve'), 'UTF8')
            WHERE environment_id = $1 AND seq = 2`,
          [tenant.environmentId],
        );
        await su.query(`UPDATE events SET actor_id = 'mallory' WHERE environment_id = $1 AND seq = 4`, [tenant.environmentId]);
      });
      const page = await get(tenant, '/v1/events?seq_from=2&seq_to=4&verify=true');
      expect(page.verification.ok).toBe(false);
      expect(page.verification.failures).toEqual([
        { seq: 2, reason: 'hash does not match the stored bytes' },
        { seq: 2, reason: 'column actor_id does not match the stored bytes' },
        { seq: 4, reason: 'column actor_id does not match the stored bytes' },
      ]);
      // Seq 3 alone on its page still has its link checked against seq 2's stored hash, which
      // is unchanged: the forgery shows at seq 2, where it happened.
      const three = await get(tenant, `/v1/events/${ids[2]}?verify=true`);
      expect(three.verification.ok).toBe(true);
    });

    it('answers 404 for an unknown or malformed event id', async () => {
      for (const id of ['01a00000-0000-7000-8000-000000000000', 'nope']) {
        const res = await ctx.t.request('GET', `/v1/events/${id}`, { token: tenant.token });
        expect(res.status).toBe(404);
      }
    });

    it('checks query parameters', async () => {
      for (const q of ['limit=0', 'limit=1001', 'crud=x', 'from=yesterday', 'seq_from=0', 'cursor=abc', 'verify=maybe', 'colour=red']) {
        const res = await ctx.t.request('GET', `/v1/events?${q}`, { token: tenant.token });
        expect(res.status, q).toBe(400);
        expect((await res.json()).error.message).toMatch(/^query\./);
      }
    });
  });
  describe("verify=true at the chain's end", () => {
    const failuresOf = async (tenant: Tenant, q: string) => (await get(tenant, `/v1/events?${q}`)).verification;

    it('the newest events deleted with the head left in place: a page reaching the end reports them, in either order', async () => {
      const tenant = await createTenant(ctx.t, 'tail-deleted');
      const { events } = await (await post(tenant, { events: Array.from({ length: 10 }, (_, i) => ({ action: `e.${i}` })) })).json();
      await asSuperuser(ctx.db, (su) => su.query('DELETE FROM events WHERE environment_id = $1 AND seq > 8', [tenant.environmentId]));
      expect((await get(tenant, '/v1/chain')).seq).toBe(10);

      const missing = { ok: false, failures: [{ seq: 9, reason: 'events 9 to 10 are missing' }] };
      expect(await failuresOf(tenant, 'verify=true')).toMatchObject({ ...missing, checked: 8, first_seq: 1, last_seq: 8 });
      expect(await failuresOf(tenant, 'order=desc&limit=3&verify=true')).toMatchObject(missing);
      expect(await failuresOf(tenant, 'action=nothing.matches&verify=true')).toMatchObject({ ...missing, checked: 0 });
      expect(await failuresOf(tenant, 'seq_from=7&seq_to=20&verify=true')).toMatchObject(missing);
      const lastStored = await get(tenant, `/v1/events/${events[7].id}?verify=true`);
      expect(lastStored.verification).toMatchObject(missing);
      // A page holding the last stored event reaches the end; pages whose scope ends before it answer for their own seqs.
      expect(await failuresOf(tenant, 'seq_to=8&verify=true')).toMatchObject(missing);
      expect(await failuresOf(tenant, 'limit=3&verify=true')).toMatchObject({ ok: true, failures: [] });
      expect(await failuresOf(tenant, 'seq_to=7&verify=true')).toMatchObject({ ok: true, failures: [] });

      // The scheduled job records the same damage: it is reported once, not twice.
      expect((await ctx.t.request('POST', '/v1/verify', { token: tenant.token })).status).toBe(202);
      expect(await failuresOf(tenant, 'verify=true')).toMatchObject(missing);
    });

    it('a head whose hash is not the last event\'s, and events stored beyond the head, are reported', async () => {
      const tenant = await createTenant(ctx.t, 'head-moved');
      await post(tenant, { events: Array.from({ length: 5 }, (_, i) => ({ action: `e.${i}` })) });
      await asSuperuser(ctx.db, (su) => su.query('UPDATE chain_heads SET hash = $2 WHERE environment_id = $1', [tenant.environmentId, Buffer.alloc(32, 7)]));
      expect((await failuresOf(tenant, 'verify=true')).failures).toEqual([{ seq: 5, reason: "the chain head's hash is not the hash of event 5" }]);
      await asSuperuser(ctx.db, async (su) => {
        const { rows } = await su.query('SELECT hash FROM events WHERE environment_id = $1 AND seq = 3', [tenant.environmentId]);
        await su.query('UPDATE chain_heads SET seq = 3, hash = $2 WHERE environment_id = $1', [tenant.environmentId, rows[0].hash]);
      });
      expect((await failuresOf(tenant, 'verify=true')).failures).toEqual([{ seq: 4, reason: 'events 4 to 5 are stored beyond the chain head at 3' }]);
    });

    it('the newest events deleted and the head rewound: the checkpoint signed beyond the head is reported', async () => {
      const tenant = await createTenant(ctx.t, 'rewound');
      await post(tenant, { events: Array.from({ length: 10 }, (_, i) => ({ action: `e.${i}` })) });
      const archive = new LocalArchive(await mkdtemp(path.join(os.tmpdir(), 'auditledger-events-')));
      await runCheckpoints({ db: ctx.db.pools.owner, archive, key: ctx.t.keyring.current, origin: ctx.t.keyring.origin, log: pino({ level: 'silent' }) });
      await asSuperuser(ctx.db, async (su) => {
        await su.query('DELETE FROM events WHERE environment_id = $1 AND seq > 8', [tenant.environmentId]);
        const { rows } = await su.query('SELECT hash FROM events WHERE environment_id = $1 ORDER BY seq', [tenant.environmentId]);
        const range = appendLeaves(emptyRange(), rows.map((r) => r.hash));
        await su.query('UPDATE chain_heads SET seq = 8, hash = $2, compact_range = $3 WHERE environment_id = $1', [tenant.environmentId, rows[7].hash, range.hashes]);
      });
      await rm(archive.location, { recursive: true, force: true });
      expect((await failuresOf(tenant, 'verify=true')).failures).toEqual([
        { seq: 8, reason: 'a checkpoint at 10 was signed at size 10, beyond the head at 8: events were removed' },
      ]);
    });

    it('the chain head row deleted: verify=true reports it, and a proof is refused, never a 500', async () => {
      const tenant = await createTenant(ctx.t, 'head-deleted');
      const { events } = await (await post(tenant, { events: [{ action: 'a' }, { action: 'b' }] })).json();
      await asSuperuser(ctx.db, (su) => su.query('DELETE FROM chain_heads WHERE environment_id = $1', [tenant.environmentId]));
      expect(await failuresOf(tenant, 'verify=true')).toMatchObject({ ok: false, checked: 2, failures: [{ seq: 0, reason: 'the chain head is missing' }] });
      expect((await get(tenant, `/v1/events/${events[1].id}?verify=true`)).verification.failures).toEqual([{ seq: 0, reason: 'the chain head is missing' }]);
      const proof = await ctx.t.request('GET', `/v1/events/${events[0].id}/proof?tree_size=2`, { token: tenant.token });
      expect(proof.status).toBe(409);
      expect((await proof.json()).error.code).toBe('chain_damaged');
    });

    it('a compact range cut short in the head row: each reader says chain_damaged, an append is a 503, and verification records it without stopping', async () => {
      const tenant = await createTenant(ctx.t, 'range-cut');
      const other = await createTenant(ctx.t, 'range-cut-other');
      await post(tenant, { events: Array.from({ length: 7 }, (_, i) => ({ action: `e.${i}` })) });
      await post(other, { events: [{ action: 'fine' }] });
      // 7 leaves need 3 subtree roots.
      await asSuperuser(ctx.db, (su) => su.query('UPDATE chain_heads SET compact_range = compact_range[1:2] WHERE environment_id = $1', [tenant.environmentId]));
      const chain = await ctx.t.request('GET', '/v1/chain', { token: tenant.token });
      expect(chain.status).toBe(409);
      expect((await chain.json()).error).toMatchObject({ code: 'chain_damaged', message: expect.stringMatching(/compact range of size 7 needs 3 hashes, has 2/) });
      // A process that remembers the head writes its own range over the damaged one; one that
      // does not (another server, or after a restart) reads the head and refuses to extend it.
      const fresh = await createTestApp(ctx.db);
      try {
        const appended = await fresh.request('POST', '/v1/events', { token: tenant.token, body: { action: 'kept by the client' } });
        expect(appended.status).toBe(503);
        expect((await appended.json()).error.code).toBe('chain_damaged');
        expect((await fresh.request('POST', '/v1/events', { token: other.token, body: { action: 'still fine' } })).status).toBe(201);
      } finally {
        await fresh.close();
      }
      // The checkpoint job refuses this chain and signs the other.
      const archive = new LocalArchive(await mkdtemp(path.join(os.tmpdir(), 'auditledger-events-')));
      try {
        await runCheckpoints({ db: ctx.db.pools.owner, archive, key: ctx.t.keyring.current, origin: ctx.t.keyring.origin, log: pino({ level: 'silent' }) });
        const { rows } = await ctx.db.pools.owner.query('SELECT environment_id, tree_size FROM checkpoints WHERE environment_id = ANY($1)', [[tenant.environmentId, other.environmentId]]);
        expect(rows).toEqual([{ environment_id: other.environmentId, tree_size: 2 }]);
      } finally {
        await rm(archive.location, { recursive: true, force: true });
      }
      expect((await ctx.t.request('POST', '/v1/verify', { token: tenant.token })).status).toBe(202);
      expect(await failuresOf(tenant, 'verify=true')).toMatchObject({
        ok: false,
        failures: [{ seq: 7, reason: "the chain head's compact range is damaged: compact range of size 7 needs 3 hashes, has 2" }],
      });
    });

    it("every event deleted: the empty page reports the whole chain missing", async () => {
      const tenant = await createTenant(ctx.t, 'all-deleted');
      await post(tenant, { events: [{ action: 'a' }, { action: 'b' }] });
      await asSuperuser(ctx.db, (su) => su.query('DELETE FROM events WHERE environment_id = $1', [tenant.environmentId]));
      expect(await failuresOf(tenant, 'verify=true')).toMatchObject({ ok: false, checked: 0, failures: [{ seq: 1, reason: 'events 1 to 2 are missing' }] });
    });

    it("what the scheduled job recorded anywhere in a page's scope is reported, though the page holds no event there", async () => {
      const tenant = await createTenant(ctx.t, 'recorded');
      await post(tenant, { events: Array.from({ length: 6 }, (_, i) => ({ action: i === 2 ? 'odd.one' : `e.${i}` })) });
      await asSuperuser(ctx.db, (su) => su.query(`UPDATE events SET action = 'forged' WHERE environment_id = $1 AND seq = 3`, [tenant.environmentId]));
      expect((await ctx.t.request('POST', '/v1/verify', { token: tenant.token })).status).toBe(202);
      // Put back: only the recorded finding remembers it.
      await asSuperuser(ctx.db, (su) => su.query(`UPDATE events SET action = 'odd.one' WHERE environment_id = $1 AND seq = 3`, [tenant.environmentId]));
      const finding = { seq: 3, reason: 'column action does not match the stored bytes' };
      expect(await failuresOf(tenant, 'action=e.5&verify=true')).toMatchObject({ ok: false, checked: 1, failures: [finding] });
      expect(await failuresOf(tenant, 'order=desc&limit=2&verify=true')).toMatchObject({ ok: true });
      expect(await failuresOf(tenant, 'seq_from=4&verify=true')).toMatchObject({ ok: true });
    });
  });
});
