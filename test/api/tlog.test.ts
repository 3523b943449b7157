import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalArchive } from '../../src/archive/local.js';
import { runCheckpoints, type CheckpointDeps } from '../../src/jobs/checkpoints.js';
import { leafHash } from '../../src/ledger/hash.js';
import { createAuditLogClient } from '../../src/client/client.js';
import { verifierKey } from '../../src/ledger/keys.js';
import { createTestApp, createTenant, type TestApp } from '../helpers/app.js';
import { asSuperuser, createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startTestServer, type TestServer } from '../helpers/http.js';
import { runTlogcheck, tlogcheck } from '../helpers/tlogcheck.js';

type Tenant = Awaited<ReturnType<typeof createTenant>>;

describe('the chain as a C2SP tlog-tiles log', () => {
  let db: TestDatabase;
  let t: TestApp;
  let server: TestServer;
  let dir: string;
  let job: CheckpointDeps;
  let checker: string | undefined;
  let tenant: Tenant;
  let events: { id: string; seq: number }[];
  let oldCheckpoint: { tree_size: number; root: string };

  const get = (url: string, token = tenant.token) => t.request('GET', url, { token });
  const append = async (n: number, prefix: string) => {
    const res = await t.request('POST', '/v1/events', { token: tenant.token, body: { events: Array.from({ length: n }, (_, i) => ({ action: `${prefix}.${i}` })) } });
    return (await res.json()).events as { id: string; seq: number }[];
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-tlog-'));
    checker = tlogcheck(dir);
    db = await createTestDatabase();
    t = await createTestApp(db);
    server = await startTestServer(t);
    job = { db: db.pools.owner, archive: new LocalArchive(dir), key: t.keyring.current, origin: t.keyring.origin, log: pino({ level: 'silent' }) };
    tenant = await createTenant(t, 'tlog');
    expect((await get('/v1/tlog/checkpoint')).status).toBe(404);
    events = await append(500, 'first');
    await runCheckpoints(job);
    oldCheckpoint = await (await get('/v1/checkpoints/latest')).json();
    // 700 leaves: full level-0 tiles 0 and 1, partial tile 2 of width 188, level-1 tile 0 of width 2.
    events.push(...(await append(200, 'second')));
    await runCheckpoints(job);
  }, 900_000);
  afterAll(async () => {
    await server?.close();
    await t?.close();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the latest signed checkpoint as text, and the tiles its tree has at C2SP paths', async () => {
    const checkpoint = await get('/v1/tlog/checkpoint');
    expect(checkpoint.headers.get('content-type')).toMatch(/^text\/plain/);
    expect((await checkpoint.text()).split('\n').slice(1, 2)).toEqual(['700']);

    const widths: [string, number][] = [['tile/0/000', 256], ['tile/0/001', 256], ['tile/0/002.p/188', 188], ['tile/0/002.p/5', 5], ['tile/1/000.p/2', 2], ['tile/1/000.p/1', 1]];
    for (const [tile, width] of widths) {
      const res = await get(`/v1/tlog/${tile}`);
      expect(res.status, tile).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/octet-stream');
      expect((await res.arrayBuffer()).byteLength, tile).toBe(32 * width);
    }
    // Beyond the signed tree: not served, though tile 2 may be complete by now.
    for (const tile of ['tile/0/002', 'tile/0/002.p/189', 'tile/0/003.p/1', 'tile/1/000', 'tile/2/000.p/1']) {
      const res = await get(`/v1/tlog/${tile}`);
      expect(res.status, tile).toBe(404);
    }
    // Only the C2SP spelling names a tile: percent-encoded digits, slashes or dots are other paths.
    for (const bad of ['tile/0/2', 'tile/0/x000/002', 'tile/0/002.p/256', 'tile/0/002.p/0', 'tile/x/000', 'tile/0/000/', 'tile/0/%30%30%30', 'tile/0/000%2Ep%2F3', 'tile/%30/000']) {
      const res = await get(`/v1/tlog/${bad}`);
      expect(res.status, bad).toBe(400);
      expect((await res.json()).error.details[0].field).toBe('path');
    }
  });

  it('serves entry bundles: each event\'s canonical bytes, uint16-length-prefixed, hashing to the level-0 tile', async () => {
    const bundle = Buffer.from(await (await get('/v1/tlog/tile/entries/002.p/188')).arrayBuffer());
    const tile = Buffer.from(await (await get('/v1/tlog/tile/0/002.p/188')).arrayBuffer());
    const entries: Buffer[] = [];
    for (let at = 0; at < bundle.length; ) {
      const length = bundle.readUInt16BE(at);
      entries.push(bundle.subarray(at + 2, at + 2 + length));
      at += 2 + length;
    }
    expect(entries).toHaveLength(188);
    entries.forEach((entry, i) => expect(leafHash(entry).equals(tile.subarray(32 * i, 32 * i + 32)), `entry ${i}`).toBe(true));
    const event = await (await get(`/v1/events/${events[512]!.id}`)).json();
    expect(entries[0]!.toString('utf8')).toBe(event.canonical);
  });

  it('needs an events:read token', async () => {
    const writer = await createTenant(t, 'tlog-writer', ['events:write']);
    expect((await get('/v1/tlog/checkpoint', writer.token)).status).toBe(403);
    expect((await get('/v1/tlog/tile/0/000', writer.token)).status).toBe(403);
    expect((await t.request('GET', '/v1/tlog/tile/0/000')).status).toBe(401);
  });

  it("the SDK proves its receipts through the tiles alone, says when the checkpoint is behind, and refuses a lying tile", async () => {
    const client = createAuditLogClient({ url: server.url, token: tenant.token, vkey: verifierKey(t.keyring.current) });
    try {
      const hashes = new Map<number, string>();
      for (const index of [0, 255, 256, 300, 511, 512, 699]) {
        const stored = await (await get(`/v1/events/${events[index]!.id}`)).json();
        hashes.set(index, stored.hash);
        const result = await client.checkInclusion({ seq: index + 1, hash: stored.hash });
        expect(result, `leaf ${index}`).toMatchObject({ ok: true, seq: index + 1, checkpoint_tree_size: 700, pending: false, reason: null });
      }
      // Another event's hash at that place is not included: the check is not a rubber stamp.
      expect(await client.checkInclusion({ seq: 301, hash: hashes.get(0)! })).toMatchObject({ ok: false, reason: expect.stringMatching(/is not the receipt's event hash/) });
      await expect(client.checkInclusion({ seq: 0, hash: hashes.get(0)! })).rejects.toThrow(/^receipt\.seq: must be a whole number from 1, got 0$/);
      await expect(client.checkInclusion({ foo: 1 } as never)).rejects.toThrow(/^receipt\.seq: /);
      await expect(client.checkInclusion({ seq: 1, hash: 'nope' })).rejects.toThrow(/^receipt\.hash: must be the event hash/);
      const [next] = await client.createEvents([{ action: 'after.the.checkpoint' }]);
      expect(await client.checkInclusion(next)).toMatchObject({ ok: false, pending: true, checkpoint_tree_size: 700 });

      // Tile 0/1 (leaves 256..511) altered in the database: the proof it gives does not reach the signed root.
      const where = 'environment_id = $1 AND level = 0 AND tile_index = 1';
      const setTile = (hashes: Buffer) =>
        asSuperuser(db, async (su) => {
          await su.query('ALTER TABLE tiles DISABLE TRIGGER USER');
          await su.query(`UPDATE tiles SET hashes = $2 WHERE ${where}`, [tenant.environmentId, hashes]);
          await su.query('ALTER TABLE tiles ENABLE TRIGGER USER');
        });
      const { rows } = await db.pools.owner.query<{ hashes: Buffer }>(`SELECT hashes FROM tiles WHERE ${where}`, [tenant.environmentId]);
      const original = rows[0]!.hashes;
      const lying = Buffer.from(original);
      lying.writeUInt8(lying.readUInt8(40) ^ 0xff, 40);
      await setTile(lying);
      try {
        expect(await client.checkInclusion({ seq: 1, hash: hashes.get(0)! })).toMatchObject({ ok: true });
        expect(await client.checkInclusion({ seq: 301, hash: hashes.get(300)! })).toMatchObject({ ok: false, pending: false });
      } finally {
        await setTile(original);
      }
    } finally {
      await client.close();
    }
  });

  it('an independent tlog-tiles client (Go sumdb/tlog) verifies inclusion and consistency over HTTP, and refuses a tampered tile', async (ctx) => {
    if (!checker) ctx.skip();
    const vkey = verifierKey(t.keyring.current);
    const run = async (indexes: number[], extra: string[] = []) => {
      const args = ['-base', `${server.url}/v1/tlog`, '-header', `Authorization: Bearer ${tenant.token}`, '-vkey', vkey];
      for (const index of indexes) {
        const file = path.join(dir, `event-${index}.json`);
        await writeFile(file, (await (await get(`/v1/events/${events[index]!.id}`)).json()).canonical);
        args.push('-entry', file, '-index', String(index));
      }
      return runTlogcheck(checker!, [...args, ...extra]);
    };
    const ok = await run([0, 255, 256, 300, 511, 512, 650, 699], ['-old-size', String(oldCheckpoint.tree_size), '-old-root', oldCheckpoint.root]);
    expect(ok.output).toMatch(/ok: leaf 650 included/);
    expect(ok.output).toMatch(/ok: consistent with the tree of size 500/);
    expect(ok.code).toBe(0);

    // A wrong entry is caught: the checker is not a rubber stamp.
    const wrong = path.join(dir, 'wrong.json');
    await writeFile(wrong, '{"not":"the event"}');
    const args = ['-base', `${server.url}/v1/tlog`, '-header', `Authorization: Bearer ${tenant.token}`, '-vkey', vkey, '-entry', wrong, '-index', '3'];
    await expect(promisify(execFile)(checker!, args)).rejects.toMatchObject({ code: 1 });

    await asSuperuser(db, async (su) => {
      await su.query('ALTER TABLE tiles DISABLE TRIGGER USER');
      await su.query(`UPDATE tiles SET hashes = set_byte(hashes, 39, get_byte(hashes, 39) # 255) WHERE environment_id = $1 AND level = 0 AND tile_index = 1`, [tenant.environmentId]);
      await su.query('ALTER TABLE tiles ENABLE TRIGGER USER');
    });
    const tampered = await run([300]);
    expect(tampered.code, tampered.output).toBe(1);
  }, 120_000);
});
