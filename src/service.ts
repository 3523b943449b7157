import { serve } from '@hono/node-server';
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ensureAdminToken } from './admin-token.js';
import { createApp } from './api/app.js';
import { AppendMetrics } from './api/metrics.js';
import { viewerTokenKey } from './api/viewer-token.js';
import { Credentials } from './api/credentials.js';
import type { Config } from './config.js';
import { createPools, provisionDatabase, type Pools } from './store/database.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './store/embedded.js';
import { migrate, readMigrations } from './store/migrate.js';
import { GroupCommit } from './store/group-commit.js';
import { openArchive } from './archive/open.js';
import { S3Archive } from './archive/s3.js';
import { alertTarget } from './jobs/alert.js';
import { startBoss } from './jobs/boss.js';
import { scheduleCheckpoints } from './jobs/checkpoints.js';
import { scheduleSeal } from './jobs/seal.js';
import { scheduleVerification } from './jobs/verify.js';
import { loadKeyring, verifiers } from './signing-key.js';
import { runMaintenance, scheduleMaintenance, type MaintenanceOptions } from './jobs/maintenance.js';

export interface Service {
  url: string;
  stop(): Promise<void>;
}

/** The database URLs to use: the configured ones, or the embedded default's. */
async function database(config: Config, log: Logger) {
  if (config.DATABASE_URL) {
    return { ownerUrl: config.DATABASE_URL, appUrl: config.AUDITLEDGER_APP_DATABASE_URL, embedded: undefined };
  }
  const embedded = await startEmbeddedPostgres(config.AUDITLEDGER_DATA_DIR, log);
  try {
    return { ...(await provisionDatabase(embedded.adminUrl())), embedded };
  } catch (error) {
    await embedded.stop();
    throw error;
  }
}

/** Opens the database (embedded or configured), migrates it, and connects pools. */
export async function openDatabase(config: Config, log: Logger): Promise<{ pools: Pools; embedded?: EmbeddedPostgres; schemaVersion: number }> {
  const { ownerUrl, appUrl, embedded } = await database(config, log);
  const pools = createPools(ownerUrl, appUrl, config.AUDITLEDGER_DB_POOL_SIZE);
  try {
    const migrations = await readMigrations();
    const applied = await migrate(pools.owner, migrations);
    if (applied.length) log.info({ applied }, 'migrations applied');
    return { pools, embedded, schemaVersion: migrations.at(-1)?.version ?? 0 };
  } catch (error) {
    await pools.end();
    await embedded?.stop();
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

/** Starts everything `auditledger serve` runs; stop() shuts it down in reverse order. */
export async function startService(config: Config, log: Logger): Promise<Service> {
  const now = serverClock(config, log);
  const { pools, embedded, schemaVersion } = await openDatabase(config, log);
  const stack: (() => Promise<void>)[] = [async () => {
    await pools.end();
    await embedded?.stop();
  }];
  const unwind = async () => {
    while (stack.length) await stack.pop()!();
  };

  try {
    const maintenance: MaintenanceOptions = {
      partitionDaysAhead: config.AUDITLEDGER_PARTITION_DAYS_AHEAD,
      idempotencyHours: config.AUDITLEDGER_IDEMPOTENCY_HOURS,
      now,
    };
    await runMaintenance(pools.owner, maintenance, log);
    const boss = await startBoss(pools.owner, log);
    stack.push(() => boss.stop({ graceful: true, close: false, wait: true }));
    await scheduleMaintenance(boss, pools.owner, maintenance, log);

    const keyring = await loadKeyring(config, log);
    const archive = openArchive(config);
    // Checkpoints and bundles go only where nobody can delete them.
    if (archive instanceof S3Archive) await archive.assertObjectLock();
    const checkpoints = { db: pools.owner, archive, key: keyring.current, origin: keyring.origin, log };
    const stopCheckpointTimer = await scheduleCheckpoints(boss, checkpoints, config.AUDITLEDGER_CHECKPOINT_INTERVAL);
    stack.push(async () => stopCheckpointTimer());
    const verification = {
      db: pools.owner,
      verifiers: verifiers(keyring),
      log,
      alert: alertTarget(config),
    };
    const requestVerification = await scheduleVerification(boss, verification, config.AUDITLEDGER_VERIFY_CRON);
    await scheduleSeal(boss, { db: pools.owner, archive, keyring, log, alert: verification.alert }, config.AUDITLEDGER_SEAL_CRON, config.AUDITLEDGER_SEAL_AFTER_DAYS, now);

    const admin = await ensureAdminToken(config.AUDITLEDGER_ADMIN_TOKEN, config.AUDITLEDGER_DATA_DIR, pools.owner, log);
    const credentials = new Credentials(pools.app, admin, {
      cacheMs: config.AUDITLEDGER_TOKEN_CACHE_SECONDS * 1000,
      usageFlushMs: config.AUDITLEDGER_TOKEN_USAGE_FLUSH_SECONDS * 1000,
      viewerKey: viewerTokenKey(keyring.current),
    });
    stack.push(() => credentials.close());
    const metrics = new AppendMetrics();
    const groupCommit = new GroupCommit(pools.app, {
      maxEvents: config.AUDITLEDGER_GROUP_COMMIT_MAX_EVENTS,
      maxWaitMs: config.AUDITLEDGER_GROUP_COMMIT_WAIT_MS,
      now,
      onCommit: metrics.recordCommit,
    });
    stack.push(() => groupCommit.flushed());

    const app = createApp({ config, pools, credentials, groupCommit, metrics, keyring, archive, requestVerification, log, schemaVersion });
    const server = await new Promise<Server>((resolve, reject) => {
      const s = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, () => resolve(s as Server));
      s.once('error', reject);
    });
    stack.push(async () => {
      // Stop accepting, let in-flight requests finish, and drop idle keep-alive connections;
      // busy ones are told to close after their response, so clients cannot keep them open.
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.on('request', (_request, response: ServerResponse) => response.setHeader('connection', 'close'));
      server.closeIdleConnections();
      await closed;
    });
    const { port } = server.address() as AddressInfo;
    const url = `http://${config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST}:${port}`;

    let stopping: Promise<void> | undefined;
    return { url, stop: () => (stopping ??= unwind()) };
  } catch (error) {
    await unwind();
    throw error;
  }
}
