// Worker threads for modules written in TypeScript. The project runs its sources through tsx,
// whose loader does not reach worker threads by itself: each worker registers it, then loads its
// module.
import { Worker, type WorkerOptions } from 'node:worker_threads';

const TSX = JSON.stringify(import.meta.resolve('tsx/esm/api'));

/** A worker thread running the module at `url` (a .ts file). */
export function startWorker(url: URL | string, options: Omit<WorkerOptions, 'eval'> = {}): Worker {
  const boot = `import(${TSX}).then((tsx) => { tsx.register(); return import(${JSON.stringify(String(url))}); });`;
  return new Worker(boot, { ...options, eval: true });
}
