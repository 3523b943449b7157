import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjectDigest } from '../../src/ledger/personal.js';
import { createPools, type Pools } from '../../src/store/database.js';
import { eraseSubject, placeHold } from '../../src/store/erasure.js';
import { ensurePartitions } from '../../src/store/partitions.js';
import { createEnvironment, createProject } from '../../src/store/tenants.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

describe('erasure in the store', () => {
  let db: TestDatabase;
  /** Pools whose app pool has one connection: what a small AUDITLEDGER_DB_POOL_SIZE gives under load. */
  let narrow: Pools;
  beforeAll(async () => {
    db = await createTestDatabase();
    narrow = createPools(db.ownerUrl, undefined, 1);
    await ensurePartitions(db.pools.owner, new Date(), 1);
  });
  afterAll(async () => {
    await narrow?.end();
    await db?.drop();
  });

  it('needs one connection per request: concurrent erasures and holds finish on a pool of one', { timeout: 20_000 }, async () => {
    const projects = await Promise.all(['narrow-a', 'narrow-b', 'narrow-c'].map((name) => createProject(db.pools.owner, name)));
    for (const p of projects) for (const env of ['production', 'staging']) await createEnvironment(db.pools.owner, p.id, env);
    const key = Buffer.alloc(32, 7);
    const now = () => Date.now();
    const outcomes = await Promise.all(
      projects.flatMap((p) => [
        eraseSubject(narrow.app, { project: p.id, subjectDigest: subjectDigest(key, p.id, 'x'), requestedBy: 'test', now }),
        placeHold(narrow.app, { project: p.id, reason: 'test', placedBy: 'test', now }),
      ]),
    );
    expect(outcomes.filter((o) => o && 'ok' in o).map((o) => o && 'ok' in o && o.ok && o.erasure.chains.length)).toEqual([2, 2, 2]);
  });
});
