import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { StoredEvent } from '../../src/ledger/verify-events.js';
import { createPools, type Pools } from '../../src/store/database.js';
import { copyEventsBySeq } from '../../src/store/event-copy.js';
import { TEMPLATE_DATABASE, TEST_OWNER, withDatabase } from './urls.js';

export interface TestDatabase {
  name: string;
  /** The owner role's URL (not a superuser). */
  ownerUrl: string;
  /** A superuser URL of the same database, for tests that must bypass the rules. */
  superuserUrl: string;
  pools: Pools;
  drop(): Promise<void>;
}

async function superuserQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: inject('superuserUrl') });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * A database of this test file's own: a clone of the migrated template, or (with `empty`) a
 * database with no schema at all.
 */
export async function createTestDatabase(options: { empty?: boolean } = {}): Promise<TestDatabase> {
  const name = `auditledger_test_${randomBytes(6).toString('hex')}`;
  const template = options.empty ? 'template0' : TEMPLATE_DATABASE;
  await superuserQuery(`CREATE DATABASE ${name} OWNER ${TEST_OWNER.user} TEMPLATE ${template}`);
  const ownerUrl = withDatabase(inject('superuserUrl'), name, TEST_OWNER);
  const pools = createPools(ownerUrl, undefined, 5);
  return {
    name,
    ownerUrl,
    superuserUrl: withDatabase(inject('superuserUrl'), name),
    pools,
    async drop() {
      await pools.end();
      await superuserQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/**
 * Runs `work` as a superuser with the triggers of `events` disabled: what someone with full
 * database rights can do, and what the tamper tests do.
 */
export async function asSuperuser(db: TestDatabase, work: (su: pg.Client) => Promise<unknown>): Promise<void> {
  const su = new pg.Client({ connectionString: db.superuserUrl });
  await su.connect();
  try {
    await su.query('ALTER TABLE events DISABLE TRIGGER USER');
    await work(su);
  } finally {
    await su.query('ALTER TABLE events ENABLE TRIGGER USER');
    await su.end();
  }
}

/** Events 1 to `to` of a chain, as verification reads them. */
export async function readChain(pool: pg.Pool, environment: string, to: number): Promise<StoredEvent[]> {
  const client = await pool.connect();
  try {
    const rows: StoredEvent[] = [];
    for await (const batch of copyEventsBySeq(client, environment, 1, to)) rows.push(...batch);
    return rows;
  } finally {
    client.release();
  }
}

/** A database URL as the parts library mode's `database` option takes (host, port, user, password, database). */
export function databaseOptions(url: string) {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.slice(1),
  };
}
