import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { inTransaction, withSessionLock } from './database.js';

const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));
/** Serializes migrations of one database across processes (any fixed 64-bit number). */
const MIGRATION_LOCK = 0x61756469746c6564n; // "auditled"

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export async function readMigrations(dir = SQL_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d+_[\w-]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: Number.parseInt(file, 10),
      name: file,
      sql: await readFile(path.join(dir, file), 'utf8'),
    })),
  );
}

/**
 * Applies the numbered files in sql/ that are not yet recorded, each in its own transaction.
 * Two processes starting at once queue on an advisory lock; the second finds nothing to do.
 * Returns the names applied.
 */
export async function migrate(pool: pg.Pool, migrations?: Migration[]): Promise<string[]> {
  const pending = migrations ?? (await readMigrations());
  const applied: string[] = [];
  await withSessionLock(pool, MIGRATION_LOCK, async (client) => {
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations');
    const done = new Set(rows.map((r) => r.version));
    for (const migration of pending) {
      if (done.has(migration.version)) continue;
      await inTransaction(client, async () => {
        await client.query(migration.sql);
        await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      }).catch((error: unknown) => {
        throw new Error(`migration ${migration.name} failed: ${(error as Error).message}`, { cause: error });
      });
      applied.push(migration.name);
    }
  });
  return applied;
}

/** The newest migration version recorded in the database (throws when none ever ran). */
export async function appliedVersion(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ version: number | null }>('SELECT max(version) AS version FROM schema_migrations');
  return rows[0]?.version ?? 0;
}
