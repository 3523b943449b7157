import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withSessionLock, withTransaction } from '../../src/store/database.js';
import { withSealLock } from '../../src/store/seals.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

describe('withTransaction', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.pools.owner.query('CREATE TABLE tx_probe (n int)');
  });
  afterAll(() => db.drop());

  const count = async () => (await db.pools.owner.query<{ n: number }>('SELECT count(*)::int AS n FROM tx_probe')).rows[0]!.n;

  it('commits what the work wrote when it resolves, and answers its result', async () => {
    const result = await withTransaction(db.pools.owner, async (client) => {
      await client.query('INSERT INTO tx_probe VALUES (1), (2)');
      return 'done';
    });
    expect(result).toBe('done');
    expect(await count()).toBe(2);
  });

  it('rolls back everything the work wrote when it throws, throws the same error, and frees the client', async () => {
    const boom = new Error('boom');
    await expect(
      withTransaction(db.pools.owner, async (client) => {
        await client.query('INSERT INTO tx_probe VALUES (3)');
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await count()).toBe(2);
    // A failed statement aborts the transaction: the rollback still ends it and the pool goes on.
    await expect(withTransaction(db.pools.owner, (client) => client.query('SELECT * FROM no_such_table'))).rejects.toThrow(/no_such_table/);
    expect(db.pools.owner.waitingCount).toBe(0);
    expect(await count()).toBe(2);
  });

  it('session locks: a second holder waits its turn, or with wait: false (the seal lock) does not run at all', async () => {
    const order: string[] = [];
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const first = withSessionLock(db.pools.owner, 42n, async () => {
      order.push('first in');
      await held;
      order.push('first out');
    });
    await new Promise((r) => setTimeout(r, 50));
    const second = withSessionLock(db.pools.owner, 42n, async () => order.push('second'));
    expect(await withSessionLock(db.pools.owner, 42n, async () => 'ran', { wait: false })).toBeUndefined();
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(['first in', 'first out', 'second']);

    const nested = await withSealLock(db.pools.owner, () => withSealLock(db.pools.owner, async () => 'ran'));
    expect(nested).toBeUndefined(); // another seal holds it: nothing runs
    expect(await withSealLock(db.pools.owner, async () => 'ran')).toBe('ran');
  });
});
