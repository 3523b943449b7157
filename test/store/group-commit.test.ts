import { describe, expect, it, vi } from 'vitest';
import { DEFAULT_POLICY, subjectDigest } from '../../src/ledger/personal.js';
import { appendItem, type AppendItem, type AppendOutcome, type ChainRef } from '../../src/store/append.js';
import { verifyChain } from '../../src/store/chain-verify.js';
import { createPools } from '../../src/store/database.js';
import { getChainHead, queryEvents } from '../../src/store/events.js';
import { GroupCommit } from '../../src/store/group-commit.js';
import { PolicyChangedError } from '../../src/store/errors.js';
import { chainPersonalFailures, changePolicy, showEvents } from '../../src/store/personal.js';
import { createTenant, useTestApp } from '../helpers/app.js';

type Outcome = AppendOutcome | Error;

describe('group commit across chains', () => {
  const ctx = useTestApp();

  async function chains(n: number, name: string): Promise<ChainRef[]> {
    const tenants = await Promise.all(Array.from({ length: n }, (_, i) => createTenant(ctx.t, `${name}-${i}`)));
    return tenants.map((t) => ({ project: t.projectId, environment: t.environmentId }));
  }

  /** A GroupCommit on `pool` (the test's app pool by default) that records the size of each commit. */
  function recorded(pool = ctx.db.pools.app, acrossChains = true) {
    const commits: { events: number; requests: number }[] = [];
    const groupCommit = new GroupCommit(pool, { maxEvents: 1000, maxWaitMs: 0, acrossChains, now: Date.now, onCommit: (events, requests) => commits.push({ events, requests }) });
    return { groupCommit, commits };
  }

  /** One event on each chain, one commit each: the GroupCommit then remembers their heads. */
  async function warm(groupCommit: GroupCommit, refs: ChainRef[]) {
    for (const ref of refs) expect(await groupCommit.append(ref, [appendItem({ action: 'warm' })])).toMatchObject({ ok: true });
  }

  /**
   * Appends `busy` alone first: with no wait, it takes the commit at once, and the requests queued
   * in the same tick after it share the next one.
   */
  async function together(groupCommit: GroupCommit, busy: ChainRef, requests: [ChainRef, AppendItem[]][]): Promise<Outcome[]> {
    await groupCommit.flushed();
    const first = groupCommit.append(busy, [appendItem({ action: 'busy' })]);
    const rest = requests.map(([chain, items]) => groupCommit.append(chain, items).then((o): Outcome => o, (e: Error) => e));
    await first;
    return Promise.all(rest);
  }

  const seqs = (outcome: Outcome | undefined) => (outcome && 'ok' in outcome && outcome.ok ? outcome.receipts.map((r) => r.seq) : outcome);

  it('with acrossChains false (Citus), commits each chain in a statement of its own, all at once', async () => {
    const [busy, a, b] = await chains(3, 'separate');
    const { groupCommit, commits } = recorded(ctx.db.pools.app, false);
    await warm(groupCommit, [a!, b!]);
    commits.length = 0;
    const outcomes = await together(groupCommit, busy!, [
      [a!, [appendItem({ action: 'a.1' })]],
      [b!, [appendItem({ action: 'b.1' }), appendItem({ action: 'b.2' })]],
      [a!, [appendItem({ action: 'a.2' })]],
    ]);
    expect(outcomes.map(seqs)).toEqual([[2], [2, 3], [3]]);
    // busy alone, then a's two requests and b's one in two statements at once (either may finish first).
    expect(commits[0]).toEqual({ events: 1, requests: 1 });
    expect(commits.slice(1).sort((x, y) => y.requests - x.requests)).toEqual([{ events: 2, requests: 2 }, { events: 2, requests: 1 }]);
  });

  it('commits the requests of several chains that arrive together in one commit, each on its own head', async () => {
    const [busy, a, b, c] = await chains(4, 'shared');
    const { groupCommit, commits } = recorded();
    await warm(groupCommit, [a!, b!, c!]);
    commits.length = 0;
    const outcomes = await together(groupCommit, busy!, [
      [a!, [appendItem({ action: 'a.1' })]],
      [b!, [appendItem({ action: 'b.1' }), appendItem({ action: 'b.2' })]],
      [a!, [appendItem({ action: 'a.2' })]],
      [c!, [appendItem({ action: 'c.1' }, 'key-c')]],
    ]);
    expect(outcomes.map(seqs)).toEqual([[2], [2, 3], [3], [2]]);
    // busy alone, then one commit for the four requests of three chains.
    expect(commits).toEqual([{ events: 1, requests: 1 }, { events: 5, requests: 4 }]);
    for (const [ref, seq] of [[a!, 3], [b!, 3], [c!, 2]] as const) {
      expect((await getChainHead(ctx.db.pools.app, ref.environment))!.seq).toBe(seq);
      expect(await verifyChain(ctx.db.pools.app, ref)).toMatchObject({ ok: true, checked: seq, failures: [] });
    }
    // The heads it remembered are the stored ones: the next shared commit appends after them.
    const again = await together(groupCommit, busy!, [a!, b!, c!].map((r): [ChainRef, AppendItem[]] => [r, [appendItem({ action: 'again' })]]));
    expect(again.map(seqs)).toEqual([[4], [4], [3]]);
    expect(commits.at(-1)).toEqual({ events: 3, requests: 3 });
  });

  it('takes the oldest requests first, up to maxEvents over all chains, each chain\'s in order', async () => {
    const [busy, a, b, c] = await chains(4, 'oldest');
    const commits: { events: number; requests: number }[] = [];
    const groupCommit = new GroupCommit(ctx.db.pools.app, { maxEvents: 4, maxWaitMs: 0, now: Date.now, onCommit: (events, requests) => commits.push({ events, requests }) });
    await warm(groupCommit, [a!, b!, c!]);
    commits.length = 0;
    const two = (action: string) => [appendItem({ action }), appendItem({ action })];
    const outcomes = await together(groupCommit, busy!, [
      [a!, two('a.1')],
      [b!, two('b.1')],
      [c!, [appendItem({ action: 'c.1' })]],
      [a!, [appendItem({ action: 'a.2' })]],
      [b!, [appendItem({ action: 'b.2' })]],
    ]);
    expect(outcomes.map(seqs)).toEqual([[2, 3], [2, 3], [2], [4], [4]]);
    expect(commits).toEqual([{ events: 1, requests: 1 }, { events: 4, requests: 2 }, { events: 3, requests: 3 }]);
  });

  it('stores each chain\'s personal values with its own events when chains share a commit', async () => {
    const refs = await chains(3, 'personal');
    const [busy, ...others] = refs;
    const { groupCommit, commits } = recorded();
    await warm(groupCommit, others as ChainRef[]);
    commits.length = 0;
    const key = Buffer.alloc(32, 3);
    const personal = (ref: ChainRef) => ({ policy: DEFAULT_POLICY, policySeq: 0, subjectDigest: (subject: string) => subjectDigest(key, ref.project, subject) });
    // The same seqs in both chains, with two subjects (two parts) in an event of each.
    const event = (n: number) => ({ action: 'personal', actor: { id: `u${n}`, name: `User ${n}` }, target: { id: `t${n}`, type: 'user', name: `Target ${n}` } });
    const outcomes = await together(groupCommit, busy!, others.map((ref, i): [ChainRef, AppendItem[]] => [ref!, [appendItem(event(i), undefined, personal(ref!)), appendItem(event(i + 10), undefined, personal(ref!))]]));
    expect(outcomes.map(seqs)).toEqual([[2, 3], [2, 3]]);
    expect(commits.at(-1)).toEqual({ events: 4, requests: 2 });
    for (const [i, ref] of others.entries()) {
      expect(await chainPersonalFailures(ctx.db.pools.app, ref!.environment)).toEqual([]);
      const shown = await showEvents(ctx.db.pools.app, ref!.environment, await queryEvents(ctx.db.pools.app, ref!.environment, { order: 'asc', limit: 10 }));
      expect(shown.slice(1).map((s) => s.event)).toMatchObject([event(i), event(i + 10)]);
      expect((await verifyChain(ctx.db.pools.app, ref!)).ok).toBe(true);
    }
  });

  it('writes the tiles each chain completes when chains share a commit', async () => {
    const refs = await chains(4, 'tiles');
    const [busy, ...others] = refs;
    const { groupCommit, commits } = recorded();
    await warm(groupCommit, others as ChainRef[]);
    const batch = (round: number) => Array.from({ length: 100 }, (_, i) => appendItem({ action: 'tile', fields: { round: String(round), i: String(i) } }));
    for (let round = 1; round <= 6; round++) {
      commits.length = 0;
      const outcomes = await together(groupCommit, busy!, others.map((ref): [ChainRef, AppendItem[]] => [ref!, batch(round)]));
      expect(outcomes.map((o) => (seqs(o) as number[]).at(-1))).toEqual(others.map(() => 1 + 100 * round));
      // Round 3 completes each chain's first tile, whose earlier leaves this process does not
      // carry: each chain is appended alone, reading them. Round 6 completes the second in the shared commit.
      if (round === 6) expect(commits.slice(1)).toEqual([{ events: 300, requests: 3 }]);
    }
    for (const ref of others) {
      const { rows } = await ctx.db.pools.app.query('SELECT level, tile_index FROM tiles WHERE environment_id = $1 ORDER BY tile_index', [ref!.environment]);
      expect(rows).toEqual([{ level: 0, tile_index: 0 }, { level: 0, tile_index: 1 }]);
      expect(await verifyChain(ctx.db.pools.app, ref!)).toMatchObject({ ok: true, checked: 601, failures: [] });
    }
  });

  it('an idempotency conflict in a commit shared with other chains is answered alone; the others commit together', async () => {
    const [busy, a, b, c] = await chains(4, 'conflict');
    const { groupCommit, commits } = recorded();
    await warm(groupCommit, [a!, c!]);
    expect(await groupCommit.append(b!, [appendItem({ action: 'original' }, 'key-1')])).toMatchObject({ ok: true });
    commits.length = 0;
    const outcomes = await together(groupCommit, busy!, [
      [a!, [appendItem({ action: 'a' })]],
      [b!, [appendItem({ action: 'b.first' }), appendItem({ action: 'different' }, 'key-1')]],
      [b!, [appendItem({ action: 'b.other' })]],
      [c!, [appendItem({ action: 'c' }), appendItem({ action: 'c.2' })]],
    ]);
    expect(outcomes.map(seqs)).toEqual([[2], { ok: false, conflict: { index: 1, key: 'key-1' } }, [2], [2, 3]]);
    // busy alone; a and c in one commit; b, whose key is stored, then in its own transaction.
    expect(commits).toEqual([{ events: 1, requests: 1 }, { events: 3, requests: 2 }, { events: 3, requests: 2 }]);
    for (const ref of [a!, b!, c!]) expect((await verifyChain(ctx.db.pools.app, ref)).ok).toBe(true);
  });

  it('chains whose heads another process moved still get their events, after that process\'s, in the next shared commit', async () => {
    const [busy, a, b, c, d] = await chains(5, 'moved');
    const { groupCommit, commits } = recorded();
    await warm(groupCommit, [a!, b!, c!, d!]);
    const pools = createPools(ctx.db.ownerUrl, undefined, 2);
    try {
      const other = new GroupCommit(pools.app, { maxEvents: 1000, maxWaitMs: 0, now: Date.now });
      for (const ref of [b!, d!]) expect(seqs(await other.append(ref, [appendItem({ action: 'elsewhere' })]))).toEqual([2]);
    } finally {
      await pools.end();
    }
    commits.length = 0;
    const outcomes = await together(groupCommit, busy!, [a!, b!, c!, d!].map((r): [ChainRef, AppendItem[]] => [r, [appendItem({ action: 'here' })]]));
    expect(outcomes.map(seqs)).toEqual([[2], [3], [2], [3]]);
    // busy alone; a and c; then b and d together on the heads the first statement found.
    expect(commits).toEqual([{ events: 1, requests: 1 }, { events: 2, requests: 2 }, { events: 2, requests: 2 }]);
    for (const ref of [a!, b!, c!, d!]) expect((await verifyChain(ctx.db.pools.app, ref)).ok).toBe(true);
    // The heads it took from the statement are right: the next shared commit appends after them.
    const again = await together(groupCommit, busy!, [b!, d!].map((r): [ChainRef, AppendItem[]] => [r, [appendItem({ action: 'again' })]]));
    expect(again.map(seqs)).toEqual([[4], [4]]);
    expect(commits.at(-1)).toEqual({ events: 2, requests: 2 });
  });

  it('a process that found its chain\'s head moved by another locks the head before planning its next append, until the head stays its own', async () => {
    const [chain] = await chains(1, 'contended');
    const pools = createPools(ctx.db.ownerUrl, undefined, 2);
    const here = new GroupCommit(ctx.db.pools.app, { maxEvents: 1000, maxWaitMs: 0, now: Date.now });
    const other = new GroupCommit(pools.app, { maxEvents: 1000, maxWaitMs: 0, now: Date.now });
    // Appends planned on the head this process remembers go out as one statement on the pool.
    const query = vi.spyOn(ctx.db.pools.app, 'query');
    const tries = () => query.mock.calls.filter(([config]) => (config as { name?: string }).name === 'append-events').length;
    try {
      const append = async (groupCommit: GroupCommit, action: string) => seqs(await groupCommit.append(chain!, [appendItem({ action })]));
      expect(await append(here, 'first')).toEqual([1]);
      expect(await append(other, 'moved')).toEqual([2]);
      const before = tries();
      expect(await append(here, 'finds it moved')).toEqual([3]);
      expect(tries() - before).toBe(1); // planned on seq 1, not written
      expect(await append(other, 'moves it again')).toEqual([4]);
      expect(await append(here, 'locks first')).toEqual([5]);
      expect(tries() - before).toBe(1); // no plan on the stale head
      // The head was where it was left: the next append plans on it again.
      expect(await append(here, 'locks first, finds its own head')).toEqual([6]);
      expect(await append(here, 'plans on its own head')).toEqual([7]);
      expect(tries() - before).toBe(2);
      expect(await verifyChain(ctx.db.pools.app, chain!)).toMatchObject({ ok: true, checked: 7 });
    } finally {
      query.mockRestore();
      await pools.end();
    }
  });

  it('chains whose heads this process does not know yet share a commit once one statement found their heads', async () => {
    const [busy, a, b, c] = await chains(4, 'cold');
    // Their heads are not at 0: another GroupCommit (a process before a restart) appended first.
    const before = new GroupCommit(ctx.db.pools.app, { maxEvents: 1000, maxWaitMs: 0, now: Date.now });
    await warm(before, [a!, b!, c!]);
    const { groupCommit, commits } = recorded();
    const outcomes = await together(groupCommit, busy!, [a!, b!, c!].map((r): [ChainRef, AppendItem[]] => [r, [appendItem({ action: 'cold' })]]));
    expect(outcomes.map(seqs)).toEqual([[2], [2], [2]]);
    expect(commits).toEqual([{ events: 1, requests: 1 }, { events: 3, requests: 3 }]);
    for (const ref of [a!, b!, c!]) expect(await verifyChain(ctx.db.pools.app, ref)).toMatchObject({ ok: true, checked: 2 });
  });

  it('a database error in one chain fails only that chain\'s requests; the chains before and after it in lock order commit', async () => {
    const refs = await chains(6, 'failing');
    const [busy, ...others] = refs;
    // The failing chain sits in the middle of the lock order.
    const failing = [...others].sort((x, y) => (x!.environment < y!.environment ? -1 : 1))[2]!;
    const { groupCommit } = recorded();
    await warm(groupCommit, others as ChainRef[]);
    await ctx.db.pools.owner.query(`CREATE FUNCTION forced_failure() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'forced failure'; END $$`);
    await ctx.db.pools.owner.query(`CREATE TRIGGER forced_failure BEFORE INSERT ON events FOR EACH ROW
      WHEN (NEW.environment_id = '${failing.environment}') EXECUTE FUNCTION forced_failure()`);
    let outcomes: Outcome[];
    try {
      outcomes = await together(groupCommit, busy!, [
        ...others.map((r): [ChainRef, AppendItem[]] => [r!, [appendItem({ action: 'second' })]]),
        [failing, [appendItem({ action: 'second.b' })]],
      ]);
    } finally {
      await ctx.db.pools.owner.query('DROP TRIGGER forced_failure ON events; DROP FUNCTION forced_failure()');
    }
    const failingAt = others.indexOf(failing);
    for (const [i, outcome] of outcomes.entries()) {
      if (i === failingAt || i === others.length) expect(outcome).toMatchObject({ message: 'forced failure' });
      else expect(seqs(outcome)).toEqual([2]);
    }
    for (const ref of others) expect((await getChainHead(ctx.db.pools.app, ref!.environment))!.seq).toBe(ref === failing ? 1 : 2);
    // The failing chain's next append follows its stored head.
    expect(seqs(await groupCommit.append(failing, [appendItem({ action: 'after' })]))).toEqual([2]);
    for (const ref of others) expect((await verifyChain(ctx.db.pools.app, ref!)).ok).toBe(true);
  });

  it('a chain whose day is sealed fails alone with day_sealed; the chains it shared the statement with commit', async () => {
    const [busy, a, late, c] = await chains(4, 'sealed');
    let offset = 0;
    const groupCommit = new GroupCommit(ctx.db.pools.app, { maxEvents: 1000, maxWaitMs: 0, now: () => Date.now() + offset });
    await warm(groupCommit, [a!, c!]);
    // `late`'s last event is two days ahead (a clock that stepped back since): its next events go
    // to that day, which is then sealed; the others' go to today.
    const ahead = new Date(Date.now() + 2 * 86_400_000).toISOString().slice(0, 10);
    await ctx.db.pools.owner.query('SELECT auditledger_ensure_partition($1::date)', [ahead]);
    offset = 2 * 86_400_000;
    await warm(groupCommit, [late!]);
    offset = 0;
    await ctx.db.pools.owner.query('SELECT auditledger_seal_partition($1::date, 1)', [ahead]);
    const outcomes = await together(groupCommit, busy!, [a!, late!, c!].map((r): [ChainRef, AppendItem[]] => [r, [appendItem({ action: 'after' })]]));
    expect(seqs(outcomes[0])).toEqual([2]);
    expect(outcomes[1]).toMatchObject({ name: 'DayClosedError', reason: 'sealed', message: expect.stringContaining(ahead) });
    expect(seqs(outcomes[2])).toEqual([2]);
    for (const ref of [a!, late!, c!]) expect(await verifyChain(ctx.db.pools.app, ref)).toMatchObject({ ok: true, checked: ref === late ? 1 : 2 });
  });

  it('two processes appending to 50 chains in random order: every chain gapless and verifying, no deadlock, commits shared', async () => {
    const refs = await chains(50, 'many');
    const processes = Array.from({ length: 2 }, () => {
      const pools = createPools(ctx.db.ownerUrl, undefined, 4);
      return { pools, ...recorded(pools.app) };
    });
    try {
      const perChain = new Map(refs.map((r) => [r.environment, 0]));
      const sends = Array.from({ length: 2000 }, (_, i) => {
        const chain = refs[Math.floor(Math.random() * refs.length)]!;
        const events = 1 + (i % 3);
        perChain.set(chain.environment, perChain.get(chain.environment)! + events);
        return { chain, items: Array.from({ length: events }, (_, e) => appendItem({ action: 'many', fields: { i: String(i), e: String(e) } })) };
      });
      // Each process sends its half in waves, so that its commits hold many chains at once.
      const outcomes = await Promise.all(
        processes.map(async ({ groupCommit }, p) => {
          const mine = sends.filter((_, i) => i % 2 === p);
          const done: { chain: ChainRef; outcome: AppendOutcome }[] = [];
          for (let at = 0; at < mine.length; at += 100) {
            const wave = mine.slice(at, at + 100);
            const answers = await Promise.all(wave.map((s) => groupCommit.append(s.chain, s.items)));
            done.push(...answers.map((outcome, i) => ({ chain: wave[i]!.chain, outcome })));
          }
          return done;
        }),
      );
      for (const ref of refs) {
        const head = (await getChainHead(ctx.db.pools.app, ref.environment))!;
        expect(head.seq).toBe(perChain.get(ref.environment));
        expect(await verifyChain(ctx.db.pools.app, ref)).toMatchObject({ ok: true, checked: head.seq, failures: [] });
      }
      // Every event acknowledged, with a seq of its own in its chain.
      const acknowledged = outcomes.flat().flatMap(({ chain, outcome }) => (outcome.ok ? outcome.receipts.map((r) => `${chain.environment}:${r.seq}`) : []));
      expect(new Set(acknowledged).size).toBe([...perChain.values()].reduce((a, b) => a + b, 0));
      expect(acknowledged).toHaveLength(new Set(acknowledged).size);
      const commits = processes.flatMap((p) => p.commits);
      expect(commits.reduce((n, c) => n + c.requests, 0)).toBe(2000);
      // Commits were shared across chains: one chain's requests in a wave are a few at most.
      expect(Math.max(...commits.map((c) => c.requests))).toBeGreaterThan(10);
    } finally {
      await Promise.all(processes.map((p) => p.pools.end()));
    }
  });
  it('refuses, before writing, a chain whose events were split under a policy older than its head, and writes the others', async () => {
    const [busy, changed, unchanged] = await chains(3, 'fenced');
    const { groupCommit } = recorded();
    await warm(groupCommit, [changed!, unchanged!]);
    const key = Buffer.alloc(32, 5);
    // Split under the policy this process read before the change: policy_seq 0.
    const stale = (ref: ChainRef) => appendItem({ action: 'split', actor: { id: 'u', name: 'U' } }, undefined, { policy: DEFAULT_POLICY, policySeq: 0, subjectDigest: (s) => subjectDigest(key, ref.project, s) });
    // Another process changes the policy of one chain: its head moves to the change's event.
    const change = await changePolicy(ctx.db.pools.app, { project: changed!.project, environment: changed!.environment, policy: { subjects: [] }, now: Date.now });
    const changeSeq = change!.events[0]!.seq;
    const outcomes = await together(groupCommit, busy!, [
      [changed!, [stale(changed!)]],
      [unchanged!, [stale(unchanged!)]],
    ]);
    expect(outcomes[0]).toBeInstanceOf(PolicyChangedError);
    expect(seqs(outcomes[1])).toEqual([2]);
    expect((await getChainHead(ctx.db.pools.app, changed!.environment))!.seq).toBe(changeSeq);
    // Split again under the chain's policy, it goes in.
    const fresh = appendItem({ action: 'split', actor: { id: 'u', name: 'U' } }, undefined, { policy: { subjects: [] }, policySeq: changeSeq, subjectDigest: (s) => subjectDigest(key, changed!.project, s) });
    expect(seqs(await groupCommit.append(changed!, [fresh]))).toEqual([changeSeq + 1]);
    expect(await verifyChain(ctx.db.pools.app, changed!)).toMatchObject({ ok: true, failures: [] });
  });
});
