import path from 'node:path';
import type { Config } from '../config.js';
import type { Archive } from './archive.js';
import { LocalArchive } from './local.js';
import { parseArchiveLocation } from './location.js';
import { S3Archive, createS3Client } from './s3.js';

/** The archive the configuration names: an S3 bucket with Object Lock, or a local folder. */
export function openArchive(config: Config): Archive {
  const target = config.AUDITLEDGER_ARCHIVE ?? path.join(config.AUDITLEDGER_DATA_DIR, 'archive');
  const location = parseArchiveLocation(target);
  if (location.kind === 'folder') return new LocalArchive(path.resolve(location.path));
  const { bucket, prefix } = location;
  return new S3Archive({
    bucket,
    prefix,
    client: s3Client(config),
    mode: config.AUDITLEDGER_OBJECT_LOCK_MODE,
    retentionDays: config.AUDITLEDGER_RETENTION_DAYS,
  });
}

export function s3Client(config: Config) {
  return createS3Client({ endpoint: config.S3_ENDPOINT, region: config.AWS_REGION, forcePathStyle: config.S3_FORCE_PATH_STYLE });
}
