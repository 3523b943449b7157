// What the client refuses before anything reaches a ledger: options that are wrong, events JSON
// cannot hold as they are, and calls library mode would refuse too. No ledger is needed: nothing
// here may send a request, which the fetch below counts.
import { describe, expect, it } from 'vitest';
import { createAuditLogClient, type AuditLogClientOptions, type NewEvent } from '../../src/client/client.js';
import { createAuditLogClient as createEitherClient } from '../../src/index.js';

const TOKEN = 'alt_input-test-token';

function counted(options: Partial<AuditLogClientOptions> = {}) {
  const calls: string[] = [];
  const fetch = (async (input: string | URL | Request) => {
    calls.push(String(input));
    throw new Error('this test sends nothing');
  }) as typeof globalThis.fetch;
  const client = createAuditLogClient({ url: 'http://127.0.0.1:9', token: TOKEN, fetch, flushIntervalMs: 0, ...options });
  return { client, calls };
}

describe('events are sent as given, or refused at the call', () => {
  class Point {
    constructor(readonly x: number) {}
  }
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const refused: [string, unknown, RegExp][] = [
    ['NaN', { n: NaN }, /^event\.metadata\.n: NaN is not a JSON number$/],
    ['Infinity', { deep: { list: [1, -Infinity] } }, /^event\.metadata\.deep\.list\[1\]: -Infinity is not a JSON number$/],
    ['undefined in an array', { list: [1, undefined] }, /^event\.metadata\.list\[1\]: undefined is not JSON/],
    ['a hole in an array', { list: [1, , 3] }, /^event\.metadata\.list\[1\]: undefined is not JSON/],
    ['a function', { f: () => 1 }, /^event\.metadata\.f: a function is not JSON$/],
    ['a symbol', { s: Symbol('s') }, /^event\.metadata\.s: a symbol is not JSON$/],
    ['a symbol key', { [Symbol('k')]: 1 }, /^event\.metadata: a symbol key is not JSON$/],
    ['a bigint', { b: 10n }, /^event\.metadata\.b: a bigint is not a JSON number/],
    ['a Map', { m: new Map([['a', 1]]) }, /^event\.metadata\.m: a Map is not JSON/],
    ['a Set', { s: new Set([1]) }, /^event\.metadata\.s: a Set is not JSON/],
    ['a class instance', { p: new Point(1) }, /^event\.metadata\.p: a Point is not JSON/],
    ['a toJSON method', { t: { toJSON: () => 'x' } }, /^event\.metadata\.t\.toJSON: a function is not JSON$/],
    ['a class with toJSON', { u: new URL('https://example.com') }, /^event\.metadata\.u: a URL is not JSON/],
    ['a cycle', cyclic, /^event\.metadata\.self: a cycle/],
    ['an odd key', { 'a b': [NaN] }, /^event\.metadata\["a b"\]\[0\]: NaN is not a JSON number$/],
    ['an invalid Date', { d: new Date('nope') }, /^event\.metadata\.d: an invalid Date/],
  ];

  it.each(refused)('%s: createEvent rejects with a TypeError naming the path, nothing queued', async (_, metadata, message) => {
    const { client, calls } = counted();
    const result = client.createEvent({ action: 'json.test', metadata: metadata as Record<string, unknown> });
    await expect(result).rejects.toThrow(TypeError);
    await expect(result).rejects.toThrow(message);
    await client.flush(); // nothing queued: nothing to send
    expect(calls).toEqual([]);
    await client.close();
  });

  it('an event that is not an object is refused as such', async () => {
    const { client, calls } = counted();
    for (const event of [null, 'user.login', [{ action: 'x' }], 42, new Map()]) {
      await expect(client.createEvent(event as unknown as NewEvent)).rejects.toThrow(/^event: must be an object$/);
    }
    await expect(client.createEvent({ action: 'x', created: new Date(Number.NaN) })).rejects.toThrow(/^event\.created: an invalid Date/);
    await client.flush();
    expect(calls).toEqual([]);
    await client.close();
  });

  it('createEvents names the index and queues none of them', async () => {
    const { client, calls } = counted();
    const events = [{ action: 'a' }, { action: 'b' }, { action: 'c' }, { action: 'd', metadata: { n: NaN } }];
    await expect(client.createEvents(events)).rejects.toThrow(/^events\[3\]\.metadata\.n: NaN is not a JSON number$/);
    await expect(client.createEvents({ events: [{ action: 'a' }, null as unknown as NewEvent] })).rejects.toThrow(/^events\[1\]: must be an object$/);
    await client.flush();
    expect(calls).toEqual([]);
    await client.close();
  });

  it('sends a Date as its ISO string, leaves out undefined members, and keeps everything else as given', async () => {
    const bodies: unknown[] = [];
    const fetch = (async (_input: string | URL | Request, init?: RequestInit) => {
      const { events } = JSON.parse(String(init!.body)) as { events: unknown[] };
      bodies.push(...events);
      const receipts = events.map((_, i) => ({ id: `id-${i}`, seq: i + 1, hash: '00', received_at: '2025-01-01T00:00:00.000Z' }));
      return Response.json({ events: receipts, tree_size: events.length, root: '00' });
    }) as typeof globalThis.fetch;
    const client = createAuditLogClient({ url: 'http://127.0.0.1:9', token: TOKEN, fetch, flushIntervalMs: 0 });
    const created = new Date('2025-03-04T05:06:07.089Z');
    const metadata = { a: undefined, b: null, c: [0, -0, 1.5, 'x', true, { d: [] }], e: Object.assign(Object.create(null) as object, { f: 1 }), when: created };
    await client.createEvent({ action: 'json.ok', created, idempotency_key: 'k-1', metadata });
    expect(bodies).toEqual([
      { action: 'json.ok', created: '2025-03-04T05:06:07.089Z', idempotency_key: 'k-1', metadata: { b: null, c: [0, 0, 1.5, 'x', true, { d: [] }], e: { f: 1 }, when: '2025-03-04T05:06:07.089Z' } },
    ]);
    await client.close();
  });
});

describe('the HTTP client checks its options at construction, naming the option', () => {
  const base = { url: 'https://audit.example.com', token: TOKEN };
  const wrong: [string, unknown, ErrorConstructor, RegExp][] = [
    ['an unknown option', { ...base, batchsize: 10 }, TypeError, /^batchsize: unknown option; the options are url, token, /],
    ['an internal option', { ...base, authorize: async () => 'x' }, TypeError, /^authorize: unknown option/],
    ['an unknown retry option', { ...base, retry: { attempt: 3 } }, TypeError, /^retry\.attempt: unknown option; the options are attempts, baseDelayMs, maxDelayMs$/],
    ['no token', { url: base.url }, TypeError, /^token: required, a non-empty string/],
    ['an empty token', { ...base, token: '' }, TypeError, /^token: required, a non-empty string/],
    ['a token with a newline', { ...base, token: `${TOKEN}\n` }, TypeError, /^token: must be visible ASCII/],
    ['no url', { token: TOKEN }, TypeError, /^url: must be an http\(s\) URL/],
    ['not a url', { ...base, url: 'not a url' }, TypeError, /^url: must be an http\(s\) URL/],
    ['another scheme', { ...base, url: 'ftp://audit.example.com' }, TypeError, /^url: must be an http\(s\) URL/],
    ['credentials in the url', { ...base, url: 'https://me:s3cret-pass@audit.example.com' }, TypeError, /^url: must not include a user or password; the token authenticates$/],
    ['a query in the url', { ...base, url: 'https://audit.example.com/?x=1' }, TypeError, /^url: must not have a query/],
    ['batchSize as a string', { ...base, batchSize: '10' }, TypeError, /^batchSize: must be an integer from 1 to 1000, got a string$/],
    ['batchSize too large', { ...base, batchSize: 5000 }, RangeError, /^batchSize: must be an integer from 1 to 1000, got 5000$/],
    ['maxBatchBytes zero', { ...base, maxBatchBytes: 0 }, RangeError, /^maxBatchBytes: must be an integer from 1 to/],
    ['retry.attempts zero', { ...base, retry: { attempts: 0 } }, RangeError, /^retry\.attempts: must be an integer from 1 to/],
    ['retry.maxDelayMs negative', { ...base, retry: { maxDelayMs: -1 } }, RangeError, /^retry\.maxDelayMs: must be a number of milliseconds/],
    ['timeoutMs as a string', { ...base, timeoutMs: '5s' }, TypeError, /^timeoutMs: must be an integer/],
    ['validateOnQuery as a string', { ...base, validateOnQuery: 'yes' }, TypeError, /^validateOnQuery: must be a boolean, got a string$/],
    ['fetch not a function', { ...base, fetch: 'fetch' }, TypeError, /^fetch: must be a function/],
    ['an empty spoolDir', { ...base, spoolDir: '' }, TypeError, /^spoolDir: must be a non-empty string/],
    ['a vkey that is not one', { ...base, vkey: ['nope'] }, TypeError, /^vkey\[0\]: /],
  ];

  it.each(wrong)('%s', (_, options, type, message) => {
    const make = () => createAuditLogClient(options as AuditLogClientOptions);
    expect(make).toThrow(type);
    expect(make).toThrow(message);
    // Neither the token nor the URL (with its password) is repeated.
    try {
      make();
    } catch (error) {
      expect((error as Error).message).not.toContain('s3cret');
      expect((error as Error).message).not.toContain(TOKEN);
    }
  });

  it("the main package's createAuditLogClient gives the same checks in HTTP mode", () => {
    expect(() => createEitherClient({ url: 'https://audit.example.com', token: '' })).toThrow(/^token: required/);
    expect(() => createEitherClient({ token: TOKEN, url: 'not a url' })).toThrow(/^url: must be an http\(s\) URL/);
  });

  it('maxBulkEvents defaults to 1000, as in library mode', async () => {
    const { client, calls } = counted({ flushIntervalMs: 60_000 });
    const events = (n: number) => Array.from({ length: n }, (_, i) => ({ action: 'bulk.test', external_id: `e-${i}` }));
    await expect(client.createEvents(events(1001))).rejects.toThrow(/^events: 1001 events in one createEvents call, more than maxBulkEvents \(1000\)/);
    expect(calls).toEqual([]);
    await client.close().catch(() => undefined);
  });
});

describe('an error marked retryable: false', () => {
  it('rejects the events at once with that error, and no request is retried', async () => {
    const wrongPassword = Object.assign(new Error('password authentication failed'), { retryable: false });
    let calls = 0;
    const fetch = (async () => {
      calls++;
      throw wrongPassword;
    }) as typeof globalThis.fetch;
    const client = createAuditLogClient({ url: 'http://127.0.0.1:9', token: TOKEN, fetch, flushIntervalMs: 0, retry: { attempts: 5, baseDelayMs: 1, maxDelayMs: 5 } });
    await expect(client.createEvents([{ action: 'a' }, { action: 'b' }])).rejects.toBe(wrongPassword);
    expect(calls).toBe(1);
    await expect(client.flush()).resolves.toBeUndefined();
    await expect(client.verify()).rejects.toBe(wrongPassword);
    expect(calls).toBe(2);
    await client.close();
  });
});
