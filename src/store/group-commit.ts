import type pg from 'pg';
import { setRecent } from '../recent-map.js';
import { appendToChain, appendToChains, type Appended, type AppendItem, type ChainAppended, type AppendOutcome, type ChainRef, type Head } from './append.js';

export interface GroupCommitOptions {
  /** Most events one commit takes, over all its chains; a request is never split across commits. */
  maxEvents: number;
  /** How long a commit waits for more requests to join it once one is queued. */
  maxWaitMs: number;
  /**
   * Whether several chains' requests share one statement (the default). False on a distributed
   * PostgreSQL (Citus), where a statement locking rows of several shards is refused: each chain
   * then commits in a statement of its own, all at once, as each shard takes them.
   */
  acrossChains?: boolean;
  /** The server clock, in ms since the epoch. */
  now: () => number;
  /** Told the size of each commit (for metrics): its events and requests, over all its chains. */
  onCommit?: (events: number, requests: number) => void;
}

const REMEMBERED_HEADS = 10_000;

/**
 * How many times a request goes back to the queue when a shared statement found its chain's head
 * other than this process expected (moved by another process, or not known), before it is
 * appended alone under the head lock: processes sending to the same chains often meet again in
 * the next round, yet a chain must not be retried forever.
 */
const MOVED_RETRIES = 3;

interface Pending {
  chain: ChainRef;
  items: AppendItem[];
  /** How many times it went back to the queue, a shared statement having found its chain's head other than expected. */
  moved?: number;
  resolve: (outcome: AppendOutcome) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit. A commit per event caps ingest at a few thousand events/s; instead, the requests
 * that arrive while the previous commit runs (or within maxWaitMs) share the next one, whatever
 * their chains: one chain's go through appendToChain; several chains' in one statement
 * (appendToChains), which locks their heads in chain id order, so that processes sharing the
 * database cannot deadlock. The head row locks keep every chain correct across processes. A chain
 * whose head another process moved (or whose head this process does not know yet) joins the next
 * statement, on the head this one found; one the statement does not write otherwise is appended
 * alone, locking its head. When the statement fails, each chain is retried alone and, if that
 * fails too, each of its requests, so that one failing request fails alone.
 */
export class GroupCommit {
  /** The requests waiting for a commit, oldest first. */
  private readonly waiting: Pending[] = [];
  private running = false;
  /**
   * Each chain's head as this process's last append left it: the next append expects it
   * (appendToChain), unless `contended`: that append found the head moved by another process, so
   * the next one locks the head before planning rather than plan on a head likely moved again.
   */
  private readonly heads = new Map<string, { head: Head; contended: boolean }>();
  private readonly idle = new Set<() => void>();

  constructor(
    private readonly db: pg.Pool,
    private readonly options: GroupCommitOptions,
  ) {}

  /** The server clock appends take received_at from, in ms since the epoch. */
  now(): number {
    return this.options.now();
  }

  /** Appends one request to `chain` in the next commit; its outcome once committed. Rejects with the error that failed it alone. */
  append(chain: ChainRef, items: AppendItem[]): Promise<AppendOutcome> {
    const promise = new Promise<AppendOutcome>((resolve, reject) => this.waiting.push({ chain, items, resolve, reject }));
    if (!this.running) void this.drain();
    return promise;
  }

  /** Resolves when every queued append has committed or failed (for graceful shutdown). */
  async flushed(): Promise<void> {
    if (!this.running) return;
    await new Promise<void>((resolve) => this.idle.add(resolve));
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.waiting.length > 0) {
        if (this.options.maxWaitMs > 0) await new Promise((r) => setTimeout(r, this.options.maxWaitMs));
        const groups = this.takeGroups();
        if (groups.length === 1) await this.commit(groups[0]!);
        else if (this.options.acrossChains === false) await Promise.all(groups.map((group) => this.commit(group)));
        else await this.commitChains(groups);
      }
    } finally {
      this.running = false;
      for (const resolve of this.idle) resolve();
      this.idle.clear();
    }
  }

  /**
   * Takes the oldest waiting requests, up to maxEvents events (at least one request), so that no
   * chain waits behind another's later requests; grouped by chain, each group in arrival order.
   */
  private takeGroups(): Pending[][] {
    let events = 0;
    let count = 0;
    for (const pending of this.waiting) {
      if (count > 0 && events + pending.items.length > this.options.maxEvents) break;
      events += pending.items.length;
      count++;
    }
    const groups = new Map<string, Pending[]>();
    for (const pending of this.waiting.splice(0, count)) {
      const group = groups.get(pending.chain.environment);
      if (group) group.push(pending);
      else groups.set(pending.chain.environment, [pending]);
    }
    return [...groups.values()];
  }

  /** Resolves the requests of `group` with what appendToChain or appendToChains gave them, and remembers the head it left. */
  private settle(group: Pending[], { outcomes, head, moved }: Appended): void {
    // Only the most recently appended chains: an older one's next append finds its head first.
    setRecent(this.heads, group[0]!.chain.environment, { head, contended: moved === true }, REMEMBERED_HEADS);
    group.forEach((p, i) => p.resolve(outcomes[i]!));
  }

  /** Commits the requests of one chain (appendToChain), or each alone if they fail together. */
  private async commit(group: Pending[]): Promise<void> {
    const { chain } = group[0]!;
    try {
      const remembered = this.heads.get(chain.environment);
      const result = await appendToChain(this.db, chain, group.map((p) => p.items), this.options.now(), remembered?.head, remembered?.contended);
      this.settle(group, result);
      this.options.onCommit?.(events(group), group.length);
    } catch (error) {
      this.heads.delete(chain.environment);
      if (group.length === 1) {
        group[0]!.reject(error);
        return;
      }
      // One request must not fail the others: retry each in a transaction of its own.
      for (const pending of group) await this.commit([pending]);
    }
  }

  /**
   * Commits the requests of several chains, each group a chain's, in one statement. A group whose
   * head another process moved, or whose head this process does not remember, goes back to the
   * front of the queue (up to MOVED_RETRIES times), to be appended on the head the statement
   * found, in the next one; the other groups it does not write (a key repeats, moved too often,
   * tiles to complete whose tails the head lacks, events split under another policy) then each in a
   * transaction of its own that locks the head, all at once. When the statement fails, having
   * written nothing, each group is retried alone as commit does.
   */
  private async commitChains(groups: Pending[][]): Promise<void> {
    const expected = groups.map((group) => this.heads.get(group[0]!.chain.environment)?.head);
    let results: ChainAppended[];
    try {
      results = await appendToChains(
        this.db,
        groups.map((group, i) => ({ chain: group[0]!.chain, requests: group.map((p) => p.items), expected: expected[i] })),
        this.options.now(),
      );
    } catch {
      await Promise.all(groups.map((group) => this.commit(group)));
      return;
    }
    const shared: Pending[][] = [];
    const again: Pending[][] = [];
    const alone: Pending[][] = [];
    groups.forEach((group, i) => {
      const result = results[i]!;
      const { environment } = group[0]!.chain;
      if (result.appended) {
        this.settle(group, result.appended);
        shared.push(group);
      } else if (result.head && result.head.seq !== expected[i]?.seq && group.every((p) => (p.moved ?? 0) < MOVED_RETRIES)) {
        setRecent(this.heads, environment, { head: result.head, contended: false }, REMEMBERED_HEADS);
        for (const pending of group) pending.moved = (pending.moved ?? 0) + 1;
        again.push(group);
      } else {
        this.heads.delete(environment);
        alone.push(group);
      }
    });
    if (shared.length > 0) this.options.onCommit?.(shared.reduce((n, group) => n + events(group), 0), shared.reduce((n, group) => n + group.length, 0));
    // They are older than any request waiting.
    this.waiting.unshift(...again.flat());
    await Promise.all(alone.map((group) => this.commit(group)));
  }
}

function events(group: Pending[]): number {
  return group.reduce((n, p) => n + p.items.length, 0);
}
