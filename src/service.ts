import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ensureAdminToken } from './admin-token.js';
import { createApp } from './api/app.js';
import { Credentials } from './api/credentials.js';
import type { Config } from './config.js';
import { createPools, provisionDatabase, type Pools } from './store/database.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './store/embedded.js';
import { migrate, readMigrations } from './store/migrate.js';
import { ensurePartitions } from './store/partitions.js';

const PARTITION_DAYS_AHEAD = 7;

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

/** Starts everything `auditledger serve` runs; stop() shuts it down in reverse order. */
export async function startService(config: Config, log: Logger): Promise<Service> {
  const { pools, embedded, schemaVersion } = await openDatabase(config, log);
  const closeDatabase = async () => {
    await pools.end();
    await embedded?.stop();
  };
  let credentials: Credentials;
  try {
    await ensurePartitions(pools.owner, new Date(), PARTITION_DAYS_AHEAD);
    const admin = await ensureAdminToken(config.AUDITLEDGER_ADMIN_TOKEN, config.AUDITLEDGER_DATA_DIR, pools.owner, log);
    credentials = new Credentials(pools.app, admin, {
      cacheMs: config.AUDITLEDGER_TOKEN_CACHE_SECONDS * 1000,
      usageFlushMs: config.AUDITLEDGER_TOKEN_USAGE_FLUSH_SECONDS * 1000,
    });
  } catch (error) {
    await closeDatabase();
    throw error;
  }

  const app = createApp({ config, pools, credentials, log, schemaVersion });
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, () => resolve(s));
    s.once('error', reject);
  }).catch(async (error) => {
    await credentials.close();
    await closeDatabase();
    throw error;
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST}:${port}`;

  let stopping: Promise<void> | undefined;
  return {
    url,
    stop() {
      stopping ??= (async () => {
        // Stop accepting, let in-flight requests finish, and drop idle keep-alive connections.
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        (server as Server).closeIdleConnections();
        await closed;
        await credentials.close();
        await closeDatabase();
      })();
      return stopping;
    },
  };
}
