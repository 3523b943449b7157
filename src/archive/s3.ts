import {
  CreateBucketCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type BucketLocationConstraint,
  type HeadObjectCommandOutput,
  type ObjectLockRetention,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  ArchiveConflictError,
  assertReadable,
  bodyMd5,
  bodySha256,
  checkKey,
  streamSha256,
  UnreadableObjectError,
  type Archive,
  type ArchiveBody,
  type ObjectIdentity,
  type PutResult,
  type ReadInto,
  type Retention,
} from './archive.js';
import { bucketNameProblem, prefixProblem } from './location.js';

export interface S3ArchiveOptions {
  bucket: string;
  /** Folder inside the bucket, without leading or trailing slash; '' for the bucket's root. */
  prefix: string;
  client: S3Client;
  mode: 'COMPLIANCE' | 'GOVERNANCE';
  /** How long each object is locked against deletion, counted from its PUT. */
  retentionDays: number;
  /** Milliseconds since the epoch; tests pin it. */
  now?: () => number;
  /** Keys per ListObjectsV2 page (S3's default, 1000, when unset); small values exercise paging. */
  pageSize?: number;
}

/** An S3 request that failed, naming the operation and the object, and nothing of the credentials. */
export class S3ArchiveError extends Error {
  /** The S3 error code (NoSuchKey, AccessDenied, …) or the network error's name. */
  readonly code: string;
  readonly status: number | undefined;

  constructor(
    readonly operation: string,
    readonly target: string,
    error: unknown,
  ) {
    const { code, status, detail } = describeFailure(error);
    super(`S3 ${operation} ${target} failed: ${code}${status ? ` (HTTP ${status})` : ''}${detail ? `: ${detail}` : ''}`);
    // The SDK error is not kept as `cause`: it holds the raw response, which loggers would print whole.
    this.name = 'S3ArchiveError';
    this.code = code;
    this.status = status;
  }
}

/**
 * The archive on S3 Object Lock (WORM): every object is written once with a single PutObject that
 * locks its version until now + retentionDays, so that not even the bucket's owner can delete it
 * (COMPLIANCE) or only with a special permission (GOVERNANCE).
 */
export class S3Archive implements Archive {
  readonly location: string;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly client: S3Client;
  private readonly mode: 'COMPLIANCE' | 'GOVERNANCE';
  private readonly retentionMs: number;
  private readonly now: () => number;
  private readonly pageSize: number | undefined;

  constructor(options: S3ArchiveOptions) {
    const problem =
      bucketNameProblem(options.bucket) ?? prefixProblem(options.prefix) ?? retentionProblem(options.retentionDays);
    if (problem) throw new Error(`invalid S3 archive: ${problem}`);
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.client = options.client;
    this.mode = options.mode;
    this.retentionMs = options.retentionDays * DAY_MS;
    this.now = options.now ?? Date.now;
    this.pageSize = options.pageSize;
    this.location = archiveUrl(options.bucket, options.prefix);
  }

  /** Creates `bucket` with Object Lock; an existing bucket of ours is accepted only if it has Object Lock. */
  static async createBucket(client: S3Client, bucket: string): Promise<void> {
    const problem = bucketNameProblem(bucket);
    if (problem) throw new Error(`cannot create S3 bucket: ${problem}`);
    const region = await client.config.region();
    try {
      await client.send(
        new CreateBucketCommand({
          Bucket: bucket,
          ObjectLockEnabledForBucket: true,
          CreateBucketConfiguration: locationConstraint(region),
        }),
      );
    } catch (error) {
      const failure = new S3ArchiveError('CreateBucket', archiveUrl(bucket, ''), error);
      if (failure.code !== 'BucketAlreadyOwnedByYou') throw failure;
    }
    // Also after a success: us-east-1 answers 200 to re-creating a bucket we own, lock or no lock.
    await assertBucketLocked(client, bucket);
  }

  /** Refuses a bucket without Object Lock, where archived objects could be deleted or replaced. */
  async assertObjectLock(): Promise<void> {
    await assertBucketLocked(this.client, this.bucket);
  }

  async put(key: string, body: ArchiveBody): Promise<PutResult> {
    checkKey(key);
    const digest = bodySha256(body).toString('hex');
    const existing = await this.head(key);
    if (existing) {
      if ((await this.storedDigest(key, existing)) !== digest) throw new ArchiveConflictError(key);
      return { versionId: existing.VersionId };
    }
    // One PutObject, never multipart: lock headers on multipart uploads are ignored by some servers.
    const written = await this.call('PutObject', key, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.objectKey(key),
          // A file goes as a stream of known length: a bundle need not fit in memory.
          Body: Buffer.isBuffer(body) ? body : createReadStream(body.path),
          ContentLength: Buffer.isBuffer(body) ? body.length : body.size,
          // AWS requires an integrity header on lock PUTs; lenient servers do not and skip the SHA-256: send both.
          ContentMD5: bodyMd5(body).toString('base64'),
          ChecksumSHA256: Buffer.from(digest, 'hex').toString('base64'),
          ObjectLockMode: this.mode,
          ObjectLockRetainUntilDate: new Date(this.now() + this.retentionMs),
          Metadata: { [SHA256_METADATA]: digest },
        }),
      ),
    );
    return { versionId: written.VersionId };
  }

  async get(key: string, into?: ReadInto): Promise<Buffer | undefined> {
    checkKey(key);
    return ifExists(this.download(key, undefined, into));
  }

  async sha256(key: string): Promise<Buffer | undefined> {
    checkKey(key);
    const object = await ifExists(
      this.call('GetObject', key, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }))),
    );
    return object && streamSha256(object.Body as AsyncIterable<Uint8Array>);
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let continuationToken: string | undefined;
    do {
      const page = await this.call('ListObjectsV2', prefix, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.objectKey(prefix),
            ContinuationToken: continuationToken,
            MaxKeys: this.pageSize,
          }),
        ),
      );
      for (const object of page.Contents ?? []) keys.push(this.relativeKey(object.Key!));
      continuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (continuationToken);
    return keys.sort();
  }

  async identity(key: string): Promise<ObjectIdentity | undefined> {
    checkKey(key);
    const head = await this.head(key);
    if (!head) return undefined;
    const bytes = head.ContentLength ?? 0;
    return { bytes, versionId: head.VersionId, stamp: `${head.VersionId ?? ''}:${head.ETag ?? ''}:${bytes}` };
  }

  async retention(key: string): Promise<Retention | undefined> {
    checkKey(key);
    const head = await this.head(key);
    if (!head) return undefined;
    // Asked of the version HeadObject found, so both answers describe the same object.
    const lock = await this.lockOf(key, head.VersionId);
    return { mode: lock?.Mode ?? 'NONE', retainUntil: lock?.RetainUntilDate, versionId: head.VersionId };
  }

  private head(key: string): Promise<HeadObjectCommandOutput | undefined> {
    return ifExists(
      this.call('HeadObject', key, () =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) })),
      ),
    );
  }

  /** The SHA-256 we stored with the object, or, for an object written by other means, its bytes' own. */
  private async storedDigest(key: string, head: HeadObjectCommandOutput): Promise<string> {
    return head.Metadata?.[SHA256_METADATA] ?? sha256Hex(await this.download(key, head.VersionId));
  }

  private async download(key: string, versionId?: string, into?: ReadInto): Promise<Buffer> {
    const object = await this.call('GetObject', key, () =>
      this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key), VersionId: versionId })),
    );
    try {
      assertReadable(key, object.ContentLength ?? 0);
    } catch (error) {
      (object.Body as { destroy?: () => void } | undefined)?.destroy?.();
      throw error;
    }
    if (into && object.Body && object.ContentLength !== undefined) return readBody(key, object.Body as AsyncIterable<Uint8Array>, into(object.ContentLength).subarray(0, object.ContentLength));
    const bytes = (await object.Body?.transformToByteArray()) ?? new Uint8Array();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength); // a view, not a second copy
  }

  private async lockOf(key: string, versionId: string | undefined): Promise<ObjectLockRetention | undefined> {
    try {
      const answer = await this.call('GetObjectRetention', key, () =>
        this.client.send(
          new GetObjectRetentionCommand({ Bucket: this.bucket, Key: this.objectKey(key), VersionId: versionId }),
        ),
      );
      return answer.Retention;
    } catch (error) {
      if (error instanceof S3ArchiveError && NO_RETENTION.has(error.code)) return undefined;
      throw error;
    }
  }

  private async call<T>(operation: string, key: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw new S3ArchiveError(operation, archiveUrl(this.bucket, this.objectKey(key)), error);
    }
  }

  private objectKey(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private relativeKey(objectKey: string): string {
    return this.prefix ? objectKey.slice(this.prefix.length + 1) : objectKey;
  }
}

/**
 * An S3 client for the archive. Credentials come from the SDK's default chain (AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY, a profile, an instance role). Checksums only WHEN_REQUIRED: the SDK's
 * default streams uploads as aws-chunked with a trailing CRC32, which some S3 servers refuse (411);
 * the archive sends Content-MD5 and a SHA-256 itself.
 */
export function createS3Client(env: { endpoint?: string; region: string; forcePathStyle: boolean }): S3Client {
  return new S3Client({
    ...(env.endpoint ? { endpoint: env.endpoint } : {}),
    region: env.region,
    forcePathStyle: env.forcePathStyle,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

const DAY_MS = 24 * 60 * 60 * 1000;
const SHA256_METADATA = 'sha256';
/** A HEAD has no body to tell NoSuchKey from NoSuchBucket: it is a bare 404, NotFound. */
const MISSING_OBJECT = new Set(['NoSuchKey', 'NotFound']);
/** AWS says NoSuchObjectLockConfiguration for an object without retention; Ceph says the other. */
const NO_RETENTION = new Set(['NoSuchObjectLockConfiguration', 'ObjectLockConfigurationNotFoundError']);

async function assertBucketLocked(client: S3Client, bucket: string): Promise<void> {
  let enabled: string | undefined;
  try {
    const answer = await client.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }));
    enabled = answer.ObjectLockConfiguration?.ObjectLockEnabled;
  } catch (error) {
    const failure = new S3ArchiveError('GetObjectLockConfiguration', archiveUrl(bucket, ''), error);
    if (failure.code !== 'ObjectLockConfigurationNotFoundError') throw failure;
  }
  if (enabled !== 'Enabled') {
    throw new Error(
      `S3 bucket ${bucket} does not have Object Lock enabled, so archived objects could be deleted or replaced. ` +
        'Object Lock can only be turned on when a bucket is created: create a new bucket with it ' +
        '(`auditledger archive init`, or CreateBucket with ObjectLockEnabledForBucket=true) and archive there.',
    );
  }
}

async function ifExists<T>(request: Promise<T>): Promise<T | undefined> {
  try {
    return await request;
  } catch (error) {
    if (error instanceof S3ArchiveError && MISSING_OBJECT.has(error.code)) return undefined;
    throw error;
  }
}

/** us-east-1 is the one region that must not be named when creating a bucket. */
function locationConstraint(region: string) {
  return region === 'us-east-1' ? undefined : { LocationConstraint: region as BucketLocationConstraint };
}

function describeFailure(error: unknown): { code: string; status: number | undefined; detail: string | undefined } {
  const failure = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const code = failure.name ?? 'Error';
  // Servers that send no error message leave the SDK's placeholder, which says nothing.
  const detail = failure.message && failure.message !== 'UnknownError' ? failure.message : undefined;
  return { code, status: failure.$metadata?.httpStatusCode, detail };
}

function archiveUrl(bucket: string, prefix: string): string {
  return prefix ? `s3://${bucket}/${prefix}` : `s3://${bucket}`;
}

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function retentionProblem(days: number): string | undefined {
  return Number.isFinite(days) && days > 0 ? undefined : `retentionDays must be a positive number, not ${days}`;
}

/** Reads `body` into `bytes`, which it must fill exactly (the object's Content-Length). */
async function readBody(key: string, body: AsyncIterable<Uint8Array>, bytes: Buffer): Promise<Buffer> {
  let read = 0;
  for await (const chunk of body) {
    if (read + chunk.byteLength > bytes.length) throw new UnreadableObjectError(key, `is longer than its Content-Length, ${bytes.length} bytes`);
    bytes.set(chunk, read);
    read += chunk.byteLength;
  }
  if (read !== bytes.length) throw new UnreadableObjectError(key, `ended at byte ${read} of its Content-Length, ${bytes.length}`);
  return bytes;
}
