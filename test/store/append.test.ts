import { describe, expect, it } from 'vitest';
import { appendItem, appendToChain, type AppendOutcome, type Head } from '../../src/store/append.js';
import { verifyChain } from '../../src/store/chain-verify.js';
import { getChainHead } from '../../src/store/events.js';
import { createTenant, useTestApp } from '../helpers/app.js';

function receipts(outcome: AppendOutcome | undefined) {
  if (!outcome?.ok) throw new Error(`not appended: ${JSON.stringify(outcome)}`);
  return outcome.receipts;
}

describe('appendToChain with the head it expects', () => {
  const ctx = useTestApp();

  async function chain() {
    const tenant = await createTenant(ctx.t, `append-${Math.random()}`);
    return { project: tenant.projectId, environment: tenant.environmentId };
  }

  const append = (ref: { project: string; environment: string }, actions: string[], expected?: Head, key?: string) =>
    appendToChain(ctx.db.pools.app, ref, [actions.map((action) => appendItem({ action }, key))], Date.now(), expected);

  it('writes on top of the expected head, and the head it returns is the stored one', async () => {
    const ref = await chain();
    const first = await append(ref, ['a', 'b']);
    const second = await append(ref, ['c'], first.head);
    expect(receipts(second.outcomes[0]).map((r) => r.seq)).toEqual([3]);
    const stored = (await getChainHead(ctx.db.pools.app, ref.environment))!;
    expect({ seq: second.head.seq, hash: second.head.hash.toString('hex') }).toEqual({ seq: stored.seq, hash: stored.hash });
    expect((await verifyChain(ctx.db.pools.app, ref)).ok).toBe(true);
  });

  it('writes nothing on a head that moved, and appends after the real head instead', async () => {
    const ref = await chain();
    const first = await append(ref, ['a']);
    await append(ref, ['b'], first.head); // another process's append, as far as `first.head` knows
    const late = await append(ref, ['c', 'd'], first.head);
    expect(receipts(late.outcomes[0]).map((r) => r.seq)).toEqual([3, 4]);
    expect(late.head.seq).toBe(4);
    expect(await verifyChain(ctx.db.pools.app, ref)).toMatchObject({ ok: true, checked: 4 });
  });

  it('answers a repeated idempotency key with the original receipt, whatever head it expects', async () => {
    const ref = await chain();
    const original = await append(ref, ['keyed'], undefined, 'key-1');
    const repeat = await append(ref, ['keyed'], original.head, 'key-1');
    expect(receipts(repeat.outcomes[0])).toEqual(receipts(original.outcomes[0]));
    expect(repeat.head.seq).toBe(1);
    const conflict = await append(ref, ['other'], original.head, 'key-1');
    expect(conflict.outcomes[0]).toEqual({ ok: false, conflict: { index: 0, key: 'key-1' } });
    expect((await getChainHead(ctx.db.pools.app, ref.environment))!.seq).toBe(1);
  });
});
