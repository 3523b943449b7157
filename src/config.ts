import path from 'node:path';
import cronParser from 'cron-parser';
import { z } from 'zod';
import { parseArchiveLocation } from './archive/location.js';
import { parseVerifierKey, type VerifierKey } from './ledger/keys.js';

/**
 * Every setting, read from the environment through one zod schema. Each key is the
 * environment variable's name, so an error message can name exactly what to fix.
 */
const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
/** true or false, exactly; `fallback` when unset. */
const flag = (fallback: boolean) => z.enum(['true', 'false']).default(String(fallback) as 'true' | 'false').transform((v) => v === 'true');
const bytes = positiveInt.describe('a positive number of bytes');
// Node's timers take at most 2^31 - 1 ms (about 24.8 days); a longer one fires at once.
const timerSeconds = positiveInt.max(Math.floor((2 ** 31 - 1) / 1000), 'must be at most 2147483 seconds (Node timers)');
// Checked with the parser pg-boss schedules with (and as it calls it, in UTC), so an expression
// accepted here is one pg-boss accepts.
const cron = z
  .string()
  .min(1)
  .refine(
    (expression) => {
      try {
        cronParser.parseExpression(expression, { tz: 'UTC' });
        return true;
      } catch {
        return false;
      }
    },
    { error: (issue) => `${JSON.stringify(issue.input)} is not a cron expression (5 fields: minute hour day month weekday)` },
  );
// Empty is unset already (loadConfig).
const optionalString = z.string().optional();
/** An archive location: s3://bucket[/prefix] or a folder; any other URL scheme is a mistake, never a folder. */
function archiveLocationProblem(value: string | undefined, ctx: z.RefinementCtx): void {
  if (value === undefined) return;
  try {
    parseArchiveLocation(value);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
  }
}
/** A PostgreSQL connection URL (postgres:// or postgresql://); its text is never repeated, it may hold a password. */
const postgresUrl = optionalString.refine((v) => v === undefined || (URL.canParse(v) && /^postgres(ql)?:$/.test(new URL(v).protocol)), {
  error: 'must be a URL postgres://user:password@host:port/database',
});

export const configSchema = z.object({
  DATABASE_URL: postgresUrl.describe(
    'PostgreSQL URL of the owner role (runs migrations and maintenance). Unset: embedded PostgreSQL under the data dir',
  ),
  AUDITLEDGER_APP_DATABASE_URL: postgresUrl.describe(
    'PostgreSQL URL of the app role the API uses. Unset: DATABASE_URL with its role switched to auditledger_app',
  ),
  HOST: z.string().min(1).default('127.0.0.1').describe('address the HTTP server binds'),
  PORT: port.default(8080).describe('port the HTTP server listens on (0: any free port)'),
  AUDITLEDGER_DATA_DIR: z
    .string()
    .min(1)
    .default('./.auditledger')
    .describe('folder for the embedded PostgreSQL, the generated admin token and the local archive'),
  AUDITLEDGER_ADMIN_TOKEN: optionalString
    .pipe(z.string().min(32, 'must be at least 32 characters').optional())
    .describe('admin token. Unset: generated on first start and written once to DATA_DIR/admin-token'),
  AUDITLEDGER_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('pino log level'),
  AUDITLEDGER_MAX_BODY_BYTES: bytes.default(5 * 1024 * 1024).describe('largest accepted request body'),
  AUDITLEDGER_MAX_NAME_LENGTH: positiveInt.default(200).describe('longest project, environment or token name'),
  AUDITLEDGER_TOKEN_CACHE_SECONDS: z.coerce
    .number()
    .min(0)
    .default(5)
    .describe('how long a process trusts a looked-up API token or personal data policy before reading it again (revocation or policy change delay across processes)'),
  AUDITLEDGER_TOKEN_USAGE_FLUSH_SECONDS: timerSeconds
    .default(60)
    .describe('how often last_used_at of API tokens is written (one batched write, never one per request)'),
  AUDITLEDGER_DB_UNREACHABLE_SECONDS: timerSeconds
    .default(30)
    .describe('seconds without an answer from the database (probed every third of it) after which /healthz answers 503'),
  AUDITLEDGER_PROBE_TIMEOUT_MS: positiveInt
    .max(2 ** 31 - 1)
    .default(2000)
    .describe('longest /readyz and /metrics wait for the database before answering without it (ms)'),
  AUDITLEDGER_SHUTDOWN_TIMEOUT: timerSeconds
    .default(30)
    .describe('seconds a shutdown may take; then the process exits 1, logging the steps it abandoned'),
  AUDITLEDGER_DB_CONNECT_TIMEOUT_SECONDS: timerSeconds
    .default(10)
    .describe('seconds a new database connection may take; then the request fails with 503 (or the command with one line)'),
  AUDITLEDGER_DB_POOL_SIZE: positiveInt.default(10).describe('connections in the app pool'),
  AUDITLEDGER_MAX_BATCH_EVENTS: positiveInt.default(1000).describe('most events in one POST /v1/events'),
  AUDITLEDGER_MAX_STRING_LENGTH: positiveInt.default(4096).describe('longest string in an event (characters)'),
  AUDITLEDGER_MAX_FIELDS: positiveInt.default(100).describe('most entries in fields, actor.fields or target.fields'),
  AUDITLEDGER_MAX_METADATA_DEPTH: positiveInt.default(8).describe('deepest nesting of an event\'s metadata'),
  AUDITLEDGER_MAX_METADATA_BYTES: bytes.default(16 * 1024).describe('largest metadata of one event, as JSON bytes'),
  AUDITLEDGER_IDEMPOTENCY_HOURS: positiveInt.default(24).describe('how long idempotency keys are kept at least'),
  AUDITLEDGER_GROUP_COMMIT_MAX_EVENTS: positiveInt
    .default(10_000)
    .describe('most events one append commit takes, over all its chains (group commit)'),
  AUDITLEDGER_GROUP_COMMIT_WAIT_MS: z.coerce
    .number()
    .min(0)
    .max(100)
    .default(0)
    .describe('how long a group commit waits for more requests before it runs (ms)'),
  AUDITLEDGER_GROUP_COMMIT_ACROSS_CHAINS: flag(true)
    .describe('true or false: whether requests for several chains share one append statement and commit; false on Citus (a statement may lock one shard only)'),
  AUDITLEDGER_PARTITION_DAYS_AHEAD: positiveInt.default(7).describe('days of events partitions created ahead'),
  AUDITLEDGER_SIGNING_KEY_FILE: optionalString.describe(
    'file holding the ed25519 signing key (from auditledger keygen). Unset: DATA_DIR/signing-key, generated on first start',
  ),
  AUDITLEDGER_SUBJECT_KEY_FILE: optionalString.describe(
    'file holding the subject key (64 hex digits: 32 random bytes) that names data subjects by keyed digest (HMAC-SHA-256). Unset: DATA_DIR/subject-key, generated on first start. Never change it once events are stored: erasure finds values by it',
  ),
  AUDITLEDGER_RETIRED_KEYS: z
    .string()
    .default('')
    .transform((s, ctx): VerifierKey[] =>
      s
        .split(/[\s,]+/)
        .filter(Boolean)
        .flatMap((vkey, i) => {
          try {
            return [parseVerifierKey(vkey)];
          } catch (error) {
            // Named by its place, not its text, which may be a signing key given by mistake.
            ctx.addIssue({ code: 'custom', message: `key ${i + 1}: ${(error as Error).message}` });
            return [];
          }
        }),
    )
    .describe('verifier keys (vkeys) of retired signing keys, separated by commas or spaces'),
  AUDITLEDGER_ORIGIN: optionalString.describe(
    'checkpoint origin prefix; each chain signs as <origin>/<project>/<environment>. Unset: the signing key name',
  ),
  AUDITLEDGER_CHECKPOINT_INTERVAL: timerSeconds.default(60).describe('seconds between checkpoints of chains that moved'),
  AUDITLEDGER_ARCHIVE: optionalString.superRefine(archiveLocationProblem).describe(
    'where checkpoints and sealed bundles go: s3://bucket/prefix, or a folder. Unset: DATA_DIR/archive',
  ),
  AUDITLEDGER_RETENTION_DAYS: positiveInt
    .default(2557)
    .describe('days every archived object stays under Object Lock retention (S3); default about 7 years'),
  AUDITLEDGER_OBJECT_LOCK_MODE: z
    .enum(['COMPLIANCE', 'GOVERNANCE'])
    .default('COMPLIANCE')
    .describe('S3 Object Lock mode of archived objects: COMPLIANCE (nobody can shorten it) or GOVERNANCE'),
  S3_ENDPOINT: optionalString.describe('S3 endpoint URL for a non-AWS server (MinIO, Ceph). Unset: AWS'),
  S3_FORCE_PATH_STYLE: flag(false)
    .describe('true for path-style S3 URLs (most non-AWS servers)'),
  AWS_REGION: z.string().min(1).default('us-east-1').describe('S3 region; credentials come from the standard AWS variables'),
  AUDITLEDGER_SEAL_AFTER_DAYS: z.coerce
    .number()
    .int()
    .min(0)
    .default(7)
    .describe('a day is sealed once it ended more than this many days ago'),
  AUDITLEDGER_BUNDLE_MAX_EVENTS: positiveInt
    .default(100_000)
    .describe("most events in one sealed bundle: a chain's day takes as many bundles as it needs (README: Bounded bundles)"),
  AUDITLEDGER_SEAL_CRON: cron.default('17 * * * *').describe('when the seal job runs (cron, UTC); hourly by default'),
  AUDITLEDGER_VERIFY_CRON: cron
    .default('*/15 * * * *')
    .describe('when scheduled verification of every chain, from its last verified point, runs (cron, UTC)'),
  AUDITLEDGER_FULL_VERIFY_CRON: cron
    .default('43 3 * * *')
    .describe('when every chain is verified from its first event (cron, UTC); daily by default'),
  AUDITLEDGER_VERIFY_RATE: positiveInt.default(6).describe('most verification runs one API token may start per AUDITLEDGER_VERIFY_RATE_WINDOW'),
  AUDITLEDGER_VERIFY_RATE_WINDOW: positiveInt.default(60).describe('the window of AUDITLEDGER_VERIFY_RATE, in seconds'),
  AUDITLEDGER_ALERT_WEBHOOK: optionalString
    .pipe(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional())
    .describe('URL that receives a signed JSON POST for each new verification finding'),
  AUDITLEDGER_ALERT_WEBHOOK_SECRET: optionalString.describe(
    'key of the HMAC-SHA256 X-Auditledger-Signature header of alerts (required with AUDITLEDGER_ALERT_WEBHOOK)',
  ),
  AUDITLEDGER_CLOCK_OFFSET: z
    .string()
    .regex(/^[+-]?\d+(ms|s|m|h|d)$/, 'must be a duration like -2d, 90m, 30s or 500ms')
    .transform(durationMs)
    .default(0)
    .describe('shift of the server clock, for tests and demos (needs AUDITLEDGER_ALLOW_CLOCK_OFFSET=true)'),
  AUDITLEDGER_ALLOW_CLOCK_OFFSET: flag(false)
    .describe('true to allow AUDITLEDGER_CLOCK_OFFSET'),
});

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

function durationMs(value: string): number {
  const [, amount, unit] = /^([+-]?\d+)(ms|s|m|h|d)$/.exec(value)!;
  return Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
}

export type Config = z.infer<typeof configSchema>;

/** Invalid settings, each problem naming its variable (`PORT: …`); the message is one line. Exit code 78. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable is unset, whatever its type (VAR= in a compose file or a shell).
  const input = Object.fromEntries(Object.keys(configSchema.shape).map((key) => [key, env[key] === '' ? undefined : env[key]]));
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const variable = String(issue.path[0] ?? 'configuration');
        const expects = configSchema.shape[variable as keyof Config]?.description;
        return `${variable}: ${issue.message}${expects ? ` (expects ${expects})` : ''}`;
      }),
    );
  }
  const config = parsed.data;
  if (config.AUDITLEDGER_ALERT_WEBHOOK && !config.AUDITLEDGER_ALERT_WEBHOOK_SECRET) {
    throw new ConfigError(['AUDITLEDGER_ALERT_WEBHOOK_SECRET: required with AUDITLEDGER_ALERT_WEBHOOK, to sign the alerts']);
  }
  if (config.AUDITLEDGER_CLOCK_OFFSET !== 0 && !config.AUDITLEDGER_ALLOW_CLOCK_OFFSET) {
    throw new ConfigError([
      'AUDITLEDGER_CLOCK_OFFSET: refused: shifting the clock of an audit ledger is for tests and demos only; set AUDITLEDGER_ALLOW_CLOCK_OFFSET=true to allow it',
    ]);
  }
  return { ...config, AUDITLEDGER_DATA_DIR: path.resolve(config.AUDITLEDGER_DATA_DIR) };
}
