import { beforeAll, describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/ledger/jcs.js';
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
    ['a number beyond a double', '{"action":"sensor.reading","metadata":{"value":1E400}}', 'application/json', 400, /^metadata\.value: number out of range/],
    ['a negative number beyond a double in a batch', '{"events":[{"action":"a"},{"action":"b","metadata":{"v":[0,-1e400]}}]}', 'application/json', 400, /^events\.1\.metadata\.v\.1: number out of range/],
    ['a number that is not zero but below a double', '{"action":"sensor.reading","metadata":{"value":1e-400}}', 'application/json', 400, /^metadata\.value: number too small/],
    ['a duplicate member', '{"action":"a","action":"b"}', 'application/json', 400, /^action: member name given twice/],
    ['a duplicate member deep in metadata', '{"action":"a","metadata":{"k":[{"x":1},{"x":1,"y":2,"x":1}]}}', 'application/json', 400, /^metadata\.k\.1\.x: member name given twice/],
    ['a duplicate member spelt with an escape', '{"action":"a","fields":{"__proto__":"1","\\u005f_proto__":"2"}}', 'application/json', 400, /^fields\.__proto__: member name given twice/],
    ['a duplicate events member', '{"events":[{"action":"a"}],"events":[{"action":"b"}]}', 'application/json', 400, /^events: member name given twice/],
    ['__proto__ beside the event fields', '{"action":"a","__proto__":{"x":1}}', 'application/json', 400, /__proto__: unknown field/],
    ['a charset other than UTF-8', '{"action": "a"}', 'application/json; charset=iso-8859-1', 415, /charset iso-8859-1/],
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
    if (status === 415) expect(error.details).toEqual([{ field: 'Content-Type', message: expect.any(String) }]);
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

  // Bytes that are not UTF-8, each inside a string: FF FE C3 (no lead byte, then a lead byte
  // cut short), an overlong "/" (C0 AF) and an encoded surrogate (ED A0 80).
  it.each([
    ['ff fe c3', [0xff, 0xfe, 0xc3]],
    ['an overlong form', [0xc0, 0xaf]],
    ['an encoded surrogate', [0xed, 0xa0, 0x80]],
  ])('a body that is not UTF-8 (%s) is a 400, and nothing is stored', async (_, bytes) => {
    const before = await (await ctx.t.request('GET', '/v1/chain', { token: tenant.token })).json();
    const body = Buffer.concat([Buffer.from('{"action":"a","description":"x'), Buffer.from(bytes), Buffer.from('y"}')]);
    const res = await ctx.t.request('POST', '/v1/events', { token: tenant.token, body, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ code: 'invalid_json', message: 'the body is not valid UTF-8' });
    expect(await (await ctx.t.request('GET', '/v1/chain', { token: tenant.token })).json()).toEqual(before);
  });

  it('a UTF-8 charset is taken, in any case and quoted', async () => {
    for (const type of ['application/json; charset=UTF-8', 'application/json;charset="utf-8"']) {
      const res = await ctx.t.request('POST', '/v1/events', { token: tenant.token, body: '{"action":"é"}', headers: { 'content-type': type } });
      expect(res.status).toBe(201);
    }
  });

  it('members named __proto__, constructor and prototype are stored exactly as sent, at any depth', async () => {
    const text =
      '{"action":"user.update","fields":{"__proto__":"value-a","k":"value-b","constructor":"c"},' +
      '"actor":{"id":"u","fields":{"__proto__":"p","prototype":"q"}},"target":{"id":"t","fields":{"constructor":"r"}},' +
      '"metadata":{"__proto__":{"note":"x","__proto__":{"constructor":{"prototype":1}}},"m":"y","prototype":[{"__proto__":null}]}}';
    const res = await ctx.t.request('POST', '/v1/events', { token: tenant.token, body: text, headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(201);
    const [{ id }] = (await res.json()).events;
    const row = await (await ctx.t.request('GET', `/v1/events/${id}?verify=true`, { token: tenant.token })).json();
    expect(row.verification.ok).toBe(true);
    // JSON.parse keeps __proto__ members as own properties: the event as sent, every member there.
    expect(canonicalize(JSON.parse(row.canonical).event)).toBe(canonicalize(JSON.parse(text)));
    expect(row.canonical).toContain('"fields":{"__proto__":"value-a","constructor":"c","k":"value-b"}');
    expect(row.canonical).toContain('"metadata":{"__proto__":{"__proto__":{"constructor":{"prototype":1}},"note":"x"},"m":"y"');
  });

  it('an idempotency key tells events apart by their __proto__ members too', async () => {
    const send = (proto: string) =>
      ctx.t.request('POST', '/v1/events', {
        token: tenant.token,
        body: `{"action":"a","metadata":{"__proto__":"${proto}"}}`,
        headers: { 'content-type': 'application/json', 'idempotency-key': 'proto-key' },
      });
    expect((await send('one')).status).toBe(201);
    expect((await send('two')).status).toBe(409);
    expect((await send('one')).status).toBe(200);
  });
});
