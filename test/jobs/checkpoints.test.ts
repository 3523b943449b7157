import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalArchive } from '../../src/archive/local.js';
import { tileKey } from '../../src/archive/layout.js';
import { runCheckpoints, type CheckpointDeps } from '../../src/jobs/checkpoints.js';
import { createTenant, createTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { serveProcess, tokenOverHttp } from '../helpers/server.js';

const INTERVAL_MS = 60_000;

describe('checkpoint schedule', () => {
  let db: TestDatabase;
  let t: TestApp;
  let job: CheckpointDeps;
  const folders: string[] = [];
  const tempFolder = async (prefix: string) => {
    folders.push(await mkdtemp(path.join(os.tmpdir(), prefix)));
    return folders.at(-1)!;
  };
  beforeAll(async () => {
    db = await createTestDatabase();
    t = await createTestApp(db);
    const archive = new LocalArchive(await tempFolder('auditledger-checkpoints-'));
    job = { db: db.pools.owner, archive, key: t.keyring.current, origin: t.keyring.origin, log: pino({ level: 'silent' }) };
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
    await Promise.all(folders.map((folder) => rm(folder, { recursive: true, force: true })));
  });

  const append = async (token: string) => expect((await t.request('POST', '/v1/events', { token, body: { action: 'a' } })).status).toBe(201);
  const latestSignedAt = async (environment: string) =>
    (await db.pools.owner.query('SELECT max(created_at) AS at FROM checkpoints WHERE environment_id = $1', [environment])).rows[0].at as Date;

  it('signs a moved chain once its latest checkpoint is an interval old, whatever ran before', async () => {
    const tenant = await createTenant(t, 'due');
    await append(tenant.token);
    // No checkpoint yet: due at once.
    expect(await runCheckpoints(job, { intervalMs: INTERVAL_MS, now: Date.now() })).toBe(1);
    // created_at has microseconds, a Date milliseconds: round up.
    const signedAt = (await latestSignedAt(tenant.environmentId)).getTime() + 1;

    await append(tenant.token);
    // However often a run is asked for (each start of a process asks), nothing before the interval...
    for (const elapsed of [0, 1_000, INTERVAL_MS / 2, INTERVAL_MS - 1]) {
      expect(await runCheckpoints(job, { intervalMs: INTERVAL_MS, now: signedAt + elapsed }), `${elapsed} ms`).toBe(0);
    }
    // ...and the first run once it has elapsed since the latest checkpoint signs.
    expect(await runCheckpoints(job, { intervalMs: INTERVAL_MS, now: signedAt + INTERVAL_MS })).toBe(1);
    expect(await runCheckpoints(job, { intervalMs: INTERVAL_MS, now: signedAt + 2 * INTERVAL_MS })).toBe(0); // nothing moved
    const { tree_size } = await (await t.request('GET', '/v1/checkpoints/latest', { token: tenant.token })).json();
    expect(tree_size).toBe(2);
  });

  it('without a schedule (auditledger seal) signs every moved chain', async () => {
    const tenant = await createTenant(t, 'unscheduled');
    await append(tenant.token);
    expect(await runCheckpoints(job, { intervalMs: INTERVAL_MS, now: Date.now() })).toBe(1);
    await append(tenant.token);
    expect(await runCheckpoints(job)).toBe(1);
  });

  it('an archived tile with other bytes than the stored tiles give is a finding of the chain, alerted once', async () => {
    const alerts: unknown[] = [];
    const hook: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        alerts.push(JSON.parse(body));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    try {
      const archive = new LocalArchive(await tempFolder('auditledger-checkpoints-conflict-'));
      const alert = { url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts`, secret: 'webhook-secret', baseDelayMs: 10 };
      const alerted = { ...job, archive, alert };
      const tenant = await createTenant(t, 'tile-conflict');
      await append(tenant.token);
      expect(await runCheckpoints(alerted)).toBe(1);
      // The partial tile of the next tree is in the archive already, with other bytes (write-once: it stays).
      const key = tileKey(tenant.projectId, tenant.environmentId, { level: 0, index: 0, width: 2 });
      await archive.put(key, Buffer.alloc(64, 7));
      await append(tenant.token);
      expect(await runCheckpoints(alerted)).toBe(1);
      // The backfill meets it again in the same run, and every run after: still one finding, one alert.
      await runCheckpoints(alerted);
      const reason = `cannot archive the chain's tiles: archive object ${key} exists with different bytes; archived objects are never replaced`;
      const { runs, findings } = await (await t.request('GET', '/v1/verify/runs', { token: tenant.token })).json();
      expect(findings).toEqual([expect.objectContaining({ seq: 1, reason })]);
      expect(runs).toEqual([expect.objectContaining({ requested_by: 'checkpoints', ok: false, first_failure: { seq: 1, reason } })]);
      expect(alerts).toEqual([
        expect.objectContaining({ type: 'auditledger.verification.failed', project: tenant.projectId, environment: tenant.environmentId, findings: [{ seq: 1, reason }] }),
      ]);
    } finally {
      await new Promise((resolve) => hook.close(resolve));
    }
  });

  it('a service restarted well within the interval still signs a chain that is due', async () => {
    const dataDir = await tempFolder('auditledger-checkpoints-serve-');
    const admin = `checkpoint-test-admin-${'x'.repeat(20)}`;
    // An hour: no process here lives long enough for a timer of its own to reach it.
    const env = { DATABASE_URL: db.ownerUrl, AUDITLEDGER_DATA_DIR: dataDir, AUDITLEDGER_ADMIN_TOKEN: admin, AUDITLEDGER_CHECKPOINT_INTERVAL: '3600' };
    const first = await serveProcess(env);
    let token: string;
    try {
      ({ token } = await tokenOverHttp(first.url, admin));
      const res = await fetch(`${first.url}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ action: 'before.restart' }),
      });
      expect(res.status).toBe(201);
    } finally {
      first.cli.child.kill('SIGTERM');
      await first.cli.exited;
    }
    const second = await serveProcess(env);
    try {
      let status = 0;
      for (let i = 0; i < 60 && status !== 200; i++) {
        await new Promise((r) => setTimeout(r, 500));
        status = (await fetch(`${second.url}/v1/checkpoints/latest`, { headers: { authorization: `Bearer ${token}` } })).status;
      }
      expect(status).toBe(200);
    } finally {
      second.cli.child.kill('SIGTERM');
      await second.cli.exited;
    }
  }, 120_000);
});
