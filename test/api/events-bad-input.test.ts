import { beforeAll, describe, expect, it } from 'vitest';
import { createTenant, useTestApp } from '../helpers/app.js';

describe('bad input to POST /v1/events', () => {
  const ctx = useTestApp({
      AUDITLEDGER_MAX_BODY_BYTES: String(256 * 1024),
      AUDITLEDGER_MAX_BATCH_EVENTS: '50',
      AUDITLEDGER_MAX_STRING_LENGTH: '100',
      AUDITLEDGER_MAX_FIELDS: '3',
      AUDITLEDGER_MAX_METADATA_DEPTH: '4',
      AUDITLEDGER_MAX_METADATA_BYTES: '200',
    });
  let tenant: Awaited<ReturnType<typeof createTenant>>;
  beforeAll(async () => {
    tenant = await createTenant(ctx.t, 'bad-input');
    await ctx.t.request('POST', '/v1/events', { token: tenant.token, body: { action: 'first' } });
  });

  const nested = (depth: number): unknown => (depth === 0 ? 'leaf' : { deeper: nested(depth - 1) });

  // [case, body (string = raw text), content type, status, what the message must name]
  const cases: [string, unknown, string, number, RegExp][] = [
    ['malformed JSON', '{"action": "x",', 'application/json', 400, /not valid JSON/],
    ['missing action', { crud: 'c' }, 'application/json', 400, /^action: /],
    ['empty action', { action: '' }, 'application/json', 400, /action: must not be empty/],
    ['action of the wrong type', { action: 42 }, 'application/json', 400, /^action: /],
    ['is_failure of the wrong type', { action: 'a', is_failure: 'yes' }, 'application/json', 400, /^is_failure: /],
    ['unknown crud', { action: 'a', crud: 'x' }, 'application/json', 400, /crud: must be one of/],
    ['crud naming an Object property', { action: 'a', crud: 'toString' }, 'application/json', 400, /crud: must be one of/],
    ['actor without id', { action: 'a', actor: { name: 'Ana' } }, 'application/json', 400, /^actor\.id: /],
    ['target with an empty id', { action: 'a', target: { id: '' } }, 'application/json', 400, /target\.id: must not be empty/],
    ['group without id', { action: 'a', group: {} }, 'application/json', 400, /^group\.id: /],
    ['overlong string', { action: 'x'.repeat(101) }, 'application/json', 400, /action: must be at most 100 characters/],
    ['NUL in a string', { action: 'a\u0000b' }, 'application/json', 400, /action: must not contain NUL/],
    ['NUL deep in metadata', { action: 'a', metadata: { k: ['ok', 'b\u0000'] } }, 'application/json', 400, /metadata\.k\.1: must not contain NUL/],
    ['lone surrogate', '{"action": "a\\ud800"}', 'application/json', 400, /action: must not contain a lone UTF-16 surrogate/],
    ['lone surrogate in a metadata key', '{"action": "a", "metadata": {"\\udc00": 1}}', 'application/json', 400, /metadata\.\S+: key must not contain a lone/],
    ['non-string field value', { action: 'a', fields: { n: 1 } }, 'application/json', 400, /^fields\.n: /],
    ['too many fields', { action: 'a', actor: { id: 'u', fields: { a: '1', b: '2', c: '3', d: '4' } } }, 'application/json', 400, /actor\.fields: must have at most 3 entries/],
    ['metadata not an object', { action: 'a', metadata: [1, 2] }, 'application/json', 400, /^metadata: /],
    ['metadata nested too deep', { action: 'a', metadata: nested(6) }, 'application/json', 400, /metadata\.deeper\.deeper\.deeper\.deeper: must not nest deeper than 4 levels/],
    ['metadata too big', { action: 'a', metadata: { blob: 'x'.repeat(99), more: 'y'.repeat(99), again: 'z'.repeat(50) } }, 'application/json', 400, /metadata: must be at most 200 bytes/],
    ['bad source_ip', { action: 'a', source_ip: '999.1.1.1' }, 'application/json', 400, /source_ip: must be an IPv4 or IPv6 address/],
    ['bad created', { action: 'a', created: 'last tuesday' }, 'application/json', 400, /created: must be an ISO 8601 date-time/],
    ['unknown field', { action: 'a', colour: 'red' }, 'application/json', 400, /colour: unknown field/],
    ['not an object', [{ action: 'a' }], 'application/json', 400, /^body: /],
    ['empty batch', { events: [] }, 'application/json', 400, /events: must hold at least one event/],
    ['too many events', { events: Array.from({ length: 51 }, () => ({ action: 'a' })) }, 'application/json', 400, /events: must hold at most 50 events/],
    ['one bad event in a batch', { events: [{ action: 'ok' }, { action: 'ok' }, { actor: { id: 'x' } }] }, 'application/json', 400, /^events\.2\.action: /],
    ['unknown field beside events', { events: [{ action: 'a' }], extra: 1 }, 'application/json', 400, /extra: unknown field/],
    ['deep nesting outside metadata', `{"action": "a", "actor": ${'['.repeat(5000)}${']'.repeat(5000)}}`, 'application/json', 400, /^actor: /],
    ['pathological nesting', '['.repeat(200_000) + ']'.repeat(200_000), 'application/json', 413, /exceeds/],
    ['a huge body', { action: 'a', description: 'x'.repeat(300 * 1024) }, 'application/json', 413, /exceeds 262144 bytes/],
    ['wrong content type', 'action=a', 'application/x-www-form-urlencoded', 415, /must be JSON/],
    ['no content type', '{"action": "a"}', '', 415, /must be JSON/],
  ];

  it.each(cases)('%s: %i naming the problem, and the chain head unchanged', async (_, body, type, status, message) => {
    const before = await (await ctx.t.request('GET', '/v1/chain', { token: tenant.token })).json();
    const res = await ctx.t.request('POST', '/v1/events', {
      token: tenant.token,
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: { 'content-type': type },
    });
    expect(res.status).toBe(status);
    const { error } = await res.json();
    expect(error.message).toMatch(message);
    if (status === 400 && error.code === 'invalid_request') expect(error.details.length).toBeGreaterThan(0);
    expect(await (await ctx.t.request('GET', '/v1/chain', { token: tenant.token })).json()).toEqual(before);
  });

  it('a bad Idempotency-Key header is named', async () => {
    const res = await ctx.t.request('POST', '/v1/events', {
      token: tenant.token,
      body: { action: 'a' },
      headers: { 'idempotency-key': 'k'.repeat(256) },
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error.message).toMatch(/^Idempotency-Key: /);
  });
});
