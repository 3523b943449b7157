import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/store/chain-verify.js';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { LISTENING, tokenOverHttp } from '../helpers/server.js';

const ADMIN = `workers-test-admin-${'x'.repeat(24)}`;

/** The pid that answered one GET /metrics on a connection of its own. */
async function answeringPid(url: string): Promise<number> {
  const res = await fetch(`${url}/metrics`, { headers: { connection: 'close' } });
  return Number((await res.text()).match(/auditledger_process_info\{pid="(\d+)"\} 1/)![1]);
}

/** The pids answering `n` requests. */
async function answeringPids(url: string, n: number): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < n; i++) pids.add(await answeringPid(url));
  return pids;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('auditledger serve --workers', () => {
  let db: TestDatabase;
  let dataDir: string;
  beforeAll(async () => {
    db = await createTestDatabase();
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-workers-'));
  });
  afterAll(async () => {
    await db.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('2 workers serve one port, appends stay gapless, jobs run in one, a dead worker is replaced, SIGTERM ends every process', async () => {
    const cli = runCli(['serve', '--workers', '2'], {
      PORT: '0',
      DATABASE_URL: db.ownerUrl,
      AUDITLEDGER_DATA_DIR: dataDir,
      AUDITLEDGER_ADMIN_TOKEN: ADMIN,
      AUDITLEDGER_CHECKPOINT_INTERVAL: '1',
      AUDITLEDGER_LOG_LEVEL: 'info',
    });
    try {
      const [, url] = await cli.waitFor(LISTENING);
      await cli.waitFor(/"workers":2,"msg":"every worker listens"/);
      expect(cli.output()).toMatch(/^auditledger listening on http:\/\/127\.0\.0\.1:\d+$/m);

      // Connections are handed out in turn: both workers answer, never the primary.
      const pids = await answeringPids(url!, 8);
      expect(pids.size).toBe(2);
      expect(pids.has(cli.child.pid!)).toBe(false);

      // 16 writers on one chain through both processes: one gapless, verifying chain.
      const { token, projectId, environmentId } = await tokenOverHttp(url!, ADMIN);
      const acknowledged: number[] = [];
      await Promise.all(
        Array.from({ length: 16 }, async (_, w) => {
          for (let i = 0; i < 40; i++) {
            const res = await fetch(`${url}/v1/events`, {
              method: 'POST',
              headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', connection: i % 4 === 0 ? 'close' : 'keep-alive' },
              body: JSON.stringify({ action: 'load', fields: { w: String(w), i: String(i) } }),
            });
            expect(res.status).toBe(201);
            acknowledged.push(...((await res.json()) as { events: { seq: number }[] }).events.map((e) => e.seq));
          }
        }),
      );
      expect(acknowledged.sort((a, b) => a - b)).toEqual(Array.from({ length: 640 }, (_, i) => i + 1));
      expect(await verifyChain(db.pools.owner, { project: projectId, environment: environmentId })).toMatchObject({ ok: true, checked: 640 });

      // Checkpoints are signed by the one worker that runs the jobs, once per tree size.
      await expect.poll(async () => (await db.pools.owner.query('SELECT tree_size FROM checkpoints WHERE environment_id = $1 AND tree_size = 640', [environmentId])).rowCount, { timeout: 15_000 }).toBe(1);
      const signers = [...cli.output().matchAll(/^(\{.*"msg":"checkpoints signed".*\})$/gm)].map((m) => (JSON.parse(m[1]!) as { worker?: number }).worker);
      expect(signers.length).toBeGreaterThan(0);
      expect(new Set(signers)).toEqual(new Set([1]));

      // POST /v1/verify works on every worker (the others send the run to the jobs' worker).
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`${url}/v1/verify`, { method: 'POST', headers: { authorization: `Bearer ${token}`, connection: 'close' } });
        expect(res.status).toBe(202);
      }

      // A worker killed under it is replaced; the port keeps answering.
      const [victim] = [...pids];
      process.kill(victim!, 'SIGKILL');
      await cli.waitFor(/a worker exited; starting another/);
      await expect.poll(async () => [...(await answeringPids(url!, 6))].filter((pid) => !pids.has(pid)).length, { timeout: 20_000 }).toBe(1);
      const workers = await answeringPids(url!, 8);
      expect(workers.size).toBe(2);

      cli.child.kill('SIGTERM');
      expect(await cli.exited).toEqual({ code: 0, signal: null });
      for (const pid of workers) expect(alive(pid), `worker ${pid} still running`).toBe(false);
    } finally {
      cli.child.kill('SIGKILL');
    }
  }, 120_000);

  it('refuses a bad --workers with exit code 2, naming the option', async () => {
    const cli = runCli(['serve', '--workers', '0'], { DATABASE_URL: db.ownerUrl, AUDITLEDGER_DATA_DIR: dataDir });
    expect(await cli.exited).toEqual({ code: 2, signal: null });
    expect(cli.stderr()).toMatch(/^auditledger serve: --workers takes a number of processes from 1 to 256, or auto; got "0"\n$/);
  });
});
