import { CreateBucketCommand, DeleteObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_OBJECT_BYTES, type Archive } from '../../src/archive/archive.js';
import { LocalArchive } from '../../src/archive/local.js';
import { createS3Client, S3Archive } from '../../src/archive/s3.js';
import { runCheckpoints } from '../../src/jobs/checkpoints.js';
import { bundleKey } from '../../src/archive/layout.js';
import { assertSealable, dueThrough, runSeal, UnsealableDayError, type SealDeps } from '../../src/jobs/seal.js';
import { manifestSha256, parseBundle, verifyBundle } from '../../src/ledger/bundle.js';
import { encodeSigningKey } from '../../src/ledger/keys.js';
import { verifyInclusionDocument } from '../../src/ledger/verify-proof.js';
import { createTestApp, createTenant } from '../helpers/app.js';
import { runCli } from '../helpers/cli.js';
import { asSuperuser, createTestDatabase } from '../helpers/database.js';

const DAY = 86_400_000;
const log = pino({ level: 'silent' });
type Tenant = Awaited<ReturnType<typeof createTenant>>;

/** Two chains with events ten and nine days ago (A on both days, B on the first), checkpointed. */
async function scenario(archive: Archive) {
  const db = await createTestDatabase();
  let clock = Date.now() - 10 * DAY;
  const t = await createTestApp(db, {}, () => clock, archive);
  const a = await createTenant(t, 'chain-a');
  const b = await createTenant(t, 'chain-b');
  const post = (tenant: Tenant, n: number, tag: string) =>
    t.request('POST', '/v1/events', { token: tenant.token, body: { events: Array.from({ length: n }, (_, i) => ({ action: `${tag}.${i}` })) } });
  await post(a, 30, 'a1');
  await post(b, 20, 'b1');
  clock += DAY;
  await createTestApp(db, {}, () => clock, archive); // partitions for the next day
  await post(a, 25, 'a2');
  const deps: SealDeps = { db: db.pools.owner, archive, keyring: t.keyring, log };
  await runCheckpoints({ db: db.pools.owner, archive, key: t.keyring.current, origin: t.keyring.origin, log });
  const days = [new Date(Date.now() - 10 * DAY).toISOString().slice(0, 10), new Date(Date.now() - 9 * DAY).toISOString().slice(0, 10)];
  return { db, t, a, b, deps, days };
}

describe('which days may be sealed', () => {
  const noon = Date.UTC(2026, 10, 30, 12);
  it('only real days that ended on the server clock', () => {
    expect(() => assertSealable('2026-11-29', noon)).not.toThrow();
    expect(() => assertSealable('0001-01-01', noon)).not.toThrow();
    for (const [day, why] of [
      ['2026-11-30', /has not ended \(it is 2026-11-30 on the server clock\)/],
      ['2030-01-01', /has not ended/],
      ['2026-02-30', /is not a day/],
      ['0000-01-01', /is not a day/],
      ['2026-1-1', /is not a day/],
      ['', /is not a day/],
    ] as const) {
      expect(() => assertSealable(day, noon), day).toThrow(UnsealableDayError);
      expect(() => assertSealable(day, noon), day).toThrow(why);
    }
    // The day ends at midnight UTC, not before.
    expect(() => assertSealable('2026-11-29', Date.UTC(2026, 10, 29, 23, 59, 59, 999))).toThrow(/has not ended/);
    expect(() => assertSealable('2026-11-29', Date.UTC(2026, 10, 30))).not.toThrow();
  });
});

describe('sealing into the local archive', () => {
  let dir: string;
  let s: Awaited<ReturnType<typeof scenario>>;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-seal-'));
    s = await scenario(new LocalArchive(dir));
  });
  afterAll(async () => {
    await s.t.close();
    await s.db.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a day that has not ended, sealing nothing (not even the days before it)', async () => {
    const today = new Date().toISOString().slice(0, 10);
    await expect(runSeal(s.deps, today)).rejects.toThrow(UnsealableDayError);
    // The deps' clock decides: days back on it, yesterday has not ended either.
    const yesterday = new Date(Date.now() - DAY).toISOString().slice(0, 10);
    await expect(runSeal({ ...s.deps, now: () => Date.now() - 2 * DAY }, yesterday)).rejects.toThrow(/has not ended/);
    const { rows } = await s.db.pools.owner.query('SELECT (SELECT count(*) FROM seals)::int AS seals, (SELECT count(*) FROM sealed_partitions)::int AS days');
    expect(rows[0]).toEqual({ seals: 0, days: 0 });

    // The command says so in one line, as a usage error, before it touches the database.
    for (const [through, why] of [
      [new Date(Date.now() + 400 * DAY).toISOString().slice(0, 10), /has not ended/],
      ['2026-02-30', /is not a day/],
    ] as const) {
      const seal = runCli(['seal', '--through', through], { DATABASE_URL: s.db.ownerUrl, AUDITLEDGER_DATA_DIR: path.join(dir, 'data') });
      expect((await seal.exited).code).toBe(2);
      expect(seal.output()).toMatch(new RegExp(`^auditledger seal: --through: ${through} ${why.source}[^\n]*\n$`));
    }
  });

  it('seals each chain-day into one bundle that verifies alone and against the one before', async () => {
    const report = await runSeal(s.deps, dueThrough(Date.now(), 7));
    // Empty days are sealed too (no bundles); the two days with events hold three bundles.
    expect(report).toMatchObject({ days: expect.arrayContaining(s.days), bundles: 3, events: 75, waiting: [] });
    const read = async (tenant: Tenant, day: string) => (await s.deps.archive.get(bundleKey(tenant.projectId, tenant.environmentId, day)))!;
    const a1 = await read(s.a, s.days[0]!);
    const a2 = await read(s.a, s.days[1]!);
    const b1 = await read(s.b, s.days[0]!);
    const keys = [s.t.keyring.current];
    expect(verifyBundle(a1, keys).failures).toEqual([]);
    expect(verifyBundle(b1, keys).failures).toEqual([]);
    const first = parseBundle(a1);
    expect(verifyBundle(a2, keys, { manifest: first.manifest, manifestSha256: manifestSha256(first.manifestLine) }).failures).toEqual([]);
    expect(parseBundle(a2).manifest).toMatchObject({ first_seq: 31, last_seq: 55, count: 25 });

    const { rows } = await s.db.pools.owner.query(`SELECT to_char(partition, 'YYYY-MM-DD') AS day, bundles FROM sealed_partitions WHERE bundles > 0 ORDER BY 1`);
    expect(rows).toEqual([
      { day: s.days[0], bundles: 2 },
      { day: s.days[1], bundles: 1 },
    ]);
    expect(await runSeal(s.deps, dueThrough(Date.now(), 7))).toMatchObject({ days: [], bundles: 0 });
  });

  it('a sealed partition refuses new rows', async () => {
    await expect(
      s.db.pools.owner.query(
        `INSERT INTO events (environment_id, seq, id, received_at, prev, hash, canonical, action)
         VALUES ($1, 999, gen_random_uuid(), $2::date + interval '1 hour', $3, $3, '\\x7b7d', 'late')`,
        [s.a.environmentId, s.days[0], Buffer.alloc(32)],
      ),
    ).rejects.toThrow(/is sealed: new rows are refused/);
  });

  it('lists bundles and shows one with its manifest and location', async () => {
    const list = await (await s.t.request('GET', '/v1/bundles', { token: s.a.token })).json();
    expect(list.bundles.map((b: { partition: string }) => b.partition)).toEqual([s.days[1], s.days[0]]);
    const one = await (await s.t.request('GET', `/v1/bundles/${list.bundles[1].id}`, { token: s.a.token })).json();
    expect(one).toMatchObject({ first_seq: 1, last_seq: 30, archive: { key: bundleKey(s.a.projectId, s.a.environmentId, s.days[0]!) } });
    expect(one.manifest).toMatchObject({ project: s.a.projectId, environment: s.a.environmentId, partition: s.days[0] });
    expect((await s.t.request('GET', `/v1/bundles/${list.bundles[1].id}`, { token: s.b.token })).status).toBe(404);
  });

  it('sealed events still answer queries, and their proofs come from the bundle', async () => {
    const page = await (await s.t.request('GET', '/v1/events?limit=40&verify=true', { token: s.a.token })).json();
    expect(page.verification).toMatchObject({ ok: true, checked: 40 });
    const event = page.events[4];
    const proof = await (await s.t.request('GET', `/v1/events/${event.id}/proof`, { token: s.a.token })).json();
    expect(proof).toMatchObject({ source: 'bundle', tree_size: 30, leaf_index: 4 });
    expect(verifyInclusionDocument(proof, [s.t.keyring.current])).toMatch(/seq 5\) is included/);
  });

  it('verify=true holds sealed events to their bundle', async () => {
    await asSuperuser(s.db, (su) =>
      su.query(`UPDATE events SET canonical = convert_to(replace(convert_from(canonical, 'UTF8'), 'b1.3"', 'b1.X"'), 'UTF8') WHERE environment_id = $1 AND seq = 4`, [
        s.b.environmentId,
      ]),
    );
    const page = await (await s.t.request('GET', '/v1/events?seq_from=4&seq_to=4&verify=true', { token: s.b.token })).json();
    expect(page.verification.failures).toContainEqual({ seq: 4, reason: 'stored bytes differ from the sealed bundle' });
  });

  it('verify=true reports a sealed bundle too large to read back, rather than failing the query', async () => {
    const file = path.join(dir, bundleKey(s.a.projectId, s.a.environmentId, s.days[1]!));
    await rm(file);
    await writeFile(file, '');
    await truncate(file, MAX_OBJECT_BYTES + 1); // sparse: only its size is read
    const fresh = await createTestApp(s.db, {}, Date.now, s.deps.archive); // no bundle cached yet
    try {
      const res = await fresh.request('GET', '/v1/events?seq_from=31&seq_to=31&verify=true', { token: s.a.token });
      expect(res.status).toBe(200);
      expect((await res.json()).verification.failures).toEqual([
        { seq: 31, reason: expect.stringMatching(/^its sealed bundle fails verification: bundle .* cannot be read: the object is \d+ bytes: this verifier reads an object whole/) },
      ]);
    } finally {
      await fresh.close();
    }
  });
});

describe('seal crash safety', () => {
  it('killed before the PUT, between the PUT and the record, or mid-day: a rerun ends with one bundle per chain-day, same bytes', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-crash-'));
    const s = await scenario(new LocalArchive(dir));
    try {
      const through = dueThrough(Date.now(), 7);
      const crashAt = (step: 'beforePut' | 'afterPut', nth: number): SealDeps => {
        let count = 0;
        return {
          ...s.deps,
          faults: {
            [step]: () => {
              if (++count === nth) throw new Error(`injected crash ${step} #${nth}`);
            },
          },
        };
      };
      await expect(runSeal(crashAt('beforePut', 1), through)).rejects.toThrow(/injected crash beforePut/);
      expect((await s.deps.archive.list('bundles/')).length).toBe(0);
      await expect(runSeal(crashAt('afterPut', 2), through)).rejects.toThrow(/injected crash afterPut/); // mid-day, after a PUT
      const seals = async () => (await s.db.pools.owner.query('SELECT environment_id, partition FROM seals')).rowCount;
      expect(await seals()).toBe(1);
      expect((await s.deps.archive.list('bundles/')).length).toBe(2); // the second is stored, not recorded
      const report = await runSeal(s.deps, through); // the archive refuses different bytes: same bytes or it throws
      expect(report!.days).toEqual(expect.arrayContaining(s.days));
      expect(await seals()).toBe(3);
      expect((await s.deps.archive.list('bundles/')).length).toBe(3);
    } finally {
      await s.t.close();
      await s.db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('waits when the newest events of a day are under no signed checkpoint yet', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-wait-'));
    const s = await scenario(new LocalArchive(dir));
    try {
      const clock = Date.now() - 8 * DAY;
      const late = await createTestApp(s.db, {}, () => clock, s.deps.archive);
      await late.request('POST', '/v1/events', { token: s.a.token, body: { action: 'unsigned' } });
      const report = await runSeal(s.deps, dueThrough(Date.now(), 7));
      const waitingDay = new Date(clock).toISOString().slice(0, 10);
      expect(report).toMatchObject({ days: expect.arrayContaining(s.days), waiting: [waitingDay] });
      expect(report!.days).not.toContain(waitingDay);
      await late.close();
    } finally {
      await s.t.close();
      await s.db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sealing with one damaged chain', () => {
  it('seals the healthy chain, and reports the damaged one (chain, day, seq, reason) as a finding and from the CLI, exit 1', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-damaged-'));
    const s = await scenario(new LocalArchive(path.join(dir, 'archive')));
    try {
      // B gets events on the second day too; then its event 4 (ten days ago) no longer matches its
      // hash. A is intact on both days.
      const later = await createTestApp(s.db, {}, () => Date.now() - 9 * DAY, s.deps.archive);
      await later.request('POST', '/v1/events', { token: s.b.token, body: { events: [{ action: 'b2.0' }, { action: 'b2.1' }] } });
      await later.close();
      await runCheckpoints({ db: s.db.pools.owner, archive: s.deps.archive, key: s.t.keyring.current, origin: s.t.keyring.origin, log });
      await asSuperuser(s.db, (su) =>
        su.query(`UPDATE events SET canonical = convert_to(replace(convert_from(canonical, 'UTF8'), 'b1.3"', 'b1.X"'), 'UTF8') WHERE environment_id = $1 AND seq = 4`, [
          s.b.environmentId,
        ]),
      );
      const keyFile = path.join(dir, 'signing-key');
      await writeFile(keyFile, encodeSigningKey(s.t.keyring.current), { mode: 0o600 });
      const seal = runCli(['seal'], {
        DATABASE_URL: s.db.ownerUrl,
        AUDITLEDGER_DATA_DIR: path.join(dir, 'data'),
        AUDITLEDGER_ARCHIVE: path.join(dir, 'archive'),
        AUDITLEDGER_SIGNING_KEY_FILE: keyFile,
        AUDITLEDGER_ORIGIN: s.t.keyring.origin,
      });
      expect((await seal.exited).code).toBe(1);
      const reason = 'event 4: hash does not match the stored bytes';
      // One line for B, naming its first damaged day; its later day is not tried (it cannot link).
      expect(seal.output().match(/^not sealed: .*$/gm)).toEqual([`not sealed: chain ${s.b.projectId}/${s.b.environmentId} ${s.days[0]}, seq 4: ${reason}`]);
      expect(seal.output()).toMatch(/sealed through \S+: \d+ day\(s\), 2 bundle\(s\), 55 event\(s\)/);
      expect(seal.output()).not.toMatch(/^\s+at /m); // no stack trace

      // A's two bundles are sealed; B has none, and both days stay open (B's events there are not sealed).
      const archived = await s.deps.archive.list('bundles/');
      expect([...archived].sort()).toEqual(s.days.map((d) => bundleKey(s.a.projectId, s.a.environmentId, d)).sort());
      const { rows } = await s.db.pools.owner.query(`SELECT to_char(partition, 'YYYY-MM-DD') AS day FROM sealed_partitions WHERE partition = ANY($1::date[])`, [s.days]);
      expect(rows).toEqual([]);

      // The damage is B's verification finding, recorded once however often sealing meets it.
      const again = await runSeal(s.deps, dueThrough(Date.now(), 7));
      expect(again!.failed).toEqual([{ project: s.b.projectId, environment: s.b.environmentId, day: s.days[0], seq: 4, reason }]);
      const runs = await (await s.t.request('GET', '/v1/verify/runs', { token: s.b.token })).json();
      expect(runs.runs[0]).toMatchObject({ requested_by: 'seal', status: 'done', ok: false, first_failure: { seq: 4, reason: `cannot seal ${s.days[0]}: ${reason}` } });
      expect(runs.findings).toEqual([expect.objectContaining({ seq: 4, reason: `cannot seal ${s.days[0]}: ${reason}` })]);
    } finally {
      await s.t.close();
      await s.db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

const endpoint = process.env.S3_ENDPOINT;
if (!endpoint) {
  if (process.env.CI) throw new Error('CI must provide S3_ENDPOINT (../shared/scripts/s3-local/start.sh)');
  console.warn('skipping sealing to S3: S3_ENDPOINT is not set (start ../shared/scripts/s3-local/start.sh to run it)');
}

describe.skipIf(!endpoint)('sealing into S3 Object Lock', () => {
  const client = createS3Client({ endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: process.env.S3_FORCE_PATH_STYLE !== 'false' });
  const bucket = `auditledger-seal-${randomBytes(5).toString('hex')}`;

  it('bundles are under COMPLIANCE retention, their deletion is refused, and bytes round-trip', async () => {
    await S3Archive.createBucket(client, bucket);
    const archive = new S3Archive({ bucket, prefix: 'ledger', client, mode: 'COMPLIANCE', retentionDays: 1 });
    const s = await scenario(archive);
    try {
      const report = await runSeal(s.deps, dueThrough(Date.now(), 7));
      expect(report).toMatchObject({ bundles: 3 });
      const key = bundleKey(s.a.projectId, s.a.environmentId, s.days[0]!);
      const retention = await archive.retention(key);
      expect(retention).toMatchObject({ mode: 'COMPLIANCE', versionId: expect.any(String) });
      expect(retention!.retainUntil!.getTime()).toBeGreaterThan(Date.now() + 0.9 * DAY);
      await expect(client.send(new DeleteObjectCommand({ Bucket: bucket, Key: `ledger/${key}`, VersionId: retention!.versionId }))).rejects.toThrow();
      expect(verifyBundle((await archive.get(key))!, [s.t.keyring.current]).failures).toEqual([]);
    } finally {
      await s.t.close();
      await s.db.drop();
    }
  });

  it('refuses to seal into a bucket without Object Lock, saying so', async () => {
    const plain = `${bucket}-plain`;
    await client.send(new CreateBucketCommand({ Bucket: plain }));
    const dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-plain-'));
    const s = await scenario(new LocalArchive(dir));
    const unlocked = new S3Archive({ bucket: plain, prefix: '', client, mode: 'COMPLIANCE', retentionDays: 1 });
    try {
      await expect(runSeal({ ...s.deps, archive: unlocked }, dueThrough(Date.now(), 7))).rejects.toThrow(/has no Object Lock|Object Lock/);
      expect(await s.db.pools.owner.query('SELECT FROM seals')).toMatchObject({ rowCount: 0 });
    } finally {
      await s.t.close();
      await s.db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
