import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalArchive } from '../../src/archive/local.js';
import { checkpointKey, tileKey, tlogPrefix } from '../../src/archive/layout.js';
import { startBoss } from '../../src/jobs/boss.js';
import { CHECKPOINT_QUEUE, runCheckpoints, scheduleCheckpoints, type CheckpointDeps } from '../../src/jobs/checkpoints.js';
import { tilesGrown } from '../../src/ledger/tiles.js';
import { appendItem, appendToChain } from '../../src/store/append.js';
import { createTenant, createTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import pg from 'pg';
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

  it('signs many moved chains in one run (several at once), each at its head, tiles then note; a refused one leaves the rest signed', async () => {
    const archive = new LocalArchive(await tempFolder('auditledger-checkpoints-many-'));
    const tenants = [];
    for (let i = 0; i < 9; i++) {
      const tenant = await createTenant(t, `many-${i}`);
      for (let k = 0; k <= i % 3; k++) await append(tenant.token);
      tenants.push({ ...tenant, size: (i % 3) + 1 });
    }
    // Damage the stored compact range of one chain's head: that chain is refused, as alone.
    const damaged = tenants[4]!;
    const su = new pg.Client({ connectionString: db.superuserUrl });
    await su.connect();
    try {
      await su.query('SET session_replication_role = replica');
      await su.query("UPDATE chain_heads SET compact_range = '{}' WHERE environment_id = $1", [damaged.environmentId]);
    } finally {
      await su.end();
    }
    await runCheckpoints({ ...job, archive });
    const { rows } = await db.pools.owner.query<{ environment_id: string; tree_size: number }>(
      'SELECT environment_id, tree_size FROM checkpoints WHERE environment_id = ANY($1)',
      [tenants.map((tenant) => tenant.environmentId)],
    );
    const signed = tenants.filter((tenant) => tenant !== damaged);
    expect(rows.map((row) => [row.environment_id, row.tree_size]).sort()).toEqual(signed.map((tenant) => [tenant.environmentId, tenant.size]).sort());
    for (const tenant of signed) {
      const tiles = [...tilesGrown(0, tenant.size)].map((tile) => tileKey(tenant.projectId, tenant.environmentId, tile));
      const objects = [...tiles, checkpointKey(tenant.projectId, tenant.environmentId, tenant.size)];
      expect(await Promise.all(objects.map(async (key) => (await archive.sha256(key)) !== undefined))).toEqual(objects.map(() => true));
    }
    expect(await archive.list(`${tlogPrefix(damaged.projectId, damaged.environmentId)}/`)).toEqual([]);
  });

  it("a chain the archive refuses to write is logged by name and tried again next run; the run goes on with the others", async () => {
    const archive = new LocalArchive(await tempFolder('auditledger-checkpoints-refused-'));
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const tenants = [];
    for (let i = 0; i < 6; i++) {
      const tenant = await createTenant(t, `refused-${i}`);
      await append(tenant.token);
      tenants.push(tenant);
    }
    // A file where one chain's folder of notes belongs: its note cannot be written (ENOTDIR).
    const blocked = tenants[2]!;
    const notes = path.join(archive.location, path.dirname(checkpointKey(blocked.projectId, blocked.environmentId, 1)));
    await mkdir(path.dirname(notes), { recursive: true });
    await writeFile(notes, 'not a folder');
    await runCheckpoints({ ...job, archive, log });
    const signedOf = async (tenant: { environmentId: string }) =>
      (await db.pools.owner.query('SELECT tree_size FROM checkpoints WHERE environment_id = $1', [tenant.environmentId])).rows.map((row) => row.tree_size);
    expect(await Promise.all(tenants.map(signedOf))).toEqual(tenants.map((tenant) => (tenant === blocked ? [] : [1])));
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 50, msg: 'checkpoint not signed', project: blocked.projectId, environment: blocked.environmentId, reason: expect.stringContaining('ENOTDIR') }),
    );
    // Repaired, the next run signs it.
    await rm(notes);
    await runCheckpoints({ ...job, archive, log });
    expect(await signedOf(blocked)).toEqual([1]);
    expect(await archive.sha256(checkpointKey(blocked.projectId, blocked.environmentId, 1))).toBeDefined();
  });

  /** A webhook that keeps the alerts it receives, for `work` to run against. */
  async function withAlertHook(work: (alert: NonNullable<CheckpointDeps['alert']>, alerts: unknown[]) => Promise<void>): Promise<void> {
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
      await work({ url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts`, secret: 'webhook-secret', baseDelayMs: 10 }, alerts);
    } finally {
      await new Promise((resolve) => hook.close(resolve));
    }
  }

  it('an archived tile with other bytes than the stored tiles give is a finding of the chain, alerted once', async () => {
    await withAlertHook(async (alert, alerts) => {
      const archive = new LocalArchive(await tempFolder('auditledger-checkpoints-conflict-'));
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
    });
  });

  describe('tiles read from the database are archived only when they are the signed tree', () => {
    const SIZE = 1000; // full level-0 tiles 0 to 2, partial tiles 0/3 (width 232) and 1/0 (width 3)

    /** A chain of SIZE events, `tamper` run on its rows as a superuser (triggers off), then checkpoint runs into a new archive. */
    async function signTampered(name: string, tamper: (su: pg.Client, environment: string) => Promise<unknown>, size = SIZE) {
      const tenant = await createTenant(t, name);
      const ref = { project: tenant.projectId, environment: tenant.environmentId };
      for (let at = 0; at < size; at += 5000) {
        const items = Array.from({ length: Math.min(5000, size - at) }, (_, k) => appendItem({ action: `tile.check.${at + k}` }));
        await appendToChain(db.pools.app, ref, [items], Date.now());
      }
      const su = new pg.Client({ connectionString: db.superuserUrl });
      await su.connect();
      try {
        await su.query('SET session_replication_role = replica');
        await tamper(su, tenant.environmentId);
      } finally {
        await su.end();
      }
      return { tenant, archive: new LocalArchive(await tempFolder(`auditledger-checkpoints-${name}-`)) };
    }

    /** The chain's objects in the archive (the run archives other chains' too), sorted. */
    async function chainObjects(archive: LocalArchive, { projectId, environmentId }: { projectId: string; environmentId: string }): Promise<string[]> {
      const notes = await archive.list(checkpointKey(projectId, environmentId, 0).replace(/[^/]*$/, ''));
      return [...notes, ...(await archive.list(`${tlogPrefix(projectId, environmentId)}/`))].sort();
    }

    it('an honest chain: every tile of the tree, then the note', async () => {
      const { tenant, archive } = await signTampered('honest-tiles', async () => {});
      expect(await runCheckpoints({ ...job, archive })).toBe(1);
      const tiles = [...tilesGrown(0, SIZE)].map((tile) => tileKey(tenant.projectId, tenant.environmentId, tile));
      expect(await chainObjects(archive, tenant)).toEqual([checkpointKey(tenant.projectId, tenant.environmentId, SIZE), ...tiles].sort());
    });

    const cases = [
      {
        name: 'a full level-0 tile with a byte flipped',
        tamper: (su: pg.Client, environment: string) =>
          su.query('UPDATE tiles SET hashes = set_byte(hashes, 100, get_byte(hashes, 100) # 1) WHERE environment_id = $1 AND level = 0 AND tile_index = 1', [environment]),
        seq: 257,
        reason: "tile 0/1 in the database is not the signed tree's: its root is not the hash at its place in the tile one level up",
      },
      {
        // A stored row serves a partial tile before the events do (a full tile serves a narrower request).
        name: 'a row for the partial level-0 tile',
        tamper: (su: pg.Client, environment: string) =>
          su.query('INSERT INTO tiles (environment_id, level, tile_index, hashes, root) VALUES ($1, 0, 3, $2, $3)', [environment, Buffer.alloc(8192, 1), Buffer.alloc(32, 1)]),
        seq: 1,
        reason: "tiles 1/0, 0/3 in the database are not the signed tree's: the partial tiles do not give the signed root",
      },
      {
        name: 'a row for the level-1 tile',
        tamper: (su: pg.Client, environment: string) =>
          su.query('INSERT INTO tiles (environment_id, level, tile_index, hashes, root) VALUES ($1, 1, 0, $2, $3)', [environment, Buffer.alloc(8192, 2), Buffer.alloc(32, 2)]),
        seq: 1,
        reason: "tiles 1/0, 0/3 in the database are not the signed tree's: the partial tiles do not give the signed root",
      },
    ];
    it('a tree with a full level-1 tile, in batches: the tiles of the batches before the bad one, nothing after', async () => {
      // 65836 leaves: 257 full level-0 tiles, full tile 1/0 above the first 256, partial tiles 0/257, 1/1 and 2/0.
      const size = 65536 + 300;
      const flip = (level: number, index: number) => (su: pg.Client, environment: string) =>
        su.query('UPDATE tiles SET hashes = set_byte(hashes, 100, get_byte(hashes, 100) # 1) WHERE environment_id = $1 AND level = $2 AND tile_index = $3', [environment, level, index]);
      const { tenant, archive } = await signTampered('level-1-tile', flip(0, 200), size);
      expect(await runCheckpoints({ ...job, archive })).toBe(1);
      // Tile 0/200 is in the fourth batch of 64: the three before are written, checked against tile 1/0.
      const before = [...tilesGrown(0, size)].slice(0, 192).map((tile) => tileKey(tenant.projectId, tenant.environmentId, tile));
      expect(await chainObjects(archive, tenant)).toEqual(before.sort());

      // Tile 0/200 mended, tile 1/0 altered: found against the partial tile 2/0 before any tile of level 0 is written.
      const again = new LocalArchive(await tempFolder('auditledger-checkpoints-level-1-again-'));
      const su = new pg.Client({ connectionString: db.superuserUrl });
      await su.connect();
      try {
        await su.query('SET session_replication_role = replica');
        await flip(0, 200)(su, tenant.environmentId);
        await flip(1, 0)(su, tenant.environmentId);
      } finally {
        await su.end();
      }
      expect(await runCheckpoints({ ...job, archive: again })).toBe(0);
      expect(await chainObjects(again, tenant)).toEqual([]);
      const { findings } = await (await t.request('GET', '/v1/verify/runs', { token: tenant.token })).json();
      expect(findings.map((f: { seq: number; reason: string }) => [f.seq, f.reason])).toEqual([
        [1, "cannot archive the chain's tiles: tile 1/0 in the database is not the signed tree's: its root is not the hash at its place in the tile one level up"],
        [51201, "cannot archive the chain's tiles: tile 0/200 in the database is not the signed tree's: its root is not the hash at its place in the tile one level up"],
      ]);
    }, 120_000);

    for (const { name, tamper, seq, reason } of cases) {
      it(`${name}: no tile nor note archived, one finding alerted once`, async () => {
        await withAlertHook(async (alert, alerts) => {
          const { tenant, archive } = await signTampered(name.replaceAll(' ', '-'), tamper);
          const alerted = { ...job, archive, alert };
          expect(await runCheckpoints(alerted)).toBe(1);
          // Signed and recorded, not archived: the batch holding the bad tile was the only one.
          expect(await chainObjects(archive, tenant)).toEqual([]);
          // The backfill meets it again in the same run, and every run after: still one finding, one alert.
          expect(await runCheckpoints(alerted)).toBe(0);
          expect(await chainObjects(archive, tenant)).toEqual([]);
          const full = `cannot archive the chain's tiles: ${reason}`;
          const { findings } = await (await t.request('GET', '/v1/verify/runs', { token: tenant.token })).json();
          expect(findings).toEqual([expect.objectContaining({ seq, reason: full })]);
          expect(alerts).toEqual([expect.objectContaining({ environment: tenant.environmentId, findings: [{ seq, reason: full }] })]);
        });
      });
    }
  });

  it("a run expires after a minute, not pg-boss's 15: a process that dies in a run holds back the next only that long", async () => {
    const boss = await startBoss(db.pools.owner, pino({ level: 'silent' }), { sendOnly: true });
    try {
      // The run it asks for keeps the expiry it was sent with, worked or not (sendOnly: no upkeep archives it meanwhile).
      const stop = await scheduleCheckpoints(boss, job, 60);
      stop();
      const { rows } = await db.pools.owner.query<{ seconds: number }>(
        `SELECT extract(epoch FROM expire_in)::int AS seconds FROM pgboss.job WHERE name = $1`,
        [CHECKPOINT_QUEUE],
      );
      expect(rows.map((row) => row.seconds)).toEqual([60]);
    } finally {
      await boss.stop({ graceful: false, wait: true });
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
