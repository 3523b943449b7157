import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DISTRIBUTED_TABLES, DISTRIBUTION_COLUMN, REFERENCE_TABLES } from '../../src/store/distribution.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

/** Schemas that are not ours to distribute: PostgreSQL's own, and pg-boss's (stays on the coordinator). */
const FOREIGN_SCHEMAS = ['pg_catalog', 'information_schema', 'pg_toast', 'pgboss'];

const distributed = new Set<string>(DISTRIBUTED_TABLES);
const reference = new Set<string>(REFERENCE_TABLES);

describe('the schema distributes by chain (Citus)', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  it('classifies every table of the migrated database, and only those, as distributed or reference', async () => {
    const { rows } = await db.pools.owner.query<{ schema: string; name: string }>(
      `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname <> ALL($1) AND n.nspname NOT LIKE 'pg_temp%'
        ORDER BY 1, 2`,
      [FOREIGN_SCHEMAS],
    );
    expect(rows.filter((r) => r.schema !== 'public'), 'tables outside the public schema').toEqual([]);
    expect([...distributed].filter((t) => reference.has(t)), 'tables in both lists').toEqual([]);
    expect(rows.map((r) => r.name).sort()).toEqual([...distributed, ...reference].sort());
  });

  it(`gives every distributed table a non-null ${DISTRIBUTION_COLUMN} in its primary key and in each unique index`, async () => {
    const { rows } = await db.pools.owner.query<{ table: string; index: string | null; primary: boolean | null; keyed: boolean | null; column_not_null: boolean | null }>(
      `SELECT c.relname AS table, ic.relname AS index, i.indisprimary AS primary,
              $2 = ANY (SELECT a.attname FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) k
                          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k) AS keyed,
              (SELECT a.attnotnull FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $2) AS column_not_null
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
         LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisunique
         LEFT JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE c.relname = ANY($1)`,
      [[...distributed], DISTRIBUTION_COLUMN],
    );
    const violations = rows.flatMap((r) => [
      ...(r.column_not_null ? [] : [`${r.table}: no NOT NULL ${DISTRIBUTION_COLUMN}`]),
      ...(r.index && !r.keyed ? [`${r.table}: ${r.primary ? 'primary key' : 'unique index'} ${r.index} lacks ${DISTRIBUTION_COLUMN}`] : []),
    ]);
    expect([...new Set(violations)]).toEqual([]);
    for (const table of distributed) {
      expect(rows.some((r) => r.table === table && r.primary), `${table} has a primary key`).toBe(true);
    }
  });

  it(`lets a foreign key cross tables only to a reference table, or between distributed tables on ${DISTRIBUTION_COLUMN}`, async () => {
    const { rows } = await db.pools.owner.query<{ name: string; from: string; to: string; pairs: string[][] }>(
      `SELECT con.conname AS name, src.relname AS from, dst.relname AS to,
              array(SELECT ARRAY[sa.attname::text, da.attname::text]
                      FROM unnest(con.conkey, con.confkey) AS k(s, d)
                      JOIN pg_attribute sa ON sa.attrelid = con.conrelid AND sa.attnum = k.s
                      JOIN pg_attribute da ON da.attrelid = con.confrelid AND da.attnum = k.d) AS pairs
         FROM pg_constraint con JOIN pg_class src ON src.oid = con.conrelid JOIN pg_class dst ON dst.oid = con.confrelid
         JOIN pg_namespace n ON n.oid = src.relnamespace AND n.nspname = 'public'
        WHERE con.contype = 'f' AND NOT src.relispartition`,
    );
    expect(rows.length, 'foreign keys found').toBeGreaterThan(0);
    const violations = rows.filter((fk) => {
      if (reference.has(fk.to)) return false; // a reference table is on every node
      if (reference.has(fk.from)) return true; // a reference table cannot point into a shard
      return !fk.pairs.some(([from, to]) => from === DISTRIBUTION_COLUMN && to === DISTRIBUTION_COLUMN);
    });
    expect(violations.map((fk) => `${fk.name}: ${fk.from} -> ${fk.to} (${fk.pairs.map((p) => p.join('=')).join(', ')})`)).toEqual([]);
  });

  it('is what README "Scaling out" tells an operator to run', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const section = readme.split('## Scaling out')[1]!.split('\n## ')[0]!;
    const named = (fn: string) => [...section.matchAll(new RegExp(`${fn}\\('(\\w+)'`, 'g'))].map((m) => m[1]!).sort();
    expect(named('create_distributed_table')).toEqual([...distributed].sort());
    expect(named('create_reference_table')).toEqual([...reference].sort());
  });
});
