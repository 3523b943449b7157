import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appliedVersion, migrate, readMigrations } from '../../src/store/migrate.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

describe('migrations', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ empty: true });
  });
  afterAll(() => db.drop());

  it('apply every file in sql/ to an empty database, in order, and record each', async () => {
    const files = await readMigrations();
    expect(files.map((m) => m.version)).toEqual([...files.map((m) => m.version)].sort((a, b) => a - b));
    // Two processes starting at once: the advisory lock makes one apply and the other find nothing.
    const [first, second] = await Promise.all([migrate(db.pools.owner), migrate(db.pools.owner)]);
    expect([...first, ...second]).toEqual(files.map((m) => m.name));
    const { rows } = await db.pools.owner.query('SELECT version, name FROM schema_migrations ORDER BY version');
    expect(rows).toEqual(files.map((m) => ({ version: m.version, name: m.name })));
    expect(await appliedVersion(db.pools.app)).toBe(files.at(-1)!.version);
  });

  it('create the tenant, token, chain and partitioned events tables', async () => {
    const { rows } = await db.pools.owner.query<{ relname: string; relkind: string }>(
      `SELECT relname, relkind FROM pg_class
        WHERE relname IN ('projects', 'environments', 'api_tokens', 'chain_heads', 'events') ORDER BY relname`,
    );
    expect(rows).toEqual([
      { relname: 'api_tokens', relkind: 'r' },
      { relname: 'chain_heads', relkind: 'r' },
      { relname: 'environments', relkind: 'r' },
      { relname: 'events', relkind: 'p' },
      { relname: 'projects', relkind: 'r' },
    ]);
    const pk = await db.pools.owner.query<{ def: string }>(
      `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'events'::regclass AND contype = 'p'`,
    );
    expect(pk.rows[0]?.def).toContain('received_at');
  });

  it('do nothing when run again', async () => {
    expect(await migrate(db.pools.owner)).toEqual([]);
  });

  it('roll back a failing migration whole and name it', async () => {
    const broken = [{ version: 999, name: '999_broken.sql', sql: 'CREATE TABLE half_done (id int); SELECT nonsense;' }];
    await expect(migrate(db.pools.owner, broken)).rejects.toThrow(/999_broken\.sql/);
    const { rows } = await db.pools.owner.query(`SELECT to_regclass('half_done') AS t`);
    expect(rows[0].t).toBeNull();
    const recorded = await db.pools.owner.query('SELECT FROM schema_migrations WHERE version = 999');
    expect(recorded.rowCount).toBe(0);
  });
});
