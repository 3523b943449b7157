import type pg from 'pg';
import { setRecent } from '../recent-map.js';
import { appendToChain, type AppendItem, type AppendOutcome, type ChainRef, type Head } from './append.js';

export interface GroupCommitOptions {
  /** Most events one transaction takes; a request is never split across transactions. */
  maxEvents: number;
  /** How long a transaction waits for more requests to join it once one is queued. */
  maxWaitMs: number;
  /** The server clock, in ms since the epoch. */
  now: () => number;
  /** Told the size of each committed transaction (for metrics). */
  onCommit?: (events: number, requests: number) => void;
}

const REMEMBERED_HEADS = 10_000;

interface Pending {
  items: AppendItem[];
  resolve: (outcome: AppendOutcome) => void;
  reject: (error: unknown) => void;
}

interface Queue {
  chain: ChainRef;
  pending: Pending[];
  running: boolean;
}

/**
 * Group commit. A commit per event caps a chain at a few thousand events/s; instead, the requests
 * for one chain that arrive while its previous transaction runs (or within maxWaitMs) share the
 * next transaction. Other processes on the same database stay correct through the head row lock.
 */
export class GroupCommit {
  private readonly queues = new Map<string, Queue>();
  /** Each chain's head as this process's last append left it: the next append expects it (appendToChain). */
  private readonly heads = new Map<string, Head>();
  private readonly idle = new Set<() => void>();

  constructor(
    private readonly db: pg.Pool,
    private readonly options: GroupCommitOptions,
  ) {}

  /** The server clock appends take received_at from, in ms since the epoch. */
  now(): number {
    return this.options.now();
  }

  append(chain: ChainRef, items: AppendItem[]): Promise<AppendOutcome> {
    let queue = this.queues.get(chain.environment);
    if (!queue) {
      queue = { chain, pending: [], running: false };
      this.queues.set(chain.environment, queue);
    }
    const promise = new Promise<AppendOutcome>((resolve, reject) => queue.pending.push({ items, resolve, reject }));
    if (!queue.running) void this.drain(queue);
    return promise;
  }

  /** Resolves when every queued append has committed or failed (for graceful shutdown). */
  async flushed(): Promise<void> {
    if ([...this.queues.values()].every((q) => !q.running)) return;
    await new Promise<void>((resolve) => this.idle.add(resolve));
  }

  private async drain(queue: Queue): Promise<void> {
    queue.running = true;
    try {
      while (queue.pending.length > 0) {
        if (this.options.maxWaitMs > 0) await new Promise((r) => setTimeout(r, this.options.maxWaitMs));
        const group = this.takeGroup(queue);
        await this.commit(queue.chain, group);
      }
    } finally {
      queue.running = false;
      this.queues.delete(queue.chain.environment);
      if ([...this.queues.values()].every((q) => !q.running)) {
        for (const resolve of this.idle) resolve();
        this.idle.clear();
      }
    }
  }

  private takeGroup(queue: Queue): Pending[] {
    let events = 0;
    let count = 0;
    for (const pending of queue.pending) {
      if (count > 0 && events + pending.items.length > this.options.maxEvents) break;
      events += pending.items.length;
      count++;
    }
    return queue.pending.splice(0, count);
  }

  private async commit(chain: ChainRef, group: Pending[]): Promise<void> {
    try {
      const items = group.map((p) => p.items);
      const { outcomes, head } = await appendToChain(this.db, chain, items, this.options.now(), this.heads.get(chain.environment));
      // Only the most recently appended chains: an older one's next append locks the head first.
      setRecent(this.heads, chain.environment, head, REMEMBERED_HEADS);
      this.options.onCommit?.(group.reduce((n, p) => n + p.items.length, 0), group.length);
      group.forEach((p, i) => p.resolve(outcomes[i]!));
    } catch (error) {
      this.heads.delete(chain.environment);
      if (group.length === 1) {
        group[0]!.reject(error);
        return;
      }
      // One request must not fail the others: retry each in a transaction of its own.
      for (const pending of group) await this.commit(chain, [pending]);
    }
  }
}
