// Library mode: the ledger inside the application's own process. The client is the HTTP client
// (batching, backlog, spool, retries), but its requests go to the server's own app in-process,
// with no socket: validation, idempotency, group commit, verification and errors are the server's.
import { hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import pino, { type Logger } from 'pino';
import { z } from 'zod';
import { createApp } from './api/app.js';
import type { Authenticator, Principal } from './api/credentials.js';
import { nameSchema } from './api/schemas.js';
import { LocalArchive } from './archive/local.js';
import { Client, ContextError, type AuditLogClient, type ChainContext, type ClientOptions } from './client/client.js';
import { loadConfig, type Config } from './config.js';
import { KeyError, parseVerifierKey, verifierKey, type SigningKey, type VerifierKey } from './ledger/keys.js';
import { startRuntime, type Runtime } from './service.js';
import { PEM_KEY_NAME, readPublicKey, readSigningKey, type Keyring } from './signing-key.js';
import { isLoginRefused, unavailable } from './store/errors.js';
import { createPool } from './store/database.js';
import { migrate } from './store/migrate.js';
import { findOrCreateChain, UnknownTenantError } from './store/tenants.js';
import { SCOPES } from './store/tokens.js';

/** Options that are wrong: each problem names its option (`database.port: …`), never its secret value. */
export class LibraryOptionsError extends Error {
  override name = 'LibraryOptionsError';
  constructor(readonly problems: string[]) {
    super(`invalid audit log options: ${problems.join('; ')}`);
  }
}

const DEFAULT_ARCHIVE = './.auditledger/archive';
const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

const positiveInt = z.number().int().positive();

/** The database: `connectionString`, or its parts. `user` runs the migrations (as DATABASE_URL's owner role does). */
const databaseSchema = z
  .strictObject({
    connectionString: z.string().optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z.string().min(1).optional(),
    password: z.string().optional(),
    database: z.string().min(1).optional(),
    /** node-postgres's `ssl`: true, or TLS options (ca, rejectUnauthorized, …). */
    ssl: z.union([z.boolean(), z.record(z.string(), z.unknown())]).optional(),
    /** Connections of the pool appends use (another 4 serve jobs and migrations). Default 10. */
    poolSize: positiveInt.max(1000).optional(),
  })
  .superRefine((db, ctx) => {
    if (db.connectionString !== undefined) {
      const url = URL.canParse(db.connectionString) ? new URL(db.connectionString) : undefined;
      if (!url || !/^postgres(ql)?:$/.test(url.protocol)) {
        ctx.addIssue({ code: 'custom', path: ['connectionString'], message: 'must be a URL postgres://user:password@host:port/database' });
      }
      for (const part of ['host', 'port', 'user', 'password', 'database'] as const) {
        if (db[part] !== undefined) ctx.addIssue({ code: 'custom', path: [part], message: 'give either connectionString or host, port, user, password and database, not both' });
      }
      return;
    }
    for (const part of ['host', 'user', 'database'] as const) {
      if (db[part] === undefined) ctx.addIssue({ code: 'custom', path: [part], message: 'required (or give connectionString)' });
    }
  });

export type DatabaseOptions = z.input<typeof databaseSchema>;

const retrySchema = z.strictObject({ attempts: positiveInt.optional(), baseDelayMs: z.number().min(0).optional(), maxDelayMs: z.number().min(0).optional() });

const optionsSchema = z.strictObject({
  database: databaseSchema,
  crypto: z.strictObject({
    /** Our signing key text (auditledger keygen: PRIVATE+KEY+…), or an Ed25519 PKCS#8 PEM. */
    privateKey: z.string({ error: 'required: the signing key (auditledger keygen), or an Ed25519 PKCS#8 PEM' }),
    /** Optional check: our verifier key text, or an Ed25519 SPKI PEM; must be privateKey's. */
    publicKey: z.string().optional(),
    /** The key's name when privateKey is a PEM (which has none). Default "auditledger". */
    keyName: z.string().optional(),
    /** Verifier keys of retired signing keys, whose checkpoints and bundles keep verifying. */
    retiredPublicKeys: z.array(z.string()).optional(),
    /** Checkpoint origin prefix (AUDITLEDGER_ORIGIN). Default: the key's name. */
    origin: z.string().min(1).optional(),
    /**
     * 64 hex digits (32 random bytes, `openssl rand -hex 32`) keying the digests that name data
     * subjects (AUDITLEDGER_SUBJECT_KEY_FILE). Default: derived from privateKey, so set it before
     * ever rotating that key: erasure finds a subject's values by these digests.
     */
    subjectKey: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits (32 random bytes)').optional(),
  }),
  application: z.strictObject({ maxBulkEvents: positiveInt.max(1_000_000).optional() }).optional(),
  partitionDays: positiveInt.max(366).optional(),
  sealAfterDays: z.number().int().min(0).optional(),
  wormEnabled: z.boolean().optional(),
  wormStoragePath: z.string().min(1).optional(),
  validation: z
    .strictObject({
      validateOnQuery: z.boolean().optional(),
      scheduledValidationInterval: positiveInt.optional(),
    })
    .optional(),
  jobs: z.boolean().optional(),
  /** Seconds between checkpoints of chains that moved (AUDITLEDGER_CHECKPOINT_INTERVAL). Default 60. */
  checkpointIntervalSeconds: positiveInt.max(2_147_483).optional(),
  spoolDir: z.string().min(1).optional(),
  maxBacklog: positiveInt.optional(),
  batchSize: positiveInt.max(1000).optional(),
  maxBatchBytes: positiveInt.optional(),
  flushIntervalMs: z.number().int().min(0).optional(),
  retry: retrySchema.optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  logger: z.custom<Logger>((value) => typeof (value as Logger | undefined)?.child === 'function', 'must be a pino logger').optional(),
  onError: z.custom<(error: Error) => void>((value) => typeof value === 'function', 'must be a function').optional(),
});

/**
 * Library mode's options (see README "Library mode"). `database` and `crypto` are required.
 * - `application.maxBulkEvents`: most events one createEvents call takes (default 1000).
 * - `partitionDays`: days of partitions made ahead (default 7). `sealAfterDays`: a day is sealed
 *   once it ended this many days ago (default 7).
 * - `wormEnabled` / `wormStoragePath`: the local archive folder checkpoints and sealed bundles go
 *   to. wormEnabled defaults to true when a path is given; true without one uses
 *   ./.auditledger/archive (the server's default). false: checkpoints in PostgreSQL only, no sealing.
 * - `validation.validateOnQuery`: query() verifies pages by default. `validation.scheduledValidationInterval`:
 *   ms between scheduled verifications (whole minutes dividing an hour, whole hours dividing a
 *   day, or a day); default every 15 minutes.
 * - `jobs`: run checkpoints, sealing, verification and partition upkeep here (default true);
 *   `checkpointIntervalSeconds`: seconds between checkpoints of chains that moved (default 60).
 * - `spoolDir`, `maxBacklog`, `batchSize`, `maxBatchBytes`, `flushIntervalMs`, `retry`, `onError`: as the HTTP client's.
 * - `logLevel` (default warn) or `logger` (a pino logger).
 */
export type LibraryOptions = z.input<typeof optionsSchema>;

/** Zod's issues as `path: message` lines; never the values, which may be passwords or keys. */
function problems(error: z.ZodError, prefix: string[] = []): string[] {
  return error.issues.map((issue) => `${[...prefix, ...issue.path].join('.') || 'options'}: ${issue.message}`);
}

function parse<T extends z.ZodType>(schema: T, value: unknown, prefix: string[] = []): z.output<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new LibraryOptionsError(problems(parsed.error, prefix));
  return parsed.data;
}

/** The owner URL of `database` and its TLS options. */
function connection(database: z.output<typeof databaseSchema>): { url: string; ssl: pg.PoolConfig['ssl'] } {
  const ssl = database.ssl as pg.PoolConfig['ssl'];
  if (database.connectionString) return { url: database.connectionString, ssl };
  const url = new URL('postgres://localhost');
  // A host that is a folder is a Unix socket, which a URL can only carry as a parameter.
  if (database.host!.startsWith('/')) url.searchParams.set('host', database.host!);
  else url.hostname = database.host!;
  url.port = String(database.port ?? 5432);
  url.username = encodeURIComponent(database.user!);
  if (database.password) url.password = encodeURIComponent(database.password);
  url.pathname = `/${encodeURIComponent(database.database!)}`;
  return { url: url.toString(), ssl };
}

/** Library mode's default subject key: HKDF-SHA-256 (RFC 5869) of the signing key, as viewer-token keys are. */
function derivedSubjectKey(key: SigningKey): Buffer {
  return Buffer.from(hkdfSync('sha256', key.privateKey, new Uint8Array(0), 'auditledger subject key v1', 32));
}

/** The signing key `crypto.privateKey` holds, checked against `crypto.publicKey` when given. */
function signingKey(crypto: z.output<typeof optionsSchema>['crypto']): SigningKey {
  const key = keyOrError('crypto.privateKey', () => readSigningKey(crypto.privateKey, crypto.keyName ?? PEM_KEY_NAME));
  if (crypto.publicKey !== undefined) {
    const publicKey = keyOrError('crypto.publicKey', () => readPublicKey(crypto.publicKey!));
    if (!Buffer.from(publicKey).equals(Buffer.from(key.publicKey))) {
      throw new LibraryOptionsError([`crypto.publicKey: is not the public key of crypto.privateKey, whose verifier key is ${verifierKey(key)}`]);
    }
  }
  return key;
}

function keyOrError<T>(option: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof KeyError) throw new LibraryOptionsError([`${option}: ${error.message}`]);
    throw error;
  }
}

/**
 * scheduledValidationInterval (ms) as the cron the verification schedule takes, or a
 * LibraryOptionsError when no cron runs at that interval.
 */
export function intervalCron(ms: number): string {
  const option = 'validation.scheduledValidationInterval';
  if (ms === HOUR_MS) return '0 * * * *';
  if (ms === DAY_MS) return '0 0 * * *';
  if (ms % MINUTE_MS === 0 && ms < HOUR_MS && HOUR_MS % ms === 0) return `*/${ms / MINUTE_MS} * * * *`;
  if (ms % HOUR_MS === 0 && ms < DAY_MS && DAY_MS % ms === 0) return `0 */${ms / HOUR_MS} * * *`;
  throw new LibraryOptionsError([
    `${option}: ${ms} ms is no schedule a cron can keep; give milliseconds of whole minutes dividing an hour (60000 … 1800000), whole hours dividing a day (3600000 … 43200000) or a day (86400000)`,
  ]);
}

/** Library mode's settings as the server's Config, so one runtime serves both. Never reads process.env. */
function libraryConfig(options: z.output<typeof optionsSchema>, url: string, archive: string | undefined, logLevel: string): Config {
  const env: Record<string, string | undefined> = {
    DATABASE_URL: url,
    AUDITLEDGER_DB_POOL_SIZE: options.database.poolSize?.toString(),
    AUDITLEDGER_PARTITION_DAYS_AHEAD: options.partitionDays?.toString(),
    AUDITLEDGER_SEAL_AFTER_DAYS: options.sealAfterDays?.toString(),
    AUDITLEDGER_CHECKPOINT_INTERVAL: options.checkpointIntervalSeconds?.toString(),
    AUDITLEDGER_ARCHIVE: archive,
    AUDITLEDGER_VERIFY_CRON: options.validation?.scheduledValidationInterval === undefined ? undefined : intervalCron(options.validation.scheduledValidationInterval),
    AUDITLEDGER_LOG_LEVEL: logLevel,
  };
  return loadConfig(env as NodeJS.ProcessEnv);
}

/**
 * Library mode's credentials: each context (project, environment) gets a random bearer token,
 * known only to this process and never stored, that stands for a principal of that chain with
 * every scope. The app authenticates these as the server authenticates API tokens.
 */
class ContextCredentials implements Authenticator {
  private readonly principals = new Map<string, Principal>();
  private readonly bearers = new Map<string, Promise<string>>();
  private readonly names: z.ZodType<string>;

  constructor(
    private readonly db: () => Promise<pg.Pool>,
    maxNameLength: number,
  ) {
    this.names = nameSchema(maxNameLength);
  }

  async authenticate(token: string): Promise<Principal | undefined> {
    return this.principals.get(token);
  }

  forget(): void {
    // Nothing is cached from the database: the bearers are this process's own.
  }

  /**
   * The bearer of `context`'s chain, resolved once: ids looked up, names found or created.
   * ContextError when a name is not valid or an id names nothing; a database failure is thrown
   * as it is (the client retries it) and resolved again next time.
   */
  bearer(context: ChainContext): Promise<string> {
    const key = JSON.stringify([context.project, context.environment]);
    let bearer = this.bearers.get(key);
    if (!bearer) {
      bearer = this.resolve(context);
      bearer.catch((error: unknown) => {
        if (!(error instanceof ContextError)) this.bearers.delete(key);
      });
      this.bearers.set(key, bearer);
    }
    return bearer;
  }

  private async resolve(context: ChainContext): Promise<string> {
    const name = (field: 'project' | 'environment') => {
      const parsed = this.names.safeParse(context[field]);
      if (!parsed.success) throw new ContextError(`setContext: ${field}: ${parsed.error.issues[0]!.message}`);
      return parsed.data;
    };
    let chain;
    try {
      chain = await findOrCreateChain(await this.db(), name('project'), name('environment'));
    } catch (error) {
      if (error instanceof UnknownTenantError) throw new ContextError(`setContext: ${error.message}`);
      throw error;
    }
    const token = randomBytes(32).toString('base64url');
    this.principals.set(token, { kind: 'token', tokenId: randomUUID(), projectId: chain.project.id, environmentId: chain.environment.id, scopes: [...SCOPES] });
    return token;
  }
}

/**
 * Library mode's client (see createAuditLogClient in src/index.ts). Validates the options now
 * (LibraryOptionsError); touches the database only when first used, so initializeDatabase may
 * run after it. The runtime (pools, jobs, group commit) starts on the first request; a start that
 * fails (the database is down) is retried by the next request, the events waiting in the backlog.
 */
export function createLibraryClient(input: LibraryOptions): AuditLogClient {
  const options = parse(optionsSchema, input);
  const key = signingKey(options.crypto);
  const retired: VerifierKey[] = (options.crypto.retiredPublicKeys ?? []).map((vkey, i) => keyOrError(`crypto.retiredPublicKeys.${i}`, () => parseVerifierKey(vkey)));
  const subjectKey = options.crypto.subjectKey === undefined ? derivedSubjectKey(key) : Buffer.from(options.crypto.subjectKey, 'hex');
  const keyring: Keyring = { current: key, retired, origin: options.crypto.origin ?? key.name, subjectKey };
  const worm = options.wormEnabled ?? options.wormStoragePath !== undefined;
  const archivePath = worm ? path.resolve(options.wormStoragePath ?? DEFAULT_ARCHIVE) : undefined;
  const { url, ssl } = connection(options.database);
  const logLevel = options.logLevel ?? 'warn';
  const config = libraryConfig(options, url, archivePath, logLevel);
  const log = options.logger ?? pino({ level: logLevel });

  let runtime: Promise<Runtime> | undefined;
  let app: ReturnType<typeof createApp> | undefined;
  const started = () => {
    runtime ??= startRuntime(config, log, {
      command: 'library',
      keyring,
      archive: archivePath ? new LocalArchive(archivePath) : undefined,
      jobs: options.jobs ?? true,
      connection: { ssl, source: 'database' },
    }).catch((error: unknown) => {
      // A failed start is tried again by the next request, unless the database refused the
      // login: no retry cures a wrong password or database name, so the client must not wait.
      runtime = undefined;
      if (isLoginRefused((error as Error).cause ?? error)) Object.assign(error as Error, { retryable: false });
      throw error;
    });
    return runtime;
  };
  const credentials = new ContextCredentials(async () => (await started()).pools.app, config.AUDITLEDGER_MAX_NAME_LENGTH);
  const inProcess = (async (input: string | URL | Request, init?: RequestInit) => {
    const { app: deps } = await started();
    app ??= createApp({ ...deps, credentials });
    return app.fetch(new Request(input, init));
  }) as typeof fetch;

  let closing: Promise<void> | undefined;
  const clientOptions: ClientOptions = {
    url: 'http://auditledger.in-process',
    token: '',
    fetch: inProcess,
    authorize: (context) => credentials.bearer(context),
    afterClose: () => (closing ??= (async () => (runtime ? (await runtime.catch(() => undefined))?.stop() : undefined))()),
    maxBulkEvents: options.application?.maxBulkEvents ?? 1000,
    validateOnQuery: options.validation?.validateOnQuery ?? false,
    ...(options.spoolDir !== undefined && { spoolDir: options.spoolDir }),
    ...(options.maxBacklog !== undefined && { maxBacklog: options.maxBacklog }),
    ...(options.batchSize !== undefined && { batchSize: options.batchSize }),
    ...(options.maxBatchBytes !== undefined && { maxBatchBytes: options.maxBatchBytes }),
    ...(options.flushIntervalMs !== undefined && { flushIntervalMs: options.flushIntervalMs }),
    ...(options.retry !== undefined && { retry: options.retry }),
    vkey: [verifierKey(key), ...retired.map(verifierKey)],
    onError: options.onError ?? ((error) => log.error({ err: error }, 'audit log client')),
  };
  return new Client(clientOptions);
}

/**
 * Applies the ledger's migrations to the database (the same `migrate` as the server, under its
 * advisory lock), then disconnects. Safe to call repeatedly and from processes at once: the
 * second finds nothing to do. Throws LibraryOptionsError for bad options, DatabaseUnavailableError
 * (naming host, port and database, never the password) when the database cannot be used.
 */
export async function initializeDatabase(database: DatabaseOptions): Promise<{ applied: string[] }> {
  const { url, ssl } = connection(parse(databaseSchema, database, ['database']));
  const pool = createPool({ connectionString: url, max: 1, ...(ssl === undefined ? {} : { ssl }) });
  pool.on('error', () => undefined);
  try {
    return { applied: await migrate(pool) };
  } catch (error) {
    throw unavailable(error, url, 'database');
  } finally {
    await pool.end();
  }
}
