import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import type { TestProject } from 'vitest/node';
import { createPools } from '../src/store/database.js';
import { startEmbeddedPostgres } from '../src/store/embedded.js';
import { migrate } from '../src/store/migrate.js';
import { TEST_OWNER, TEMPLATE_DATABASE, withDatabase } from './helpers/urls.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the test cluster (DATABASE_URL, or an embedded server for this run). */
    superuserUrl: string;
  }
}

/**
 * One PostgreSQL per run: DATABASE_URL when set (a superuser), otherwise an embedded server in a
 * temporary folder. A migrated template database lets each test file clone its own database fast.
 */
export default async function setup(project: TestProject) {
  let superuserUrl = process.env.DATABASE_URL;
  let teardown = async () => {};
  if (!superuserUrl) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-test-'));
    await chmod(dir, 0o755); // the server runs as `postgres` when tests run as root
    const embedded = await startEmbeddedPostgres(dir, pino({ level: 'warn' }));
    superuserUrl = embedded.adminUrl();
    teardown = async () => {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    };
  }

  const admin = new pg.Client({ connectionString: superuserUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`);
    await admin.query(`DO $$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${TEST_OWNER.user}') THEN
        CREATE ROLE ${TEST_OWNER.user} LOGIN PASSWORD '${TEST_OWNER.password}';
      END IF;
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'auditledger_app') THEN
        CREATE ROLE auditledger_app NOLOGIN;
      END IF;
    END $$`);
    await admin.query(`GRANT auditledger_app TO ${TEST_OWNER.user}`);
    await admin.query(`CREATE DATABASE ${TEMPLATE_DATABASE} OWNER ${TEST_OWNER.user}`);
  } finally {
    await admin.end();
  }
  const pools = createPools(withDatabase(superuserUrl, TEMPLATE_DATABASE, TEST_OWNER), undefined, 1);
  try {
    await migrate(pools.owner);
  } finally {
    await pools.end();
  }

  project.provide('superuserUrl', superuserUrl);
  return teardown;
}
