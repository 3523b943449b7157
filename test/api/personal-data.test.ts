import { beforeAll, describe, expect, it } from 'vitest';
import { commitValue, DEFAULT_POLICY, subjectDigest } from '../../src/ledger/personal.js';
import { personalRows, readPersonalRow } from '../../src/store/personal.js';
import { createTenant, createTestApp, useTestApp } from '../helpers/app.js';

type Tenant = Awaited<ReturnType<typeof createTenant>>;

const ALICE = { action: 'user.login', crud: 'c', actor: { id: 'alice', name: 'Alice Liddell', href: 'https://example.com/alice' }, source_ip: '192.0.2.7' };

describe('personal data (format v2 commitments)', () => {
  const ctx = useTestApp();
  let tenant: Tenant;
  beforeAll(async () => {
    tenant = await createTenant(ctx.t, 'personal');
  });

  const post = (body: unknown, who = tenant, headers?: Record<string, string>) => ctx.t.request('POST', '/v1/events', { token: who.token, body, headers });
  const get = async (path: string, who = tenant) => {
    const res = await ctx.t.request('GET', path, { token: who.token });
    expect(res.status, path).toBe(200);
    return res.json();
  };
  const admin = (method: string, path: string, body?: unknown) => ctx.t.request(method, path, { token: ctx.t.adminToken, body });
  const rows = async (environment: string, seq: number) =>
    (
      await ctx.db.pools.owner.query<{ part: number; subject_digest: Buffer | null; pointer_values: string; salts: Buffer }>(
        'SELECT part, subject_digest, pointer_values, salts FROM personal_values WHERE environment_id = $1 AND seq = $2 ORDER BY part',
        [environment, seq],
      )
    ).rows;
  // Each stored value with its row's subject, by pointer.
  const values = async (environment: string, seq: number) =>
    (await rows(environment, seq))
      .flatMap((row) => readPersonalRow(row.pointer_values, row.salts).map(([pointer, { value, salt }]) => ({ pointer, subject_digest: row.subject_digest, value, salt })))
      .sort((a, b) => (a.pointer < b.pointer ? -1 : 1));

  it('commits to the default policy\'s values in the hashed body, stores them apart, and reads them back', async () => {
    const res = await post({ ...ALICE, target: { id: 'bob', name: 'Bob', type: 'user' } });
    expect(res.status).toBe(201);
    const [receipt] = (await res.json()).events;
    const shown = await get(`/v1/events/${receipt.id}`);
    expect(shown.event).toEqual({ ...ALICE, target: { id: 'bob', name: 'Bob', type: 'user' } });

    const body = JSON.parse(shown.canonical);
    expect(body.event).toEqual({ action: 'user.login', crud: 'c', actor: { id: 'alice' }, target: { id: 'bob', type: 'user' } });
    expect(Object.keys(body.commitments)).toEqual(['/actor/href', '/actor/name', '/source_ip', '/target/name']);
    for (const clear of ['Alice Liddell', 'example.com/alice', '192.0.2.7', 'Bob']) expect(shown.canonical).not.toContain(clear);

    const stored = await values(tenant.environmentId, receipt.seq);
    const digest = (id: string) => subjectDigest(ctx.t.keyring.subjectKey, tenant.projectId, id);
    expect(stored.map((v) => [v.pointer, v.value, v.subject_digest])).toEqual([
      ['/actor/href', '"https://example.com/alice"', digest('alice')],
      ['/actor/name', '"Alice Liddell"', digest('alice')],
      ['/source_ip', '"192.0.2.7"', digest('alice')],
      ['/target/name', '"Bob"', digest('bob')],
    ]);
    for (const v of stored) expect(commitValue(v.value, v.salt)).toBe(body.commitments[v.pointer]);
    // One row per subject: Alice's three values together, then Bob's.
    expect((await rows(tenant.environmentId, receipt.seq)).map((r) => [r.part, r.subject_digest, r.pointer_values])).toEqual([
      [1, digest('alice'), '{"/actor/href":"https://example.com/alice","/actor/name":"Alice Liddell","/source_ip":"192.0.2.7"}'],
      [2, digest('bob'), '{"/target/name":"Bob"}'],
    ]);
    // A fresh salt per value.
    expect(new Set(stored.map((v) => v.salt.toString('hex'))).size).toBe(4);
  });

  it('stores an event\'s values one row per subject, a subject the event does not name as NULL, and reads back values that need escaping', async () => {
    const rowsTenant = await createTenant(ctx.t, 'personal-rows');
    const policy = { subjects: [{ subject: '/actor/id', paths: ['/actor/name', '/fields/*'] }, { subject: '/group/id', paths: ['/metadata/*'] }] };
    const put = await admin('PUT', `/v1/projects/${rowsTenant.projectId}/environments/${rowsTenant.environmentId}/personal-data-policy`, policy);
    expect(put.status).toBe(200);
    const event = {
      action: 'row.test',
      actor: { id: 'carol', name: 'Carol "C" \\ Zoë 😀' },
      fields: { 'a"b': '1', é: '2', '~/': '3', Z: '4' },
      metadata: { nested: { list: [1, 2.5, 1e21, 'q"\\\n'] }, flag: true },
    };
    const [receipt] = (await (await post(event, rowsTenant)).json()).events;
    const shown = await get(`/v1/events/${receipt.id}?verify=true`, rowsTenant);
    expect(shown.event).toEqual(event);
    expect(shown.verification).toMatchObject({ ok: true, failures: [] });
    const stored = await rows(rowsTenant.environmentId, receipt.seq);
    expect(stored.map((r) => [r.part, r.subject_digest, r.salts.length])).toEqual([
      [1, subjectDigest(ctx.t.keyring.subjectKey, rowsTenant.projectId, 'carol'), 5 * 32],
      [2, null, 2 * 32],
    ]);
    // RFC 8785 member order (UTF-16 code units), which the salts follow.
    expect(readPersonalRow(stored[0]!.pointer_values, stored[0]!.salts).map(([pointer]) => pointer)).toEqual([
      '/actor/name',
      '/fields/Z',
      '/fields/a"b',
      '/fields/~0~1',
      '/fields/é',
    ]);
  });

  it('keeps the body of an event without personal values as it was in v1, apart from v', async () => {
    const [receipt] = (await (await post({ action: 'system.tick', actor: { id: 'cron' }, target: { id: 'db', name: 'db-1', type: 'server' } })).json()).events;
    const shown = await get(`/v1/events/${receipt.id}`);
    expect(shown.canonical).toMatch(/^\{"environment":"[^"]+","event":\{"action":"system.tick","actor":\{"id":"cron"\},"target":\{"id":"db","name":"db-1","type":"server"\}\},"id":/);
    expect(shown.canonical).toMatch(/,"v":2\}$/);
    expect(await values(tenant.environmentId, receipt.seq)).toEqual([]);
  });

  it('returns restored values from queries, exports (NDJSON and CSV) and the Retraced search', async () => {
    const page = await get('/v1/events?action=user.login&verify=true');
    expect(page.events[0].event.actor.name).toBe('Alice Liddell');
    expect(page.verification).toMatchObject({ ok: true, failures: [] });

    const ndjson = await (await ctx.t.request('GET', '/v1/events/export?action=user.login', { token: tenant.token })).text();
    expect(JSON.parse(ndjson.split('\n')[0]!).event.source_ip).toBe('192.0.2.7');
    const csv = await (await ctx.t.request('GET', '/v1/events/export?format=csv&action=user.login', { token: tenant.token })).text();
    expect(csv.split('\r\n')[0]!.endsWith(',canonical,event')).toBe(true);
    expect(csv).toContain('""name"":""Alice Liddell""');

    const graphql = await ctx.t.request('POST', `/publisher/v1/project/${tenant.projectId}/graphql`, {
      token: tenant.token,
      body: { query: 'query { search(query: "action:user.login", last: 10) { edges { node { action source_ip actor { id name } } } } }' },
    });
    expect(graphql.status).toBe(200);
    expect((await graphql.json()).data.search.edges[0].node).toEqual({ action: 'user.login', source_ip: '192.0.2.7', actor: { id: 'alice', name: 'Alice Liddell' } });
  });

  it('reads an erased value as a marker with its commitment, and a changed one as a mismatch that verify=true reports', async () => {
    const [receipt] = (await (await post(ALICE)).json()).events;
    const commitments = JSON.parse((await get(`/v1/events/${receipt.id}`)).canonical).commitments;
    // The row without /actor/name, and with another /source_ip under its salt.
    const kept = (await values(tenant.environmentId, receipt.seq))
      .filter((v) => v.pointer !== '/actor/name')
      .map((v) => ({ ...v, subject: 'alice', value: v.pointer === '/source_ip' ? '"198.51.100.1"' : v.value }));
    const [row] = personalRows(kept, () => kept[0]!.subject_digest!);
    await ctx.db.pools.owner.query('UPDATE personal_values SET pointer_values = $3, salts = $4 WHERE environment_id = $1 AND seq = $2', [
      tenant.environmentId,
      receipt.seq,
      row!.values,
      row!.salts,
    ]);
    const shown = await get(`/v1/events/${receipt.id}?verify=true`);
    expect(shown.event).toEqual({
      ...ALICE,
      actor: { ...ALICE.actor, name: { erased: true, commitment: commitments['/actor/name'] } },
      source_ip: { erased: false, commitment: commitments['/source_ip'], mismatch: true },
    });
    // An erased value is no fault: the chain and its proofs are intact. A changed one is.
    expect(shown.verification.failures).toEqual([{ seq: receipt.seq, reason: 'the personal value at /source_ip does not match its commitment' }]);
  });

  it('matches an idempotency key against the event as sent, whatever its salts', async () => {
    const first = await post(ALICE, tenant, { 'idempotency-key': 'personal-1' });
    const again = await post(ALICE, tenant, { 'idempotency-key': 'personal-1' });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect((await again.json()).events).toEqual((await first.json()).events);
    const other = await post({ ...ALICE, source_ip: '192.0.2.8' }, tenant, { 'idempotency-key': 'personal-1' });
    expect(other.status).toBe(409);
  });

  // Every route that appends an app's events: single and bulk, ours and Retraced's publisher's.
  const appendRoutes = (event: unknown) => {
    const retraced = `/publisher/v1/project/${tenant.projectId}`;
    return [
      { route: 'POST /v1/events', body: event, field: '' },
      { route: 'POST /v1/events (bulk)', body: { events: [{ action: 'fine' }, event] }, field: 'events.1.' },
      { route: `POST ${retraced}/event`, body: event, field: '' },
      { route: `POST ${retraced}/event/bulk`, body: { events: [{ action: 'fine' }, event] }, field: 'events.1.' },
    ].map(({ route, body, field }) => {
      const path = route.split(' ')[1]!;
      return { route, field, send: () => ctx.t.request('POST', path, { token: tenant.token, body }) };
    });
  };

  it('refuses the action prefix of the ledger\'s own events from apps, and its look-alikes, naming action', async () => {
    const lookAlikes = [
      'auditledger.policy.changed',
      'AuditLedger.anything',
      ' auditledger.subject.erased',
      'auditledger.subject.erased\t',
      '\u200bauditledger.subject.erased', // zero-width space (Cf)
      '\u202eauditledger.hold.placed', // right-to-left override (Cf)
      'audit\u00adledger.hold.lifted', // soft hyphen (Cf)
      '\ufeffAUDITLEDGER.x', // byte order mark (Cf)
      'auditledger\u2060.x', // word joiner (Cf)
      '\uff41\uff55\uff44\uff49\uff54\uff4c\uff45\uff44\uff47\uff45\uff52\uff0esubject.erased', // fullwidth, NFKC
      'auditledger\ufe52x', // small full stop, NFKC
      'audit\u2112edger.x', // script capital L, NFKC then case
      'AUDITLEDGER\u00a0.x', // no-break space, white space after NFKC
      'aud\u0131tledger.x', // dotless i, case
      'auditledger\u3002x', // ideographic full stop: punctuation
      'auditledger\u00b7x', // middle dot: punctuation
      'auditledger_x', // any punctuation reads as the separator
      'auditledger\u0338.x', // combining long solidus overlay (a mark)
      'aud\u0130tledger.x', // capital I with dot above: I and a mark
    ];
    for (const action of lookAlikes) {
      for (const { route, field, send } of appendRoutes({ action })) {
        const res = await send();
        expect(res.status, `${route} ${JSON.stringify(action)}`).toBe(400);
        expect((await res.json()).error.details, route).toEqual([{ field: `${field}action`, message: expect.stringContaining('auditledger.') }]);
      }
    }
    // Near misses are actions like any other.
    for (const action of ['auditledger', 'auditledgerx.y', 'my.auditledger.x', 'audit-ledger.x']) expect((await post({ action })).status, action).toBe(201);
  });

  it('refuses a value shaped like an erased value\'s marker anywhere, naming its field and RFC 6901 pointer', async () => {
    const markers = [
      { erased: true, commitment: 'a'.repeat(64) },
      { erased: false, commitment: 'a'.repeat(64), mismatch: true },
      { commitment: 1, erased: false },
    ];
    for (const marker of markers) {
      const ours = appendRoutes({ action: 'a', metadata: { a: [{ 'b/c': marker }] } }).slice(0, 2);
      for (const { route, field, send } of ours) {
        const res = await send();
        expect(res.status, route).toBe(400);
        expect((await res.json()).error.details, route).toEqual([{ field: `${field}metadata.a.0.b/c`, message: expect.stringMatching(/^\/metadata\/a\/0\/b~1c: .*marker/) }]);
      }
      const whole = await post({ action: 'a', metadata: marker });
      expect((await whole.json()).error.details).toEqual([{ field: 'metadata', message: expect.stringMatching(/^\/metadata: /) }]);
      // Retraced's metadata is text: no object gets in there.
      for (const { route, send } of appendRoutes({ action: 'a', metadata: { a: marker } }).slice(2)) expect((await send()).status, route).toBe(400);
    }
    // Not the shape: another member, a member missing, erased not a boolean.
    for (const other of [{ erased: true, commitment: 'c', note: 1 }, { erased: true }, { erased: 'true', commitment: 'c' }, { erased: true, mismatch: true }]) {
      expect((await post({ action: 'a', metadata: { a: other } })).status, JSON.stringify(other)).toBe(201);
    }
  });

  it('never appends after a policy change with the old policy, even from a process that cached it', async () => {
    // A second app on the same database: another process, which trusts its cached policy a minute.
    const other = await createTestApp(ctx.db, { AUDITLEDGER_TOKEN_CACHE_SECONDS: '60' });
    try {
      const fenced = await createTenant(ctx.t, 'personal-fenced');
      const postThere = async (event: unknown) => {
        const res = await other.request('POST', '/v1/events', { token: fenced.token, body: event });
        expect(res.status).toBe(201);
        return (await res.json()).events[0];
      };
      const committed = async (receipt: { id: string }) => Object.keys(JSON.parse((await get(`/v1/events/${receipt.id}`, fenced)).canonical).commitments ?? {});
      const event = { ...ALICE, metadata: { email: 'alice@example.com' } };
      expect(await committed(await postThere(event))).toEqual(['/actor/href', '/actor/name', '/source_ip']);

      const scope = `/v1/projects/${fenced.projectId}/environments/${fenced.environmentId}/personal-data-policy`;
      const withEmail = { subjects: [{ subject: '/actor/id', paths: ['/actor/name', '/metadata/email'] }] };
      const changed = await (await admin('PUT', scope, withEmail)).json();
      const after = await postThere(event);
      expect(after.seq).toBeGreaterThan(changed.events[0].seq);
      expect(await committed(after)).toEqual(['/actor/name', '/metadata/email']);
      expect((await get(`/v1/events/${after.id}`, fenced)).canonical).not.toContain('alice@example.com');

      // And back: a path the policy no longer names is not committed to after its removal.
      await admin('DELETE', scope);
      expect(await committed(await postThere(event))).toEqual(['/actor/href', '/actor/name', '/source_ip']);
      // Through Retraced's publisher too.
      await admin('PUT', scope, withEmail);
      const retraced = await other.request('POST', `/publisher/v1/project/${fenced.projectId}/event`, {
        token: fenced.token,
        body: { action: 'user.login', crud: 'c', actor: { id: 'alice', name: 'Alice Liddell' }, fields: { email: 'x' }, created: new Date().toISOString() },
      });
      expect(retraced.status).toBe(201);
      const page = await get('/v1/events?verify=true', fenced);
      expect(page.verification).toMatchObject({ ok: true, failures: [] });
      const latest = page.events.reduce((a: { seq: number }, b: { seq: number }) => (a.seq > b.seq ? a : b));
      expect(Object.keys(JSON.parse(latest.canonical).commitments)).toEqual(['/actor/name']);
    } finally {
      await other.close();
    }
  });

  describe('policy admin API', () => {
    let other: Tenant;
    beforeAll(async () => {
      other = await createTenant(ctx.t, 'personal-policy');
    });
    const projectPolicy = () => `/v1/projects/${other.projectId}/personal-data-policy`;
    const environmentPolicy = () => `/v1/projects/${other.projectId}/environments/${other.environmentId}/personal-data-policy`;
    const custom = { subjects: [{ subject: '/actor/id', paths: ['/actor/name', '/fields/*', '/metadata/email'] }] };

    it('answers the default policy until one is set', async () => {
      const res = await admin('GET', projectPolicy());
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ project_id: other.projectId, environment_id: null, policy: DEFAULT_POLICY, source: 'default', changed_at: null });
      expect((await ctx.t.request('GET', projectPolicy(), { token: other.token })).status).toBe(403);
    });

    it('refuses a policy that makes a subject id or an index column personal, naming the path', async () => {
      const res = await admin('PUT', projectPolicy(), { subjects: [{ subject: '/actor/id', paths: ['/actor/name', '/actor/id'] }] });
      expect(res.status).toBe(400);
      expect((await res.json()).error.details).toEqual([{ field: 'subjects.0.paths.1', message: expect.stringContaining('/actor/id') }]);
      // The trial's policy: erasing the second subject would have left {"victim": ...} in the first one's value.
      const overlap = { subjects: [{ subject: '/actor/id', paths: ['/metadata'] }, { subject: '/target/id', paths: ['/metadata/victim'] }] };
      const overlapping = await admin('PUT', projectPolicy(), overlap);
      expect(overlapping.status).toBe(400);
      expect((await overlapping.json()).error.details).toEqual([{ field: 'subjects.1.paths.0', message: expect.stringContaining('overlaps subjects.0.paths.0 (/metadata)') }]);
      // Always true or false: an erased value there would read "[erased]" where Retraced has a Boolean.
      const typed = await admin('PUT', projectPolicy(), { subjects: [{ subject: '/actor/id', paths: ['/actor/name', '/is_failure', '/is_anonymous'] }] });
      expect(typed.status).toBe(400);
      expect((await typed.json()).error.details).toEqual([
        { field: 'subjects.0.paths.1', message: expect.stringContaining('/is_failure: it is always true or false, never free text') },
        { field: 'subjects.0.paths.2', message: expect.stringContaining('/is_anonymous: it is always true or false, never free text') },
      ]);
      const shape = await admin('PUT', projectPolicy(), { subjects: [{ subject: '/actor/id', paths: [] }], extra: 1 });
      expect(shape.status).toBe(400);
      expect((await admin('PUT', `/v1/projects/${crypto.randomUUID()}/personal-data-policy`, custom)).status).toBe(404);
    });

    it('sets a project policy, records it in each chain it changes, and applies it to the next appends', async () => {
      const res = await admin('PUT', projectPolicy(), custom);
      expect(res.status).toBe(200);
      const answer = await res.json();
      expect(answer).toMatchObject({ policy: custom, source: 'project', changed_at: expect.any(String) });
      expect(answer.events).toEqual([{ environment_id: other.environmentId, id: expect.any(String), seq: 1, hash: expect.any(String), received_at: expect.any(String) }]);
      const recorded = await get(`/v1/events/${answer.events[0].id}`, other);
      expect(recorded.event).toEqual({
        action: 'auditledger.policy.changed',
        crud: 'u',
        metadata: { policy: custom, policy_sha256: expect.stringMatching(/^[0-9a-f]{64}$/), source: 'project' },
      });

      // The same policy again (its members in another order) changes nothing and records nothing.
      const again = await admin('PUT', projectPolicy(), { subjects: custom.subjects.map(({ paths, subject }) => ({ paths, subject })) });
      expect(again.status).toBe(200);
      expect(await again.json()).toMatchObject({ policy: custom, changed_at: answer.changed_at, events: [] });
      expect((await (await ctx.t.request('GET', '/v1/chain', { token: other.token })).json()).seq).toBe(1);

      const [receipt] = (await (await post({ ...ALICE, fields: { email: 'a@example.com' }, metadata: { email: 'a@example.com', plan: 'pro' } }, other)).json()).events;
      const shown = await get(`/v1/events/${receipt.id}`, other);
      expect(Object.keys(JSON.parse(shown.canonical).commitments)).toEqual(['/actor/name', '/fields/email', '/metadata/email']);
      // source_ip is not personal under this policy: it stays in the body.
      expect(JSON.parse(shown.canonical).event.source_ip).toBe('192.0.2.7');
      expect(shown.event.metadata).toEqual({ email: 'a@example.com', plan: 'pro' });
    });

    it('lets an environment override its project, and removing the override records the project\'s policy again', async () => {
      const override = { subjects: [{ subject: '/actor/id', paths: ['/source_ip'] }] };
      const put = await (await admin('PUT', environmentPolicy(), override)).json();
      expect(put).toMatchObject({ environment_id: other.environmentId, policy: override, source: 'environment' });
      expect(put.events).toHaveLength(1);
      // The project's change no longer reaches this environment.
      expect((await (await admin('PUT', projectPolicy(), custom)).json()).events).toEqual([]);

      const removed = await (await admin('DELETE', environmentPolicy())).json();
      expect(removed).toMatchObject({ policy: custom, source: 'project', changed_at: null });
      const recorded = await get(`/v1/events/${removed.events[0].id}`, other);
      expect(recorded.event.metadata.source).toBe('project');
      expect((await admin('DELETE', environmentPolicy())).status).toBe(404);
    });
  });
});
