// The <auditledger-viewer> web component in a real browser (Debian's Chromium, driven by
// playwright-core) against a real server, embedded in a host page of another origin under a
// strict Content-Security-Policy. Skipped, saying why, only when /usr/bin/chromium is absent.
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { build } from 'esbuild';
import pino from 'pino';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildViewer } from '../../scripts/build-viewer.mjs';
import { issueViewerToken, viewerTokenKey } from '../../src/api/viewer-token.js';
import { runCheckpoints } from '../../src/jobs/checkpoints.js';
import { generateSigningKey, verifierKey } from '../../src/ledger/keys.js';
import { createTestApp, createTenant, type TestApp } from '../helpers/app.js';
import { asSuperuser, createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startTestServer, type TestServer } from '../helpers/http.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.resolve(import.meta.dirname, '../../test-artifacts');
const require = createRequire(import.meta.url);
if (!existsSync(CHROMIUM)) console.warn(`skipping the browser tests: ${CHROMIUM} is absent (apt-get install chromium; CI installs it)`);

/** The host page: another origin than the ledger, scripts from the ledger only, no inline anything. */
function hostPage(ledger: string, attributes: Record<string, string>): string {
  const attrs = Object.entries(attributes)
    .map(([name, value]) => ` ${name}="${value.replace(/&/g, '&amp;').replace(/"/g, '&quot;')}"`)
    .join('');
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Audit log</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<script type="module" src="${ledger}/viewer/auditledger-viewer.js"></script></head>
<body><main><h1>Your audit log</h1><auditledger-viewer${attrs}></auditledger-viewer></main></body></html>`;
}

describe.skipIf(!existsSync(CHROMIUM))('the embedded viewer in Chromium', () => {
  let db: TestDatabase;
  let t: TestApp;
  let ledger: TestServer;
  let host: Server;
  let hostUrl: string;
  let context: BrowserContext;
  /** A fresh --user-data-dir, and where this file's viewer bundle is built. */
  let profile: string;
  let bundleDir: string;
  let tenant: Awaited<ReturnType<typeof createTenant>>;
  let viewerToken: string;
  /** acme's events as appended, oldest first. */
  const acme: { action: string; actor: string; target: string; id?: string }[] = [];
  /** What the browser reported as errors, per page. */
  const problems = new Map<Page, string[]>();

  beforeAll(async () => {
    // A bundle of its own: dist/ is rebuilt by the packages test meanwhile.
    profile = await mkdtemp(path.join(os.tmpdir(), 'auditledger-chromium-'));
    bundleDir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-viewer-'));
    await buildViewer([path.join(bundleDir, 'auditledger-viewer.js')]);
    db = await createTestDatabase();
    t = await createTestApp(db, {}, Date.now, undefined, { viewerBundle: path.join(bundleDir, 'auditledger-viewer.js') });
    ledger = await startTestServer(t);
    tenant = await createTenant(t, 'viewer-shop');

    for (let i = 0; i < 25; i++) {
      const action = i % 5 === 0 ? 'user.login' : i % 2 ? 'doc.read' : 'doc.edit';
      acme.push({ action, actor: i % 3 === 0 ? 'bob' : 'alice', target: `doc-${i % 4}` });
    }
    const crud = { 'user.login': 'c', 'doc.edit': 'u', 'doc.read': 'r' } as Record<string, string>;
    const events = acme.map((e, i) => ({ action: e.action, crud: crud[e.action], group: { id: 'acme' }, actor: { id: e.actor, name: e.actor === 'bob' ? 'Bob' : 'Alice' }, target: { id: e.target }, fields: { n: String(i) } }));
    // globex's events go between acme's: the viewer must never show them.
    events.splice(10, 0, ...['a', 'b', 'c'].map((x) => ({ action: `globex.secret.${x}`, crud: 'c', group: { id: 'globex' }, actor: { id: 'gina', name: 'Gina' }, target: { id: 'vault' }, fields: { n: x } })));
    const stored = await (await t.request('POST', '/v1/events', { token: tenant.token, body: { events } })).json();
    const acmeIds = (stored.events as { id: string }[]).filter((_, i) => i < 10 || i >= 13).map((e) => e.id);
    acme.forEach((e, i) => (e.id = acmeIds[i]));
    await runCheckpoints({ db: db.pools.owner, key: t.keyring.current, origin: t.keyring.origin, log: pino({ level: 'silent' }) });

    const issued = await t.request('GET', `/publisher/v1/project/${tenant.projectId}/viewertoken?group_id=acme&actor_id=u-1`, { token: tenant.token });
    viewerToken = (await issued.json()).token;

    const retracedHost = (await build({
      entryPoints: [path.join(import.meta.dirname, 'retraced-host.mjs')],
      bundle: true,
      write: false,
      format: 'esm',
      minify: true,
      define: { 'process.env.NODE_ENV': '"production"' },
      loader: { '.svg': 'dataurl' },
      logLevel: 'silent',
    })).outputFiles[0]!.text;
    host = createServer((req, res) => {
      const url = new URL(req.url!, 'http://host');
      if (url.pathname === '/retraced.js') return res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(retracedHost);
      if (url.pathname === '/retraced') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return res.end('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Retraced</title><script type="module" src="/retraced.js"></script></head><body><div id="root"></div></body></html>');
      }
      if (url.pathname !== '/') return res.writeHead(204).end(); // favicon and the like: no 404 in the console
      const attributes = Object.fromEntries(url.searchParams);
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': `default-src 'none'; script-src ${ledger.url}; connect-src ${ledger.url}; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'`,
      });
      res.end(hostPage(ledger.url, { url: ledger.url, ...attributes }));
    });
    await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
    hostUrl = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;

    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      acceptDownloads: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    await mkdir(ARTIFACTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    for (const [, errors] of problems) expect(errors).toEqual([]);
    await context?.close();
    await new Promise((resolve) => host?.close(resolve));
    await ledger?.close();
    await t?.close();
    await db?.drop();
    for (const dir of [profile, bundleDir]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** Opens the host page with these attributes, at this width, and waits for the first page of events. */
  async function open(attributes: Record<string, string>, width = 1280, expectRows = true): Promise<Page> {
    const page = await context.newPage();
    const errors: string[] = [];
    problems.set(page, errors);
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(String(error)));
    await page.setViewportSize({ width, height: 900 });
    await page.goto(`${hostUrl}/?${new URLSearchParams(attributes)}`);
    if (expectRows) await page.locator('auditledger-viewer tbody tr').first().waitFor();
    return page;
  }

  const rows = (page: Page) => page.locator('auditledger-viewer tbody tr');
  const actions = (page: Page) => page.locator('auditledger-viewer tbody td[data-label="Action"]').allTextContents();
  const button = (page: Page, name: string | RegExp) => page.locator('auditledger-viewer').getByRole('button', { name, exact: typeof name === 'string' });
  const verdictOf = (page: Page, rowIndex: number) => rows(page).nth(rowIndex).locator('.verdict:is(.pass, .fail)');

  it("lists the group's events newest first, 20 a page, and pages forward and back", async () => {
    const page = await open({ token: viewerToken });
    const newest = acme.slice().reverse().map((e) => e.action);
    expect(await actions(page)).toEqual(newest.slice(0, 20));
    await button(page, 'Next').click();
    await expect.poll(() => actions(page)).toEqual(newest.slice(20));
    expect(await button(page, 'Next').isDisabled()).toBe(true);
    await button(page, 'Previous').click();
    await expect.poll(() => actions(page)).toEqual(newest.slice(0, 20));
    expect(await page.locator('auditledger-viewer').textContent()).not.toContain('globex');
    await page.close();
  });

  it('searches by action, actor, target and time range', async () => {
    const page = await open({ token: viewerToken });
    const viewer = page.locator('auditledger-viewer');
    const search = async (fields: Record<string, string>) => {
      await button(page, 'Clear').click();
      for (const [label, value] of Object.entries(fields)) await viewer.getByLabel(label, { exact: true }).fill(value);
      await button(page, 'Search').click();
      await viewer.locator('.status:text("Page 1")').waitFor();
    };
    const expected = (keep: (e: (typeof acme)[number]) => boolean) => acme.filter(keep).reverse().map((e) => e.action);

    await search({ Action: 'user.*' });
    await expect.poll(() => actions(page)).toEqual(expected((e) => e.action === 'user.login'));
    await search({ Actor: 'bob', Action: 'doc.read' });
    await expect.poll(() => actions(page)).toEqual(expected((e) => e.actor === 'bob' && e.action === 'doc.read'));
    await search({ Target: 'doc-2' });
    await expect.poll(() => actions(page)).toEqual(expected((e) => e.target === 'doc-2'));
    await search({ From: '2000-01-01T00:00:00', To: '2099-01-01T00:00:00', Action: 'doc.edit' });
    await expect.poll(() => actions(page)).toEqual(expected((e) => e.action === 'doc.edit'));
    await search({ From: '2099-01-01T00:00:00' });
    await expect.poll(() => rows(page).count()).toBe(0);
    expect(await viewer.locator('.status').textContent()).toContain('0 events');
    await page.close();
  });

  it("shows an event's decoded fields and its exact canonical bytes", async () => {
    const page = await open({ token: viewerToken });
    await button(page, 'Details of event 28').click();
    const detail = page.locator('auditledger-viewer .detail');
    const stored = await (await t.request('GET', `/v1/events/${acme[24]!.id}`, { token: tenant.token })).json();
    expect(await detail.locator('pre.canonical').textContent()).toBe(stored.canonical);
    expect(await detail.locator('dt').allTextContents()).toEqual(expect.arrayContaining(['action', 'actor.id', 'actor.name', 'group.id', 'fields.n', 'hash']));
    expect(await detail.locator('div:has(> dt:text-is("fields.n")) dd').textContent()).toBe('24');
    // Focus moves to the detail, for keyboard and screen-reader users.
    expect(await page.evaluate(`document.querySelector('auditledger-viewer').shadowRoot.activeElement?.id`)).toBe('detail-title');
    await page.close();
  });

  it('exports the current search as CSV', async () => {
    const page = await open({ token: viewerToken });
    await page.locator('auditledger-viewer').getByLabel('Actor', { exact: true }).fill('alice');
    await button(page, 'Search').click();
    const [download] = await Promise.all([page.waitForEvent('download'), button(page, 'Export CSV').click()]);
    const lines = (await readFile((await download.path())!, 'utf8')).trimEnd().split('\r\n');
    expect(lines[0]).toBe('seq,id,received_at,action,crud,actor_id,target_id,group_id,hash,prev,canonical,event');
    const exported = lines.slice(1).map((line) => line.split(','));
    expect(exported.map((cells) => cells[1])).toEqual(acme.filter((e) => e.actor === 'alice').map((e) => e.id));
    expect(new Set(exported.map((cells) => `${cells[5]} ${cells[7]}`))).toEqual(new Set(['alice acme']));
    await page.close();
  });

  it('verifies an event in the browser, against the published key or a pinned one', async () => {
    const published = await open({ token: viewerToken });
    await button(published, 'Verify event 28').click();
    await expect.poll(() => verdictOf(published, 0).textContent()).toBe('✓ Verified');
    expect(await verdictOf(published, 0).getAttribute('title')).toMatch(/^event .* \(seq 28\) is included in the signed checkpoint of .* at size 28, signed by the ledger's published key$/);
    await published.close();

    const pinned = await open({ token: viewerToken, vkey: verifierKey(t.keyring.current) });
    await button(pinned, 'Verify event 27').click();
    await expect.poll(() => verdictOf(pinned, 1).getAttribute('title')).toMatch(/signed by the pinned key$/);
    await pinned.close();

    // A pinned key is honoured over the server's: a checkpoint not signed by it fails.
    const other = await open({ token: viewerToken, vkey: verifierKey(generateSigningKey('someone-else')) });
    await button(other, 'Verify event 28').click();
    await expect.poll(() => verdictOf(other, 0).textContent()).toMatch(/^✗ Failed: .*(signature|key)/);
    await other.close();
  });

  it('keyboard: Tab reaches the controls with a visible focus ring, Enter opens a detail', async () => {
    const page = await open({ token: viewerToken });
    // Page scripts as text: this file is type-checked without the DOM library.
    const focused = () =>
      page.evaluate(`(() => {
        const active = document.querySelector('auditledger-viewer').shadowRoot.activeElement;
        return active && { label: active.getAttribute('aria-label'), outline: getComputedStyle(active).outlineStyle };
      })()`) as Promise<{ label: string | null; outline: string } | null>;
    let found: Awaited<ReturnType<typeof focused>> = null;
    for (let i = 0; i < 30 && found?.label !== 'Details of event 28'; i++) {
      await page.keyboard.press('Tab');
      found = await focused();
    }
    expect(found).toMatchObject({ label: 'Details of event 28', outline: 'solid' });
    await page.keyboard.press('Enter');
    await page.locator('auditledger-viewer .detail').waitFor();
    await page.close();
  });

  it('is axe-clean and usable at 375 and 1280 pixels wide (screenshots saved)', async () => {
    const axe = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
    for (const width of [375, 1280]) {
      const page = await open({ token: viewerToken }, width);
      await button(page, 'Verify event 28').click();
      await expect.poll(() => verdictOf(page, 0).textContent()).toBe('✓ Verified');
      await button(page, 'Details of event 28').click();
      // Nothing wider than the window: no sideways scrolling on a phone.
      expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(width);
      await page.evaluate(axe); // through DevTools: the page's CSP allows no inline script
      const violations = (await page.evaluate(
        `axe.run().then((r) => r.violations.map(({ id, impact, nodes }) => ({ id, impact, nodes: nodes.length })))`,
      )) as { id: string; impact: string; nodes: number }[];
      expect(violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')).toEqual([]);
      const file = path.join(ARTIFACTS, `viewer-${width}.png`);
      await page.screenshot({ path: file, fullPage: true });
      console.log(`screenshot: ${file}`);
      await page.close();
    }
  });

  it('says clearly that an expired viewer token expired', async () => {
    const claims = { v: 1 as const, token_id: tenant.tokenId, project_id: tenant.projectId, environment_id: tenant.environmentId, group_id: 'acme', actor_id: 'u-1' };
    const expired = issueViewerToken(viewerTokenKey(t.keyring.current), { ...claims, exp: Math.floor(Date.now() / 1000) - 60 });
    const page = await open({ token: expired }, 1280, false);
    const alert = page.locator('auditledger-viewer [role=alert]');
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/^This viewer token expired at \d{4}-\d\d-\d\dT.*Z\. Reload the page for a new one\.$/);
    expect(await rows(page).count()).toBe(0);
    await page.close();
  });

  it('refuses an API token (it would read every group, and write) without sending it, and says when there is no token', async () => {
    const page = await context.newPage();
    const sent: string[] = [];
    page.on('request', (request) => {
      const authorization = request.headers().authorization;
      if (authorization) sent.push(authorization);
    });
    await page.goto(`${hostUrl}/?${new URLSearchParams({ token: tenant.token })}`);
    const alert = page.locator('auditledger-viewer [role=alert]');
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/^This is not a viewer token: the viewer takes only alv_… tokens, which read one group\. Never put an API token \(alt_…\) in a web page\.$/);
    expect(await rows(page).count()).toBe(0);
    expect(sent).toEqual([]);
    await page.goto(`${hostUrl}/?${new URLSearchParams({ token: '' })}`);
    await page.locator('auditledger-viewer [role=alert]').waitFor();
    expect(await page.locator('auditledger-viewer [role=alert]').textContent()).toMatch(/^No viewer token: set the token attribute/);
    await page.close();
  });

  it("Retraced's own viewer (@retracedhq/logs-viewer) lists and searches the group's events through /viewer/v1", async () => {
    const page = await context.newPage();
    const crashes: string[] = [];
    page.on('pageerror', (error) => crashes.push(String(error)));
    const searches: string[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/viewer/v1/graphql')) searches.push(JSON.parse(r.postData()!).variables.query);
    });
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${hostUrl}/retraced?${new URLSearchParams({ host: `${ledger.url}/viewer/v1`, token: viewerToken })}`);
    const widget = () => page.locator('#retracedLogsViewerApp').innerText();
    const shown = async () => /Showing events .*/.exec(await widget())?.[0];
    // Its default search, crud:c,u,d: acme's creates and updates, newest first, nothing of globex.
    const expected = acme.filter((e) => e.action !== 'doc.read');
    await expect.poll(shown).toBe(`Showing events 1 - ${expected.length} of ${expected.length}`);
    expect(searches).toEqual(['crud:c,u,d']);
    expect((await widget()).match(/^(doc\.edit|user\.login|doc\.read|globex\S*)$/gm)).toEqual(expected.reverse().map((e) => e.action));
    await page.screenshot({ path: path.join(ARTIFACTS, 'retraced-logs-viewer.png') });

    await page.getByPlaceholder('Search events').fill('action:user.login');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    const logins = acme.filter((e) => e.action === 'user.login').length;
    await expect.poll(shown).toBe(`Showing events 1 - ${logins} of ${logins}`);
    expect(searches.at(-1)).toMatch(/action:user\.login/);
    expect(crashes).toEqual([]);
    expect((await widget()).match(/^(doc\.edit|user\.login|doc\.read)$/gm)).toEqual(Array(logins).fill('user.login'));
    await page.close();
  });

  // Last: it damages the chain.
  it("fails verification, saying why, once an event's stored bytes are altered in the database", async () => {
    const victim = acme[24]!;
    await asSuperuser(db, (su) =>
      su.query(`UPDATE events SET canonical = convert_to(replace(convert_from(canonical, 'UTF8'), '"24"', '"99"'), 'UTF8') WHERE id = $1`, [victim.id]),
    );
    const page = await open({ token: viewerToken });
    await button(page, 'Verify event 28').click();
    await expect.poll(() => verdictOf(page, 0).textContent()).toBe('✗ Failed: the event bytes do not hash to leaf_hash');
    // Its untouched neighbour still verifies.
    await button(page, 'Verify event 27').click();
    await expect.poll(() => verdictOf(page, 1).textContent()).toBe('✓ Verified');
    await page.close();
  });
});
