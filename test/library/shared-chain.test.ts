import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createAuditLogClient, type AuditLog, type Receipt } from '../../src/index.js';
import { chainOrigin, openCheckpoint } from '../../src/ledger/checkpoint.js';
import { encodeSigningKey, generateSigningKey, verifierKey } from '../../src/ledger/keys.js';
import { verifyChain } from '../../src/store/chain-verify.js';
import type { RunningCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { serveProcess, tokenOverHttp } from '../helpers/server.js';

const ADMIN = `library-shared-admin-token-${'x'.repeat(20)}`;
const key = generateSigningKey('shared-ledger');
const EACH = 150;

let db: TestDatabase;
let dir: string;
let server: RunningCli;
let url: string;
const clients: AuditLog[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-shared-'));
  await writeFile(path.join(dir, 'signing-key'), `${encodeSigningKey(key)}\n`, { mode: 0o600 });
  ({ cli: server, url } = await serveProcess({
    DATABASE_URL: db.ownerUrl,
    AUDITLEDGER_DATA_DIR: path.join(dir, 'data'),
    AUDITLEDGER_ADMIN_TOKEN: ADMIN,
    AUDITLEDGER_SIGNING_KEY_FILE: path.join(dir, 'signing-key'),
    AUDITLEDGER_ARCHIVE: path.join(dir, 'archive'),
    AUDITLEDGER_CHECKPOINT_INTERVAL: '1',
  }));
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  if (server) {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

it('two library clients and a server append to one chain at once: gapless, verifying, checkpointed once per size', async () => {
  const { token, projectId, environmentId } = await tokenOverHttp(url, ADMIN);
  const library = () =>
    createAuditLogClient({
      database: { connectionString: db.ownerUrl, poolSize: 4 },
      crypto: { privateKey: encodeSigningKey(key) },
      wormStoragePath: path.join(dir, 'archive'),
      checkpointIntervalSeconds: 1,
      logLevel: 'silent',
      flushIntervalMs: 2,
      batchSize: 20,
    }).setContext(projectId, environmentId);
  const http = createAuditLogClient({ url, token, vkey: verifierKey(key), flushIntervalMs: 2, batchSize: 20 }).setContext(projectId, environmentId);
  clients.push(library(), library(), http);
  const [a, b, c] = clients as [AuditLog, AuditLog, AuditLog];

  const events = (who: string) => Array.from({ length: EACH }, (_, i) => ({ action: `${who}.${i}`, actor: { id: who } }));
  const receipts: Receipt[] = (
    await Promise.all([
      // In bulk, one at a time, and over HTTP.
      Promise.all([0, 1, 2].map((part) => a.createEvents({ events: events('a').slice(part * 50, part * 50 + 50) }))).then((r) => r.flat()),
      Promise.all(events('b').map((event) => b.createEvent(event))),
      c.createEvents(events('c')),
    ])
  ).flat();
  const total = 3 * EACH;
  expect(receipts.map((r) => r.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: total }, (_, i) => i + 1));

  const chain = { project: projectId, environment: environmentId };
  expect(await verifyChain(db.pools.owner, chain, { verifiers: [key] })).toMatchObject({ ok: true, head_seq: total, failures: [] });

  // Signed by whichever process's job ran (pg-boss), each size at most once, all by the one key.
  await expect.poll(() => c.checkConsistency().then((r) => r.checkpoint_tree_size), { timeout: 15_000, interval: 100 }).toBe(total);
  for (const client of [a, b, c]) expect(await client.checkConsistency()).toMatchObject({ ok: true, checkpoint_tree_size: total });
  const { rows } = await db.pools.owner.query<{ tree_size: number; note: string }>('SELECT tree_size, note FROM checkpoints WHERE environment_id = $1', [environmentId]);
  for (const row of rows) expect(openCheckpoint(row.note, [key], chainOrigin(key.name, projectId, environmentId)).checkpoint.size).toBe(row.tree_size);
  expect(await verifyChain(db.pools.owner, chain, { verifiers: [key] })).toMatchObject({ ok: true, failures: [] });
});
