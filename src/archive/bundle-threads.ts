// Bundle checks on worker threads. Checking an archive is a hash and a canonical-JSON scan per
// event; spread over the machine's cores, it keeps pace with reading. The chain walk stays on the
// calling thread (ledger/verify-archive.ts); only verifyParsedBundle moves.
import os from 'node:os';
import type { PreviousBundle } from '../ledger/bundle.js';
import type { VerifierKey } from '../ledger/keys.js';
import { TileNodes } from '../ledger/tiles.js';
import type { BundleCheck, BundleChecker } from '../ledger/verify-archive.js';
import { movable, siblingModule, ThreadPool } from '../thread-pool.js';
import type { BundleResult, BundleTask } from './bundle-thread.js';

export class BundleThreads implements BundleChecker {
  private readonly pool: ThreadPool<BundleTask, BundleResult>;

  constructor(verifiers: readonly VerifierKey[], threads = os.availableParallelism()) {
    this.pool = new ThreadPool(siblingModule(import.meta.url, 'bundle-thread'), verifiers, threads);
  }

  admit(): Promise<() => void> {
    return this.pool.admit();
  }

  async check(bytes: Buffer, previous: PreviousBundle | undefined, rootSizes: readonly number[]): Promise<BundleCheck> {
    const task = { bytes: movable(bytes), previous, rootSizes };
    const { failures, roots, leaves, nodes } = await this.pool.run(task, [task.bytes.buffer as ArrayBuffer]);
    return {
      failures,
      roots: new Map(roots.map(([size, root]) => [size, Buffer.from(root)])),
      leaves: Buffer.from(leaves.buffer, leaves.byteOffset, leaves.byteLength),
      nodes: TileNodes.fromEntries(nodes),
    };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
