import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const APP_ROLE = 'auditledger_app';
const OWNER_ROLE = 'auditledger_owner';
const DATABASE = 'auditledger';

// int8 (seq, counts) as JS numbers: sequence numbers stay far below 2^53.
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * pg's Client, closing its socket when the connection fails. pg fails its own SCRAM step (no
 * password given to a server that wants one) without closing the socket, and pg-pool drops such a
 * client without ending it: the socket then holds the process open and a server connection slot
 * until the server's authentication_timeout (60 s by default).
 */
class ClosingClient extends pg.Client {
  override connect(): Promise<pg.Client>;
  override connect(callback: (error: Error) => void): void;
  override connect(callback?: (error: Error) => void): Promise<pg.Client> | void {
    const close = () => (this as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    if (!callback) return super.connect().catch((error: unknown) => {
      close();
      throw error;
    });
    super.connect((error: Error) => {
      if (error) close();
      callback(error);
    });
  }
}

/** A pg.Pool whose connections are ClosingClients; `types` parses int8 as numbers. */
export function createPool(config: pg.PoolConfig): pg.Pool {
  return new pg.Pool({ types, ...config, Client: ClosingClient });
}

export interface Pools {
  /** Owner role: migrations, partition upkeep and other maintenance. */
  owner: pg.Pool;
  /** App role: every API request. INSERT and SELECT on events, nothing more there. */
  app: pg.Pool;
  end(): Promise<void>;
}

/** Connections of the owner pool: migrations, jobs (the checkpoint job works on this many chains at once) and admin work. */
export const OWNER_POOL_SIZE = 4;

/**
 * The owner and app pools. A new connection that the server does not complete within
 * `connectTimeoutMs` (0: no limit) fails, so a database that stopped taking connections fails
 * requests (503) instead of holding them for ever. `ssl`: node-postgres's TLS options, for settings
 * a URL cannot carry (library mode's `database.ssl`).
 */
export function createPools(ownerUrl: string, appUrl: string | undefined, appPoolSize: number, connectTimeoutMs = 0, ssl?: pg.PoolConfig['ssl']): Pools {
  const tls = ssl === undefined ? {} : { ssl };
  const owner = createPool({ connectionString: ownerUrl, max: OWNER_POOL_SIZE, connectionTimeoutMillis: connectTimeoutMs, ...tls });
  // Without a login for the app role, the owner's connections switch to it at start-up.
  const app = createPool({
    connectionString: appUrl ?? ownerUrl,
    max: appPoolSize,
    connectionTimeoutMillis: connectTimeoutMs,
    ...tls,
    ...(appUrl ? {} : { options: `-c role=${APP_ROLE}` }),
  });
  // An idle client losing its server (restart, failover) must not crash the process.
  owner.on('error', () => undefined);
  app.on('error', () => undefined);
  return {
    owner,
    app,
    async end() {
      await Promise.all([owner.end(), app.end()]);
    },
  };
}

/**
 * Runs `work` in one transaction on `client` (after trillian's ReadWriteTransaction): COMMIT when
 * it resolves, ROLLBACK when it throws, and the error is thrown on. `work` never commits or rolls
 * back by itself; a rollback that fails (the connection is gone) does not hide the first error.
 */
export async function inTransaction<T>(client: pg.PoolClient, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** inTransaction on a client of `db`, released afterwards whatever happened. */
export async function withTransaction<T>(db: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    return await inTransaction(client, work);
  } finally {
    client.release();
  }
}

/**
 * Runs `work` holding the session-level advisory lock `key` on a client of `db`: processes that
 * ask for the same key (on one database) run it one after another. With `{ wait: false }`, when
 * another holds the lock, `work` does not run and the answer is undefined.
 */
export function withSessionLock<T>(db: pg.Pool, key: bigint, work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
export function withSessionLock<T>(db: pg.Pool, key: bigint, work: (client: pg.PoolClient) => Promise<T>, options: { wait: false }): Promise<T | undefined>;
export async function withSessionLock<T>(
  db: pg.Pool,
  key: bigint,
  work: (client: pg.PoolClient) => Promise<T>,
  options: { wait: boolean } = { wait: true },
): Promise<T | undefined> {
  const client = await db.connect();
  try {
    if (options.wait) await client.query('SELECT pg_advisory_lock($1)', [key.toString()]);
    else {
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [key.toString()]);
      if (!rows[0]?.locked) return undefined;
    }
    try {
      return await work(client);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [key.toString()]).catch(() => undefined);
    }
  } finally {
    client.release();
  }
}

/**
 * The lock under which a process does the start-up work that creates schema objects (partitions,
 * pg-boss's schema and queues): processes starting together on one database deadlock there otherwise.
 */
export const STARTUP_LOCK = 0x61756469746c7375n; // "auditlsu"

function withCredentials(url: string, user: string, password: string, database: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  u.pathname = `/${database}`;
  return u.toString();
}

/**
 * Sets up the embedded default's database as a DBA would on a managed server: an owner login
 * that runs migrations, an app login the API uses, and the `auditledger` database owned by the
 * owner. Passwords are fresh on every start, so none has to be kept on disk.
 */
export async function provisionDatabase(superuserUrl: string): Promise<{ ownerUrl: string; appUrl: string }> {
  const client = new pg.Client({ connectionString: superuserUrl });
  await client.connect();
  try {
    const ownerPassword = randomBytes(24).toString('base64url');
    const appPassword = randomBytes(24).toString('base64url');
    for (const [role, password] of [
      [OWNER_ROLE, ownerPassword],
      [APP_ROLE, appPassword],
    ] as const) {
      const exists = await client.query('SELECT FROM pg_roles WHERE rolname = $1', [role]);
      const verb = exists.rowCount ? 'ALTER' : 'CREATE';
      await client.query(`${verb} ROLE ${role} LOGIN PASSWORD '${password}'`);
    }
    await client.query(`GRANT ${APP_ROLE} TO ${OWNER_ROLE}`);
    const db = await client.query('SELECT FROM pg_database WHERE datname = $1', [DATABASE]);
    if (!db.rowCount) await client.query(`CREATE DATABASE ${DATABASE} OWNER ${OWNER_ROLE}`);
    return {
      ownerUrl: withCredentials(superuserUrl, OWNER_ROLE, ownerPassword, DATABASE),
      appUrl: withCredentials(superuserUrl, APP_ROLE, appPassword, DATABASE),
    };
  } finally {
    await client.end();
  }
}
