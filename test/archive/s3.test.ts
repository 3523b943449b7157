import {
  CreateBucketCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArchiveConflictError } from '../../src/archive/archive.js';
import { parseArchiveUrl } from '../../src/archive/location.js';
import { createS3Client, S3Archive, S3ArchiveError, type S3ArchiveOptions } from '../../src/archive/s3.js';

const endpoint = process.env.S3_ENDPOINT;
if (!endpoint) {
  if (process.env.CI) throw new Error('CI must provide S3_ENDPOINT (../shared/scripts/s3-local/start.sh)');
  console.warn('skipping S3 archive tests: S3_ENDPOINT is not set (start ../shared/scripts/s3-local/start.sh to run them)');
}

const DAY_MS = 24 * 60 * 60 * 1000;
const region = process.env.AWS_REGION ?? 'us-east-1';
const forcePathStyle = process.env.S3_FORCE_PATH_STYLE !== 'false';

interface RecordedRequest {
  method: string;
  query: Record<string, unknown>;
  headers: Record<string, string>;
}

/** A client that keeps every request it sends, to check what the lenient server would not. */
function recordingClient(): { client: S3Client; requests: RecordedRequest[] } {
  const client = createS3Client({ endpoint, region, forcePathStyle });
  const requests: RecordedRequest[] = [];
  client.middlewareStack.add(
    (next) => async (args) => {
      const { method, query, headers } = args.request as RecordedRequest;
      requests.push({ method, query: { ...query }, headers: { ...headers } });
      return next(args);
    },
    { step: 'finalizeRequest', name: 'recordRequests' },
  );
  return { client, requests };
}

describe.skipIf(!endpoint)('S3 Object Lock archive', () => {
  const bucket = `auditledger-test-${randomBytes(6).toString('hex')}`;
  let client: S3Client;

  const archiveAt = (prefix: string, options: Partial<S3ArchiveOptions> = {}) =>
    new S3Archive({ bucket, prefix, client, mode: 'COMPLIANCE', retentionDays: 1, ...options });

  /** The version ids S3 keeps for exactly this object key. */
  async function versionsOf(objectKey: string): Promise<(string | undefined)[]> {
    const listing = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: objectKey }));
    return (listing.Versions ?? []).filter((v) => v.Key === objectKey).map((v) => v.VersionId);
  }

  beforeAll(async () => {
    client = createS3Client({ endpoint, region, forcePathStyle });
    await S3Archive.createBucket(client, bucket);
  });
  afterAll(() => client?.destroy());

  it('round-trips bytes under the prefix, locked in COMPLIANCE mode until now + retentionDays', async () => {
    const now = Date.now();
    const archive = archiveAt('roundtrip', { retentionDays: 2, now: () => now });
    const bytes = Buffer.from('checkpoint 1\n');
    const { versionId } = await archive.put('checkpoints/1.note', bytes);
    expect(versionId).toBeTruthy();

    expect(await archive.get('checkpoints/1.note')).toEqual(bytes);
    const stored = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'roundtrip/checkpoints/1.note' }));
    expect(stored.VersionId).toBe(versionId);
    const retention = await archive.retention('checkpoints/1.note');
    expect(retention).toMatchObject({ mode: 'COMPLIANCE', versionId });
    expect(Math.abs(retention!.retainUntil!.getTime() - (now + 2 * DAY_MS))).toBeLessThan(1000);

    expect(await archive.get('checkpoints/2.note')).toBeUndefined();
    expect(await archive.retention('checkpoints/2.note')).toBeUndefined();
  });

  it('reads an object into the memory it is given, across many body chunks, and undefined for none', async () => {
    const archive = archiveAt('into');
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 7);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) & 0xff;
    await archive.put('bundles/big', bytes);
    const memory = Buffer.alloc(bytes.length + 100, 0xee);
    const asked: number[] = [];
    const read = await archive.get('bundles/big', (size) => (asked.push(size), memory));
    expect(asked).toEqual([bytes.length]);
    expect(read!.equals(bytes)).toBe(true);
    expect(read!.buffer).toBe(memory.buffer);
    expect(memory[bytes.length]).toBe(0xee);
    expect(await archive.get('bundles/none', () => memory)).toBeUndefined();
  });

  it('refuses to delete the locked version, even with the governance bypass, and keeps its bytes', async () => {
    const archive = archiveAt('delete');
    const bytes = Buffer.from('sealed bundle');
    const { versionId } = await archive.put('bundles/1', bytes);

    for (const bypass of [false, true]) {
      const deletion = client.send(
        new DeleteObjectCommand({ Bucket: bucket, Key: 'delete/bundles/1', VersionId: versionId, BypassGovernanceRetention: bypass }),
      );
      await expect(deletion).rejects.toMatchObject({ name: 'AccessDenied' });
    }
    expect(await archive.get('bundles/1')).toEqual(bytes);
    expect(await versionsOf('delete/bundles/1')).toEqual([versionId]);
  });

  it('treats the same bytes again as a no-op and refuses different bytes, leaving one version', async () => {
    const archive = archiveAt('once');
    const first = await archive.put('k', Buffer.from('one'));
    expect(await archive.put('k', Buffer.from('one'))).toEqual(first);
    expect(await versionsOf('once/k')).toEqual([first.versionId]);

    await expect(archive.put('k', Buffer.from('two'))).rejects.toThrow(ArchiveConflictError);
    expect(await versionsOf('once/k')).toEqual([first.versionId]);
    expect((await archive.get('k'))!.toString()).toBe('one');
  });

  it('compares an object written by other means (no sha256 metadata) by its bytes, and reports it unlocked', async () => {
    const archive = archiveAt('foreign');
    const bytes = Buffer.from('written without the archive');
    const written = await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'foreign/k',
        Body: bytes,
        ContentMD5: createHash('md5').update(bytes).digest('base64'),
      }),
    );

    expect(await archive.put('k', bytes)).toEqual({ versionId: written.VersionId });
    await expect(archive.put('k', Buffer.from('other bytes'))).rejects.toThrow(ArchiveConflictError);
    expect(await versionsOf('foreign/k')).toEqual([written.VersionId]);
    expect(await archive.retention('k')).toEqual({ mode: 'NONE', retainUntil: undefined, versionId: written.VersionId });
  });

  it('sends one PutObject with Content-MD5, SHA-256 checksum, lock and digest metadata; a repeat only HEADs', async () => {
    const { client: recording, requests } = recordingClient();
    const archive = new S3Archive({ bucket, prefix: 'headers', client: recording, mode: 'COMPLIANCE', retentionDays: 1 });
    const bytes = Buffer.from('headers the server does not insist on');
    await archive.put('k', bytes);
    await archive.put('k', bytes);
    recording.destroy();

    const puts = requests.filter((r) => r.method === 'PUT');
    expect(puts).toHaveLength(1);
    // The repeat compared the digest stored in the metadata rather than downloading the object.
    expect(requests.filter((r) => r.method === 'GET')).toHaveLength(0);
    const { query, headers } = puts[0]!;
    expect(query).not.toHaveProperty('uploadId');
    expect(headers).toMatchObject({
      'content-md5': createHash('md5').update(bytes).digest('base64'),
      'x-amz-checksum-sha256': createHash('sha256').update(bytes).digest('base64'),
      'x-amz-object-lock-mode': 'COMPLIANCE',
      'x-amz-meta-sha256': createHash('sha256').update(bytes).digest('hex'),
    });
    expect(headers['x-amz-object-lock-retain-until-date']).toBeTruthy();
    expect(headers['content-encoding'] ?? '').not.toContain('aws-chunked');
  });

  it('applies GOVERNANCE mode when configured', async () => {
    const archive = archiveAt('governance', { mode: 'GOVERNANCE' });
    const { versionId } = await archive.put('g/1', Buffer.from('governed'));
    expect(await archive.retention('g/1')).toMatchObject({ mode: 'GOVERNANCE', versionId });
    const deletion = client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'governance/g/1', VersionId: versionId }));
    await expect(deletion).rejects.toMatchObject({ name: 'AccessDenied' });
  });

  it('assertObjectLock passes on a lock-enabled bucket and explains how to fix a bucket without Object Lock', async () => {
    await expect(archiveAt('').assertObjectLock()).resolves.toBeUndefined();

    const plainBucket = `${bucket}-plain`;
    await client.send(new CreateBucketCommand({ Bucket: plainBucket }));
    const plain = new S3Archive({ bucket: plainBucket, prefix: '', client, mode: 'COMPLIANCE', retentionDays: 1 });
    const error = (await plain.assertObjectLock().catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toContain(`S3 bucket ${plainBucket} does not have Object Lock enabled`);
    expect(error.message).toContain('auditledger archive init');
  });

  it('createBucket accepts our own Object Lock bucket again and refuses an existing bucket without the lock', async () => {
    await expect(S3Archive.createBucket(client, bucket)).resolves.toBeUndefined();

    const plainBucket = `${bucket}-plain2`;
    await client.send(new CreateBucketCommand({ Bucket: plainBucket }));
    await expect(S3Archive.createBucket(client, plainBucket)).rejects.toThrow(
      `S3 bucket ${plainBucket} does not have Object Lock enabled`,
    );
  });

  it('lists keys relative to the archive prefix, sorted, across pages, without a neighbouring prefix', async () => {
    const { client: recording, requests } = recordingClient();
    const archive = new S3Archive({ bucket, prefix: 'tenant/a', client: recording, mode: 'COMPLIANCE', retentionDays: 1, pageSize: 2 });
    for (const key of ['ckpt/3', 'ckpt/1', 'ckpt/5', 'ckpt/2', 'ckpt/4', 'seal/1']) await archive.put(key, Buffer.from(key));
    await archiveAt('tenant/ab').put('ckpt/9', Buffer.from('a neighbour that shares the prefix string'));

    requests.length = 0;
    expect(await archive.list('ckpt/')).toEqual(['ckpt/1', 'ckpt/2', 'ckpt/3', 'ckpt/4', 'ckpt/5']);
    expect(requests).toHaveLength(3);
    expect(await archive.list('')).toEqual(['ckpt/1', 'ckpt/2', 'ckpt/3', 'ckpt/4', 'ckpt/5', 'seal/1']);
    expect(await archive.list('none/')).toEqual([]);
    expect(await archiveAt('').list('tenant/ab/')).toEqual(['tenant/ab/ckpt/9']);
    recording.destroy();
  });

  it('reports failures with the operation and the object, never the credentials', async () => {
    const accessKeyId = process.env.AWS_ACCESS_KEY_ID!;
    const wrongSecret = `wrong-${randomBytes(16).toString('hex')}`;
    const impostor = new S3Client({
      endpoint,
      region,
      forcePathStyle,
      credentials: { accessKeyId, secretAccessKey: wrongSecret },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const denied = await new S3Archive({ bucket, prefix: 'errors', client: impostor, mode: 'COMPLIANCE', retentionDays: 1 })
      .get('x/1')
      .catch((e: unknown) => e);
    impostor.destroy();
    expect(denied).toBeInstanceOf(S3ArchiveError);
    expect((denied as S3ArchiveError).message).toContain(`S3 GetObject s3://${bucket}/errors/x/1 failed: SignatureDoesNotMatch`);
    const shown = inspect(denied, { depth: 10 }) + JSON.stringify(denied);
    for (const credential of [accessKeyId, wrongSecret, process.env.AWS_SECRET_ACCESS_KEY!]) {
      expect(shown).not.toContain(credential);
    }

    const missingBucket = new S3Archive({ bucket: `${bucket}-missing`, prefix: '', client, mode: 'COMPLIANCE', retentionDays: 1 });
    await expect(missingBucket.put('x/1', Buffer.from('x'))).rejects.toThrow(
      `S3 PutObject s3://${bucket}-missing/x/1 failed: NoSuchBucket (HTTP 404)`,
    );
  });
});

describe('parseArchiveUrl', () => {
  it('splits s3:// URLs into a valid bucket and a prefix without outer slashes', () => {
    expect(parseArchiveUrl('s3://audit-archive')).toEqual({ bucket: 'audit-archive', prefix: '' });
    expect(parseArchiveUrl('s3://audit-archive/')).toEqual({ bucket: 'audit-archive', prefix: '' });
    expect(parseArchiveUrl('s3://audit.archive-2/ledger/prod')).toEqual({ bucket: 'audit.archive-2', prefix: 'ledger/prod' });
    expect(parseArchiveUrl('s3://abc/ledger/prod/')).toEqual({ bucket: 'abc', prefix: 'ledger/prod' });
    expect(parseArchiveUrl(`s3://${'a'.repeat(63)}/x`)).toEqual({ bucket: 'a'.repeat(63), prefix: 'x' });
  });

  it.each([
    ['https://audit-archive/x', /expected s3:\/\/bucket/],
    ['audit-archive/x', /expected s3:\/\/bucket/],
    ['s3://', /expected s3:\/\/bucket/],
    ['s3:///ledger', /expected s3:\/\/bucket/],
    ['s3://ab', /3 to 63 characters/],
    [`s3://${'a'.repeat(64)}`, /3 to 63 characters/],
    ['s3://Audit-Archive', /lowercase letters/],
    ['s3://audit_archive', /lowercase letters/],
    ['s3://-audit', /starts and ends with a letter or digit/],
    ['s3://audit.', /starts and ends with a letter or digit/],
    ['s3://audit..archive', /adjacent dots/],
    ['s3://192.168.10.20', /IP address/],
    ['s3://xn--audit', /does not start with/],
    ['s3://audit-s3alias', /reserved suffix/],
    ['s3://audit-archive//ledger', /prefix "\/ledger" is not valid/],
    ['s3://audit-archive/ledger//prod', /prefix/],
    ['s3://audit-archive/ledger//', /prefix/],
    ['s3://audit-archive/../ledger', /prefix/],
    ['s3://audit-archive/ledger/./prod', /prefix/],
    ['s3://audit-archive/led ger', /prefix/],
    ['s3://audit-archive/ledger?versionId=1', /prefix/],
  ])('rejects %s', (url, reason) => {
    expect(() => parseArchiveUrl(url)).toThrow(reason);
  });

  it('round-trips an archive location, and the archive refuses what the URL parser would', () => {
    const client = new S3Client({ region: 'us-east-1' });
    const archive = new S3Archive({ bucket: 'audit-archive', prefix: 'ledger/prod', client, mode: 'COMPLIANCE', retentionDays: 1 });
    expect(archive.location).toBe('s3://audit-archive/ledger/prod');
    expect(parseArchiveUrl(archive.location)).toEqual({ bucket: 'audit-archive', prefix: 'ledger/prod' });
    expect(new S3Archive({ bucket: 'audit-archive', prefix: '', client, mode: 'GOVERNANCE', retentionDays: 1 }).location).toBe(
      's3://audit-archive',
    );
    const options = { bucket: 'audit-archive', prefix: '', client, mode: 'COMPLIANCE' as const, retentionDays: 1 };
    expect(() => new S3Archive({ ...options, prefix: 'ledger/' })).toThrow(/prefix/);
    expect(() => new S3Archive({ ...options, bucket: 'Audit' })).toThrow(/lowercase/);
    expect(() => new S3Archive({ ...options, retentionDays: 0 })).toThrow(/retentionDays/);
    client.destroy();
  });
});
