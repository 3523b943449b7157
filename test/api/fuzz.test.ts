import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createTenant, useTestApp } from '../helpers/app.js';
import { eventsBody, jsonText } from '../helpers/i-json.js';

interface Operation {
  method: string;
  path: string;
  admin: boolean;
  query: string[];
  body: boolean;
}

/** Strings that trip parsers of ids, numbers, dates, booleans, cursors and search terms. */
const garbage = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom('', '0', '-1', '1e400', '9007199254740993', '99999999999999999999', 'NaN', 'true', 'null', '[]', '{}', '\u0000', '%', '%00', '..', 'ZZZ=', 'YXNjLjE', 'c2VxOjE', '2026-02-30', '0000-01-01T00:00:00Z', 'action:"x" crud:q', '01a22abc-0000-7000-8000-000000000000'),
);

/** Bodies: events and other JSON with odd names, duplicates and extreme numbers, garbage text, bytes that are not UTF-8. */
const body = fc.oneof({ arbitrary: eventsBody, weight: 3 }, jsonText, garbage, fc.uint8Array({ maxLength: 24 }), fc.constantFrom('{"query":"{ search(first: 1) { totalCount } }","variables":{"a":1E400}}', '{"name":"x","name":"y"}'));
const contentType = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1', 'text/plain', undefined);

describe('no input gives a 5xx', () => {
  const ctx = useTestApp();
  let tenant: Awaited<ReturnType<typeof createTenant>>;
  let operations: Operation[];
  beforeAll(async () => {
    tenant = await createTenant(ctx.t, 'fuzz', ['events:write', 'events:read', 'verify']);
    await ctx.t.request('POST', '/v1/events', { token: tenant.token, body: { action: 'fuzz.seed' } });
    const doc = await (await ctx.t.request('GET', '/openapi.json')).json();
    operations = Object.entries(doc.paths as Record<string, Record<string, { description?: string; parameters: { in: string; name: string }[]; requestBody?: unknown }>>).flatMap(
      ([path, ops]) =>
        Object.entries(ops).map(([method, op]) => ({
          method: method.toUpperCase(),
          path,
          admin: op.description?.includes('the admin token') ?? false,
          query: op.parameters.filter((p) => p.in === 'query').map((p) => p.name),
          body: op.requestBody !== undefined,
        })),
    );
  });

  it('on every route of the OpenAPI document, with garbage ids, query parameters and bodies and a token of the right kind', async () => {
    // Real ids, so requests get past lookups, but never for DELETE: the tenant must stay.
    expect(operations.length).toBeGreaterThan(30);
    const real = () => [tenant.projectId, tenant.environmentId, tenant.tokenId];
    const request = fc.record({
      ids: fc.array(fc.oneof(garbage, fc.nat(2)), { minLength: 3, maxLength: 3 }),
      query: fc.array(fc.tuple(fc.oneof(fc.nat(20), garbage), garbage), { maxLength: 4 }),
      body,
      contentType,
    });
    for (const op of operations) {
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          let slot = 0;
          const path = op.path.replace(/\{\w+\}/g, () => {
            const id = r.ids[slot++]!;
            return typeof id === 'number' ? (op.method === 'DELETE' ? 'not-an-id' : real()[id]!) : encodeURIComponent(id);
          });
          // Mostly the operation's own parameters, sometimes unknown ones.
          const named = r.query.map(([name, value]): [string, string] => [typeof name === 'number' ? (op.query[name % Math.max(op.query.length, 1)] ?? 'x') : name, value]);
          const params = new URLSearchParams(named);
          const url = `${path}${params.size ? `?${params}` : ''}`;
          const res = await ctx.t.request(op.method, url, {
            token: op.admin ? ctx.t.adminToken : tenant.token,
            ...(op.body ? { body: r.body, headers: { 'content-type': r.contentType } } : {}),
          });
          const text = await res.text(); // a streamed answer fails while it is read
          expect(res.status, `${op.method} ${url} ${String(r.body)}: ${text}`).toBeLessThan(500);
        }),
        { numRuns: op.body ? 150 : 15 },
      );
    }
  });
});
