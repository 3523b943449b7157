// Bundle checks on worker threads. Checking an archive is a hash and a canonical-JSON scan per
// event; spread over the machine's cores, it keeps pace with reading. The chain walk stays on the
// calling thread (ledger/verify-archive.ts); only verifyParsedBundle moves.
import os from 'node:os';
import { BufferPool } from '../ledger/buffer-pool.js';
import type { PreviousBundle } from '../ledger/bundle.js';
import type { VerifierKey } from '../ledger/keys.js';
import { TileNodes } from '../ledger/tiles.js';
import type { BundleCheck, BundleChecker } from '../ledger/verify-archive.js';
import { movable, siblingModule, ThreadPool } from '../thread-pool.js';
import type { BundleResult, BundleTask } from './bundle-thread.js';

export class BundleThreads implements BundleChecker {
  private readonly pool: ThreadPool<BundleTask, BundleResult>;
  /** One bundle's memory per place admit gives (a thread each, and one being read). */
  private readonly buffers: BufferPool;

  constructor(verifiers: readonly VerifierKey[], threads = os.availableParallelism()) {
    this.pool = new ThreadPool(siblingModule(import.meta.url, 'bundle-thread'), verifiers, threads);
    this.buffers = new BufferPool(threads + 1);
  }

  admit(): Promise<() => void> {
    return this.pool.admit();
  }

  memory(size: number): Buffer {
    return this.buffers.take(size);
  }

  async check(bytes: Buffer, previous: PreviousBundle | undefined, rootSizes: readonly number[]): Promise<BundleCheck> {
    // The pool's memory moves to the thread whole (the bytes are a view of its start) and comes back.
    const pooled = this.buffers.owns(bytes);
    const task = { bytes: pooled ? bytes : movable(bytes), previous, rootSizes };
    const { failures, roots, leaves, nodes, unreadable, bytes: used } = await this.pool.run(task, [task.bytes.buffer as ArrayBuffer]);
    if (pooled) this.buffers.give(used.buffer as ArrayBuffer);
    return {
      failures,
      roots: new Map(roots.map(([size, root]) => [size, Buffer.from(root)])),
      leaves: Buffer.from(leaves.buffer, leaves.byteOffset, leaves.byteLength),
      nodes: TileNodes.fromEntries(nodes),
      unreadable,
    };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
