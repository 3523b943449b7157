import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/app.js';

describe('OpenAPI', () => {
  const ctx = useTestApp();

  it('GET /openapi.json documents every registered route, each with a response and its errors', async () => {
    const res = await ctx.t.request('GET', '/openapi.json');
    expect(res.status).toBe(200);
    const doc = await res.json();
    expect(doc.openapi).toBe('3.1.0');
    const registered = new Set(ctx.t.routes.map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)(\{[^}]*\})?/g, '{$1}')}`));
    const documented = new Set(Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops as object).map((m) => `${m} ${path}`)));
    expect([...registered].filter((r) => !documented.has(r))).toEqual([]);
    expect([...documented].filter((d) => !registered.has(d))).toEqual([]);
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops as Record<string, { responses: Record<string, unknown>; summary: string }>)) {
        expect(op.summary, `${method} ${path}`).toBeTruthy();
        expect(Object.keys(op.responses).some((s) => s.startsWith('2')), `${method} ${path}`).toBe(true);
      }
    }
  });

  it('takes request schemas from the validating zod schemas', async () => {
    const doc = await (await ctx.t.request('GET', '/openapi.json')).json();
    const append = doc.paths['/v1/events'].post;
    const single = append.requestBody.content['application/json'].schema.anyOf[0];
    expect(single.required).toEqual(['action']);
    expect(single.additionalProperties).toBe(false);
    expect(append.responses['201'].content['application/json'].example.tree_size).toBe(1);
    // A retry (every key already stored) and a repeated erasure answer 200 with the same body.
    expect(append.responses['200'].content).toEqual(append.responses['201'].content);
    expect(Object.keys(doc.paths['/v1/erasures'].post.responses)).toEqual(expect.arrayContaining(['200', '201', '409']));
    const list = doc.paths['/v1/events'].get.parameters.map((p: { name: string }) => p.name);
    expect(list).toEqual(expect.arrayContaining(['action', 'crud', 'actor_id', 'cursor', 'limit', 'verify']));
  });

  it('GET /docs serves the interactive reference from this server only, under a strict CSP', async () => {
    const res = await ctx.t.request('GET', '/docs');
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    const page = await res.text();
    const urls = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(urls.length).toBeGreaterThanOrEqual(3);
    for (const url of urls) {
      expect(url, url).toMatch(/^\/docs\//);
      const asset = await ctx.t.request('GET', url);
      expect(asset.status, url).toBe(200);
      expect(asset.headers.get('content-type'), url).toMatch(url.endsWith('.css') ? /^text\/css/ : /^text\/javascript/);
      expect(asset.headers.get('content-security-policy'), url).toBe(csp);
      expect((await asset.text()).length, url).toBeGreaterThan(50);
    }
    const init = await (await ctx.t.request('GET', '/docs/init.js')).text();
    expect(init).toContain("url: '/openapi.json'");
    expect(init).toContain('validatorUrl: null');
  });
});
