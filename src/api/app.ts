import { Hono, type Context } from 'hono';
import { requestId } from 'hono/request-id';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Archive } from '../archive/archive.js';
import { verifiers, type Keyring } from '../signing-key.js';
import type { Pools } from '../store/database.js';
import type { GroupCommit } from '../store/group-commit.js';
import { except } from 'hono/combine';
import { authenticate, requireAdmin } from './auth.js';
import type { AppEnv } from './context.js';
import type { Authenticator } from './credentials.js';
import { onError, onNotFound } from './errors.js';
import { eventLimits } from './event-schema.js';
import { requestLog } from './request-log.js';
import { PersonalPolicies } from './personal.js';
import { SealedBundles } from './sealed.js';
import type { AppendMetrics } from './metrics.js';
import { openApiDocument } from './openapi.js';
import { DOCS_PATHS, docsRoutes } from './routes/docs.js';
import { adminRoutes } from './routes/admin.js';
import { erasureAdminRoutes, erasureRoutes } from './routes/erasures.js';
import { personalDataRoutes } from './routes/personal-data.js';
import { metricsRoutes } from './routes/metrics.js';
import { bundleRoutes } from './routes/bundles.js';
import { retracedRoutes, retracedViewerRoutes } from './routes/retraced.js';
import { viewerTokenKey } from './viewer-token.js';
import { verifyRoutes, type RequestVerification } from './routes/verify.js';
import { eventRoutes } from './routes/events.js';
import { keyRoutes } from './routes/keys.js';
import { proofRoutes } from './routes/proofs.js';
import { tlogRoutes } from './routes/tlog.js';
import { healthRoutes } from './routes/health.js';
import { VIEWER_PATH, viewerRoutes } from './routes/viewer.js';
import { cors } from 'hono/cors';

export interface AppDeps {
  config: Config;
  pools: Pools;
  credentials: Authenticator;
  groupCommit: GroupCommit;
  metrics: AppendMetrics;
  keyring: Keyring;
  /** Where sealed bundles are read from; absent in library mode with wormEnabled false. */
  archive?: Archive | undefined;
  requestVerification: RequestVerification;
  log: Logger;
  /** The schema version this build expects; /readyz compares the database against it. */
  schemaVersion: number;
  /** The viewer bundle served at /viewer/auditledger-viewer.js; absent: the build's (dist/viewer). */
  viewerBundle?: string | undefined;
  /** How long the database has gone unanswered, and for how long /healthz tolerates it. Absent: not watched. */
  unreachable?: { unansweredMs(): number; limitMs: number };
}

/**
 * The routes anyone may call, as `METHOD /path`. Every other request needs a credential, so a
 * route added later is closed until it is listed here; an unknown path without one answers 401,
 * like a known one, so probing without a token learns nothing.
 */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set(
  ['/healthz', '/readyz', '/metrics', '/openapi.json', ...Object.keys(DOCS_PATHS), '/v1/keys', VIEWER_PATH].map((path) => `GET ${path}`).concat('POST /viewer/v1/viewersession'),
);

export function createApp(deps: AppDeps) {
  const { config, pools, credentials, groupCommit, metrics, keyring, archive, requestVerification, log, schemaVersion, unreachable, viewerBundle } = deps;
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

  // What the embedded viewer (on the host page's origin) reads, with a bearer token and no cookie:
  // any origin may, since nothing ambient is sent. Preflights are answered here, before
  // authentication; GET only, so pages cannot write through this. Appends (POST) skip it: hono's
  // cors sets its headers on c.res before the route answers, which makes @hono/node-server build
  // a full web Response (a ReadableStream) for every event appended.
  const viewerCors = cors({ origin: '*', allowMethods: ['GET'], allowHeaders: ['Authorization'], exposeHeaders: ['Content-Disposition'], maxAge: 600 });
  const READS = new Set(['GET', 'HEAD', 'OPTIONS']);
  for (const path of ['/v1/events', '/v1/events/*', '/v1/keys']) app.use(path, (c, next) => (READS.has(c.req.method) ? viewerCors(c, next) : next()));
  // Retraced's logs viewer posts JSON (its search and session).
  app.use('/viewer/v1/*', cors({ origin: '*', allowMethods: ['POST'], allowHeaders: ['Authorization', 'Content-Type'], maxAge: 600 }));

  // HEAD is answered by the GET route, and is as public as it.
  const isPublic = (c: Context) => PUBLIC_ROUTES.has(`${c.req.method === 'HEAD' ? 'GET' : c.req.method} ${c.req.path}`);
  app.use(except(isPublic, authenticate(credentials)));

  app.route('/', healthRoutes(pools.app, schemaVersion, config.AUDITLEDGER_PROBE_TIMEOUT_MS, unreachable));
  app.route('/', metricsRoutes(pools, metrics, config.AUDITLEDGER_PROBE_TIMEOUT_MS));
  const document = openApiDocument(config, eventLimits(config));
  app.get('/openapi.json', (c) => c.json(document));
  app.route('/', docsRoutes());
  app.route('/', viewerRoutes(viewerBundle));

  const policies = new PersonalPolicies(pools.app, keyring.subjectKey, config.AUDITLEDGER_TOKEN_CACHE_SECONDS * 1000);
  for (const path of ['/v1/projects', '/v1/projects/*', '/v1/tokens/*']) app.use(path, requireAdmin);
  app.route('/v1', adminRoutes({ db: pools.app, credentials, maxNameLength: config.AUDITLEDGER_MAX_NAME_LENGTH }));
  app.route('/v1', personalDataRoutes({ db: pools.app, now: () => groupCommit.now(), policies }));
  const erasure = { db: pools.app, subjectKey: keyring.subjectKey, now: () => groupCommit.now(), maxStringLength: config.AUDITLEDGER_MAX_STRING_LENGTH };
  app.route('/v1', erasureAdminRoutes(erasure));

  // Each of these routes names the scope or kind of token it needs.
  const sealed = new SealedBundles(pools.app, archive, verifiers(keyring));
  app.route('/v1', eventRoutes({ db: pools.app, groupCommit, limits: eventLimits(config), sealed, metrics, policies }));
  app.route('/v1', proofRoutes(pools.app, sealed));
  app.route('/v1', tlogRoutes(pools.app));
  app.route('/v1', bundleRoutes(pools.app));
  app.route('/v1', erasureRoutes(erasure));
  app.route('/v1', verifyRoutes(pools.app, requestVerification, { runs: config.AUDITLEDGER_VERIFY_RATE, windowSeconds: config.AUDITLEDGER_VERIFY_RATE_WINDOW }));

  // Retraced's publisher API, for apps that switch by changing a URL.
  app.route(
    '/publisher/v1',
    retracedRoutes({ db: pools.app, groupCommit, limits: eventLimits(config), viewerTokenKey: viewerTokenKey(keyring.current), policies }),
  );
  app.route('/viewer/v1', retracedViewerRoutes({ db: pools.app, credentials }));
  app.route('/v1', keyRoutes(keyring));

  return app;
}
