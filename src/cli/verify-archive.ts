import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Archive } from '../archive/archive.js';
import { LocalArchive } from '../archive/local.js';
import { parseArchiveLocation, type ArchiveLocation } from '../archive/location.js';
import { createS3Client, S3Archive, S3ArchiveError } from '../archive/s3.js';
import { verifyArchive, type ArchiveVerification } from '../archive/verify.js';
import type { ArchiveFailure, Tally } from '../ledger/verify-archive.js';
import { chainOption, parseOptions, UsageError, utcDay, verifierKeys, type Verb } from './verb.js';

export const verifyArchiveVerb: Verb = {
  summary: 'check a sealed archive offline: signatures, hashes, Merkle roots, continuity, gaps, Object Lock',
  usage: `auditledger verify-archive <folder | s3://bucket/prefix> --key VKEY [--key VKEY...] [--json]
    [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--chain PROJECT/ENVIRONMENT] [--retention-days N] [--threads N]

Checks the archive alone, with no database and no server: each chain's bundles in day order (manifest
signature, event hashes and links, Merkle root against the bundle's signed checkpoint, consistency
with the bundle before), that the bundles cover every event from seq 1 without gap, and every
checkpoint note in checkpoints/ (signature, and its root against the bundle holding its size),
that the note each bundle signs (at its last seq) is there, and each chain's hash tiles in tlog/
(C2SP tlog-tiles) against the bundles' events.
On S3 every bundle, checkpoint and tile checked must also be under Object Lock retention
(COMPLIANCE or GOVERNANCE) until at least N days (default 1) after it was written.

--key        verifier key(s) of the ledger: GET /v1/keys, or what auditledger keygen printed
--from/--to  only the bundles of these UTC days (inclusive); the bundle before is read to continue from
--chain      only this chain: the project's and the environment's ids (UUIDs)
--json       one JSON document instead of the report
--threads    threads that check bundles (default: one per core); each bundle is read whole, so
             about threads + 1 bundles are in memory at once: lower it for very large bundles

S3 settings come from S3_ENDPOINT, AWS_REGION, S3_FORCE_PATH_STYLE and the standard AWS credential
variables. An archive whose chains have signed checkpoints but no bundle yet (no day sealed: a day
is sealed after it ends) is checked as far as it goes: each note's signature, and its root against
the hash tiles. Exit code 0 when everything checked is valid, 1 on any failure (or when the place
holds no checkpoint or bundle at all, or no bundle in --from/--to while it has some), 2 for usage
errors.`,
  async run(args) {
    const { values, positionals } = parseOptions(
      args,
      {
        key: { type: 'string', multiple: true },
        json: { type: 'boolean' },
        from: { type: 'string' },
        to: { type: 'string' },
        chain: { type: 'string' },
        'retention-days': { type: 'string' },
        threads: { type: 'string' },
      },
      true,
    );
    if (positionals.length !== 1) throw new UsageError('give exactly one archive: a folder or s3://bucket/prefix');
    const target = positionals[0]!;
    const onS3 = archiveLocation(target).kind === 's3';
    if (values['retention-days'] !== undefined && !onS3) throw new UsageError('--retention-days applies to s3:// archives only');
    const options = {
      verifiers: verifierKeys(values.key),
      from: values.from === undefined ? undefined : utcDay('--from', values.from),
      to: values.to === undefined ? undefined : utcDay('--to', values.to),
      chain: chainOption(values.chain),
      retentionDays: onS3 ? retentionDays(values['retention-days']) : undefined,
      threads: threads(values.threads),
    };
    if (options.from && options.to && options.from > options.to) throw new UsageError('--from is after --to');
    let report: ArchiveVerification;
    try {
      report = await verifyArchive(await archiveArgument(target), options);
    } catch (error) {
      if (!(error instanceof S3ArchiveError || error instanceof NoArchiveError)) throw error;
      process.stderr.write(`auditledger verify-archive: cannot read the archive: ${error.message}\n`);
      return 1;
    }
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    return report.ok ? 0 : 1;
  },
};

/** The archive a command names: a folder (NoArchiveError when there is none) or s3://bucket/prefix, with S3 settings from the environment. */
export function archiveArgument(target: string): Promise<Archive> {
  const location = archiveLocation(target);
  return location.kind === 's3' ? Promise.resolve(s3Archive(location)) : localArchive(location.path);
}

/** parseArchiveLocation, its problem a usage error (exit 2). */
function archiveLocation(target: string): ArchiveLocation {
  try {
    return parseArchiveLocation(target);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** The archive named is not a folder. */
export class NoArchiveError extends Error {}

function threads(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9]\d{0,3}$/.test(value)) throw new UsageError(`--threads takes a whole number from 1 to 9999, got ${JSON.stringify(value)}`);
  return Number(value);
}

function retentionDays(value: string | undefined): number {
  if (value === undefined) return 1;
  if (!/^\d+$/.test(value)) throw new UsageError(`--retention-days takes a whole number of days, got ${JSON.stringify(value)}`);
  return Number(value);
}

function s3Archive({ bucket, prefix }: { bucket: string; prefix: string }): Archive {
  const client = createS3Client({
    endpoint: process.env.S3_ENDPOINT || undefined,
    region: process.env.AWS_REGION || 'us-east-1',
    forcePathStyle: process.env.S3_FORCE_PATH_STYLE === 'true',
  });
  // Only read: the lock settings S3Archive writes with are never used here.
  return new S3Archive({ bucket, prefix, client, mode: 'COMPLIANCE', retentionDays: 1 });
}

async function localArchive(folder: string): Promise<Archive> {
  const location = path.resolve(folder);
  const isFolder = await stat(location).then((s) => s.isDirectory(), () => false);
  if (!isFolder) throw new NoArchiveError(`${location} is not a folder`);
  return new LocalArchive(location);
}

/** The report in the manner of `aws cloudtrail validate-logs`: range, counts, then one line per failure. */
function formatReport(report: ArchiveVerification): string {
  const { location, requested, found } = report;
  const of = requested.chain ? ` of chain ${requested.chain}` : '';
  const range = `from ${requested.from ?? 'the first day'} to ${requested.to ?? 'the last day'}`;
  const lines = [
    `Validating bundles${of} in ${location} ${range} (found ${found ? `${found.from} to ${found.to}` : 'none'})`,
    '',
    count(report.bundles, 'bundles'),
    count(report.events, 'events') + uncounted(report.events.uncountedBundles),
    count(report.checkpoints, 'checkpoints'),
  ];
  const gaps = report.failures.filter((failure) => failure.kind === 'missing').length;
  if (gaps) lines.push(`${gaps} gap(s): events in no bundle`);
  if (!report.sealed && report.checkpoints.total) {
    lines.push('', 'No day is sealed yet (0 bundles): only the checkpoint notes were checked, their signatures and their roots against the hash tiles.');
  }
  if (report.failures.length) lines.push('', ...report.failures.map(failureLine));
  return `${lines.join('\n')}\n`;
}

// Events of a bundle that cannot be read are in no tally: said, so that "n/n valid" is not read as all of them.
function uncounted(bundles: number): string {
  return bundles ? ` (not counting the events of ${bundles} bundle(s) that could not be read or parsed)` : '';
}

function count({ valid, total, missing = 0 }: Tally & { missing?: number }, what: string): string {
  const invalid = total - valid - missing;
  return `${valid}/${total} ${what} valid${invalid ? `, ${invalid}/${total} INVALID` : ''}${missing ? `, ${missing}/${total} MISSING` : ''}`;
}

const LABELS: Record<ArchiveFailure['kind'], string> = {
  bundle: 'Bundle INVALID',
  missing: 'Bundle MISSING',
  checkpoint: 'Checkpoint INVALID',
  'missing-checkpoint': 'Checkpoint MISSING',
  tile: 'Tile INVALID',
  retention: 'Object Lock INVALID',
  archive: 'Archive INVALID',
};

function failureLine({ kind, chain, day, seq, key, reason }: ArchiveFailure): string {
  const where = [chain && `chain ${chain}`, day && `bundle ${day}`, seq !== null && `seq ${seq}`].filter(Boolean).join(', ');
  // The key names the object exactly: a day's bundles share the day (bounded bundles).
  const object = key ? ` (${key})` : '';
  return `${LABELS[kind]}${where ? ` ${where}` : ''}: ${reason}${object}`;
}
