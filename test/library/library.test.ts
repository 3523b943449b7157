import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContextError, createAuditLogClient, initializeDatabase, LibraryOptionsError, type AuditLog, type StoredEvent } from '../../src/index.js';
import { intervalCron, type LibraryOptions } from '../../src/library.js';
import { checkpointKey } from '../../src/archive/layout.js';
import { encodeSigningKey, generateSigningKey, verifierKey } from '../../src/ledger/keys.js';
import { verifyChain } from '../../src/store/chain-verify.js';
import { createTenant, createTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, databaseOptions, type TestDatabase } from '../helpers/database.js';

const key = generateSigningKey('library-test');
const QUIET = { logLevel: 'silent' as const, flushIntervalMs: 5, retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 50 } };

async function all(events: AsyncIterable<StoredEvent>): Promise<StoredEvent[]> {
  const list: StoredEvent[] = [];
  for await (const event of events) list.push(event);
  return list;
}

describe("library mode: the seed's usage, from initializeDatabase to close()", () => {
  let db: TestDatabase;
  let archive: string;
  const clients: AuditLog[] = [];
  beforeAll(async () => {
    db = await createTestDatabase({ empty: true });
    archive = await mkdtemp(path.join(os.tmpdir(), 'auditledger-library-worm-'));
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await db?.drop();
    await rm(archive, { recursive: true, force: true });
  });

  const open = (options: Partial<LibraryOptions> = {}) => {
    const client = createAuditLogClient({
      database: databaseOptions(db.ownerUrl),
      crypto: { privateKey: encodeSigningKey(key), publicKey: verifierKey(key) },
      application: { maxBulkEvents: 50 },
      partitionDays: 2,
      sealAfterDays: 7,
      wormEnabled: true,
      wormStoragePath: archive,
      validation: { validateOnQuery: true, scheduledValidationInterval: 15 * 60_000 },
      checkpointIntervalSeconds: 1,
      ...QUIET,
      ...options,
    });
    clients.push(client);
    return client;
  };

  it('creates events in a chain named by names, gapless and verifying, then closes', async () => {
    // As the seed does it: the client first, then the migrations (twice at once, and again).
    const client = open();
    const config = databaseOptions(db.ownerUrl);
    const [first, second] = await Promise.all([initializeDatabase(config), initializeDatabase(config)]);
    expect([...first.applied, ...second.applied].filter((name) => name.startsWith('001_'))).toHaveLength(1);
    expect((await initializeDatabase(config)).applied).toEqual([]);

    expect(client.setContext('my-project', 'production')).toBe(client);
    const one = await client.createEvent({ action: 'user.login', crud: 'c', actor: { id: 'u1' }, group: { id: 'acme' } });
    const bulk = await client.createEvents({ events: [{ action: 'doc.read', actor: { id: 'u1' } }, { action: 'doc.update', actor: { id: 'u2' } }] });
    const array = await client.createEvents([{ action: 'doc.delete', actor: { id: 'u2' } }]);
    expect([one, ...bulk, ...array].map((r) => r.seq)).toEqual([1, 2, 3, 4]);

    // Read back with verify=true (validateOnQuery), then the whole chain as `auditledger verify` does.
    const events = await all(client.query());
    expect(events.map((e) => [e.seq, e.event?.action])).toEqual([
      [1, 'user.login'],
      [2, 'doc.read'],
      [3, 'doc.update'],
      [4, 'doc.delete'],
    ]);
    const { rows } = await db.pools.owner.query<{ project_id: string; id: string }>(
      "SELECT e.project_id, e.id FROM environments e JOIN projects p ON p.id = e.project_id WHERE p.name = 'my-project' AND e.name = 'production'",
    );
    expect(rows).toHaveLength(1);
    const verification = await verifyChain(db.pools.owner, { project: rows[0]!.project_id, environment: rows[0]!.id }, { verifiers: [key] });
    expect(verification).toMatchObject({ ok: true, head_seq: 4, failures: [] });

    // The same chain by ids, from a second client: the chain goes on.
    const byIds = open().setContext(rows[0]!.project_id, rows[0]!.id);
    expect((await byIds.createEvent({ action: 'by.id' })).seq).toBe(5);

    await client.close();
    await client.close(); // idempotent
    await expect(client.createEvent({ action: 'late' })).rejects.toThrow(/closed/);
  });

  it('switching context seals the batch: each event goes to the chain current when it was created', async () => {
    const client = open();
    const a = client.setContext('switch-a', 'production').createEvent({ action: 'to.a' });
    const b = client.setContext('switch-b', 'production').createEvent({ action: 'to.b' });
    const a2 = client.setContext('switch-a', 'production').createEvent({ action: 'to.a.again' });
    expect((await Promise.all([a, b, a2])).map((r) => r.seq)).toEqual([1, 1, 2]);
    client.setContext('switch-b', 'production');
    expect((await all(client.query())).map((e) => e.event?.action)).toEqual(['to.b']);
  });

  it('refuses events without a context, for an unknown id, and beyond maxBulkEvents (none queued)', async () => {
    const client = open();
    await expect(client.createEvent({ action: 'x' })).rejects.toThrow(ContextError);
    await expect(client.createEvent({ action: 'x' })).rejects.toThrow(/setContext\(project, environment\)/);

    const missing = randomUUID();
    client.setContext(missing, 'production');
    const refused = client.createEvent({ action: 'x' });
    await expect(refused).rejects.toThrow(ContextError);
    await expect(refused).rejects.toThrow(`there is no project with the id ${missing}`);
    const { rows } = await db.pools.owner.query('SELECT FROM projects WHERE id = $1', [missing]);
    expect(rows).toHaveLength(0);

    client.setContext('bulk-project', 'production');
    await client.createEvent({ action: 'first' });
    const tooMany = Array.from({ length: 51 }, (_, i) => ({ action: `bulk.${i}` }));
    await expect(client.createEvents({ events: tooMany })).rejects.toThrow(RangeError);
    await expect(client.createEvents(tooMany)).rejects.toThrow(/^events: 51 events in one createEvents call, more than maxBulkEvents \(50\)/);
    await client.flush();
    expect((await all(client.query())).map((e) => e.event?.action)).toEqual(['first']);
    await expect(client.createEvents({ events: 'no' } as never)).rejects.toThrow(/^events: /);
  });

  it('refuses what the HTTP routes refuse: a look-alike of the ledger\'s own actions, a value shaped like a marker', async () => {
    const client = open().setContext('imitations', 'production');
    await expect(client.createEvent({ action: '\u200bAuditLedger.subject.erased' })).rejects.toMatchObject({ status: 400, details: [{ field: 'action', message: expect.stringContaining('auditledger.') }] });
    await expect(client.createEvent({ action: 'a', metadata: { email: { erased: true, commitment: 'c' } } })).rejects.toMatchObject({
      status: 400,
      details: [{ field: 'metadata.email', message: expect.stringMatching(/^\/metadata\/email: /) }],
    });
    await expect(client.createEvent({ action: 'fine' })).resolves.toMatchObject({ seq: 1 });
  });

  it('two processes creating one name at once get one project and one environment', async () => {
    const [x, y] = [open(), open()];
    const receipts = await Promise.all([x.setContext('raced', 'prod').createEvent({ action: 'x' }), y.setContext('raced', 'prod').createEvent({ action: 'y' })]);
    expect(receipts.map((r) => r.seq).sort()).toEqual([1, 2]);
    const { rows } = await db.pools.owner.query("SELECT e.id FROM environments e JOIN projects p ON p.id = e.project_id WHERE p.name = 'raced'");
    expect(rows).toHaveLength(1);
  });

  it('jobs: false appends without running jobs here; verify() says the jobs are off', async () => {
    const client = open({ jobs: false }).setContext('no-jobs', 'production');
    expect((await client.createEvent({ action: 'x' })).seq).toBe(1);
    await expect(client.verify()).rejects.toMatchObject({ status: 503, code: 'jobs_disabled' });
    const { rows } = await db.pools.owner.query<{ id: string }>("SELECT e.id FROM environments e JOIN projects p ON p.id = e.project_id WHERE p.name = 'no-jobs'");
    client.setContext('no-jobs', randomUUID());
    await expect(client.createEvent({ action: 'y' })).rejects.toThrow(/there is no environment with the id/);
    client.setContext('no-jobs', rows[0]!.id);
    expect((await client.createEvent({ action: 'z' })).seq).toBe(2);
  });

  it('a login the database refuses fails the events at once, naming the database and never the password', async () => {
    const wrong = { ...databaseOptions(db.ownerUrl), password: 'not-the-password-hunter2' };
    const none = { ...databaseOptions(db.ownerUrl), password: undefined };
    for (const [database, reason] of [
      [wrong, /password authentication failed/],
      [none, /the server asks for a password and none was given/],
    ] as const) {
      // Retries that would wait for ever: a refused login must not be taken for an outage.
      const client = open({ database, retry: { attempts: 3, baseDelayMs: 10, maxDelayMs: 60_000 } });
      client.setContext('refused-login', 'production');
      const started = Date.now();
      const error = (await client.createEvent({ action: 'never.stored' }).catch((e: unknown) => e)) as Error;
      expect(error.message).toMatch(/cannot use the database at [^ ]+ \(database\)/);
      expect(error.message).toMatch(reason);
      expect(error.message).not.toContain('hunter2');
      expect(Date.now() - started).toBeLessThan(20_000);
    }
  });

  it('wormEnabled: checkpoints are signed and put in the archive folder', async () => {
    const client = open();
    await client.setContext('worm', 'production').createEvent({ action: 'x' });
    // A checkpoint every second of the chains that moved.
    await expect.poll(() => client.checkConsistency().then((r) => r.ok, () => false), { timeout: 10_000, interval: 100 }).toBe(true);
    const { rows } = await db.pools.owner.query<{ project_id: string; id: string }>(
      "SELECT e.project_id, e.id FROM environments e JOIN projects p ON p.id = e.project_id WHERE p.name = 'worm'",
    );
    expect(await readdir(archive, { recursive: true })).toContain(checkpointKey(rows[0]!.project_id, rows[0]!.id, 1));
  });
});

describe('library mode: bad options name the option, never the secret', () => {
  const database = { host: 'localhost', port: 5432, user: 'app', password: 'hunter2-secret', database: 'audit' };
  const crypto = { privateKey: encodeSigningKey(key) };
  const refusal = (options: unknown): string => {
    try {
      createAuditLogClient(options as LibraryOptions);
    } catch (error) {
      expect(error).toBeInstanceOf(LibraryOptionsError);
      expect((error as Error).message).not.toContain('hunter2');
      return (error as Error).message;
    }
    throw new Error('the options were accepted');
  };

  it('names each wrong option by its path', () => {
    expect(refusal({ database: { ...database, port: 'x' }, crypto })).toMatch(/database\.port: /);
    expect(refusal({ database: { ...database, port: 70000 }, crypto })).toMatch(/database\.port: /);
    expect(refusal({ database: { ...database, host: undefined }, crypto })).toMatch(/database\.host: required \(or give connectionString\)/);
    expect(refusal({ database: { connectionString: 'mysql://x:hunter2-secret@h/d' }, crypto })).toMatch(/database\.connectionString: must be a URL postgres:/);
    expect(refusal({ database })).toMatch(/crypto: /);
    expect(refusal({ database, crypto: {} })).toMatch(/crypto\.privateKey: required/);
    expect(refusal({ database, crypto, application: { maxBulkEvents: 0 } })).toMatch(/application\.maxBulkEvents: /);
    expect(refusal({ database, crypto, partitionDays: -1 })).toMatch(/partitionDays: /);
    expect(refusal({ database, crypto, wormEnabled: 'yes' })).toMatch(/wormEnabled: /);
    expect(refusal({ database, crypto, partitionsDays: 3 })).toMatch(/partitionsDays/);
    expect(refusal({ database, crypto, validation: { scheduledValidationInterval: 45 * 60_000 } })).toMatch(
      /validation\.scheduledValidationInterval: 2700000 ms is no schedule a cron can keep/,
    );
    expect(refusal({ url: 'http://x' })).toMatch(/give `database`/);
    expect(refusal({ database, crypto, url: 'http://x', token: 't' })).toMatch(/give `database` \(library mode\) or `url` and `token` \(HTTP mode\), not both/);
  });

  it('refuses RSA and EC PEM keys, a key of another form, and a publicKey that is not the key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    for (const [keyObject, label] of [
      [rsa, 'RSA'],
      [ec, 'EC'],
    ] as const) {
      const pem = keyObject.export({ type: 'pkcs8', format: 'pem' }) as string;
      const message = refusal({ database, crypto: { privateKey: pem } });
      expect(message).toMatch(new RegExp(`crypto\\.privateKey: ${label} keys are refused: checkpoints are signed with Ed25519`));
      expect(message).not.toContain(pem.split('\n')[1]!);
    }
    expect(refusal({ database, crypto: { privateKey: 'not a key at all' } })).toMatch(/crypto\.privateKey: not a signing key; expects our signing key text/);
    const message = refusal({ database, crypto: { privateKey: encodeSigningKey(key), publicKey: verifierKey(generateSigningKey('other')) } });
    expect(message).toMatch(/crypto\.publicKey: is not the public key of crypto\.privateKey/);
    expect(message).not.toContain(encodeSigningKey(key));
  });

  it('takes an Ed25519 PKCS#8 PEM, checked against its SPKI PEM', async () => {
    const pair = generateKeyPairSync('ed25519');
    const privateKey = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const publicKey = pair.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    await createAuditLogClient({ database, crypto: { privateKey, publicKey }, logLevel: 'silent' }).close();
    const other = (generateKeyPairSync('ed25519').publicKey as KeyObject).export({ type: 'spki', format: 'pem' }) as string;
    expect(refusal({ database, crypto: { privateKey, publicKey: other } })).toMatch(/crypto\.publicKey: is not the public key/);
  });

  it('scheduledValidationInterval (ms) becomes a cron', () => {
    expect(intervalCron(5 * 60_000)).toBe('*/5 * * * *');
    expect(intervalCron(60 * 60_000)).toBe('0 * * * *');
    expect(intervalCron(6 * 3_600_000)).toBe('0 */6 * * *');
    expect(intervalCron(86_400_000)).toBe('0 0 * * *');
    expect(() => intervalCron(90_000)).toThrow(LibraryOptionsError);
  });
});

describe("HTTP mode: setContext checks the token's chain; createEvents takes {events}", () => {
  let db: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase();
    t = await createTestApp(db);
  });
  afterAll(async () => {
    await t?.close();
    await db?.drop();
  });

  it('accepts the ids or names of the token chain, and rejects events for another chain', async () => {
    const tenant = await createTenant(t, 'http-mode', ['events:write']);
    const open = () =>
      createAuditLogClient({
        url: 'http://ledger.test',
        token: tenant.token,
        fetch: (async (url: string, init: RequestInit) => t.fetch(new Request(url, init))) as typeof fetch,
        // The HTTP client refuses library mode's options (logLevel).
        flushIntervalMs: QUIET.flushIntervalMs,
        retry: QUIET.retry,
      });
    const byNames = open().setContext('http-mode', 'production');
    const receipts = await byNames.createEvents({ events: [{ action: 'a' }, { action: 'b' }] });
    expect(receipts.map((r) => r.seq)).toEqual([1, 2]);
    expect((await open().setContext(tenant.projectId, tenant.environmentId).createEvent({ action: 'c' })).seq).toBe(3);

    const wrong = open().setContext('http-mode', 'staging');
    const refused = wrong.createEvents([{ action: 'd' }]);
    await expect(refused).rejects.toThrow(ContextError);
    await expect(refused).rejects.toThrow(/the token is for project "http-mode" \(.*\), environment "production"/);
    // Nothing of it was written.
    expect((await open().createEvent({ action: 'e' })).seq).toBe(4);
  });
});
