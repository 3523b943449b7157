import { CreateBucketCommand, GetObjectLockConfigurationCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';

const endpoint = process.env.S3_ENDPOINT;
if (!endpoint) {
  if (process.env.CI) throw new Error('CI must provide S3_ENDPOINT (../shared/scripts/s3-local/start.sh)');
  console.warn('skipping S3 tests: S3_ENDPOINT is not set (start ../shared/scripts/s3-local/start.sh to run them)');
}

describe.skipIf(!endpoint)('the S3 server CI provides', () => {
  it('creates buckets with Object Lock enabled', async () => {
    const s3 = new S3Client({
      endpoint,
      region: process.env.AWS_REGION ?? 'us-east-1',
      forcePathStyle: process.env.S3_FORCE_PATH_STYLE !== 'false',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    const bucket = `auditledger-ci-${randomBytes(4).toString('hex')}`;
    await s3.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
    const lock = await s3.send(new GetObjectLockConfigurationCommand({ Bucket: bucket }));
    expect(lock.ObjectLockConfiguration?.ObjectLockEnabled).toBe('Enabled');
    s3.destroy();
  });
});
