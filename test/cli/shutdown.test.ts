import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveProcess, tokenOverHttp } from '../helpers/server.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const ADMIN = `shutdown-test-admin-${'x'.repeat(24)}`;

describe('graceful shutdown', () => {
  let db: TestDatabase;
  let dataDir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-shutdown-'));
  });
  afterAll(async () => {
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('SIGTERM under load: every acknowledged event is stored, and the process exits 0', async () => {
    const { cli, url } = await serveProcess({ DATABASE_URL: db.ownerUrl, AUDITLEDGER_DATA_DIR: dataDir, AUDITLEDGER_ADMIN_TOKEN: ADMIN });
    const { token, environmentId } = await tokenOverHttp(url, ADMIN);

    const acknowledged: { id: string; seq: number }[] = [];
    // 32 writers append until the server stops answering (bounded, in case it never does).
    const writer = async (w: number) => {
      for (let i = 0; i < 100_000; i++) {
        try {
          const res = await fetch(`${url}/v1/events`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ events: [{ action: 'load', fields: { w: String(w), i: String(i) } }, { action: 'load.2' }] }),
          });
          if (res.status === 201) acknowledged.push(...((await res.json()) as { events: { id: string; seq: number }[] }).events);
        } catch {
          return; // connection refused or reset: the server is gone
        }
      }
    };
    const writers = Array.from({ length: 32 }, (_, w) => writer(w));
    await new Promise((r) => setTimeout(r, 1500));
    cli.child.kill('SIGTERM');
    const exit = await cli.exited;
    await Promise.all(writers);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(acknowledged.length).toBeGreaterThan(100);

    const { rows } = await db.pools.owner.query<{ id: string; seq: number }>('SELECT id, seq FROM events WHERE environment_id = $1', [environmentId]);
    const stored = new Map(rows.map((r) => [r.id, r.seq]));
    const lost = acknowledged.filter((r) => stored.get(r.id) !== r.seq);
    expect(lost).toEqual([]);
    // Gapless: nothing half-written either.
    expect(rows.map((r) => r.seq).sort((a, b) => a - b)).toEqual(Array.from({ length: rows.length }, (_, i) => i + 1));
  });
});
