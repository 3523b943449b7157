import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BacklogFullError,
  createAuditLogClient,
  CreateEventsError,
  DeliveryError,
  isErased,
  isMismatch,
  LedgerHttpError,
  LegalHoldError,
  type AuditLogClientOptions,
  type NewEvent,
} from '../../src/client/client.js';
import { appendLeaves, emptyRange } from '../../src/ledger/compact-range.js';
import { generateSigningKey, verifierKey } from '../../src/ledger/keys.js';
import type { RunningCli } from '../helpers/cli.js';
import { closedPort, serveProcess, tokenOverHttp } from '../helpers/server.js';
import { asSuperuser, createTestDatabase, type TestDatabase } from '../helpers/database.js';

const ADMIN = `client-test-admin-token-${'x'.repeat(20)}`;
const FAST_RETRY = { attempts: 3, baseDelayMs: 10, maxDelayMs: 50 };
/** The server's body limit here, small enough that a few events exceed it. */
const MAX_BODY_BYTES = 64 * 1024;
/** An event of about 12 kB: metadata of three strings of 4000 characters (the server's longest is 4096). */
const padded = (action: string, externalId: string) => ({ action, external_id: externalId, metadata: { pad: ['a', 'b', 'c'].map((c) => c.repeat(4000)) } });

describe('audit log client against a real server', () => {
  let db: TestDatabase;
  let dataDir: string;
  let server: RunningCli;
  let url: string;
  let port: string;

  /** `auditledger serve` on the test database; a checkpoint every second; bodies of at most MAX_BODY_BYTES. */
  async function startServer(onPort = '0') {
    ({ cli: server, url, port } = await serveProcess({
      DATABASE_URL: db.ownerUrl,
      PORT: onPort,
      AUDITLEDGER_DATA_DIR: dataDir,
      AUDITLEDGER_ADMIN_TOKEN: ADMIN,
      AUDITLEDGER_CHECKPOINT_INTERVAL: '1',
      AUDITLEDGER_MAX_BODY_BYTES: String(MAX_BODY_BYTES),
    }));
  }

  async function stopServer() {
    server.child.kill('SIGTERM');
    expect(await server.exited).toEqual({ code: 0, signal: null });
  }

  const newToken = async () => (await tokenOverHttp(url, ADMIN)).token;

  /** A fetch that counts the appends it carries. */
  function countingFetch() {
    const counter = { appends: 0, fetch: (async (input, init) => {
      if (init?.method === 'POST' && String(input).endsWith('/v1/events')) counter.appends++;
      return fetch(input, init);
    }) as typeof fetch };
    return counter;
  }

  const client = (token: string, options: Partial<AuditLogClientOptions> = {}) =>
    createAuditLogClient({ url, token, retry: FAST_RETRY, ...options });

  async function externalIds(token: string, action: string): Promise<string[]> {
    const reader = client(token);
    const ids: string[] = [];
    for await (const stored of reader.query({ action, pageSize: 1000 })) ids.push(stored.event!.external_id as string);
    await reader.close();
    return ids;
  }

  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-client-'));
    await startServer();
  });
  afterAll(async () => {
    server.child.kill('SIGKILL');
    await server.exited;
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('batches by size and by time, returns receipts, and reads events back page by page', async () => {
    const token = await newToken();
    const counter = countingFetch();
    const audit = client(token, { batchSize: 50, flushIntervalMs: 50, fetch: counter.fetch });

    const receipts = await Promise.all(Array.from({ length: 120 }, (_, i) => audit.createEvent({ action: 'batch.test', external_id: `b-${i}` })));
    expect(counter.appends).toBe(3); // 50 + 50 by size, then 20 once the interval passed
    expect(receipts.map((r) => r.seq)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    for (const receipt of receipts) {
      expect(receipt).toMatchObject({ id: expect.any(String), hash: expect.stringMatching(/^[0-9a-f]{64}$/), root: expect.stringMatching(/^[0-9a-f]{64}$/) });
      expect(receipt.tree_size).toBeGreaterThanOrEqual(receipt.seq);
    }
    expect(audit.lastReceipt).toMatchObject({ seq: 120, tree_size: 120 });

    // One lone event waits at most flushIntervalMs.
    const started = Date.now();
    await audit.createEvent({ action: 'batch.single' });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(counter.appends).toBe(4);

    const read = [];
    for await (const stored of audit.query({ action: 'batch.*', pageSize: 50 })) read.push(stored);
    expect(read.map((e) => e.id)).toEqual([...receipts, audit.lastReceipt!].map((r) => r.id));
    expect(read[0]).toMatchObject({ seq: 1, event: { action: 'batch.test', external_id: 'b-0', created: expect.any(String) } });
    expect(read[0]!.event).not.toHaveProperty('idempotency_key'); // request-only, not part of the event
    await audit.close();
  });

  it('retries a lost response and a 5xx with the same idempotency keys: stored exactly once', async () => {
    const token = await newToken();
    let appends = 0;
    const flaky = (async (input, init) => {
      if (init?.method !== 'POST' || !String(input).endsWith('/v1/events')) return fetch(input, init);
      appends++;
      if (appends === 2) return new Response('{"error":{"code":"internal","message":"try later"}}', { status: 503 });
      const res = await fetch(input, init);
      // The ledger stored the first request; the client never hears of it.
      if (appends === 1) throw new TypeError('fetch failed: the test dropped the response');
      return res;
    }) as typeof fetch;
    const audit = client(token, { fetch: flaky });

    const receipts = await audit.createEvents(Array.from({ length: 10 }, (_, i) => ({ action: 'retry.test', external_id: `r-${i}` })));
    expect(appends).toBe(3);
    expect(receipts.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect((await externalIds(token, 'retry.test')).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `r-${i}`).sort());
    await audit.close();
  });

  it('a 4xx rejects only the events it names, at once, and flush says so', async () => {
    const token = await newToken();
    const counter = countingFetch();
    const audit = client(token, { fetch: counter.fetch });
    const good = audit.createEvent({ action: 'refused.test', external_id: 'good' });
    const bad = audit.createEvent({ action: 'refused.test', external_id: 'bad', source_ip: 'not-an-ip' });
    await expect(bad).rejects.toBeInstanceOf(LedgerHttpError);
    // Named relative to the event, not to its place in the client's batch (events.1.source_ip).
    await expect(bad).rejects.toMatchObject({ status: 400, code: 'invalid_request', details: [{ field: 'source_ip', message: expect.any(String) }] });
    await expect(bad).rejects.toThrow(/^auditledger answered 400 invalid_request: source_ip: [^;]+$/);
    await expect(good).resolves.toMatchObject({ seq: 1 });
    expect(counter.appends).toBe(2); // the refused request, then the good event alone; no retries

    const unauthorized = client('alt_not_a_token', { fetch: counter.fetch });
    const refused = handled(unauthorized.createEvent({ action: 'refused.test' }));
    await expect(unauthorized.flush()).rejects.toBeInstanceOf(DeliveryError);
    await expect(refused).rejects.toMatchObject({ status: 401 });
    expect(counter.appends).toBe(3);
    expect(await externalIds(token, 'refused.test')).toEqual(['good']);
    await Promise.all([audit.close(), unauthorized.close()]);
  });

  it('createEvents with one refused event: the others are stored, and the error names the index and holds their receipts', async () => {
    const token = await newToken();
    const audit = client(token);
    const error = (await audit
      .createEvents([{ action: 'partial.test', external_id: 'p-0' }, { action: 'partial.test', external_id: 'p-1', crud: 'zz' as 'c' }, { action: 'partial.test', external_id: 'p-2' }])
      .catch((e: unknown) => e)) as CreateEventsError;
    expect(error).toBeInstanceOf(CreateEventsError);
    expect(error.message).toMatch(/^events\[1\]: auditledger answered 400 invalid_request: crud: .* \(2 of 3 events stored; see receipts and errors\)$/);
    expect(error.receipts.map((r) => r?.seq)).toEqual([1, undefined, 2]);
    expect(error.errors.map((e) => e?.name)).toEqual([undefined, 'LedgerHttpError', undefined]);
    expect(await externalIds(token, 'partial.test')).toEqual(['p-0', 'p-2']);
    await audit.close();
  });

  it("an event with the caller's own idempotency_key is sent as given: calling again gets the first receipt, not a conflict", async () => {
    const token = await newToken();
    const audit = client(token);
    const event = { action: 'own-key.test', external_id: 'job-1', idempotency_key: 'job-1-attempt' };
    const first = await audit.createEvent(event);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const again = await audit.createEvent(event);
    expect(again).toMatchObject({ id: first.id, seq: first.seq });
    expect(await externalIds(token, 'own-key.test')).toEqual(['job-1']);
    await audit.close();
  });

  it('refuses events beyond the backlog bound with BacklogFullError, and accepts again once drained', async () => {
    const token = await newToken();
    const audit = client(token, { maxBacklog: 3, flushIntervalMs: 60_000 });
    const queued = [1, 2, 3].map((i) => audit.createEvent({ action: 'backlog.test', external_id: `q-${i}` }));
    await expect(audit.createEvent({ action: 'backlog.test' })).rejects.toBeInstanceOf(BacklogFullError);
    await expect(audit.createEvents([{ action: 'backlog.test' }])).rejects.toThrow(/backlog is full \(3 events/);
    await audit.flush();
    expect((await Promise.all(queued)).map((r) => r.seq)).toEqual([1, 2, 3]);
    const again = audit.createEvent({ action: 'backlog.test', external_id: 'q-4' });
    await audit.flush();
    await expect(again).resolves.toMatchObject({ seq: 4 });
    await audit.close();
  });

  it('checkConsistency verifies receipts against the signed checkpoint, and notices a truncated tail', async () => {
    const token = await newToken();
    const keys = (await (await fetch(`${url}/v1/keys`)).json()) as { keys: { vkey: string }[] };
    const audit = client(token, { vkey: keys.keys[0]!.vkey });
    await audit.createEvents(Array.from({ length: 10 }, (_, i) => ({ action: 'consistency.test', external_id: `c-${i}` })));
    const receipt = audit.lastReceipt!;
    expect(receipt.tree_size).toBe(10);

    // Wait until the job signed a checkpoint that covers the receipt.
    for (let i = 0; i < 50; i++) {
      const latest = await fetch(`${url}/v1/checkpoints/latest`, { headers: { authorization: `Bearer ${token}` } });
      if (latest.status === 200 && ((await latest.json()) as { tree_size: number }).tree_size >= 10) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(await audit.checkConsistency()).toEqual({ ok: true, tree_size: 10, checkpoint_tree_size: 10, origin: expect.stringMatching(/\/.+\/.+$/), reason: null });

    // A receipt newer than the checkpoint is proven to extend it.
    await audit.createEvent({ action: 'consistency.test', external_id: 'c-10' });
    expect(await audit.checkConsistency()).toMatchObject({ ok: true, tree_size: 11 });

    // A receipt whose root the ledger's tree never had.
    expect(await audit.checkConsistency({ tree_size: 10, root: 'ab'.repeat(32) })).toMatchObject({ ok: false, reason: expect.stringMatching(/mismatch/) });
    // A checkpoint that is not signed by the key the app trusts.
    const stranger = client(token, { vkey: verifierKey(generateSigningKey('someone-else')) });
    expect(await stranger.checkConsistency(receipt)).toMatchObject({ ok: false, reason: expect.stringMatching(/no signature by a known key/) });
    await stranger.close();
    // verify() starts a verification run of the chain.
    expect(await audit.verify()).toEqual({ run_id: expect.any(String), status: 'queued', deduplicated: false });

    // Someone with the database's superuser deletes the newest events and moves the head back.
    await asSuperuser(db, async (su) => {
      const { rows: [{ environment_id: env }] } = await su.query(`SELECT environment_id FROM events WHERE id = $1`, [receipt.id]);
      await su.query('DELETE FROM events WHERE environment_id = $1 AND seq > 8', [env]);
      const { rows } = await su.query('SELECT hash FROM events WHERE environment_id = $1 ORDER BY seq', [env]);
      const range = appendLeaves(emptyRange(), rows.map((r: { hash: Buffer }) => r.hash));
      await su.query('UPDATE chain_heads SET seq = 8, hash = $2, compact_range = $3 WHERE environment_id = $1', [env, rows[7].hash, range.hashes]);
    });
    expect(await audit.checkConsistency()).toMatchObject({ ok: false, tree_size: 11, reason: expect.stringMatching(/has 8 events, fewer than the 11 .*tail was removed/) });
    await audit.close();
  });

  it('an outage and a client restart: spooled events are delivered exactly once, none lost', async () => {
    const token = await newToken();
    const spoolDir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-spool-'));
    const spooled = (dir = spoolDir) => readdir(dir).then((names) => names.filter((n) => n.endsWith('.jsonl')));
    const event = (i: number) => ({ action: 'outage.test', external_id: `o-${i}` });
    try {
      const first = client(token, { spoolDir, batchSize: 5, flushIntervalMs: 20 });
      await Promise.all([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => first.createEvent(event(i))));
      await first.flush();
      expect(await spooled()).toEqual([]); // acknowledged batches leave no file behind

      await stopServer();
      // The app keeps auditing while the ledger is down.
      // Settled from the start: they are rejected while close() runs, before the test reads them.
      const pendingFirst = Promise.allSettled(Array.from({ length: 20 }, (_, i) => first.createEvent(event(10 + i))));
      await expect(first.flush()).rejects.toMatchObject({ name: 'DeliveryError', spooled: true });
      // The app restarts: its first client closes, undelivered events stay in the spool.
      await first.close();
      expect((await spooled()).length).toBe(4); // one file per batch of 5
      for (const outcome of await pendingFirst) {
        expect(outcome).toMatchObject({ status: 'rejected', reason: { name: 'DeliveryError', spooled: true } });
      }

      const second = client(token, { spoolDir, batchSize: 5, flushIntervalMs: 20 });
      const pendingSecond = Array.from({ length: 10 }, (_, i) => second.createEvent(event(30 + i)));
      await new Promise((r) => setTimeout(r, 100)); // a few failed rounds against the stopped ledger
      await startServer(port);
      await second.flush();
      const receipts = await Promise.all(pendingSecond);
      expect(receipts.every((r) => r.seq > 10)).toBe(true);
      expect(await spooled()).toEqual([]);
      await second.close();

      const ids = await externalIds(token, 'outage.test');
      expect(ids).toHaveLength(40);
      expect(new Set(ids).size).toBe(40);
      expect([...ids].sort()).toEqual(Array.from({ length: 40 }, (_, i) => `o-${i}`).sort());
    } finally {
      await rm(spoolDir, { recursive: true, force: true });
    }
  });

  it('without a spool, events wait in memory through an outage and are delivered once, when it ends', async () => {
    const token = await newToken();
    const audit = client(token, { retry: { attempts: 2, baseDelayMs: 10, maxDelayMs: 50 }, flushIntervalMs: 10 });
    await audit.createEvent({ action: 'memory.test', external_id: 'm-0' });

    await stopServer();
    let settled = false;
    const waiting = Promise.all([1, 2, 3].map((i) => audit.createEvent({ action: 'memory.test', external_id: `m-${i}` })));
    void waiting.then(
      () => (settled = true),
      () => (settled = true),
    );
    await expect(audit.flush()).rejects.toMatchObject({ name: 'DeliveryError', spooled: false, message: expect.stringMatching(/unreachable.*still queued \(in memory\)/) });
    await new Promise((r) => setTimeout(r, 300)); // several rounds of retries spent against the stopped ledger
    expect(settled).toBe(false);

    await startServer(port);
    await audit.flush();
    expect((await waiting).map((r) => r.seq)).toEqual([2, 3, 4]);
    expect((await externalIds(token, 'memory.test')).sort()).toEqual(['m-0', 'm-1', 'm-2', 'm-3']);
    await audit.close();
  });

  it('close() rejects what is still undelivered without a spool', async () => {
    const token = await newToken();
    const audit = createAuditLogClient({ url: `http://127.0.0.1:${await closedPort()}`, token, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 2 } });
    const lost = handled(audit.createEvent({ action: 'lost.test' }));
    await expect(audit.flush()).rejects.toMatchObject({ name: 'DeliveryError', spooled: false, message: expect.stringMatching(/unreachable.*still queued/) });
    await audit.close();
    await expect(lost).rejects.toMatchObject({ name: 'DeliveryError', spooled: false, message: expect.stringMatching(/closed before the ledger acknowledged/) });
  });

  it('bounds a batch by bytes (maxBatchBytes) as well as by events', async () => {
    const token = await newToken();
    const bodies: number[] = [];
    const measuring = (async (input, init) => {
      if (init?.method === 'POST' && String(input).endsWith('/v1/events')) bodies.push(Buffer.byteLength(String(init.body)));
      return fetch(input, init);
    }) as typeof fetch;
    const audit = client(token, { maxBatchBytes: 40_000, batchSize: 100, fetch: measuring });
    const receipts = await audit.createEvents(Array.from({ length: 10 }, (_, i) => padded('bytes.test', `y-${i}`)));
    expect(receipts.map((r) => r.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(bodies).toHaveLength(4); // 3 + 3 + 3 + 1 events of about 12 kB
    for (const bytes of bodies) expect(bytes).toBeLessThanOrEqual(40_000);
    await audit.close();
  });

  it('a batch too large for the ledger (413) is re-sent in halves: only an event too large alone is refused', async () => {
    const token = await newToken();
    const statuses: number[] = [];
    const recording = (async (input, init) => {
      const res = await fetch(input, init);
      if (init?.method === 'POST' && String(input).endsWith('/v1/events')) statuses.push(res.status);
      return res;
    }) as typeof fetch;
    const audit = client(token, { maxBatchBytes: 10 * 1024 * 1024, batchSize: 100, fetch: recording });
    // About 80 kB: more than the server takes in one body, even alone.
    const huge = { action: 'split.test', external_id: 'huge', fields: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}`, 'y'.repeat(4000)])) };
    const events: NewEvent[] = [...[0, 1, 2, 3].map((i) => padded('split.test', `s-${i}`)), huge, ...[4, 5, 6, 7].map((i) => padded('split.test', `s-${i}`))];
    const outcomes = await Promise.allSettled(events.map((event) => audit.createEvent(event)));

    expect(statuses[0]).toBe(413); // the nine together
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(8);
    const refused = outcomes[4];
    expect(refused).toMatchObject({ status: 'rejected', reason: { name: 'LedgerHttpError', status: 413, code: 'payload_too_large' } });
    const size = Buffer.byteLength(JSON.stringify(huge));
    const message = (refused as PromiseRejectedResult).reason.message as string;
    expect(message).toMatch(/the event's JSON is (\d+) bytes, too large for the ledger even alone/);
    expect(Number(/is (\d+) bytes/.exec(message)![1])).toBeGreaterThan(size); // the event as sent: with created and idempotency_key
    const ids = await externalIds(token, 'split.test');
    expect(ids.sort()).toEqual(['s-0', 's-1', 's-2', 's-3', 's-4', 's-5', 's-6', 's-7']); // each stored once
    await expect(audit.flush()).resolves.toBeUndefined();
    await audit.close();
  });

  /** An admin POST; resolves with the answer's JSON, or throws its status and text. */
  async function adminPost(route: string, body: unknown): Promise<Record<string, any>> {
    const res = await fetch(`${url}${route}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    if (res.status !== 201) throw new Error(`POST ${route}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, any>;
  }

  /** A fresh chain and a token of it with the `erase` scope as well. */
  async function erasingChain() {
    const { projectId, environmentId } = await tokenOverHttp(url, ADMIN);
    const { token } = await adminPost(`/v1/projects/${projectId}/environments/${environmentId}/tokens`, { name: 'eraser', scopes: ['events:write', 'events:read', 'erase'] });
    return { projectId, token: token as string };
  }

  it('erase() erases a subject in the chain; its values then read back as typed ErasedMarkers', async () => {
    const { token } = await erasingChain();
    const audit = client(token);
    await audit.createEvents([
      { action: 'erase.test', actor: { id: 'u-gone', name: 'Ana' }, source_ip: '10.0.0.1' },
      { action: 'erase.test', actor: { id: 'u-kept', name: 'Bo' } },
    ]);
    const erasure = await audit.erase({ subject: 'u-gone' });
    expect(erasure).toMatchObject({ subject_digest: expect.stringMatching(/^[0-9a-f]{64}$/), chains: [{ values_erased: 2, receipt: { seq: 3 } }] });
    // Again, by its digest: nothing new to erase, the same answer.
    expect(await audit.erase({ subject_digest: erasure.subject_digest })).toEqual(erasure);

    const read = [];
    for await (const stored of audit.query({ action: 'erase.test', order: 'asc' })) read.push(stored.event!);
    const [gone, kept] = read;
    const name = gone!.actor!.name;
    // @ts-expect-error a personal value may be a marker: a reader must check before using it as a string
    const asText: string = name;
    expect(isErased(name)).toBe(true);
    expect(isMismatch(name)).toBe(false);
    if (!isErased(name)) throw new Error('not erased');
    expect(name.commitment).toMatch(/^[0-9a-f]{64}$/);
    expect(asText).toEqual({ erased: true, commitment: name.commitment });
    expect(isErased(gone!.source_ip)).toBe(true);
    expect(kept!.actor!.name).toBe('Bo');
    expect(isErased(kept!.actor!.name)).toBe(false);
    await audit.close();
  });

  it('erase() under a legal hold rejects with a LegalHoldError naming the hold and erases nothing; bad input and a missing scope are LedgerHttpErrors', async () => {
    const { projectId, token } = await erasingChain();
    const audit = client(token);
    await audit.createEvent({ action: 'hold.test', actor: { id: 'u-held', name: 'Cy' } });
    const hold = await adminPost(`/v1/projects/${projectId}/holds`, { reason: 'litigation 42', subject: 'u-held' });

    const refused = await audit.erase({ subject: 'u-held' }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(LegalHoldError);
    expect(refused).toBeInstanceOf(LedgerHttpError);
    expect(refused).toMatchObject({ status: 409, code: 'legal_hold', hold: { id: hold.id, reason: 'litigation 42' } });
    for await (const stored of audit.query({ action: 'hold.test' })) expect(stored.event!.actor!.name).toBe('Cy');

    await expect(audit.erase({ subject_digest: 'not-hex' })).rejects.toMatchObject({ status: 400, details: [{ field: 'subject_digest' }] });
    // @ts-expect-error a subject or its digest, not both
    await expect(audit.erase({ subject: 'u-held', subject_digest: 'a'.repeat(64) })).rejects.toMatchObject({ status: 400 });
    const plain = client(await newToken());
    await expect(plain.erase({ subject: 'u-held' })).rejects.toMatchObject({ status: 403 });
    await Promise.all([audit.close(), plain.close()]);
  });
});

/** Marks an expected rejection handled at once: it may come before the test awaits it. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}
