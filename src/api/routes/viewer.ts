import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Hono } from 'hono';
import type { AppEnv } from '../context.js';
import { ApiError } from '../errors.js';

/**
 * The <auditledger-viewer> web component, one ES module built by `npm run build`
 * (scripts/build-viewer.mjs) into dist/viewer at the package root: three directories up from this
 * module both as src/api/routes (a checkout, through tsx) and as dist/api/routes (installed).
 */
export const VIEWER_PATH = '/viewer/auditledger-viewer.js';
export const VIEWER_BUNDLE = new URL('../../../dist/viewer/auditledger-viewer.js', import.meta.url);

/**
 * Serves the viewer bundle, public (it holds no secret; the token is the host page's). Host pages
 * load it cross-origin as a module script, which browsers fetch with CORS, hence the
 * Access-Control-Allow-Origin. Cached for an hour and revalidated by its strong ETag (the SHA-256
 * of the bundle), so a new build reaches pages within the hour. 404 names the build step when the
 * checkout was never built. `file` is the bundle (VIEWER_BUNDLE unless a test built its own).
 */
export function viewerRoutes(file: string | URL = VIEWER_BUNDLE) {
  let bundle: Promise<{ body: string; etag: string }> | undefined;
  const load = () =>
    (bundle ??= readFile(file, 'utf8').then(
      (body) => ({ body, etag: `"${createHash('sha256').update(body).digest('base64url')}"` }),
      (error: unknown) => {
        bundle = undefined; // built later: read again next time
        throw error;
      },
    ));
  return new Hono<AppEnv>().get(VIEWER_PATH, async (c) => {
    const { body, etag } = await load().catch(() => {
      throw new ApiError(404, 'viewer_not_built', 'the viewer bundle is not built: run npm run build');
    });
    const headers = {
      etag,
      'cache-control': 'public, max-age=3600',
      'access-control-allow-origin': '*',
      'cross-origin-resource-policy': 'cross-origin',
      'x-content-type-options': 'nosniff',
    };
    // If-None-Match compares weakly (RFC 9110 section 13.1.2): W/"x" matches "x".
    const asked = c.req.header('if-none-match')?.split(',').map((tag) => tag.trim().replace(/^W\//, ''));
    if (asked?.includes(etag) || asked?.includes('*')) return c.body(null, 304, headers);
    return c.body(body, 200, { ...headers, 'content-type': 'text/javascript; charset=utf-8' });
  });
}
