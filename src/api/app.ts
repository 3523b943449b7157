import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Archive } from '../archive/archive.js';
import { verifiers, type Keyring } from '../signing-key.js';
import type { Pools } from '../store/database.js';
import type { GroupCommit } from '../store/group-commit.js';
import { authenticate, requireAdmin } from './auth.js';
import type { AppEnv } from './context.js';
import type { Credentials } from './credentials.js';
import { onError, onNotFound } from './errors.js';
import type { EventLimits } from './event-schema.js';
import { requestLog } from './request-log.js';
import { SealedBundles } from './sealed.js';
import type { AppendMetrics } from './metrics.js';
import { DOCS_PAGE, openApiDocument } from './openapi.js';
import { adminRoutes } from './routes/admin.js';
import { metricsRoutes } from './routes/metrics.js';
import { bundleRoutes } from './routes/bundles.js';
import { retracedRoutes } from './routes/retraced.js';
import { viewerTokenKey } from './viewer-token.js';
import { verifyRoutes, type RequestVerification } from './routes/verify.js';
import { eventRoutes } from './routes/events.js';
import { keyRoutes } from './routes/keys.js';
import { proofRoutes } from './routes/proofs.js';
import { healthRoutes } from './routes/health.js';

export interface AppDeps {
  config: Config;
  pools: Pools;
  credentials: Credentials;
  groupCommit: GroupCommit;
  metrics: AppendMetrics;
  keyring: Keyring;
  archive: Archive;
  requestVerification: RequestVerification;
  log: Logger;
  /** The schema version this build expects; /readyz compares the database against it. */
  schemaVersion: number;
  /** How long the database has gone unanswered, and for how long /healthz tolerates it. Absent: not watched. */
  unreachable?: { unansweredMs(): number; limitMs: number };
}

function eventLimits(config: Config): EventLimits {
  return {
    maxBatchEvents: config.AUDITLEDGER_MAX_BATCH_EVENTS,
    maxStringLength: config.AUDITLEDGER_MAX_STRING_LENGTH,
    maxFields: config.AUDITLEDGER_MAX_FIELDS,
    maxMetadataDepth: config.AUDITLEDGER_MAX_METADATA_DEPTH,
    maxMetadataBytes: config.AUDITLEDGER_MAX_METADATA_BYTES,
  };
}

export function createApp(deps: AppDeps) {
  const { config, pools, credentials, groupCommit, metrics, keyring, archive, requestVerification, log, schemaVersion, unreachable } = deps;
  const app = new Hono<AppEnv>();
  app.onError(onError);
  app.notFound(onNotFound);

  // Keeps a caller's well-formed X-Request-Id, so logs correlate across services.
  app.use(requestId());
  app.use(requestLog(log));
  app.use(async (c, next) => {
    c.set('maxBodyBytes', config.AUDITLEDGER_MAX_BODY_BYTES);
    await next();
  });

  app.route('/', healthRoutes(pools.app, schemaVersion, unreachable));
  app.route('/', metricsRoutes(pools, metrics));
  const document = openApiDocument(config, eventLimits(config));
  app.get('/openapi.json', (c) => c.json(document));
  app.get('/docs', (c) => c.html(DOCS_PAGE));

  const auth = authenticate(credentials);
  for (const path of ['/v1/projects', '/v1/projects/*', '/v1/tokens/*']) app.use(path, auth, requireAdmin);
  app.route('/v1', adminRoutes({ db: pools.app, credentials, maxNameLength: config.AUDITLEDGER_MAX_NAME_LENGTH }));

  const chainRoutes = ['/v1/events', '/v1/events/*', '/v1/chain', '/v1/checkpoints', '/v1/checkpoints/*', '/v1/consistency', '/v1/bundles', '/v1/bundles/*', '/v1/verify', '/v1/verify/*'];
  for (const path of chainRoutes) {
    app.use(path, auth);
  }
  const sealed = new SealedBundles(pools.app, archive, verifiers(keyring));
  app.route('/v1', eventRoutes({ db: pools.app, groupCommit, limits: eventLimits(config), sealed, metrics }));
  app.route('/v1', proofRoutes(pools.app, sealed));
  app.route('/v1', bundleRoutes(pools.app));
  app.route('/v1', verifyRoutes(pools.app, requestVerification));

  // Retraced's publisher API, for apps that switch by changing a URL.
  app.use('/publisher/v1/*', auth);
  app.route(
    '/publisher/v1',
    retracedRoutes({ db: pools.app, groupCommit, limits: eventLimits(config), viewerTokenKey: viewerTokenKey(keyring.current) }),
  );
  app.route('/v1', keyRoutes(keyring));

  return app;
}
