import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Hono } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import type { AppEnv } from '../context.js';

/**
 * The interactive API reference: Swagger UI from the swagger-ui-dist package this server depends
 * on (pinned in package.json), served from here. Admins paste tokens into this page, so it loads
 * no code from anywhere else, and its Content-Security-Policy keeps it that way.
 */

const require = createRequire(import.meta.url);

/** Each file of the reference: where it is served, which package file, and its media type. */
const FILES: Record<string, { file?: string; text?: string; type: string }> = {
  '/docs/swagger-ui-bundle.js': { file: 'swagger-ui-dist/swagger-ui-bundle.js', type: 'text/javascript; charset=utf-8' },
  '/docs/swagger-ui.css': { file: 'swagger-ui-dist/swagger-ui.css', type: 'text/css; charset=utf-8' },
  // A file, not an inline script, so that script-src stays 'self'. No validator: it would send
  // the document to validator.swagger.io.
  '/docs/init.js': {
    text: `SwaggerUIBundle({ url: '/openapi.json', dom_id: '#api-reference', validatorUrl: null, deepLinking: true });\n`,
    type: 'text/javascript; charset=utf-8',
  },
};

/** The paths the reference is served at, the page and its files (all public), with their media types. */
export const DOCS_PATHS: Record<string, string> = {
  '/docs': 'text/html; charset=utf-8',
  ...Object.fromEntries(Object.entries(FILES).map(([path, { type }]) => [path, type])),
};

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>auditledger API</title><link rel="stylesheet" href="/docs/swagger-ui.css"></head>
<body><div id="api-reference"></div>
<script src="/docs/swagger-ui-bundle.js"></script><script src="/docs/init.js"></script></body></html>`;

/** Same origin only: scripts, styles, the document and "Try it out" requests; images may be inline SVG. */
const policy = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", 'data:'],
    connectSrc: ["'self'"],
    baseUri: ["'none'"],
    formAction: ["'none'"],
    frameAncestors: ["'none'"],
  },
});

export function docsRoutes() {
  // Read once, on first use: the bundle is 1.7 MB.
  const cache = new Map<string, Promise<string>>();
  const contents = (path: string) => {
    const { file, text } = FILES[path]!;
    if (!cache.has(path)) cache.set(path, text !== undefined ? Promise.resolve(text) : readFile(require.resolve(file!), 'utf8'));
    return cache.get(path)!;
  };
  const app = new Hono<AppEnv>().get('/docs', policy, (c) => c.html(PAGE));
  for (const [path, { type }] of Object.entries(FILES)) {
    app.get(path, policy, async (c) => c.body(await contents(path), 200, { 'content-type': type }));
  }
  return app;
}
