import { chmod, cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleKey, parseBundleKey } from '../../src/archive/layout.js';
import { LocalArchive } from '../../src/archive/local.js';
import { verifyArchive } from '../../src/archive/verify.js';
import { runCheckpoints } from '../../src/jobs/checkpoints.js';
import { dueThrough, runSeal } from '../../src/jobs/seal.js';
import { createTenant, createTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

const DAY = 86_400_000;
const log = pino({ level: 'silent' });

describe('bounded bundles: a day of 180 events with at most 50 a bundle', () => {
  let dir: string;
  let archiveDir: string;
  let db: TestDatabase;
  let t: TestApp;
  let tenant: Awaited<ReturnType<typeof createTenant>>;
  let day: string;
  let report: Awaited<ReturnType<typeof runSeal>>;
  const key = (part: number) => bundleKey(tenant.projectId, tenant.environmentId, day, part);
  /** A copy of the archive to tamper with. */
  const copy = async () => {
    const folder = await mkdtemp(path.join(dir, 'copy-'));
    await cp(archiveDir, folder, { recursive: true });
    return folder;
  };
  const verify = (folder: string) => verifyArchive(new LocalArchive(folder), { verifiers: [t.keyring.current], threads: 1 });

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-bounded-'));
    archiveDir = path.join(dir, 'archive');
    const archive = new LocalArchive(archiveDir);
    db = await createTestDatabase();
    t = await createTestApp(db, {}, () => Date.now() - 9 * DAY, archive);
    tenant = await createTenant(t, 'bounded');
    day = new Date(Date.now() - 9 * DAY).toISOString().slice(0, 10);
    for (const batch of [100, 80]) {
      const events = Array.from({ length: batch }, (_, i) => ({ action: `e.${batch}.${i}` }));
      expect((await t.request('POST', '/v1/events', { token: tenant.token, body: { events } })).status).toBe(201);
    }
    // One checkpoint, at the day's end: the bundles' own checkpoints (50, 100, 150) are signed by the seal.
    await runCheckpoints({ db: db.pools.owner, archive, key: t.keyring.current, origin: t.keyring.origin, log });
    report = await runSeal({ db: db.pools.owner, archive, keyring: t.keyring, log, maxEvents: 50 }, dueThrough(Date.now(), 7));
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('seals the day into 4 bundles of 50, 50, 50 and 30 events, the first under the old name', async () => {
    expect(report).toMatchObject({ days: expect.arrayContaining([day]), bundles: 4, events: 180, waiting: [], failed: [] });
    const files = (await readdir(path.join(archiveDir, 'bundles', tenant.projectId, tenant.environmentId))).sort();
    expect(files).toEqual([`${day}.2.ndjson`, `${day}.3.ndjson`, `${day}.4.ndjson`, `${day}.ndjson`]);
    expect([1, 2, 3, 4].map(key)).toEqual(files.map((f) => `bundles/${tenant.projectId}/${tenant.environmentId}/${f}`).sort((a, b) => (parseBundleKey(a)!.part - parseBundleKey(b)!.part)));
    const manifests = await Promise.all([1, 2, 3, 4].map(async (part) => JSON.parse((await readFile(path.join(archiveDir, key(part)), 'utf8')).split('\n')[0]!)));
    expect(manifests.map((m) => [m.first_seq, m.last_seq, m.partition])).toEqual([[1, 50, day], [51, 100, day], [101, 150, day], [151, 180, day]]);
    const { rows } = await db.pools.owner.query('SELECT bundles FROM sealed_partitions WHERE partition = $1', [day]);
    expect(rows).toEqual([{ bundles: 4 }]);
    // Paging by day never cuts the day in two: limit counts days.
    const page = await (await t.request('GET', '/v1/bundles?limit=1', { token: tenant.token })).json();
    expect(page.bundles.map((b: { first_seq: number }) => b.first_seq)).toEqual([151, 101, 51, 1]);
    expect(page.next_before).toBe(day);
  });

  it('verify-archive accepts them, each proving the one before; verify=true holds every event to its bundle', async () => {
    expect(await verify(archiveDir)).toMatchObject({ ok: true, failures: [], bundles: { valid: 4, total: 4 }, events: { valid: 180, total: 180 } });
    const res = await t.request('GET', '/v1/events?verify=true&limit=200', { token: tenant.token });
    expect((await res.json()).verification).toMatchObject({ ok: true, checked: 180 });
  });

  it('a change in the 3rd bundle is found at its seq', async () => {
    const folder = await copy();
    const file = path.join(folder, key(3));
    const text = await readFile(file, 'utf8');
    const lines = text.split('\n');
    // Line 20 of the third bundle (the manifest is line 0) is event 120.
    lines[20] = lines[20]!.replace(/"action":"[^"]*"/, '"action":"forged"');
    await chmod(file, 0o644);
    await writeFile(file, lines.join('\n'));
    const report = await verify(folder);
    expect(report.ok).toBe(false);
    expect(report.failures).toContainEqual(expect.objectContaining({ kind: 'bundle', day, seq: 120, key: key(3) }));
  });

  it('a bundle removed from the middle of the day is a gap', async () => {
    const folder = await copy();
    await rm(path.join(folder, key(2)));
    const report = await verify(folder);
    expect(report.failures).toContainEqual(expect.objectContaining({ kind: 'missing', day, seq: 51, reason: `events 51..100 are in no bundle: a bundle before ${day}.3 is missing` }));
  });

  it('two bundles of the day swapped between their keys are out of order', async () => {
    const folder = await copy();
    const [second, third] = [path.join(folder, key(2)), path.join(folder, key(3))];
    const [a, b] = [await readFile(second), await readFile(third)];
    await chmod(second, 0o644);
    await chmod(third, 0o644);
    await writeFile(second, b);
    await writeFile(third, a);
    const report = await verify(folder);
    expect(report.failures).toContainEqual(expect.objectContaining({ kind: 'bundle', seq: 101, key: key(2), reason: expect.stringMatching(/out of order/) }));
  });

  it('sealing again adds nothing', async () => {
    const archive = new LocalArchive(archiveDir);
    const again = await runSeal({ db: db.pools.owner, archive, keyring: t.keyring, log, maxEvents: 50 }, dueThrough(Date.now(), 7));
    expect(again).toMatchObject({ bundles: 0, events: 0 });
  });
});

describe('bounded bundles: a seal killed between bundles', () => {
  let dir: string;
  let db: TestDatabase;
  let t: TestApp;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-bounded-crash-'));
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('resumes at the bundle it was writing, which it writes again with the same bytes', async () => {
    const archive = new LocalArchive(dir);
    t = await createTestApp(db, {}, () => Date.now() - 9 * DAY, archive);
    const tenant = await createTenant(t, 'crash');
    const day = new Date(Date.now() - 9 * DAY).toISOString().slice(0, 10);
    const events = Array.from({ length: 120 }, (_, i) => ({ action: `c.${i}` }));
    expect((await t.request('POST', '/v1/events', { token: tenant.token, body: { events } })).status).toBe(201);
    await runCheckpoints({ db: db.pools.owner, archive, key: t.keyring.current, origin: t.keyring.origin, log });
    const second = bundleKey(tenant.projectId, tenant.environmentId, day, 2);
    const deps = { db: db.pools.owner, archive, keyring: t.keyring, log, maxEvents: 50 };
    const crash = {
      afterPut(key: string) {
        if (key === second) throw new Error('killed after the PUT of the second bundle');
      },
    };
    await expect(runSeal({ ...deps, faults: crash }, dueThrough(Date.now(), 7))).rejects.toThrow(/killed/);
    const { rows } = await db.pools.owner.query('SELECT first_seq FROM seals ORDER BY first_seq');
    expect(rows).toEqual([{ first_seq: 1 }]);

    // The second bundle is in the archive but not recorded: a second run PUTs the same bytes (a no-op), then the third.
    expect(await runSeal(deps, dueThrough(Date.now(), 7))).toMatchObject({ days: expect.arrayContaining([day]), bundles: 2, events: 70, failed: [] });
    expect(await verifyArchive(archive, { verifiers: [t.keyring.current], threads: 1 })).toMatchObject({ ok: true, bundles: { valid: 3, total: 3 }, events: { valid: 120, total: 120 } });
  });
});
