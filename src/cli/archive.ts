import { makeDirectory } from '../make-directory.js';
import { openArchive, s3Client } from '../archive/open.js';
import { LocalArchive } from '../archive/local.js';
import { parseArchiveUrl } from '../archive/location.js';
import { S3Archive } from '../archive/s3.js';
import { loadConfig } from '../config.js';
import { CONFIG_HELP, parseOptions, UsageError, type Verb } from './verb.js';

export const archive: Verb = {
  summary: 'archive utilities: init creates the configured archive (an S3 bucket with Object Lock)',
  usage: `auditledger archive init

Creates the archive AUDITLEDGER_ARCHIVE names: for s3://bucket/prefix a bucket with Object Lock
enabled (for development; Object Lock cannot be turned on for an existing bucket), for a folder the
folder. Checks that an existing bucket has Object Lock.

${CONFIG_HELP}`,
  async run(args) {
    const { positionals } = parseOptions(args, {}, true);
    if (positionals[0] !== 'init' || positionals.length !== 1) throw new UsageError("the only archive command is 'init'");
    const config = loadConfig();
    const target = openArchive(config);
    if (target instanceof S3Archive) {
      await S3Archive.createBucket(s3Client(config), parseArchiveUrl(target.location).bucket);
    } else if (target instanceof LocalArchive) {
      await makeDirectory(target.location);
    }
    process.stdout.write(`archive ready at ${target.location}\n`);
    return 0;
  },
};
