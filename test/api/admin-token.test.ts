import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digest } from '../../src/api/credentials.js';
import { ensureAdminToken } from '../../src/admin-token.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

describe('the admin token', () => {
  let db: TestDatabase;
  let dir: string;
  const log = pino({ level: 'silent' });
  beforeAll(async () => {
    db = await createTestDatabase();
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-admin-'));
  });
  afterAll(async () => {
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('when configured, is the only one accepted and nothing is written', async () => {
    const configured = `configured-admin-token-${'z'.repeat(20)}`;
    expect(await ensureAdminToken(configured, dir, db.pools.owner, log)).toEqual([digest(configured)]);
    await expect(stat(path.join(dir, 'admin-token'))).rejects.toThrow();
    expect((await db.pools.owner.query('SELECT FROM admin_tokens')).rowCount).toBe(0);
  });

  it('is generated once, written with mode 0600, and stored only as a digest', async () => {
    const [first] = await Promise.all([
      ensureAdminToken(undefined, dir, db.pools.owner, log),
      ensureAdminToken(undefined, dir, db.pools.owner, log),
    ]);
    const file = path.join(dir, 'admin-token');
    const token = (await readFile(file, 'utf8')).trim();
    expect(token).toMatch(/^ala_[\w-]{43}$/);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(first).toEqual([digest(token)]);
    const { rows } = await db.pools.owner.query('SELECT digest FROM admin_tokens');
    expect(rows.map((r) => r.digest)).toEqual([digest(token)]);

    await rm(file);
    expect(await ensureAdminToken(undefined, dir, db.pools.owner, log)).toEqual([digest(token)]);
    await expect(stat(file)).rejects.toThrow(); // written once, never again
  });
});
