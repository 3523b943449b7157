// Worker threads for CPU-bound verification: a fixed set of threads running one module, each
// taking one task at a time. From a checkout the project runs its TypeScript through tsx, whose
// loader does not reach worker threads by itself, so a worker running a .ts module registers it
// first; the built package's .js modules run as they are, with no tsx installed.
import { parentPort, Worker, workerData, type TransferListItem, type WorkerOptions } from 'node:worker_threads';

/** A worker thread running the module at `url`: a .js module as is, a .ts module through tsx. */
export function startWorker(url: URL | string, options: Omit<WorkerOptions, 'eval'> = {}): Worker {
  const href = String(url);
  if (!href.endsWith('.ts')) return new Worker(new URL(href), options);
  // Resolved here, not at import: the built package neither has tsx nor needs it.
  const tsx = JSON.stringify(import.meta.resolve('tsx/esm/api'));
  const boot = `import(${tsx}).then((tsx) => { tsx.register(); return import(${JSON.stringify(href)}); });`;
  return new Worker(boot, { ...options, eval: true });
}

/**
 * The module `name` (without extension) in the folder of the module at `importMetaUrl`, with that
 * module's own extension: the .ts source beside a .ts caller in a checkout, the compiled .js
 * beside a built one.
 */
export function siblingModule(importMetaUrl: string, name: string): URL {
  return new URL(`./${name}${importMetaUrl.endsWith('.ts') ? '.ts' : '.js'}`, importMetaUrl);
}

type Message<T> = { id: number; task: T };
type Answer<R> = { id: number; result: R } | { id: number; error: string };

/**
 * In a worker module: answers the pool's tasks with `handle`, which gets the pool's `shared` data
 * too. `transfer` lists the buffers of a result that move to the pool rather than being copied.
 */
export function serveTasks<S, T, R>(handle: (task: T, shared: S) => R, transfer: (result: R) => TransferListItem[] = () => []): void {
  parentPort!.on('message', ({ id, task }: Message<T>) => {
    let answer: Answer<R>;
    let moved: TransferListItem[] = [];
    try {
      const result = handle(task, workerData as S);
      answer = { id, result };
      moved = transfer(result);
    } catch (error) {
      answer = { id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) };
    }
    parentPort!.postMessage(answer, moved);
  });
}

interface Pending<R> {
  resolve(result: R): void;
  reject(error: Error): void;
}

/**
 * Threads running the module at `url`, which calls serveTasks. `admit` bounds the tasks a caller
 * prepares at once (one per thread and one more being prepared), so that inputs read ahead of
 * the threads cannot pile up in memory.
 */
export class ThreadPool<T, R> {
  private readonly workers: Worker[];
  private readonly idle: Worker[] = [];
  private readonly queued: { message: Message<T>; transfer: TransferListItem[]; pending: Pending<R> }[] = [];
  private readonly pending = new Map<number, Pending<R>>();
  private readonly admitting: (() => void)[] = [];
  private nextId = 0;
  private free: number;
  /** Set when a worker died: every task after it fails. */
  private broken: Error | undefined;

  constructor(url: URL, shared: unknown, threads: number) {
    this.workers = Array.from({ length: threads }, () => startWorker(url, { workerData: shared }));
    this.free = threads + 1;
    for (const worker of this.workers) {
      worker.on('message', (answer: Answer<R>) => this.settle(worker, answer));
      worker.on('error', (error) => this.failAll(error));
      this.idle.push(worker);
    }
  }

  /** Resolves when another task may be prepared; call the function it gives when that task is done. */
  admit(): Promise<() => void> {
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const next = this.admitting.shift();
      if (next) next();
      else this.free++;
    };
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(release);
    }
    return new Promise((resolve) => this.admitting.push(() => resolve(release)));
  }

  /** Runs a task on the next idle thread; `transfer` lists buffers that move to it rather than being copied. */
  run(task: T, transfer: TransferListItem[] = []): Promise<R> {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      this.queued.push({ message: { id: this.nextId++, task }, transfer, pending: { resolve, reject } });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate()));
  }

  private dispatch(): void {
    while (this.idle.length && this.queued.length) {
      const worker = this.idle.pop()!;
      const { message, transfer, pending } = this.queued.shift()!;
      this.pending.set(message.id, pending);
      worker.postMessage(message, transfer);
    }
  }

  private settle(worker: Worker, answer: Answer<R>): void {
    const pending = this.pending.get(answer.id);
    this.pending.delete(answer.id);
    this.idle.push(worker);
    this.dispatch();
    if (!pending) return;
    if ('error' in answer) pending.reject(new Error(`task failed on a worker thread: ${answer.error}`));
    else pending.resolve(answer.result);
  }

  private failAll(error: Error): void {
    this.broken = error;
    for (const pending of [...this.pending.values(), ...this.queued.map((task) => task.pending)]) pending.reject(error);
    this.pending.clear();
    this.queued.length = 0;
  }
}

/** Bytes a pool may move to a thread: `bytes` itself when it owns its memory, else a copy that does. */
export function movable(bytes: Buffer): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
}
