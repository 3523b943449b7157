import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/ledger/jcs.js';
import { createTenant, useTestApp } from '../helpers/app.js';
import { eventsBody, readIJson } from '../helpers/i-json.js';

describe('POST /v1/events stores the sent event, or answers 4xx naming a path', () => {
  const ctx = useTestApp();
  let token: string;
  beforeAll(async () => {
    ({ token } = await createTenant(ctx.t, 'input-property'));
  });

  it('for generated bodies, the stored canonical is RFC 8785 of an independent parse that keeps every member', async () => {
    const seen = { stored: 0, refused: 0, faults: 0 };
    await fc.assert(
      fc.asyncProperty(eventsBody, async (text) => {
        const expected = readIJson(text);
        const res = await ctx.t.request('POST', '/v1/events', { token, body: Buffer.from(text, 'utf8'), headers: { 'content-type': 'application/json' } });
        const answer = await res.json();
        if (expected.fault) seen.faults++;
        if (res.status !== 201) {
          seen.refused++;
          expect(res.status, text).toBe(400);
          expect(answer.error.details?.[0]?.field, text).toEqual(expect.any(String));
          return;
        }
        expect(expected.fault, text).toBeUndefined();
        seen.stored++;
        const value = expected.value as { events?: unknown[] };
        const events = value.events ?? [value];
        expect(answer.events).toHaveLength(events.length);
        for (const [i, { id }] of (answer.events as { id: string }[]).entries()) {
          const row = await (await ctx.t.request('GET', `/v1/events/${id}`, { token })).json();
          expect(row.canonical, text).toContain(`"event":${canonicalize(events[i])},"id":"${id}"`);
        }
      }),
      { numRuns: 200 },
    );
    // The generator reaches both outcomes, and bodies that are not I-JSON.
    expect(seen.stored).toBeGreaterThan(5);
    expect(seen.faults).toBeGreaterThan(5);
  });
});
