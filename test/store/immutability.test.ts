import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/ledger/uuid.js';
import { ensurePartitions } from '../../src/store/partitions.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const APPEND_ONLY = /audit records are append-only: (UPDATE|DELETE|TRUNCATE) on events(_\d{8})? is refused/;

describe('events are immutable', () => {
  let db: TestDatabase;
  let partition: string;
  const today = new Date();

  beforeAll(async () => {
    db = await createTestDatabase();
    const names = await ensurePartitions(db.pools.owner, today, 1);
    partition = names[1]!; // yesterday, today, tomorrow
    const env = uuidv7();
    await db.pools.owner.query(
      `INSERT INTO events (environment_id, seq, id, received_at, prev, hash, canonical, action)
       VALUES ($1, 1, $2, now(), $3, $3, '\\x7b7d', 'user.login')`,
      [env, uuidv7(), Buffer.alloc(32)],
    );
  });
  afterAll(() => db.drop());

  const statements = (table: string) => [
    ['UPDATE', `UPDATE ${table} SET action = 'forged'`],
    ['DELETE', `DELETE FROM ${table}`],
    ['TRUNCATE', `TRUNCATE ${table}`],
  ];

  describe.each(['events', 'partition'])('on %s', (target) => {
    const table = () => (target === 'events' ? 'events' : partition);

    it.each(['UPDATE', 'DELETE', 'TRUNCATE'])('%s by the owner raises the append-only rule', async (verb) => {
      const sql = statements(table()).find(([v]) => v === verb)![1]!;
      await expect(db.pools.owner.query(sql)).rejects.toThrow(APPEND_ONLY);
    });

    it.each(['UPDATE', 'DELETE', 'TRUNCATE'])('%s by the app role is refused', async (verb) => {
      const sql = statements(table()).find(([v]) => v === verb)![1]!;
      // The app role lacks the privilege, so PostgreSQL refuses before the trigger would.
      await expect(db.pools.app.query(sql)).rejects.toMatchObject({ code: '42501' });
    });
  });

  it('a superuser meets the same triggers (only disabling them gets past)', async () => {
    const su = new pg.Client({ connectionString: db.superuserUrl });
    await su.connect();
    try {
      await expect(su.query(`UPDATE events SET action = 'forged'`)).rejects.toThrow(APPEND_ONLY);
      await expect(su.query(`TRUNCATE ${partition}`)).rejects.toThrow(APPEND_ONLY);
    } finally {
      await su.end();
    }
  });

  it('the app role may insert and read events, and nothing else there', async () => {
    const { rows } = await db.pools.app.query<{ privilege_type: string }>(
      `SELECT privilege_type FROM information_schema.role_table_grants
        WHERE grantee = 'auditledger_app' AND table_name = 'events' ORDER BY privilege_type`,
    );
    expect(rows.map((r) => r.privilege_type)).toEqual(['INSERT', 'SELECT']);
    const before = await db.pools.app.query('SELECT count(*)::int AS n FROM events');
    expect(before.rows[0].n).toBe(1);
    await expect(db.pools.app.query(`ALTER TABLE events ADD COLUMN x int`)).rejects.toMatchObject({ code: '42501' });
    await expect(db.pools.app.query(`DROP TABLE ${partition}`)).rejects.toMatchObject({ code: '42501' });
  });

  it('every partition created later carries the rules', async () => {
    const far = new Date(today.getTime() + 30 * 86_400_000);
    const [, , , future] = await ensurePartitions(db.pools.owner, far, 2);
    await expect(db.pools.owner.query(`TRUNCATE ${future}`)).rejects.toThrow(APPEND_ONLY);
    await expect(db.pools.app.query(`TRUNCATE ${future}`)).rejects.toMatchObject({ code: '42501' });
    const grants = await db.pools.owner.query(
      `SELECT privilege_type FROM information_schema.role_table_grants
        WHERE grantee = 'auditledger_app' AND table_name = $1 ORDER BY privilege_type`,
      [future],
    );
    expect(grants.rows.map((r) => r.privilege_type)).toEqual(['INSERT', 'SELECT']);
  });
});
