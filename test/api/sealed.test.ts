import { PutObjectCommand } from '@aws-sdk/client-s3';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Archive } from '../../src/archive/archive.js';
import { bundleKey } from '../../src/archive/layout.js';
import { LocalArchive } from '../../src/archive/local.js';
import { createS3Client, S3Archive } from '../../src/archive/s3.js';
import { runCheckpoints } from '../../src/jobs/checkpoints.js';
import { dueThrough, runSeal } from '../../src/jobs/seal.js';
import { verifyInclusionDocument } from '../../src/ledger/verify-proof.js';
import { createTenant, createTestApp, type TestApp } from '../helpers/app.js';
import { asSuperuser, createTestDatabase, type TestDatabase } from '../helpers/database.js';

const DAY = 86_400_000;
const log = pino({ level: 'silent' });
type Tenant = Awaited<ReturnType<typeof createTenant>>;

interface SealedChain {
  db: TestDatabase;
  t: TestApp;
  tenant: Tenant;
  /** The archive key of the chain's one bundle (events 1-10, nine days ago). */
  key: string;
  events: { id: string; seq: number }[];
}

/** One chain of ten events received nine days ago, checkpointed and sealed into `archive`. */
async function sealedChain(archive: Archive): Promise<SealedChain> {
  const db = await createTestDatabase();
  const t = await createTestApp(db, {}, () => Date.now() - 9 * DAY, archive);
  const tenant = await createTenant(t, 'sealed');
  const events = Array.from({ length: 10 }, (_, i) => ({ action: `e.${i}` }));
  const res = await t.request('POST', '/v1/events', { token: tenant.token, body: { events } });
  await runCheckpoints({ db: db.pools.owner, archive, key: t.keyring.current, origin: t.keyring.origin, log });
  expect(await runSeal({ db: db.pools.owner, archive, keyring: t.keyring, log }, dueThrough(Date.now(), 7))).toMatchObject({ bundles: 1 });
  const day = new Date(Date.now() - 9 * DAY).toISOString().slice(0, 10);
  return { db, t, tenant, key: bundleKey(tenant.projectId, tenant.environmentId, day), events: (await res.json()).events };
}

const verification = async (t: TestApp, tenant: Tenant) =>
  (await (await t.request('GET', '/v1/events?verify=true', { token: tenant.token })).json()).verification;
const proof = async (t: TestApp, tenant: Tenant, id: string, query = '') => {
  const res = await t.request('GET', `/v1/events/${id}/proof${query}`, { token: tenant.token });
  return { status: res.status, body: await res.json() };
};
const altered = (reason: RegExp) => ({ ok: false, failures: expect.arrayContaining([{ seq: expect.any(Number), reason: expect.stringMatching(reason) }]) });

describe('sealed bundles read back from a local archive', () => {
  let dir: string;
  let s: SealedChain;
  let file: string;
  let original: Buffer;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-sealed-api-'));
    s = await sealedChain(new LocalArchive(dir));
    file = path.join(dir, s.key);
    original = await readFile(file);
  });
  afterAll(async () => {
    await s?.t.close();
    await s?.db.drop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Rewrites the read-only bundle as someone with disk access could, its size and modification time kept. */
  async function rewrite(bytes: Buffer): Promise<void> {
    const { atime, mtime } = await stat(file);
    await chmod(file, 0o644);
    await writeFile(file, bytes);
    await chmod(file, 0o444);
    await utimes(file, atime, mtime);
  }
  const tampered = () => Buffer.from(original.toString().replace('"action":"e.3"', '"action":"e.8"'));

  it('a running server notices a bundle altered after it was cached, and trusts it again once it is put back', async () => {
    expect(await verification(s.t, s.tenant)).toMatchObject({ ok: true, checked: 10 }); // read, verified and cached
    await rewrite(tampered());
    try {
      expect(await verification(s.t, s.tenant)).toMatchObject(altered(/^its sealed bundle fails verification: bundle .* is not the object sealed/));
      expect((await proof(s.t, s.tenant, s.events[3]!.id)).status).toBe(409);
    } finally {
      await rewrite(original);
    }
    expect(await verification(s.t, s.tenant)).toMatchObject({ ok: true, checked: 10 });
    const { status, body } = await proof(s.t, s.tenant, s.events[3]!.id);
    expect(status).toBe(200);
    expect(body.source).toBe('bundle');
  });

  it('a fresh server never answers a proof from an altered bundle; the database still proves the event', async () => {
    await rewrite(tampered());
    const fresh = await createTestApp(s.db, {}, Date.now, new LocalArchive(dir));
    try {
      const refused = await proof(fresh, s.tenant, s.events[3]!.id);
      expect(refused.status).toBe(409);
      expect(refused.body.error).toMatchObject({
        code: 'bundle_failed_verification',
        message: expect.stringMatching(/^event 4 cannot be proven from its sealed bundle: its sealed bundle fails verification: bundle .* is not the object sealed/),
      });
      expect(await verification(fresh, s.tenant)).toMatchObject(altered(/is not the object sealed/));
      const fromDatabase = await proof(fresh, s.tenant, s.events[3]!.id, '?tree_size=10');
      expect(fromDatabase.status).toBe(200);
      expect(verifyInclusionDocument(fromDatabase.body, [s.t.keyring.current])).toMatch(/seq 4\) is included/);
    } finally {
      await fresh.close();
      await rewrite(original);
    }
  });

  // Someone with disk access can put anything where the bundle was; the answer is still the bundle's failure.
  it.each([
    ['a FIFO', 'not a regular file', (at: string) => execFileSync('mkfifo', [at])],
    ['a link to /dev/zero', 'not a regular file', (at: string) => symlink('/dev/zero', at)],
    ['a folder', 'is a folder', (at: string) => mkdir(at)],
    ['a link to a folder', 'is a folder', (at: string) => symlink('/sys', at)],
    ['a link to itself', 'ELOOP', (at: string) => symlink(at, at)],
  ])('a bundle replaced by %s fails verification with a 409, not a 500', async (_, why, replace) => {
    await rm(file, { force: true });
    await replace(file);
    try {
      const refused = await proof(s.t, s.tenant, s.events[2]!.id);
      expect(refused).toMatchObject({ status: 409, body: { error: { code: 'bundle_failed_verification', message: expect.stringContaining(why) } } });
      expect(refused.body.error.message).not.toContain(dir); // the tenant sees the archive key, not where this server keeps it
      expect(await verification(s.t, s.tenant)).toMatchObject(altered(new RegExp(`^its sealed bundle fails verification: bundle .*${why}`)));
    } finally {
      await rm(file, { recursive: true, force: true });
      await writeFile(file, original, { mode: 0o444 });
    }
    expect(await verification(s.t, s.tenant)).toMatchObject({ ok: true, checked: 10 });
  });

  it('a stored event that differs from its sealed bundle gets no proof from the bundle', async () => {
    await asSuperuser(s.db, (su) =>
      su.query(`UPDATE events SET canonical = convert_to(replace(convert_from(canonical, 'UTF8'), '"e.5"', '"e.X"'), 'UTF8') WHERE environment_id = $1 AND seq = 6`, [
        s.tenant.environmentId,
      ]),
    );
    const refused = await proof(s.t, s.tenant, s.events[5]!.id);
    expect(refused).toMatchObject({ status: 409, body: { error: { code: 'event_differs_from_bundle' } } });
  });
});

const endpoint = process.env.S3_ENDPOINT;
describe.skipIf(!endpoint)('sealed bundles read back from S3', () => {
  const client = createS3Client({ endpoint, region: process.env.AWS_REGION ?? 'us-east-1', forcePathStyle: process.env.S3_FORCE_PATH_STYLE !== 'false' });
  const bucket = `auditledger-sealed-${randomBytes(5).toString('hex')}`;
  let s: SealedChain;
  beforeAll(async () => {
    await S3Archive.createBucket(client, bucket);
    s = await sealedChain(new S3Archive({ bucket, prefix: 'ledger', client, mode: 'COMPLIANCE', retentionDays: 1 }));
  });
  afterAll(async () => {
    await s?.t.close();
    await s?.db.drop();
  });

  it('a bundle overwritten by a new version is no longer the sealed one, even with the same bytes', async () => {
    expect(await verification(s.t, s.tenant)).toMatchObject({ ok: true, checked: 10 });
    const archive = new S3Archive({ bucket, prefix: 'ledger', client, mode: 'COMPLIANCE', retentionDays: 1 });
    const bytes = (await archive.get(s.key))!;
    await client.send(
      new PutObjectCommand({ Bucket: bucket, Key: `ledger/${s.key}`, Body: bytes, ContentMD5: createHash('md5').update(bytes).digest('base64') }),
    );
    expect(await verification(s.t, s.tenant)).toMatchObject(altered(/is version .* in the archive, not the sealed version/));
    expect((await proof(s.t, s.tenant, s.events[0]!.id)).body.error).toMatchObject({ code: 'bundle_failed_verification' });
  });
});
