import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BacklogFullError, createAuditLogClient, DeliveryError, type AuditLog, type LibraryOptions } from '../../src/index.js';
import { encodeSigningKey, generateSigningKey } from '../../src/ledger/keys.js';
import { createTestDatabase, databaseOptions, type TestDatabase } from '../helpers/database.js';

/** A TCP relay to PostgreSQL that can be cut (connections refused, open ones dropped) and restored on the same port. */
class Relay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<void> {
    if (this.server?.listening) return;
    const server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const closed = new Promise((resolve) => this.server?.close(resolve));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}

const key = generateSigningKey('outage-test');
let db: TestDatabase;
let relay: Relay;
let spoolDir: string;
const clients: AuditLog[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const { host, port } = databaseOptions(db.ownerUrl);
  relay = new Relay({ host, port });
  await relay.start();
  spoolDir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-library-spool-'));
});

afterAll(async () => {
  await relay.start();
  await Promise.all(clients.map((c) => c.close()));
  await relay.stop();
  await db?.drop();
  await rm(spoolDir, { recursive: true, force: true });
});

const open = (options: Partial<LibraryOptions> = {}) => {
  const client = createAuditLogClient({
    database: { ...databaseOptions(db.ownerUrl), host: '127.0.0.1', port: relay.port },
    crypto: { privateKey: encodeSigningKey(key) },
    logLevel: 'silent',
    flushIntervalMs: 2,
    onError: () => undefined,
    ...options,
  });
  clients.push(client);
  return client;
};

const count = async (action: string) =>
  Number((await db.pools.owner.query<{ n: string }>("SELECT count(*) AS n FROM events WHERE action LIKE $1", [`${action}%`])).rows[0]!.n);

it('database down: events wait in the backlog and are delivered once when it returns; a full backlog refuses', async () => {
  const client = open({ maxBacklog: 5, retry: { attempts: 1000, baseDelayMs: 20, maxDelayMs: 100 } }).setContext('outage', 'production');
  await client.createEvent({ action: 'before' });

  await relay.stop();
  const waiting = [client.createEvent({ action: 'during.0' }), client.createEvents({ events: [{ action: 'during.1' }, { action: 'during.2' }] })];
  const more = client.createEvents([{ action: 'during.3' }, { action: 'during.4' }]);
  await expect(client.createEvent({ action: 'during.5' })).rejects.toThrow(BacklogFullError);
  let settled = false;
  void Promise.all([...waiting, more]).finally(() => (settled = true));
  await new Promise((resolve) => setTimeout(resolve, 500));
  expect(settled).toBe(false);

  await relay.start();
  const receipts = [(await waiting[0]) as { seq: number }, ...((await waiting[1]) as { seq: number }[]), ...(await more)];
  expect(receipts.map((r) => r.seq).sort()).toEqual([2, 3, 4, 5, 6]);
  expect(await count('during.')).toBe(5); // retried across the outage, never duplicated
  expect(await count('during.5')).toBe(0);
});

it('with spoolDir, events created while the database is down survive a client restart', async () => {
  await relay.stop();
  const first = open({ spoolDir, retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 20 } }).setContext('spooled', 'production');
  const lost = [first.createEvent({ action: 'spooled.0' }), first.createEvents({ events: [{ action: 'spooled.1' }, { action: 'spooled.2' }] })];
  await first.close();
  for (const promise of lost) await expect(promise).rejects.toMatchObject({ name: DeliveryError.name, spooled: true });
  expect((await readdir(spoolDir)).filter((name) => name.endsWith('.jsonl'))).toHaveLength(1);

  await relay.start();
  // A new process, the same spool: its first request sends the spooled batch, to the chain it was for.
  const second = open({ spoolDir }).setContext('elsewhere', 'production');
  await second.createEvent({ action: 'after.restart' });
  await second.flush();
  expect(await count('spooled.')).toBe(3);
  expect((await readdir(spoolDir)).filter((name) => name.endsWith('.jsonl'))).toEqual([]);
  const { rows } = await db.pools.owner.query<{ name: string; actions: string[] }>(
    `SELECT p.name, array_agg(ev.action ORDER BY ev.seq) AS actions
       FROM events ev JOIN environments e ON e.id = ev.environment_id JOIN projects p ON p.id = e.project_id
      WHERE p.name IN ('spooled', 'elsewhere') GROUP BY p.name ORDER BY p.name`,
  );
  expect(rows).toEqual([
    { name: 'elsewhere', actions: ['after.restart'] },
    { name: 'spooled', actions: ['spooled.0', 'spooled.1', 'spooled.2'] },
  ]);
});
