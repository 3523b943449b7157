import { describe, expect, it } from 'vitest';
import { subjectDigest } from '../../src/ledger/personal.js';
import { createTestApp, useTestApp, type TestResponse } from '../helpers/app.js';

/** Three personal values under the default policy: the actor's name and href, and the source IP. */
const login = (id: string, name: string, ip: string) => ({ action: 'user.login', actor: { id, name, href: `https://example.com/u/${id}` }, source_ip: ip });

describe('erasure and legal holds', () => {
  const ctx = useTestApp();
  const admin = (method: string, path: string, body?: unknown) => ctx.t.request(method, path, { token: ctx.t.adminToken, body });
  const created = async (res: TestResponse) => {
    if (res.status !== 201) throw new Error(`${res.status}: ${await res.text()}`);
    return res.json();
  };

  /** A project with the chains `names`, each with a token of `scopes` (the defaults when absent). */
  async function project(name: string, names: string[], scopes?: string[]) {
    const p = await created(await admin('POST', '/v1/projects', { name }));
    const chains: Record<string, { id: string; token: string }> = {};
    for (const env of names) {
      const e = await created(await admin('POST', `/v1/projects/${p.id}/environments`, { name: env }));
      const t = await created(await admin('POST', `/v1/projects/${p.id}/environments/${e.id}/tokens`, { name: 'app', ...(scopes ? { scopes } : {}) }));
      chains[env] = { id: e.id, token: t.token };
    }
    return { id: p.id as string, chains };
  }
  const append = async (token: string, body: unknown, key?: string) =>
    created(await ctx.t.request('POST', '/v1/events', { token, body, headers: { 'idempotency-key': key } }));
  const events = async (token: string, q = '') => {
    const res = await ctx.t.request('GET', `/v1/events?limit=1000${q}`, { token });
    expect(res.status).toBe(200);
    return res.json();
  };
  const digest = (projectId: string, subject: string) => subjectDigest(ctx.t.keyring.subjectKey, projectId, subject);
  const storedValues = async (environment: string, projectId: string, subject: string) =>
    (
      await ctx.db.pools.owner.query<{ n: number }>('SELECT coalesce(sum(length(salts) / 32), 0)::int AS n FROM personal_values WHERE environment_id = $1 AND subject_digest = $2', [
        environment,
        digest(projectId, subject),
      ])
    ).rows[0]!.n;

  it('the Retraced routes read an erased value as the text [erased] in every String field; our own API keeps the marker', async () => {
    const p = await project('erase-retraced', ['production']);
    const { production } = p.chains as Record<'production', { id: string; token: string }>;
    const policy = { subjects: [{ subject: '/actor/id', paths: ['/actor/name', '/actor/href', '/source_ip', '/actor/fields/*', '/fields/email', '/metadata/profile'] }] };
    expect((await admin('PUT', `/v1/projects/${p.id}/personal-data-policy`, policy)).status).toBe(200);
    const sent = { ...login('alice', 'Alice Liddell', '192.0.2.1'), actor: { ...login('alice', 'Alice Liddell', '').actor, fields: { dept: 'hr' } } };
    await append(production.token, { ...sent, fields: { email: 'a@example.com', plan: 'pro' }, metadata: { profile: { age: 7 }, kept: 'x' } });
    expect((await admin('POST', `/v1/projects/${p.id}/erasures`, { subject: 'alice' })).status).toBe(201);

    const res = await ctx.t.request('POST', `/publisher/v1/project/${p.id}/graphql`, {
      token: production.token,
      body: { query: '{ search(query: "action:user.login", first: 5) { edges { node { actor { id name href fields { key value } } source_ip fields { key value } metadata { key value } } } } }' },
    });
    expect(res.status).toBe(200);
    const node = (await res.json()).data.search.edges[0].node;
    expect(node).toEqual({
      actor: { id: 'alice', name: '[erased]', href: '[erased]', fields: [{ key: 'dept', value: '[erased]' }] },
      source_ip: '[erased]',
      // A restored member comes back after the members kept in the body.
      fields: [{ key: 'plan', value: 'pro' }, { key: 'email', value: '[erased]' }],
      metadata: [{ key: 'kept', value: 'x' }, { key: 'profile', value: '[erased]' }],
    });
    const [own] = (await events(production.token, '&action=user.login')).events;
    expect(own.event.actor.name).toEqual({ erased: true, commitment: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it('erases one subject in every chain of the project, leaves the others, records an event per chain; a repeat is a no-op', async () => {
    const p = await project('erase-all', ['production', 'staging']);
    const { production, staging } = p.chains as Record<'production' | 'staging', { id: string; token: string }>;
    await append(production.token, login('alice', 'Alice Liddell', '192.0.2.1'), 'alice-1');
    await append(production.token, login('bob', 'Bob Builder', '192.0.2.2'), 'bob-1');
    await append(production.token, { events: [login('alice', 'Alice Liddell', '192.0.2.3')] });
    await append(staging.token, login('alice', 'Alice Liddell', '192.0.2.4'));
    expect(await storedValues(production.id, p.id, 'alice')).toBe(6);
    // Read first, so that anything a read could keep (there is no cache of restored values) would be kept.
    expect(JSON.stringify(await events(production.token, '&verify=true'))).toContain('Alice Liddell');

    const res = await admin('POST', `/v1/projects/${p.id}/erasures`, { subject: 'alice' });
    expect(res.status).toBe(201);
    const erasure = await res.json();
    const hex = digest(p.id, 'alice').toString('hex');
    expect(erasure).toMatchObject({ project_id: p.id, subject_digest: hex });
    expect(erasure.chains).toEqual([
      { environment_id: production.id, values_erased: 6, receipt: expect.objectContaining({ seq: 4 }) },
      { environment_id: staging.id, values_erased: 3, receipt: expect.objectContaining({ seq: 2 }) },
    ]);

    // Gone from the store, with the idempotency key of the erased event; Bob's stay.
    expect(await storedValues(production.id, p.id, 'alice')).toBe(0);
    expect(await storedValues(staging.id, p.id, 'alice')).toBe(0);
    expect(await storedValues(production.id, p.id, 'bob')).toBe(3);
    const keys = await ctx.db.pools.owner.query<{ key: string }>('SELECT key FROM idempotency_keys WHERE environment_id = $1 ORDER BY key', [production.id]);
    expect(keys.rows.map((r) => r.key)).toEqual(['bob-1']);

    // Read back: Alice's values as erased markers, Bob's as sent, and the erasure event last; all verifies.
    const page = await events(production.token, '&verify=true');
    expect(page.verification).toMatchObject({ ok: true, failures: [] });
    const [alice, bob, alice2, erased] = page.events;
    expect(alice.event.actor.name).toEqual({ erased: true, commitment: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(alice.event.source_ip).toMatchObject({ erased: true });
    expect(alice2.event.actor.href).toMatchObject({ erased: true });
    expect(bob.event).toMatchObject(login('bob', 'Bob Builder', '192.0.2.2'));
    expect(erased.id).toBe(erasure.chains[0].receipt.id);
    expect(erased.event).toEqual({
      action: 'auditledger.subject.erased',
      crud: 'd',
      actor: { id: 'auditledger:admin' },
      target: { id: hex, type: 'data_subject' },
      metadata: { subject_digest: hex, values_erased: 6, values_by_pointer: { '/actor/href': 2, '/actor/name': 2, '/source_ip': 2 } },
    });
    expect(JSON.stringify(page)).not.toContain('Alice');

    // A repeat finds nothing new: the same answer, nothing appended.
    const repeat = await admin('POST', `/v1/projects/${p.id}/erasures`, { subject: 'alice' });
    expect(repeat.status).toBe(200);
    expect(await repeat.json()).toEqual(erasure);
    expect((await events(production.token)).events).toHaveLength(4);
    // By the digest the answer gave (to repeat it after a restore, without keeping the id): the same.
    const byDigest = await admin('POST', `/v1/projects/${p.id}/erasures`, { subject_digest: hex });
    expect(byDigest.status).toBe(200);
    expect(await byDigest.json()).toEqual(erasure);

    // Values sent after the erasure are new data: the next request erases them, with a new event in that chain only.
    await append(production.token, login('alice', 'Alice Liddell', '192.0.2.5'));
    const again = await admin('POST', `/v1/projects/${p.id}/erasures`, { subject: 'alice' });
    expect(again.status).toBe(201);
    const next = await again.json();
    expect(next.chains).toEqual([
      { environment_id: production.id, values_erased: 9, receipt: expect.objectContaining({ seq: 6 }) },
      erasure.chains[1],
    ]);
    expect(await storedValues(production.id, p.id, 'alice')).toBe(0);
  });

  it('a hold on the project, an environment or the subject refuses the erasures it covers with 409 and erases nothing, until lifted', async () => {
    const p = await project('holds', ['production', 'staging']);
    const { production, staging } = p.chains as Record<'production' | 'staging', { id: string; token: string }>;
    await append(production.token, login('carol', 'Carol Danvers', '198.51.100.1'));
    await append(staging.token, login('carol', 'Carol Danvers', '198.51.100.2'));
    const erase = () => admin('POST', `/v1/projects/${p.id}/erasures`, { subject: 'carol' });

    const placed = await admin('POST', `/v1/projects/${p.id}/holds`, { subject: 'carol', reason: 'litigation 2026-17' });
    expect(placed.status).toBe(201);
    const hold = await placed.json();
    expect(hold).toMatchObject({ project_id: p.id, environment_id: null, subject_digest: digest(p.id, 'carol').toString('hex'), reason: 'litigation 2026-17', lifted_at: null });
    expect(hold.events.map((e: { environment_id: string }) => e.environment_id)).toEqual([production.id, staging.id]);
    const [placedEvent] = (await events(production.token, '&action=auditledger.hold.placed')).events;
    expect(placedEvent.id).toBe(hold.events[0].id);
    expect(placedEvent.event).toMatchObject({ target: { id: hold.id, type: 'legal_hold' }, metadata: { hold_id: hold.id, reason: 'litigation 2026-17' } });

    const refused = await erase();
    expect(refused.status).toBe(409);
    expect((await refused.json()).error).toMatchObject({ code: 'legal_hold', details: { hold: hold.id, reason: 'litigation 2026-17' } });
    expect(await storedValues(production.id, p.id, 'carol')).toBe(1 * 3);
    expect(await storedValues(staging.id, p.id, 'carol')).toBe(3);
    // A hold on another subject refuses nothing of this one's.
    const other = await created(await admin('POST', `/v1/projects/${p.id}/holds`, { subject: 'dave', reason: 'another case' }));
    expect(other.subject_digest).toBe(digest(p.id, 'dave').toString('hex'));
    // By the digest alone too, as an erasure may name its subject; not by both.
    const byDigest = await created(await admin('POST', `/v1/projects/${p.id}/holds`, { subject_digest: hold.subject_digest, reason: 'same case, by digest' }));
    expect(byDigest.subject_digest).toBe(hold.subject_digest);
    await admin('DELETE', `/v1/projects/${p.id}/holds/${byDigest.id}`);
    const both = await admin('POST', `/v1/projects/${p.id}/holds`, { subject: 'carol', subject_digest: hold.subject_digest, reason: 'x' });
    expect(both.status).toBe(400);
    expect((await both.json()).error.message).toMatch(/subject.*not both/);

    const lift = await admin('DELETE', `/v1/projects/${p.id}/holds/${hold.id}`);
    expect(lift.status).toBe(200);
    const lifted = await lift.json();
    expect(lifted.lifted_at).not.toBeNull();
    expect(lifted.events).toHaveLength(2);
    // Lifting again changes nothing and appends nothing.
    const liftAgain = await admin('DELETE', `/v1/projects/${p.id}/holds/${hold.id}`);
    expect(await liftAgain.json()).toEqual({ ...lifted, events: [] });
    const list = await (await admin('GET', `/v1/projects/${p.id}/holds`)).json();
    expect(list.holds.map((h: { id: string; lifted_at: string | null }) => [h.id, h.lifted_at === null])).toEqual([
      [hold.id, false],
      [other.id, true],
      [byDigest.id, false],
    ]);

    // An environment's hold refuses the project's erasure (it reaches that chain) too.
    const envHold = await created(await admin('POST', `/v1/projects/${p.id}/holds`, { environment: staging.id, reason: 'audit of staging' }));
    expect(envHold.events.map((e: { environment_id: string }) => e.environment_id)).toEqual([staging.id]);
    expect((await erase()).status).toBe(409);
    await admin('DELETE', `/v1/projects/${p.id}/holds/${envHold.id}`);

    expect((await erase()).status).toBe(201);
    expect(await storedValues(production.id, p.id, 'carol')).toBe(0);
    expect((await events(staging.token, '&verify=true')).verification.ok).toBe(true);
  });

  it('a token with the erase scope erases in its own chain only; other tokens get 403', async () => {
    const p = await project('scoped', ['production', 'staging'], ['events:write', 'events:read', 'erase']);
    const { production, staging } = p.chains as Record<'production' | 'staging', { id: string; token: string }>;
    await append(production.token, login('erin', 'Erin Brockovich', '203.0.113.1'));
    await append(staging.token, login('erin', 'Erin Brockovich', '203.0.113.2'));

    const res = await ctx.t.request('POST', '/v1/erasures', { token: staging.token, body: { subject: 'erin' } });
    expect(res.status).toBe(201);
    const erasure = await res.json();
    expect(erasure.chains).toEqual([{ environment_id: staging.id, values_erased: 3, receipt: expect.objectContaining({ seq: 2 }) }]);
    expect((await events(staging.token)).events[1].event.actor.id).toMatch(/^auditledger:token:/);
    expect(await storedValues(staging.id, p.id, 'erin')).toBe(0);
    expect(await storedValues(production.id, p.id, 'erin')).toBe(3);

    // The project's erasure then finishes the other chain and keeps the first one's receipt.
    const all = await (await admin('POST', `/v1/projects/${p.id}/erasures`, { subject: 'erin' })).json();
    expect(all.chains).toEqual([expect.objectContaining({ environment_id: production.id, values_erased: 3 }), erasure.chains[0]]);

    const plain = await project('unscoped', ['production']);
    const forbidden = await ctx.t.request('POST', '/v1/erasures', { token: plain.chains.production!.token, body: { subject: 'erin' } });
    expect(forbidden.status).toBe(403);
    expect((await forbidden.json()).error.message).toContain('erase');
    expect((await ctx.t.request('POST', '/v1/erasures', { token: ctx.t.adminToken, body: { subject: 'erin' } })).status).toBe(403);
    expect((await ctx.t.request('POST', `/v1/projects/${p.id}/erasures`, { token: production.token, body: { subject: 'erin' } })).status).toBe(403);
  });

  it('appends racing an erasure land wholly before its event (erased) or after it (kept as new data)', async () => {
    const p = await project('race', ['production']);
    const { production } = p.chains as Record<'production', { id: string; token: string }>;
    // Appends one after another while the erasure runs, so that it lands among them.
    let erasing = true;
    let sent = 0;
    const racing = (async () => {
      while (erasing || sent < 5) {
        await append(production.token, login('frank', 'Frank Race', '203.0.113.9'));
        sent++;
      }
    })();
    while (sent < 3) await new Promise((r) => setTimeout(r, 5));
    const erasure = await created(await admin('POST', `/v1/projects/${p.id}/erasures`, { subject: 'frank' }));
    erasing = false;
    await racing;
    const erasedAt = erasure.chains[0].receipt.seq;
    const { rows } = await ctx.db.pools.owner.query<{ seq: number }>('SELECT DISTINCT seq FROM personal_values WHERE environment_id = $1 AND subject_digest = $2 ORDER BY seq', [
      production.id,
      digest(p.id, 'frank'),
    ]);
    // Every event before the erasure event lost its values, every one after kept them.
    expect(erasure.chains[0].values_erased).toBe((erasedAt - 1) * 3);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: sent + 1 - erasedAt }, (_, i) => erasedAt + 1 + i));
  });

  it('the first erasure of a subject answers 201 even in a project without chains; a repeat 200', async () => {
    const p = await project('erase-no-chains', []);
    const first = await admin('POST', `/v1/projects/${p.id}/erasures`, { subject: 'alice' });
    expect(first.status).toBe(201);
    expect(await first.json()).toMatchObject({ project_id: p.id, chains: [] });
    expect((await admin('POST', `/v1/projects/${p.id}/erasures`, { subject: 'alice' })).status).toBe(200);
  });

  it('an erasure and a hold are dated by the clock their events get, shifted as AUDITLEDGER_CLOCK_OFFSET shifts it', async () => {
    const DAY_MS = 86_400_000;
    const shifted = await createTestApp(ctx.db, {}, () => Date.now() - DAY_MS);
    try {
      const p = await project('erase-shifted', ['production']);
      const near = (a: string, b: string) => expect(Math.abs(Date.parse(a) - Date.parse(b)), `${a} and ${b}`).toBeLessThan(60_000);
      const res = await shifted.request('POST', `/v1/projects/${p.id}/erasures`, { token: shifted.adminToken, body: { subject: 'alice' } });
      expect(res.status).toBe(201);
      const erasure = await res.json();
      const received = erasure.chains[0].receipt.received_at;
      expect(Date.now() - Date.parse(received)).toBeGreaterThan(DAY_MS - 60_000);
      near(erasure.requested_at, received);
      near(erasure.updated_at, received);
      const placed = await (await shifted.request('POST', `/v1/projects/${p.id}/holds`, { token: shifted.adminToken, body: { reason: 'case' } })).json();
      near(placed.placed_at, placed.events[0].received_at);
      const lifted = await (await shifted.request('DELETE', `/v1/projects/${p.id}/holds/${placed.id}`, { token: shifted.adminToken })).json();
      near(lifted.lifted_at, lifted.events[0].received_at);
    } finally {
      await shifted.close();
    }
  });

  it('bad input is a 4xx naming the field', async () => {
    const p = await project('bad-input', ['production']);
    const other = await project('bad-input-other', ['production']);
    const cases: [string, string, unknown, number, string][] = [
      ['POST', `/v1/projects/${p.id}/erasures`, {}, 400, 'subject'],
      ['POST', `/v1/projects/${p.id}/erasures`, { subject: '' }, 400, 'subject'],
      ['POST', `/v1/projects/${p.id}/erasures`, { subject: 42 }, 400, 'subject'],
      ['POST', `/v1/projects/${p.id}/erasures`, { subject: 'a', reason: 'x' }, 400, 'reason'],
      ['POST', `/v1/projects/${p.id}/erasures`, { subject: 'a\u0000b' }, 400, 'subject'],
      ['POST', `/v1/projects/${p.id}/erasures`, { subject: 'a', subject_digest: 'ab'.repeat(32) }, 400, 'subject'],
      ['POST', `/v1/projects/${p.id}/erasures`, { subject_digest: 'AB'.repeat(32) }, 400, 'subject_digest'],
      ['POST', `/v1/projects/${p.id}/holds`, { subject: 'a' }, 400, 'reason'],
      ['POST', `/v1/projects/${p.id}/holds`, { reason: '  ' }, 400, 'reason'],
      // Recorded in the chain as given: never trimmed.
      ['POST', `/v1/projects/${p.id}/holds`, { reason: '  padded  ' }, 400, 'reason'],
      ['POST', `/v1/projects/${p.id}/holds`, { reason: 'r', environment: 'staging' }, 400, 'environment'],
      ['POST', `/v1/projects/${p.id}/holds`, { reason: 'r', environment: other.chains.production!.id }, 400, 'environment'],
      ['POST', `/v1/projects/${p.id}/holds`, { reason: 'r'.repeat(1001) }, 400, 'reason'],
    ];
    for (const [method, path, body, status, field] of cases) {
      const res = await admin(method, path, body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      const { error } = await res.json();
      expect(error.details.map((d: { field: string }) => d.field), JSON.stringify(body)).toContain(field);
    }
    const messages = async (body: unknown) => (await (await admin('POST', `/v1/projects/${p.id}/erasures`, body)).json()).error.details;
    expect(await messages({})).toEqual([{ field: 'subject', message: 'one of subject or subject_digest is required' }]);
    expect(await messages({ subject: 'a', subject_digest: 'ab'.repeat(32) })).toEqual([{ field: 'subject', message: 'give subject or subject_digest, not both' }]);
    expect((await admin('POST', `/v1/projects/00000000-0000-7000-8000-000000000000/erasures`, { subject: 'a' })).status).toBe(404);
    expect((await admin('POST', '/v1/projects/not-a-uuid/holds', { reason: 'r' })).status).toBe(404);
    expect((await admin('DELETE', `/v1/projects/${p.id}/holds/00000000-0000-7000-8000-000000000000`)).status).toBe(404);
    expect((await admin('GET', `/v1/projects/${p.id}/holds?limit=0`)).status).toBe(400);
    const wrongType = await ctx.t.request('POST', `/v1/projects/${p.id}/erasures`, { token: ctx.t.adminToken, body: 'subject=a', headers: { 'content-type': 'text/plain' } });
    expect(wrongType.status).toBe(415);
  });
});
