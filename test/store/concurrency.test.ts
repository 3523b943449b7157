import { describe, expect, it } from 'vitest';
import { merkleRoot } from '../../src/ledger/tree.js';
import { appendItem, type Receipt } from '../../src/store/append.js';
import { verifyChain } from '../../src/store/chain-verify.js';
import { createPools } from '../../src/store/database.js';
import { getChainHead } from '../../src/store/events.js';
import { GroupCommit } from '../../src/store/group-commit.js';
import { createTenant, useTestApp } from '../helpers/app.js';
import { readChain } from '../helpers/database.js';

const WRITERS = 16;
const EVENTS_PER_WRITER = 500;

describe('concurrent appends', () => {
  const ctx = useTestApp();

  /** Writer w sends its events one request at a time; returns every acknowledged receipt. */
  async function writer(token: string, w: number): Promise<Receipt[]> {
    const receipts: Receipt[] = [];
    for (let i = 0; i < EVENTS_PER_WRITER; i++) {
      const res = await ctx.t.request('POST', '/v1/events', { token, body: { action: 'load.write', actor: { id: `w${w}` }, fields: { i: String(i) } } });
      expect(res.status).toBe(201);
      receipts.push(...(await res.json()).events);
    }
    return receipts;
  }

  /** Gapless seqs, valid links, the head's root equal to a naive recomputation, every receipt present. */
  async function expectIntact(tenant: { projectId: string; environmentId: string }, receipts: Receipt[]) {
    const head = (await getChainHead(ctx.db.pools.app, tenant.environmentId))!;
    expect(head.seq).toBe(receipts.length);
    const rows = await readChain(ctx.db.pools.app, tenant.environmentId, head.seq);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: head.seq }, (_, i) => i + 1));
    expect(head.root).toBe(merkleRoot(rows.map((r) => r.hash)).toString('hex'));
    const verification = await verifyChain(ctx.db.pools.app, { project: tenant.projectId, environment: tenant.environmentId });
    expect(verification).toMatchObject({ ok: true, checked: head.seq, failures: [] });
    const bySeq = new Map(rows.map((r) => [r.seq, r]));
    for (const receipt of receipts) {
      const row = bySeq.get(receipt.seq)!;
      expect({ id: row.id, hash: row.hash.toString('hex') }).toEqual({ id: receipt.id, hash: receipt.hash });
    }
    expect(new Set(receipts.map((r) => r.seq)).size).toBe(receipts.length);
  }

  it(`${WRITERS} writers x ${EVENTS_PER_WRITER} events on one chain`, async () => {
    const tenant = await createTenant(ctx.t, 'one-chain');
    const receipts = (await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(tenant.token, w)))).flat();
    await expectIntact(tenant, receipts);
  });

  it(`${WRITERS} writers x ${EVENTS_PER_WRITER} events spread over 8 chains`, async () => {
    const chains = await Promise.all(Array.from({ length: 8 }, (_, i) => createTenant(ctx.t, `chain-${i}`)));
    const perWriter = await Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(chains[w % 8]!.token, w)));
    for (const [i, chain] of chains.entries()) {
      await expectIntact(chain, perWriter.filter((_, w) => w % 8 === i).flat());
    }
  });

  it('several processes appending to one chain stay correct (the head row lock serializes them)', async () => {
    const tenant = await createTenant(ctx.t, 'multi-process');
    const chain = { project: tenant.projectId, environment: tenant.environmentId };
    const processes = Array.from({ length: 3 }, () => {
      const pools = createPools(ctx.db.ownerUrl, undefined, 4);
      return { pools, groupCommit: new GroupCommit(pools.app, { maxEvents: 1000, maxWaitMs: 0, now: Date.now }) };
    });
    try {
      const outcomes = await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          processes[i % 3]!.groupCommit.append(chain, [appendItem({ action: 'multi', fields: { i: String(i) } }), appendItem({ action: 'multi.2' })]),
        ),
      );
      const receipts = outcomes.flatMap((o) => (o.ok ? o.receipts : []));
      expect(receipts).toHaveLength(600);
      await expectIntact(tenant, receipts);
    } finally {
      await Promise.all(processes.map((p) => p.pools.end()));
    }
  });
});
