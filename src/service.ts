import { serve } from '@hono/node-server';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type pg from 'pg';
import { ensureAdminToken } from './admin-token.js';
import { createApp, type AppDeps } from './api/app.js';
import { ApiError } from './api/errors.js';
import type { RequestVerification } from './api/routes/verify.js';
import type { Archive } from './archive/archive.js';
import { AppendMetrics } from './api/metrics.js';
import { viewerTokenKey } from './api/viewer-token.js';
import { Credentials } from './api/credentials.js';
import { ConfigError, type Config } from './config.js';
import { createPools, provisionDatabase, STARTUP_LOCK, withSessionLock, type Pools } from './store/database.js';
import { InUseError, startEmbeddedPostgres, type EmbeddedPostgres } from './store/embedded.js';
import { Reachability } from './store/reachability.js';
import { unavailable } from './store/errors.js';
import { migrate, readMigrations } from './store/migrate.js';
import { GroupCommit } from './store/group-commit.js';
import { openArchive } from './archive/open.js';
import { S3Archive } from './archive/s3.js';
import { alertTarget } from './jobs/alert.js';
import { startBoss } from './jobs/boss.js';
import { scheduleCheckpoints } from './jobs/checkpoints.js';
import { scheduleSeal } from './jobs/seal.js';
import { scheduleVerification, verificationRequests } from './jobs/verify.js';
import { loadKeyring, verifiers, type Keyring } from './signing-key.js';
import { runMaintenance, scheduleMaintenance, type MaintenanceOptions } from './jobs/maintenance.js';

export interface Service {
  url: string;
  /**
   * Stops everything in reverse order of start. A step that fails is logged and the others
   * still run; then it rejects naming the failed steps.
   */
  stop(): Promise<void>;
  /** The steps stop() has not finished, the running one first: what a timed-out shutdown abandons. */
  pending(): string[];
  /** Resolves if the service can no longer work: its embedded PostgreSQL stopped under it. */
  failed: Promise<Error>;
}

/** The database URLs to use: the configured ones, or the embedded default's. */
async function database(config: Config, log: Logger, command: string) {
  if (config.DATABASE_URL) {
    return { ownerUrl: config.DATABASE_URL, appUrl: config.AUDITLEDGER_APP_DATABASE_URL, embedded: undefined };
  }
  // Roles are provisioned when the server starts; a process that attaches gets the same URLs.
  const embedded = await startEmbeddedPostgres(config.AUDITLEDGER_DATA_DIR, log, { command, provision: provisionDatabase });
  return { ...embedded.provisioned, embedded };
}

export interface Database {
  pools: Pools;
  /** The embedded default's server, shared with the data dir's other processes. */
  embedded?: EmbeddedPostgres<{ ownerUrl: string; appUrl: string }>;
  schemaVersion: number;
  /** Ends the pools and leaves the embedded server (the last process using it stops it). */
  close(): Promise<void>;
}

/** How library mode connects where a URL cannot say it. */
export interface Connection {
  /** node-postgres's TLS options. */
  ssl?: pg.PoolConfig['ssl'];
  /** What an unreachable database's message names as the setting to fix. Default DATABASE_URL. */
  source?: string;
}

/**
 * Opens the database (embedded or configured), migrates it, and connects pools. `command` (a CLI
 * verb) is recorded as a user of the embedded server; a second `serve` on one data dir gets InUseError.
 */
export async function openDatabase(config: Config, log: Logger, command: string, connection: Connection = {}): Promise<Database> {
  const { ownerUrl, appUrl, embedded } = await database(config, log, command);
  const pools = createPools(ownerUrl, appUrl, config.AUDITLEDGER_DB_POOL_SIZE, config.AUDITLEDGER_DB_CONNECT_TIMEOUT_SECONDS * 1000, connection.ssl);
  const close = async () => {
    await pools.end();
    await embedded?.stop();
  };
  try {
    const migrations = await readMigrations();
    const applied = await migrate(pools.owner, migrations).catch((error: unknown) => {
      throw unavailable(error, ownerUrl, config.DATABASE_URL ? (connection.source ?? 'DATABASE_URL') : 'the embedded PostgreSQL');
    });
    if (applied.length) log.info({ applied }, 'migrations applied');
    return { pools, embedded, schemaVersion: migrations.at(-1)?.version ?? 0, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The server clock: the system clock, shifted by AUDITLEDGER_CLOCK_OFFSET where allowed. */
export function serverClock(config: Config, log: Logger): () => number {
  const offset = config.AUDITLEDGER_CLOCK_OFFSET;
  if (offset === 0) return Date.now;
  log.warn({ offset_ms: offset }, 'the server clock is shifted (AUDITLEDGER_CLOCK_OFFSET): for tests and demos only');
  return () => Date.now() + offset;
}

/**
 * Why the HTTP server could not listen, in one line: InUseError for a taken HOST:PORT, a ConfigError
 * naming HOST for an address this machine does not have or a name that does not resolve, and naming
 * PORT for a port it may not use (below 1024 without the privilege); any other error as it is.
 */
function listenError(error: NodeJS.ErrnoException, config: Config): Error {
  const at = `${config.HOST}:${config.PORT}`;
  switch (error.code) {
    case 'EADDRINUSE':
      return new InUseError(`${at} is already in use; stop what listens there or set HOST/PORT`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ConfigError([`HOST: ${JSON.stringify(config.HOST)} does not resolve to an address (${error.code})`]);
    case 'EADDRNOTAVAIL':
      return new ConfigError([`HOST: ${JSON.stringify(config.HOST)} is not an address of this machine (${error.code})`]);
    case 'EACCES':
      return new ConfigError([`PORT: no permission to listen on ${at} (${error.code}; ports below 1024 need privileges)`]);
    default:
      return error;
  }
}

/** A named shutdown step; steps are undone last first. */
interface Step {
  name: string;
  stop: () => Promise<void>;
}

/**
 * What `auditledger serve` and library mode (src/library.ts) both run on a database: the pools,
 * the jobs, and everything createApp needs except the credentials, which differ (API tokens, or
 * library mode's in-process bearers). stop() undoes it all in reverse order of start.
 */
export interface Runtime {
  pools: Pools;
  embedded: EmbeddedPostgres<{ ownerUrl: string; appUrl: string }> | undefined;
  app: Omit<AppDeps, 'credentials'>;
  /** Adds a shutdown step, undone before every step added earlier. */
  push(name: string, stop: () => Promise<void>): void;
  /**
   * Stops everything in reverse order of start. A step that fails is logged and the others
   * still run; then it rejects naming the failed steps. Idempotent.
   */
  stop(): Promise<void>;
  /** The steps stop() has not finished, the running one first. */
  pending(): string[];
}

export interface RuntimeOptions {
  /** The CLI verb recorded as a user of the embedded server (`serve`), or `library`. */
  command: string;
  keyring: Keyring;
  /** Where checkpoints and sealed bundles go; undefined: checkpoints in PostgreSQL only and no sealing. */
  archive: Archive | undefined;
  /**
   * Run the scheduled jobs in this process (checkpoints, sealing, verification, partition upkeep).
   * pg-boss runs each scheduled job once across all processes on the database. Without them,
   * partitions are still made at start, and POST /v1/verify answers 503 jobs_disabled. `send`:
   * no job runs here, but POST /v1/verify queues runs for the process that runs the jobs.
   */
  jobs: boolean | 'send';
  connection?: Connection;
}

/**
 * Opens the database and migrates it, makes the partitions, starts the jobs (under STARTUP_LOCK,
 * so processes starting together on one database do not deadlock on DDL) and builds the app's
 * dependencies. On failure, what was started is stopped and the error thrown on.
 */
export async function startRuntime(config: Config, log: Logger, options: RuntimeOptions): Promise<Runtime> {
  const now = serverClock(config, log);
  const { pools, embedded, schemaVersion } = await openDatabase(config, log, options.command, options.connection);
  // Named steps, undone last first; a failed step does not keep the later ones from running.
  const stack: Step[] = [];
  const push = (name: string, stop: () => Promise<void>) => void stack.push({ name, stop });
  if (embedded) push('embedded PostgreSQL', () => embedded.stop());
  push('database pools', () => pools.end());
  const unwind = async () => {
    const failed: string[] = [];
    for (let step = stack.at(-1); step; step = stack.at(-1)) {
      await step.stop().catch((error: unknown) => {
        log.error({ err: error, step: step!.name }, 'shutdown step failed');
        failed.push(step!.name);
      });
      stack.pop();
    }
    if (failed.length) throw new Error(`shutdown steps failed: ${failed.join(', ')}`);
  };
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= unwind());

  try {
    const { keyring, archive } = options;
    const maintenance: MaintenanceOptions = {
      partitionDaysAhead: config.AUDITLEDGER_PARTITION_DAYS_AHEAD,
      idempotencyHours: config.AUDITLEDGER_IDEMPOTENCY_HOURS,
      now,
    };
    // Checkpoints and bundles go only where nobody can delete them.
    if (archive instanceof S3Archive) await archive.assertObjectLock();
    const verification = {
      db: pools.owner,
      verifiers: verifiers(keyring),
      log,
      alert: alertTarget(config),
    };
    const requestVerification = await withSessionLock(pools.owner, STARTUP_LOCK, async (): Promise<RequestVerification> => {
      await runMaintenance(pools.owner, maintenance, log);
      if (!options.jobs) return jobsDisabled;
      const boss = await startBoss(pools.owner, log, { sendOnly: options.jobs === 'send' });
      push('pg-boss stop', () => boss.stop({ graceful: true, close: false, wait: true }));
      if (options.jobs === 'send') return verificationRequests(boss, pools.owner);
      await scheduleMaintenance(boss, pools.owner, maintenance, log);
      const checkpoints = { db: pools.owner, archive, key: keyring.current, origin: keyring.origin, log, alert: verification.alert };
      const stopCheckpointTimer = await scheduleCheckpoints(boss, checkpoints, config.AUDITLEDGER_CHECKPOINT_INTERVAL);
      push('checkpoint timer', async () => stopCheckpointTimer());
      // Sealing writes bundles to the archive; without one, days stay unsealed (and appendable).
      if (archive) {
        await scheduleSeal(boss, { db: pools.owner, archive, keyring, log, alert: verification.alert, maxEvents: config.AUDITLEDGER_BUNDLE_MAX_EVENTS }, config.AUDITLEDGER_SEAL_CRON, config.AUDITLEDGER_SEAL_AFTER_DAYS, now);
      }
      return scheduleVerification(boss, verification, { incremental: config.AUDITLEDGER_VERIFY_CRON, full: config.AUDITLEDGER_FULL_VERIFY_CRON });
    });

    const metrics = new AppendMetrics();
    const groupCommit = new GroupCommit(pools.app, {
      maxEvents: config.AUDITLEDGER_GROUP_COMMIT_MAX_EVENTS,
      maxWaitMs: config.AUDITLEDGER_GROUP_COMMIT_WAIT_MS,
      acrossChains: config.AUDITLEDGER_GROUP_COMMIT_ACROSS_CHAINS,
      now,
      onCommit: metrics.recordCommit,
    });
    push('group commit flush', () => groupCommit.flushed());
    return {
      pools,
      embedded,
      app: { config, pools, groupCommit, metrics, keyring, archive, requestVerification, log, schemaVersion },
      push,
      stop,
      pending: () => stack.map((step) => step.name).reverse(),
    };
  } catch (error) {
    await stop().catch(() => undefined); // each failed step is logged
    throw error;
  }
}

/** POST /v1/verify of a process without jobs: there is no worker here to run it. */
const jobsDisabled: RequestVerification = async () => {
  throw new ApiError(503, 'jobs_disabled', 'verification runs need the jobs, which this process does not run (library option jobs: false)');
};

/**
 * Starts everything `auditledger serve` runs; stop() shuts it down in reverse order. `jobs`: as
 * RuntimeOptions.jobs (default true; `serve --workers` runs them in one worker, `send` in the others).
 */
export async function startService(config: Config, log: Logger, jobs: RuntimeOptions['jobs'] = true): Promise<Service> {
  const keyring = await loadKeyring(config, log);
  const runtime = await startRuntime(config, log, { command: 'serve', keyring, archive: openArchive(config), jobs });
  const { pools, embedded, push } = runtime;
  try {
    const admin = await ensureAdminToken(config.AUDITLEDGER_ADMIN_TOKEN, config.AUDITLEDGER_DATA_DIR, pools.owner, log);
    const credentials = new Credentials(pools.app, admin, {
      cacheMs: config.AUDITLEDGER_TOKEN_CACHE_SECONDS * 1000,
      usageFlushMs: config.AUDITLEDGER_TOKEN_USAGE_FLUSH_SECONDS * 1000,
      viewerKey: viewerTokenKey(keyring.current),
    });
    push('token usage flush', () => credentials.close());

    let fail: (error: Error) => void = () => undefined;
    const failed = new Promise<Error>((resolve) => (fail = resolve));
    // An external database may come back (the pools reconnect); the embedded one does not.
    const reachability = new Reachability(pools.owner, (config.AUDITLEDGER_DB_UNREACHABLE_SECONDS * 1000) / 3, log, () => {
      void embedded?.running().then((running) => running || fail(new Error('the embedded PostgreSQL stopped under the service')));
    });
    push('database probe', async () => reachability.close());
    const unreachable = { unansweredMs: () => reachability.unansweredMs(), limitMs: config.AUDITLEDGER_DB_UNREACHABLE_SECONDS * 1000 };

    const app = createApp({ ...runtime.app, credentials, unreachable });
    const server = await new Promise<Server>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, () => resolve(s as Server));
      s.once('error', (error: NodeJS.ErrnoException) => reject(listenError(error, config)));
    });
    push('HTTP drain', async () => {
      // Stop accepting, let in-flight requests finish, and drop idle keep-alive connections;
      // busy ones are told to close after their response, so clients cannot keep them open.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.on('request', (_request, response: ServerResponse) => response.setHeader('connection', 'close'));
      server.closeIdleConnections();
      await closed;
    });
    const { port } = server.address() as AddressInfo;
    const url = `http://${config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST}:${port}`;
    return { url, stop: runtime.stop, pending: runtime.pending, failed };
  } catch (error) {
    await runtime.stop().catch(() => undefined); // each failed step is logged
    throw error;
  }
}
