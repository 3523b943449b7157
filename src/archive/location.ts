import { checkKey } from './archive.js';

/**
 * Where an archive is, as configured (AUDITLEDGER_ARCHIVE) or given to a command: `s3://bucket` or
 * `s3://bucket/prefix` (AWS S3 or a compatible server, with Object Lock), or a local folder. No
 * SDK here: the configuration checks a location before anything is opened.
 */
export type ArchiveLocation = { kind: 's3'; bucket: string; prefix: string } | { kind: 'folder'; path: string };

const ARCHIVE_URL = /^s3:\/\/([^/]+)(?:\/(.*))?$/;
// A URL scheme (RFC 3986 section 3.1): a location that has one names no folder.
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;

/**
 * The archive `target` names: with a URL scheme, it must be `s3://bucket[/prefix]` (ftp://x or
 * S3://x is a mistake, never a folder named `ftp:`); without one, a folder. Throws Error naming
 * the problem (a scheme other than s3, an invalid bucket name or prefix).
 */
export function parseArchiveLocation(target: string): ArchiveLocation {
  if (!SCHEME.test(target)) return { kind: 'folder', path: target };
  return { kind: 's3', ...parseArchiveUrl(target) };
}

/** Splits `s3://bucket/some/prefix` (a trailing slash is allowed) into the bucket and the prefix. */
export function parseArchiveUrl(url: string): { bucket: string; prefix: string } {
  const match = ARCHIVE_URL.exec(url);
  if (!match) throw new Error(`invalid archive URL ${JSON.stringify(url)}: expected s3://bucket or s3://bucket/prefix`);
  const bucket = match[1]!;
  const prefix = (match[2] ?? '').replace(/\/$/, '');
  const problem = bucketNameProblem(bucket) ?? prefixProblem(prefix);
  if (problem) throw new Error(`invalid archive URL ${JSON.stringify(url)}: ${problem}`);
  return { bucket, prefix };
}

/** The general-purpose bucket naming rules of AWS S3, so a typo fails here rather than at the first PUT. */
export function bucketNameProblem(bucket: string): string | undefined {
  const rules: [boolean, string][] = [
    [bucket.length >= 3 && bucket.length <= 63, 'is 3 to 63 characters long'],
    [/^[a-z0-9.-]*$/.test(bucket), 'has only lowercase letters, digits, dots and hyphens'],
    [/^[a-z0-9]/.test(bucket) && /[a-z0-9]$/.test(bucket), 'starts and ends with a letter or digit'],
    [!bucket.includes('..'), 'has no two adjacent dots'],
    [!/^\d+\.\d+\.\d+\.\d+$/.test(bucket), 'is not an IP address'],
    [!/^(xn--|sthree-|amzn-s3-demo-)/.test(bucket), 'does not start with xn--, sthree- or amzn-s3-demo-'],
    [!/(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$/.test(bucket), 'does not end with a reserved suffix (-s3alias, --ol-s3, …)'],
  ];
  const broken = rules.find(([holds]) => !holds);
  return broken && `bucket name ${JSON.stringify(bucket)} is not valid: a bucket name ${broken[1]}`;
}

/** The prefix follows the archive key rules, so that `prefix/key` is itself a safe key. */
export function prefixProblem(prefix: string): string | undefined {
  if (prefix === '') return undefined;
  try {
    checkKey(prefix);
    return undefined;
  } catch {
    return (
      `prefix ${JSON.stringify(prefix)} is not valid: it is names of letters, digits, '.', '_' and '-' ` +
      "separated by single slashes, with no leading or trailing slash and no '.' or '..' names"
    );
  }
}

