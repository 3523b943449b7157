import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import type { Logger } from 'pino';
import { ensureAdminToken } from '../admin-token.js';
import type { Config } from '../config.js';
import { openDatabase, startService, type RuntimeOptions } from '../service.js';
import { loadKeyring } from '../signing-key.js';
import { UsageError } from './verb.js';

/** The environment variable that tells a worker of `serve --workers` its number (1 runs the jobs). */
const WORKER_ENV = 'AUDITLEDGER_WORKER';

/**
 * The number of processes `--workers` asks for: 1 when not given (one process, as before the
 * option existed), `auto` one per core (os.availableParallelism()), else 1 to 256; UsageError otherwise.
 */
export function workerCount(value: string | undefined): number {
  if (value === undefined) return 1;
  if (value === 'auto') return os.availableParallelism();
  if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > 256) {
    throw new UsageError(`--workers takes a number of processes from 1 to 256, or auto; got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

/**
 * Runs the service in this process until a signal (or, in a worker of `--workers`, until the
 * primary goes): `listening` is told the URL once the server listens. Returns the exit code.
 */
export async function serveProcess(config: Config, log: Logger, jobs: RuntimeOptions['jobs'], listening: (url: string) => void): Promise<number> {
  const service = await startService(config, log, jobs);
  // Signals during shutdown are ignored (the deadline bounds it): Ctrl-C under `npm start`
  // reaches us twice, from the terminal and forwarded by npm. The handlers are in place before
  // the line below says we listen: a signal sent on seeing it must not meet the default action.
  let stopping = false;
  const signalled = new Promise<NodeJS.Signals | Error>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => stopping || resolve(signal);
    process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
    // A worker whose primary is gone (killed) stops as if signalled: nothing routes requests to it.
    if (cluster.isWorker) process.on('disconnect', () => onSignal('SIGTERM'));
    void service.failed.then(resolve);
  });
  listening(service.url);
  const reason = await signalled;
  stopping = true;
  if (reason instanceof Error) log.fatal(`${reason.message}; exiting`);
  else log.info({ signal: reason }, 'shutting down');

  const timeout = config.AUDITLEDGER_SHUTDOWN_TIMEOUT;
  const deadline = setTimeout(() => {
    log.error(`shutdown did not end within ${timeout} s; abandoned: ${service.pending().join(', ') || 'whatever still holds the process open'}`);
    process.exit(1);
  }, timeout * 1000);
  try {
    await service.stop();
  } catch (error) {
    log.error({ err: error }, 'shutdown failed');
    return 1;
  } finally {
    // Stays armed for anything that keeps the process alive after the last step.
    deadline.unref();
  }
  return reason instanceof Error ? 1 : 0;
}

/** A worker of `serve --workers`: the service on the port the primary shares; worker 1 runs the jobs. */
export async function serveWorker(config: Config, log: Logger): Promise<number> {
  const index = Number(process.env[WORKER_ENV]);
  try {
    return await serveProcess(config, log.child({ worker: index }), index === 1 ? true : 'send', (url) => process.send!({ listening: url }));
  } finally {
    // The channel to the primary would hold the process open after the service stopped.
    if (process.connected) process.disconnect();
  }
}

/** Why the primary stops: a signal, its embedded PostgreSQL stopping, or a worker that failed to start (its exit code). */
type StopReason = NodeJS.Signals | Error | { startFailed: number };

/**
 * The primary of `serve --workers N`: does once what the processes would otherwise race to do
 * (generate the signing key, start the embedded PostgreSQL, migrate, generate the admin token),
 * then forks N workers that serve HOST:PORT together (node:cluster hands each connection to one
 * of them) and hands them the embedded server's URLs. Worker 1 runs the jobs; the others only
 * send verification runs to them. A worker that dies after it listened is replaced; one that
 * fails to start stops them all, and the primary exits with its exit code. SIGINT/SIGTERM stop
 * every worker (each drains as a single process does) within AUDITLEDGER_SHUTDOWN_TIMEOUT, then
 * the embedded PostgreSQL; the exit code is 0 when every worker exited 0.
 */
export async function servePrimary(config: Config, log: Logger, count: number): Promise<number> {
  await loadKeyring(config, log);
  const db = await openDatabase(config, log, 'serve');
  try {
    await ensureAdminToken(config.AUDITLEDGER_ADMIN_TOKEN, config.AUDITLEDGER_DATA_DIR, db.pools.owner, log);
  } catch (error) {
    await db.close();
    throw error;
  }
  await db.pools.end();
  const { embedded } = db;
  const env: Record<string, string> = embedded
    ? { DATABASE_URL: embedded.provisioned.ownerUrl, AUDITLEDGER_APP_DATABASE_URL: embedded.provisioned.appUrl }
    : {};

  let stopping = false;
  let stop: (reason: StopReason) => void = () => undefined;
  const stopped = new Promise<StopReason>((resolve) => (stop = (reason) => stopping || resolve(reason)));
  const onSignal = (signal: NodeJS.Signals) => stop(signal);
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  const probe = embedded
    ? setInterval(() => {
        void embedded.running().then((running) => running || stop(new Error('the embedded PostgreSQL stopped under the service')));
      }, (config.AUDITLEDGER_DB_UNREACHABLE_SECONDS * 1000) / 3)
    : undefined;

  const workers = new Map<number, Worker>();
  const codes: number[] = [];
  let allExited: () => void = () => undefined;
  const exited = new Promise<void>((resolve) => (allExited = resolve));
  let url = '';
  const listening = new Set<number>();
  let allListening: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (allListening = resolve));
  const fork = (index: number) => {
    const worker = cluster.fork({ ...env, [WORKER_ENV]: String(index) });
    workers.set(index, worker);
    let listened = false;
    worker.on('message', (message: { listening?: string }) => {
      if (!message.listening) return;
      listened = true;
      url = message.listening;
      listening.add(index);
      if (listening.size === count) allListening();
    });
    worker.on('exit', (code, signal) => {
      workers.delete(index);
      if (stopping) {
        codes.push(code ?? 1);
        if (workers.size === 0) allExited();
      } else if (!listened) {
        stop({ startFailed: code || 1 });
      } else {
        log.error({ worker: index, pid: worker.process.pid, code, signal }, 'a worker exited; starting another');
        fork(index);
      }
    });
  };
  for (let index = 1; index <= count; index++) fork(index);

  const first = await Promise.race([ready.then(() => undefined), stopped]);
  // The line a single process prints, unchanged: supervisors and scripts wait for it.
  if (first === undefined) {
    log.info({ workers: count }, 'every worker listens');
    process.stdout.write(`auditledger listening on ${url}\n`);
  }
  const reason = await stopped;
  stopping = true;
  clearInterval(probe);
  if (reason instanceof Error) log.fatal(`${reason.message}; exiting`);
  else if (typeof reason === 'string') log.info({ signal: reason }, 'shutting down');

  const timeout = config.AUDITLEDGER_SHUTDOWN_TIMEOUT;
  const deadline = setTimeout(() => {
    log.error(`shutdown did not end within ${timeout} s; abandoned: workers ${[...workers.keys()].join(', ')}`);
    for (const worker of workers.values()) worker.process.kill('SIGKILL');
    process.exit(1);
  }, timeout * 1000);
  if (workers.size === 0) allExited();
  for (const worker of workers.values()) worker.process.kill('SIGTERM');
  await exited;
  await embedded?.stop();
  deadline.unref();
  if (typeof reason === 'object' && 'startFailed' in reason) return reason.startFailed;
  return reason instanceof Error || codes.some((code) => code !== 0) ? 1 : 0;
}
