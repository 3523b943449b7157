import { chmod, cp, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalArchive } from '../../src/archive/local.js';
import { checkpointKey, parseTileKey, tileKey, tlogPrefix } from '../../src/archive/layout.js';
import { runCheckpoints, type CheckpointDeps } from '../../src/jobs/checkpoints.js';
import { verifierKey } from '../../src/ledger/keys.js';
import { createTestApp, createTenant, type TestApp } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { asSuperuser, createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { runTlogcheck, tlogcheck } from '../helpers/tlogcheck.js';

type Tenant = Awaited<ReturnType<typeof createTenant>>;

describe('the archive holds each chain as a static C2SP tlog-tiles log', () => {
  let db: TestDatabase;
  let t: TestApp;
  let dir: string;
  let archiveDir: string;
  let job: CheckpointDeps;
  let checker: string | undefined;
  let tenant: Tenant;
  let events: { id: string; seq: number }[];
  let vkey: string;

  const append = async (n: number, prefix: string) => {
    const res = await t.request('POST', '/v1/events', { token: tenant.token, body: { events: Array.from({ length: n }, (_, i) => ({ action: `${prefix}.${i}` })) } });
    return (await res.json()).events as { id: string; seq: number }[];
  };
  const tileKeys = async () => (await new LocalArchive(archiveDir).list(`${tlogPrefix(tenant.projectId, tenant.environmentId)}/`)).map((key) => key.split('/').slice(3).join('/'));
  const chain = () => `${tenant.projectId}/${tenant.environmentId}`;
  const canonicalFile = async (seq: number) => {
    const file = path.join(dir, `event-${seq}.json`);
    await writeFile(file, (await (await t.request('GET', `/v1/events/${events[seq - 1]!.id}`, { token: tenant.token })).json()).canonical);
    return file;
  };
  /** A tlog-tiles base folder for tlogcheck: the note of `size` as its checkpoint, the chain's tile/ folder of `archive`. */
  const base = async (archive: string, size: number) => {
    const folder = await mkdtemp(path.join(dir, 'base-'));
    await cp(path.join(archive, checkpointKey(tenant.projectId, tenant.environmentId, size)), path.join(folder, 'checkpoint'));
    await symlink(path.join(archive, tlogPrefix(tenant.projectId, tenant.environmentId), 'tile'), path.join(folder, 'tile'));
    return folder;
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-archive-tiles-'));
    archiveDir = path.join(dir, 'archive');
    checker = tlogcheck(dir);
    db = await createTestDatabase();
    t = await createTestApp(db);
    job = { db: db.pools.owner, archive: new LocalArchive(archiveDir), key: t.keyring.current, origin: t.keyring.origin, log: pino({ level: 'silent' }) };
    tenant = await createTenant(t, 'archive-tiles');
    vkey = verifierKey(t.keyring.current);
    events = await append(500, 'first');
    await runCheckpoints(job);
    events.push(...(await append(200, 'second')));
    await runCheckpoints(job);
  }, 900_000);
  afterAll(async () => {
    await t?.close();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes, with each checkpoint, the full tiles it completes and its partial tiles, each width its own object, bytes as served over HTTP', async () => {
    // 500 = tile 0/0 + 244; 700 = tiles 0/0, 0/1 + 188; level 1 of width 1, then 2.
    expect(await tileKeys()).toEqual(['tile/0/000', 'tile/0/001', 'tile/0/001.p/244', 'tile/0/002.p/188', 'tile/1/000.p/1', 'tile/1/000.p/2']);
    for (const key of await tileKeys()) {
      const stored = await readFile(path.join(archiveDir, tlogPrefix(tenant.projectId, tenant.environmentId), key));
      const served = Buffer.from(await (await t.request('GET', `/v1/tlog/${key}`, { token: tenant.token })).arrayBuffer());
      expect(stored.equals(served), key).toBe(true);
    }
  });

  it('builds and parses tile keys as each other\'s inverse', () => {
    const key = tileKey('p', 'e', { level: 1, index: 1234067, width: 7 });
    expect(key).toBe('tlog/p/e/tile/1/x001/x234/067.p/7');
    expect(parseTileKey(key)).toEqual({ project: 'p', environment: 'e', tile: { kind: 'hash', level: 1, index: 1234067, width: 7 } });
    for (const bad of ['tlog/p/e/tile/1/1234067', 'tlog/p/e/tile/entries/000', 'tlog/p/tile/0/000', 'tiles/p/e/tile/0/000']) expect(parseTileKey(bad), bad).toBeUndefined();
  });

  it('an independent tlog-tiles client (Go sumdb/tlog) verifies the archive folder alone, and refuses a tampered tile', async (ctx) => {
    if (!checker) ctx.skip();
    const entries = [] as string[];
    for (const seq of [1, 256, 257, 500, 700]) entries.push('-entry', await canonicalFile(seq), '-index', String(seq - 1));
    const ok = await runTlogcheck(checker!, ['-base', await base(archiveDir, 700), '-vkey', vkey, ...entries]);
    expect(ok.output).toMatch(/ok: leaf 699 included/);
    expect(ok.code, ok.output).toBe(0);
    // The older checkpoint's tree, from its own partial tiles.
    const old = await runTlogcheck(checker!, ['-base', await base(archiveDir, 500), '-vkey', vkey, '-entry', await canonicalFile(300), '-index', '299']);
    expect(old.code, old.output).toBe(0);

    const tampered = path.join(dir, 'tampered');
    await cp(archiveDir, tampered, { recursive: true });
    const tile = path.join(tampered, tileKey(tenant.projectId, tenant.environmentId, { level: 0, index: 1, width: 256 }));
    const bytes = await readFile(tile);
    bytes[40]! ^= 1;
    await chmod(tile, 0o644);
    await writeFile(tile, bytes);
    const refused = await runTlogcheck(checker!, ['-base', await base(tampered, 700), '-vkey', vkey, '-entry', await canonicalFile(300), '-index', '299']);
    expect(refused.code, refused.output).toBe(1);
  }, 120_000);

  it('verify-proof --archive proves an event from the note and O(log n) tiles, and refuses a tampered tile', async () => {
    const ok = runCli(['verify-proof', '--archive', archiveDir, '--chain', chain(), '--seq', '300', '--event', await canonicalFile(300), '--key', vkey], {});
    expect((await ok.exited).code, ok.output()).toBe(0);
    expect(ok.output()).toMatch(/^ok: event .* \(seq 300\) is included in the signed checkpoint of .* at size 700/);
    const older = runCli(['verify-proof', '--archive', archiveDir, '--chain', chain(), '--seq', '12', '--size', '500', '--key', vkey], {});
    expect((await older.exited).code, older.output()).toBe(0);
    expect(older.output()).toMatch(/^ok: leaf index 11 \(seq 12; its hash only: no event bytes were given to check\) is included .* at size 500/);
    const wrongEvent = runCli(['verify-proof', '--archive', archiveDir, '--chain', chain(), '--seq', '301', '--event', await canonicalFile(300), '--key', vkey], {});
    expect((await wrongEvent.exited).code).toBe(1);
    expect(wrongEvent.output()).toMatch(/^FAILED: the event bytes do not hash to leaf_hash/);
    const beyond = runCli(['verify-proof', '--archive', archiveDir, '--chain', chain(), '--seq', '701', '--key', vkey], {});
    expect((await beyond.exited).code).toBe(1);
    expect(beyond.output()).toMatch(/FAILED: seq 701 is not in the tree of size 700/);
    const usage = runCli(['verify-proof', '--archive', archiveDir, '--chain', chain(), '--seq', 'x', '--key', vkey], {});
    expect((await usage.exited).code).toBe(2);
    expect(usage.output()).toMatch(/--seq takes a positive integer/);

    const tampered = path.join(dir, 'tampered-proof');
    await cp(archiveDir, tampered, { recursive: true });
    // Tile 0/2 of width 188 holds leaf 599's sibling path below the level-1 tile: change one hash.
    const tile = path.join(tampered, tileKey(tenant.projectId, tenant.environmentId, { level: 0, index: 2, width: 188 }));
    const bytes = await readFile(tile);
    bytes[0]! ^= 1;
    await chmod(tile, 0o644);
    await writeFile(tile, bytes);
    const refused = runCli(['verify-proof', '--archive', tampered, '--chain', chain(), '--seq', '600', '--key', vkey], {});
    expect((await refused.exited).code, refused.output()).toBe(1);
    expect(refused.output()).toMatch(/^FAILED: /);
  }, 60_000);

  it('backfills the tiles of a chain archived before tiles were, and never replaces a different tile', async () => {
    // As the previous version left it: notes archived, no tiles, no record of them.
    await rm(path.join(archiveDir, 'tlog'), { recursive: true });
    await asSuperuser(db, (su) => su.query('DELETE FROM archived_tiles'));
    events.push(...(await append(100, 'third')));
    await runCheckpoints(job);
    expect(await tileKeys()).toEqual(['tile/0/000', 'tile/0/001', 'tile/0/002', 'tile/0/003.p/32', 'tile/1/000.p/3']);
    const vkeyOk = runCli(['verify-proof', '--archive', archiveDir, '--chain', chain(), '--seq', '800', '--event', await canonicalFile(800), '--key', vkey], {});
    expect((await vkeyOk.exited).code, vkeyOk.output()).toBe(0);

    // A tile that differs from what the events give is left alone, and the chain is left behind.
    const tile = path.join(archiveDir, tileKey(tenant.projectId, tenant.environmentId, { level: 0, index: 1, width: 256 }));
    await chmod(tile, 0o644);
    await writeFile(tile, Buffer.alloc(8192));
    await asSuperuser(db, (su) => su.query('DELETE FROM archived_tiles'));
    events.push(...(await append(10, 'fourth')));
    await runCheckpoints(job);
    expect((await readFile(tile)).equals(Buffer.alloc(8192))).toBe(true);
    const { rows } = await db.pools.owner.query('SELECT tree_size FROM archived_tiles');
    expect(rows).toEqual([]);
  }, 60_000);

  it('a chain signed by a process without this archive (library mode, wormEnabled: false) gets its note with its tiles', async () => {
    const other = await createTenant(t, 'signed-elsewhere');
    await t.request('POST', '/v1/events', { token: other.token, body: { events: [{ action: 'a' }, { action: 'b' }, { action: 'c' }] } });
    await runCheckpoints({ ...job, archive: undefined });
    await runCheckpoints(job);
    const archive = new LocalArchive(archiveDir);
    expect(await archive.list(`${tlogPrefix(other.projectId, other.environmentId)}/`)).toEqual([tileKey(other.projectId, other.environmentId, { level: 0, index: 0, width: 3 })]);
    // Without it, verify-archive found tiles of a chain with no note: "unexpected key".
    expect(await archive.list(`checkpoints/${other.projectId}/${other.environmentId}/`)).toEqual([checkpointKey(other.projectId, other.environmentId, 3)]);
  });
});
