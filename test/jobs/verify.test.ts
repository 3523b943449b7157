import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalArchive } from '../../src/archive/local.js';
import { SIGNATURE_HEADER, signAlert } from '../../src/jobs/alert.js';
import { runCheckpoints } from '../../src/jobs/checkpoints.js';
import { startBoss } from '../../src/jobs/boss.js';
import { scheduleVerification, verifyChainRun, VERIFY_QUEUE, type VerifyDeps } from '../../src/jobs/verify.js';
import { appendLeaves, emptyRange } from '../../src/ledger/compact-range.js';
import { encodeEvent, GENESIS_PREV } from '../../src/ledger/event.js';
import { verifyChain } from '../../src/store/chain-verify.js';
import { claimRun, queueRun } from '../../src/store/verification.js';
import { runCli } from '../helpers/cli.js';
import { serveProcess, tokenOverHttp } from '../helpers/server.js';
import { createTestApp, createTenant, type TestApp } from '../helpers/app.js';
import { asSuperuser, createTestDatabase, type TestDatabase } from '../helpers/database.js';

type Tenant = Awaited<ReturnType<typeof createTenant>>;
const log = pino({ level: 'silent' });

describe('verification', () => {
  let db: TestDatabase;
  let t: TestApp;
  let hook: Server;
  let received: { body: string; signature: string | undefined }[];
  let refuseNext = 0;
  const secret = 'webhook-secret';

  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-verify-'));
    db = await createTestDatabase();
    received = [];
    hook = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (refuseNext > 0) {
          refuseNext--;
          res.writeHead(503).end();
          return;
        }
        received.push({ body, signature: req.headers[SIGNATURE_HEADER] as string | undefined });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts`;
    t = await createTestApp(db, {}, Date.now, undefined, { alert: { url, secret, baseDelayMs: 10 } });
  });
  afterAll(async () => {
    await t.close();
    await db.drop();
    await new Promise((r) => hook.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  const deps = (): VerifyDeps => ({
    db: db.pools.owner,
    verifiers: [t.keyring.current],
    log,
    alert: { url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/alerts`, secret, baseDelayMs: 10 },
  });
  const checkpoint = () => runCheckpoints({ db: db.pools.owner, archive: new LocalArchive(path.join(dir, 'archive')), key: t.keyring.current, origin: t.keyring.origin, log });
  const append = (tenant: Tenant, n: number, tag = 'e') =>
    t.request('POST', '/v1/events', { token: tenant.token, body: { events: Array.from({ length: n }, (_, i) => ({ action: `${tag}.${i}`, actor: { id: `u${i}` } })) } });
  const chainOf = (tenant: Tenant) => ({ project_id: tenant.projectId, environment_id: tenant.environmentId });
  it('a scheduled run checks a chain from its last verified point to the head', async () => {
    const tenant = await createTenant(t, 'incremental');
    await append(tenant, 20);
    await checkpoint();
    expect(await verifyChainRun(deps(), chainOf(tenant), 'schedule')).toMatchObject({ status: 'done', ok: true, from_seq: 1, to_seq: 20, checked: 20 });
    await append(tenant, 5);
    expect(await verifyChainRun(deps(), chainOf(tenant), 'schedule')).toMatchObject({ ok: true, from_seq: 21, to_seq: 25, checked: 5 });
  });

  it('damage to a range verified before is found by a full run and by POST /v1/verify, which runs in full', async () => {
    const tenant = await createTenant(t, 'verified-then-damaged');
    await append(tenant, 5);
    expect(await verifyChainRun(deps(), chainOf(tenant), 'schedule')).toMatchObject({ ok: true, from_seq: 1, to_seq: 5 });
    await asSuperuser(db, (su) => su.query(`UPDATE events SET action = 'forged' WHERE environment_id = $1 AND seq = 2`, [tenant.environmentId]));
    // The incremental walk starts past it: nothing new to check.
    expect(await verifyChainRun(deps(), chainOf(tenant), 'schedule')).toMatchObject({ ok: true, checked: 0 });
    const failure = { seq: 2, reason: 'column action does not match the stored bytes' };
    expect(await verifyChainRun(deps(), chainOf(tenant), 'schedule', undefined, 'full')).toMatchObject({ ok: false, from_seq: 1, checked: 5, first_failure: failure });
    expect((await t.request('POST', '/v1/verify', { token: tenant.token })).status).toBe(202);
    const runs = await (await t.request('GET', '/v1/verify/runs', { token: tenant.token })).json();
    expect(runs.runs[0]).toMatchObject({ requested_by: 'api', ok: false, from_seq: 1, first_failure: failure });
  });

  it('a failure is logged, stored as a finding, alerted once to the webhook (signed, retried), and reported by queries', async () => {
    const tenant = await createTenant(t, 'alerted');
    await append(tenant, 10);
    await checkpoint();
    await asSuperuser(db, (su) => su.query(`UPDATE events SET action = 'forged' WHERE environment_id = $1 AND seq = 6`, [tenant.environmentId]));
    received.length = 0;
    refuseNext = 1; // the first delivery fails: it must be retried
    const run = await verifyChainRun(deps(), chainOf(tenant), 'schedule');
    expect(run).toMatchObject({ ok: false, first_failure: { seq: 6, reason: 'column action does not match the stored bytes' } });
    expect(received).toHaveLength(1);
    expect(received[0]!.signature).toBe(signAlert(secret, received[0]!.body));
    expect(JSON.parse(received[0]!.body)).toMatchObject({
      type: 'auditledger.verification.failed',
      environment: tenant.environmentId,
      findings: [{ seq: 6, reason: 'column action does not match the stored bytes' }],
    });
    await verifyChainRun(deps(), chainOf(tenant), 'schedule');
    expect(received).toHaveLength(1); // seen again, not alerted again

    // The chain keeps accepting appends, and its queries report the finding.
    expect((await append(tenant, 1, 'after')).status).toBe(201);
    const page = await (await t.request('GET', '/v1/events?seq_from=5&seq_to=7&verify=true', { token: tenant.token })).json();
    expect(page.verification.failures).toEqual([{ seq: 6, reason: 'column action does not match the stored bytes' }]);
  });

  it('POST /v1/verify starts a run (202) and GET /v1/verify/runs lists runs and findings', async () => {
    const tenant = await createTenant(t, 'on-demand');
    await append(tenant, 3);
    const res = await t.request('POST', '/v1/verify', { token: tenant.token });
    expect(res.status).toBe(202);
    const { run_id, deduplicated } = await res.json();
    expect(deduplicated).toBe(false);
    const runs = await (await t.request('GET', '/v1/verify/runs', { token: tenant.token })).json();
    expect(runs.runs[0]).toMatchObject({ id: run_id, requested_by: 'api', status: 'done', ok: true, checked: 3 });
    expect(runs.findings).toEqual([]);
    const reader = await createTenant(t, 'no-verify-scope', ['events:read']);
    expect((await t.request('POST', '/v1/verify', { token: reader.token })).status).toBe(403);
  });

  it('a chain has one queued run at a time: asking again answers it; a running run may be followed by one more', async () => {
    const tenant = await createTenant(t, 'dedup');
    const limit = { runs: 100, windowSeconds: 60 };
    const ask = () => queueRun(db.pools.owner, tenant.environmentId, tenant.tokenId, limit, async () => {});
    const first = await ask();
    expect(first).toMatchObject({ deduplicated: false });
    expect(await Promise.all([ask(), ask(), ask()])).toEqual(Array(3).fill({ ...first, deduplicated: true }));
    expect(await claimRun(db.pools.owner, tenant.environmentId, (first as { run_id: string }).run_id)).toBe(true); // a worker starts it
    const next = await ask();
    expect(next).toMatchObject({ deduplicated: false });
    expect(await ask()).toEqual({ ...next, deduplicated: true });
  });

  it('a queued run whose job was lost does not hold the chain: the next request queues a new run', async () => {
    const boss = await startBoss(db.pools.owner, log);
    try {
      const request = await scheduleVerification(boss, deps(), { incremental: '0 0 1 1 *', full: '0 0 1 1 *' });
      await boss.offWork(VERIFY_QUEUE); // no worker: the job waits until it is lost
      const tenant = await createTenant(t, 'lost-job');
      const limit = { runs: 100, windowSeconds: 60 };
      const first = (await request(chainOf(tenant), tenant.tokenId, limit)) as { run_id: string };
      expect(await request(chainOf(tenant), tenant.tokenId, limit)).toEqual({ ...first, deduplicated: true });
      await boss.deleteJob(VERIFY_QUEUE, first.run_id);
      const next = (await request(chainOf(tenant), tenant.tokenId, limit)) as { run_id: string; deduplicated: boolean };
      expect(next.deduplicated).toBe(false);
      expect(next.run_id).not.toBe(first.run_id);
      const runs = await (await t.request('GET', '/v1/verify/runs', { token: tenant.token })).json();
      expect(runs.runs.find((r: { id: string }) => r.id === first.run_id)).toMatchObject({ status: 'error' });
    } finally {
      await boss.stop({ graceful: false, close: false, wait: true });
    }
  });

  it('POST /v1/verify beyond AUDITLEDGER_VERIFY_RATE runs per token answers 429 with Retry-After; other tokens go on', async () => {
    const limited = await createTestApp(db, { AUDITLEDGER_VERIFY_RATE: '2', AUDITLEDGER_VERIFY_RATE_WINDOW: '3600' });
    try {
      const tenant = await createTenant(limited, 'rate-limited');
      for (let i = 0; i < 2; i++) expect((await limited.request('POST', '/v1/verify', { token: tenant.token })).status).toBe(202);
      const refused = await limited.request('POST', '/v1/verify', { token: tenant.token });
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(3500);
      expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(3600);
      const { error } = await refused.json();
      expect(error).toMatchObject({ code: 'rate_limited', message: expect.stringContaining('AUDITLEDGER_VERIFY_RATE') });
      const other = await createTenant(limited, 'rate-other');
      expect((await limited.request('POST', '/v1/verify', { token: other.token })).status).toBe(202);
    } finally {
      await limited.close();
    }
  });

  it('a flood of POST /v1/verify from one tenant (100 at once) costs another tenant at most one run of wait', async () => {
    const data = await mkdtemp(path.join(os.tmpdir(), 'auditledger-flood-'));
    const admin = 'a'.repeat(40);
    // A real server: runs go through pg-boss, one worker taking jobs in the order asked.
    const server = await serveProcess({ DATABASE_URL: db.ownerUrl, AUDITLEDGER_DATA_DIR: data, AUDITLEDGER_ADMIN_TOKEN: admin, AUDITLEDGER_VERIFY_CRON: '0 0 1 1 *' });
    try {
      const a = await tokenOverHttp(server.url, admin);
      const b = await tokenOverHttp(server.url, admin);
      const post = async (token: string) => {
        const res = await fetch(`${server.url}/v1/verify`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
        return { status: res.status, body: (await res.json()) as { run_id?: string } };
      };
      const flood = await Promise.all(Array.from({ length: 100 }, () => post(a.token)));
      expect(flood.every((r) => r.status === 202 || r.status === 429)).toBe(true);
      const aRuns = new Set(flood.flatMap((r) => r.body.run_id ?? []));
      expect(aRuns.size).toBeLessThanOrEqual(6); // AUDITLEDGER_VERIFY_RATE's default

      const asked = await post(b.token);
      expect(asked.status).toBe(202);
      const runsOf = async (token: string) => {
        const res = await fetch(`${server.url}/v1/verify/runs?limit=1000`, { headers: { authorization: `Bearer ${token}` } });
        return ((await res.json()) as { runs: { id: string; status: string; finished_at: string | null }[] }).runs;
      };
      let bRun: { finished_at: string | null } | undefined;
      for (const deadline = Date.now() + 90_000; !bRun?.finished_at && Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
        bRun = (await runsOf(b.token)).find((r) => r.id === asked.body.run_id);
      }
      expect(bRun).toMatchObject({ status: 'done' });
      // Ahead of B's run: at most A's run then running and the one queued behind it.
      const aheadOfB = (await runsOf(a.token)).filter((r) => r.finished_at && r.finished_at <= bRun!.finished_at!);
      expect(aheadOfB.length).toBeLessThanOrEqual(2);
    } finally {
      server.cli.child.kill('SIGTERM');
      await server.cli.exited;
      await rm(data, { recursive: true, force: true });
    }
  }, 120_000);

  it('auditledger verify recomputes whole chains and exits 1 naming the failure', async () => {
    const tenant = await createTenant(t, 'cli-verify');
    await append(tenant, 4);
    const env = { DATABASE_URL: db.ownerUrl, AUDITLEDGER_DATA_DIR: path.join(dir, 'data') };
    const args = ['verify', '--project', tenant.projectId, '--environment', tenant.environmentId];
    const clean = runCli(args, env);
    expect((await clean.exited).code).toBe(0);
    expect(clean.output()).toContain('1/1 chains valid');
    await asSuperuser(db, (su) => su.query(`UPDATE events SET actor_id = 'mallory' WHERE environment_id = $1 AND seq = 2`, [tenant.environmentId]));
    const dirty = runCli(args, env);
    expect((await dirty.exited).code).toBe(1);
    expect(dirty.output()).toContain('seq 2: column actor_id does not match the stored bytes');
  });

  it('auditledger verify compares stored personal values with their commitments; an erased value is no failure', async () => {
    const tenant = await createTenant(t, 'cli-verify-personal');
    const events = ['Alice', 'Bob', 'Carol'].map((name, i) => ({ action: 'user.login', actor: { id: `u${i}`, name } }));
    expect((await t.request('POST', '/v1/events', { token: tenant.token, body: { events } })).status).toBe(201);
    const env = { DATABASE_URL: db.ownerUrl, AUDITLEDGER_DATA_DIR: path.join(dir, 'data') };
    const args = ['verify', '--project', tenant.projectId, '--environment', tenant.environmentId];
    await asSuperuser(db, async (su) => {
      await su.query(`UPDATE personal_values SET pointer_values = '{"/actor/name":"Mallory"}' WHERE environment_id = $1 AND seq = 2`, [tenant.environmentId]);
      // Deleted without an erasure: reads as erased, which no check can tell from an erasure (README "Personal data and erasure").
      await su.query('DELETE FROM personal_values WHERE environment_id = $1 AND seq = 3', [tenant.environmentId]);
    });
    const dirty = runCli(args, env);
    expect((await dirty.exited).code).toBe(1);
    expect(dirty.output()).toContain('seq 2: the personal value at /actor/name does not match its commitment');
    expect(dirty.output()).not.toContain('seq 3:');
    expect(dirty.output()).toContain('0/1 chains valid');
  });

  describe('tamper matrix (database)', () => {
    /** A chain of 10 events signed at 10, tampered, then verified whole: the failures. */
    async function tampered(name: string, tamper: (su: pg.Client, env: string) => Promise<unknown>) {
      const tenant = await createTenant(t, `tamper-${name}`);
      await append(tenant, 10);
      await checkpoint();
      await asSuperuser(db, (su) => tamper(su, tenant.environmentId));
      const result = await verifyChain(db.pools.owner, { project: tenant.projectId, environment: tenant.environmentId }, { verifiers: [t.keyring.current] });
      expect(result.ok).toBe(false);
      return result.failures;
    }
    const rewrite = async (su: pg.Client, env: string, fromSeq: number, change: (body: { event: { action: string } }) => void) => {
      const { rows } = await su.query('SELECT seq, canonical, hash FROM events WHERE environment_id = $1 ORDER BY seq', [env]);
      let range = emptyRange();
      let prev = GENESIS_PREV;
      for (const row of rows) {
        let hash: Buffer = row.hash;
        if (row.seq >= fromSeq) {
          const body = JSON.parse(row.canonical.toString());
          change(body);
          const encoded = encodeEvent(body.event, { ...body, prev });
          hash = encoded.hash;
          await su.query('UPDATE events SET canonical = $3, hash = $4, prev = $5, action = $6 WHERE environment_id = $1 AND seq = $2', [
            env, row.seq, encoded.canonical, hash, Buffer.from(prev, 'hex'), body.event.action,
          ]);
        }
        range = appendLeaves(range, [hash]);
        prev = hash.toString('hex');
      }
      return { range, prev };
    };

    it('reads the chain a window of seqs at a time, with the same result whatever the window', async () => {
      const tenant = await createTenant(t, 'windows');
      await append(tenant, 10);
      await checkpoint();
      const chain = { project: tenant.projectId, environment: tenant.environmentId };
      const verifiers = [t.keyring.current];
      const check = (seqsPerCopy?: number) => verifyChain(db.pools.owner, chain, { verifiers, ...(seqsPerCopy && { seqsPerCopy }) });
      const whole = await check();
      expect(whole).toMatchObject({ ok: true, checked: 10 });
      for (const seqsPerCopy of [1, 3, 4]) expect(await check(seqsPerCopy)).toEqual(whole);
      await asSuperuser(db, (su) => su.query('DELETE FROM events WHERE environment_id = $1 AND seq IN (4, 5)', [tenant.environmentId]));
      const gap = await check();
      expect(gap.failures[0]).toEqual({ seq: 6, reason: 'event 5 is missing: the chain has a gap' });
      for (const seqsPerCopy of [1, 3, 4]) expect(await check(seqsPerCopy)).toEqual(gap);
    });

    it('a field changed in the stored bytes', async () => {
      const failures = await tampered('bytes', (su, env) =>
        su.query(`UPDATE events SET canonical = convert_to(replace(convert_from(canonical, 'UTF8'), '"u3"', '"u9"'), 'UTF8') WHERE environment_id = $1 AND seq = 4`, [env]),
      );
      expect(failures[0]).toEqual({ seq: 4, reason: 'hash does not match the stored bytes' });
    });

    it('an extracted column changed alone', async () => {
      const failures = await tampered('column', (su, env) => su.query(`UPDATE events SET actor_id = 'x' WHERE environment_id = $1 AND seq = 7`, [env]));
      expect(failures).toEqual([{ seq: 7, reason: 'column actor_id does not match the stored bytes' }]);
    });

    it('a middle event deleted', async () => {
      const failures = await tampered('deleted', (su, env) => su.query('DELETE FROM events WHERE environment_id = $1 AND seq = 5', [env]));
      expect(failures[0]).toEqual({ seq: 6, reason: 'event 5 is missing: the chain has a gap' });
    });

    it('the newest events deleted and the head moved back (tail truncation): caught by the signed checkpoint', async () => {
      const failures = await tampered('truncated', async (su, env) => {
        await su.query('DELETE FROM events WHERE environment_id = $1 AND seq > 8', [env]);
        const { rows } = await su.query('SELECT hash FROM events WHERE environment_id = $1 ORDER BY seq', [env]);
        const range = appendLeaves(emptyRange(), rows.map((r) => r.hash));
        await su.query('UPDATE chain_heads SET seq = 8, hash = $2, compact_range = $3 WHERE environment_id = $1', [env, rows[7].hash, range.hashes]);
      });
      expect(failures).toEqual([{ seq: 8, reason: 'a checkpoint at 10 was signed at size 10, beyond the head at 8: events were removed' }]);
    });

    it('two events swapped', async () => {
      const failures = await tampered('swapped', async (su, env) => {
        await su.query('UPDATE events SET seq = 1000003 WHERE environment_id = $1 AND seq = 3', [env]);
        await su.query('UPDATE events SET seq = 3 WHERE environment_id = $1 AND seq = 4', [env]);
        await su.query('UPDATE events SET seq = 4 WHERE environment_id = $1 AND seq = 1000003', [env]);
      });
      expect(failures[0]?.seq).toBe(3);
      expect(failures.map((f) => f.reason)).toContain('prev does not link to event 2');
    });

    it('a forged event inserted', async () => {
      const failures = await tampered('forged', async (su, env) => {
        const { rows } = await su.query('SELECT * FROM events WHERE environment_id = $1 AND seq = 5', [env]);
        const real = rows[0];
        const body = JSON.parse(real.canonical.toString());
        body.event.action = 'forged.grant';
        const forged = encodeEvent(body.event, body);
        await su.query(
          `INSERT INTO events (environment_id, seq, id, received_at, prev, hash, canonical, action, actor_id)
           VALUES ($1, 5, gen_random_uuid(), $2::timestamptz + interval '1 millisecond', $3, $4, $5, 'forged.grant', $6)`,
          [env, real.received_at, real.prev, forged.hash, forged.canonical, real.actor_id],
        );
      });
      expect(failures[0]?.seq).toBe(5);
    });

    it('the whole tail rewritten with recomputed hashes: caught by the checkpoint signature', async () => {
      const failures = await tampered('rewritten', async (su, env) => {
        const { range, prev } = await rewrite(su, env, 6, (body) => (body.event.action = 'rewritten'));
        await su.query('UPDATE chain_heads SET hash = $2, compact_range = $3 WHERE environment_id = $1', [env, Buffer.from(prev, 'hex'), range.hashes]);
      });
      expect(failures).toEqual([{ seq: 10, reason: 'the events do not give the root signed in the checkpoint at 10' }]);
    });

    it('a partition truncated with triggers disabled', async () => {
      const failures = await tampered('partition', async (su, env) => {
        const { rows } = await su.query(`SELECT DISTINCT tableoid::regclass::text AS p FROM events WHERE environment_id = $1`, [env]);
        for (const { p } of rows) await su.query(`ALTER TABLE ${p} DISABLE TRIGGER USER; TRUNCATE ${p}`);
        for (const { p } of rows) await su.query(`ALTER TABLE ${p} ENABLE TRIGGER USER`);
      });
      expect(failures).toContainEqual({ seq: 1, reason: 'events 1 to 10 are missing' });
    });
  });
});
