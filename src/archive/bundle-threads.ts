// Bundle checks on worker threads. Checking an archive is a hash and a canonical-JSON scan per
// event; spread over the machine's cores, it keeps pace with reading. The chain walk stays on the
// calling thread (ledger/verify-archive.ts); only verifyParsedBundle moves.
import os from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { PreviousBundle } from '../ledger/bundle.js';
import type { VerifierKey } from '../ledger/keys.js';
import type { BundleCheck, BundleChecker } from '../ledger/verify-archive.js';
import { startWorker } from '../worker-thread.js';
import type { CheckReply, CheckRequest } from './bundle-thread.js';

interface Pending {
  resolve(check: BundleCheck): void;
  reject(error: Error): void;
}

export class BundleThreads implements BundleChecker {
  private readonly idle: Worker[] = [];
  private readonly queued: { request: CheckRequest; pending: Pending }[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly admitted: (() => void)[] = [];
  private nextId = 0;
  /** Set when a worker died: every check after it fails. */
  private broken: Error | undefined;
  /** Bundles that may be read now: one per thread, and one more being read while all are busy. */
  private free: number;

  private constructor(private readonly workers: Worker[]) {
    this.free = workers.length + 1;
    for (const worker of workers) {
      worker.on('message', (reply: CheckReply) => this.settle(worker, reply));
      worker.on('error', (error) => this.failAll(error));
      this.idle.push(worker);
    }
  }

  static start(verifiers: readonly VerifierKey[], threads = os.availableParallelism()): BundleThreads {
    const url = new URL('./bundle-thread.ts', import.meta.url);
    return new BundleThreads(Array.from({ length: threads }, () => startWorker(url, { workerData: { verifiers } })));
  }

  admit(): Promise<() => void> {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const next = this.admitted.shift();
      if (next) next();
      else this.free++;
    };
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(release);
    }
    return new Promise((resolve) => this.admitted.push(() => resolve(release)));
  }

  check(bytes: Buffer, previous: PreviousBundle | undefined, rootSizes: readonly number[]): Promise<BundleCheck> {
    // The bytes move to the worker rather than being copied, when they own their memory.
    const owned = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
    const request: CheckRequest = { id: this.nextId++, bytes: owned, previous, rootSizes };
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.queued.push({ request, pending: { resolve, reject } });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private dispatch(): void {
    while (this.idle.length && this.queued.length) {
      const worker = this.idle.pop()!;
      const { request, pending } = this.queued.shift()!;
      this.pending.set(request.id, pending);
      worker.postMessage(request, [request.bytes.buffer as ArrayBuffer]);
    }
  }

  private settle(worker: Worker, reply: CheckReply): void {
    const pending = this.pending.get(reply.id);
    this.pending.delete(reply.id);
    this.idle.push(worker);
    this.dispatch();
    if (!pending) return;
    if ('error' in reply) pending.reject(new Error(`bundle check failed: ${reply.error}`));
    else pending.resolve({ failures: reply.failures, roots: new Map(reply.roots.map(([size, root]) => [size, Buffer.from(root)])) });
  }

  private failAll(error: Error): void {
    this.broken = error;
    for (const pending of [...this.pending.values(), ...this.queued.map((task) => task.pending)]) pending.reject(error);
    this.pending.clear();
    this.queued.length = 0;
  }
}
