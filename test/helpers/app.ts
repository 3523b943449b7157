import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { Archive } from '../../src/archive/archive.js';
import { LocalArchive } from '../../src/archive/local.js';
import { createApp } from '../../src/api/app.js';
import { AppendMetrics } from '../../src/api/metrics.js';
import { viewerTokenKey } from '../../src/api/viewer-token.js';
import { Credentials, digest, newAdminToken } from '../../src/api/credentials.js';
import { loadConfig, type Config } from '../../src/config.js';
import { generateSigningKey } from '../../src/ledger/keys.js';
import type { Keyring } from '../../src/signing-key.js';
import { GroupCommit } from '../../src/store/group-commit.js';
import type { AlertTarget } from '../../src/jobs/alert.js';
import { runRequested, type VerifyDeps } from '../../src/jobs/verify.js';
import { queueRun, type ChainRow, type RunLimit } from '../../src/store/verification.js';
import { ensurePartitions } from '../../src/store/partitions.js';
import { afterAll, beforeAll } from 'vitest';
import { createTestDatabase, type TestDatabase } from './database.js';

/** A Response whose JSON tests read freely. */
export type TestResponse = Omit<Response, 'json'> & { json(): Promise<any> };

export interface TestApp {
  /** The app's fetch handler, to serve it over real HTTP (see http.ts). */
  fetch: (request: Request) => Response | Promise<Response>;
  /** Method and path of every route the app registered (middleware excluded). */
  routes: { method: string; path: string }[];
  adminToken: string;
  keyring: Keyring;
  credentials: Credentials;
  config: Config;
  /** Sends a request to the app in process; `body` objects are sent as JSON, strings and bytes as they are. */
  request(method: string, path: string, options?: { token?: string; body?: unknown; headers?: Record<string, string | undefined> }): Promise<TestResponse>;
  close(): Promise<void>;
}

export async function createTestApp(
  db: TestDatabase,
  env: Record<string, string> = {},
  now: () => number = Date.now,
  archive: Archive = new LocalArchive(path.join(os.tmpdir(), `auditledger-test-archive-${randomBytes(6).toString('hex')}`)),
  options: { alert?: AlertTarget; viewerBundle?: string } = {},
): Promise<TestApp> {
  const config = loadConfig({ DATABASE_URL: db.ownerUrl, ...env });
  const adminToken = newAdminToken();
  const key = generateSigningKey('test-ledger');
  const credentials = new Credentials(db.pools.app, [digest(adminToken)], {
    cacheMs: config.AUDITLEDGER_TOKEN_CACHE_SECONDS * 1000,
    usageFlushMs: config.AUDITLEDGER_TOKEN_USAGE_FLUSH_SECONDS * 1000,
    viewerKey: viewerTokenKey(key),
  });
  await ensurePartitions(db.pools.owner, new Date(now()), 1);
  const metrics = new AppendMetrics();
  const groupCommit = new GroupCommit(db.pools.app, {
    maxEvents: config.AUDITLEDGER_GROUP_COMMIT_MAX_EVENTS,
    maxWaitMs: config.AUDITLEDGER_GROUP_COMMIT_WAIT_MS,
    now,
    onCommit: metrics.recordCommit,
  });
  const keyring: Keyring = { current: key, retired: [], origin: 'test.example/ledger', subjectKey: randomBytes(32) };
  const log = pino({ level: 'silent' });
  // A run asked for through the API runs here once queued, as its job would, on the owner's pool.
  const verification: VerifyDeps = { db: db.pools.owner, verifiers: [key], log, alert: options.alert };
  const requestVerification = async (chain: ChainRow, tokenId: string, limit: RunLimit) => {
    const request = await queueRun(db.pools.owner, chain.environment_id, tokenId, limit, async () => {});
    if ('run_id' in request && !request.deduplicated) await runRequested(verification, { chain, runId: request.run_id });
    return request;
  };
  const app = createApp({ config, pools: db.pools, credentials, groupCommit, metrics, keyring, archive, requestVerification, log, schemaVersion: 5, viewerBundle: options.viewerBundle });
  return {
    fetch: app.fetch,
    routes: app.routes.filter((r) => r.method !== 'ALL').map(({ method, path }) => ({ method, path })),
    adminToken,
    keyring,
    credentials,
    config,
    request(method, path, options = {}) {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(options.headers ?? {})) if (v !== undefined) headers[k] = v;
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      let body: string | Uint8Array | undefined;
      if (options.body !== undefined) {
        const raw = typeof options.body === 'string' || options.body instanceof Uint8Array;
        body = raw ? (options.body as string | Uint8Array) : JSON.stringify(options.body);
        headers['content-type'] ??= 'application/json';
      }
      return Promise.resolve(app.request(path, { method, headers, body }));
    },
    close: () => credentials.close(),
  };
}

/** Creates a project, an environment and a token with the given scopes through the admin API. */
export async function createTenant(t: TestApp, name: string, scopes?: string[]) {
  const json = async (res: TestResponse) => {
    if (res.status !== 201) throw new Error(`${res.status}: ${await res.text()}`);
    return res.json() as Promise<Record<string, string>>;
  };
  const project = await json(await t.request('POST', '/v1/projects', { token: t.adminToken, body: { name } }));
  const environment = await json(
    await t.request('POST', `/v1/projects/${project.id}/environments`, { token: t.adminToken, body: { name: 'production' } }),
  );
  const token = await json(
    await t.request('POST', `/v1/projects/${project.id}/environments/${environment.id}/tokens`, {
      token: t.adminToken,
      body: { name: 'app', ...(scopes ? { scopes } : {}) },
    }),
  );
  return { projectId: project.id!, environmentId: environment.id!, token: token.token!, tokenId: token.id! };
}

/** A database and an app of the test file's own, made before its tests and dropped after them. */
export function useTestApp(env: Record<string, string> = {}): { readonly db: TestDatabase; readonly t: TestApp } {
  const context = {} as { db: TestDatabase; t: TestApp };
  beforeAll(async () => {
    context.db = await createTestDatabase();
    context.t = await createTestApp(context.db, env);
  });
  afterAll(async () => {
    await context.t?.close();
    await context.db?.drop();
  });
  return context;
}
