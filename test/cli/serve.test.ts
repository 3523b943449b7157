import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { LISTENING, tokenOverHttp } from '../helpers/server.js';

const ADMIN = `cli-test-admin-token-${'x'.repeat(20)}`;

const tenantToken = async (url: string, admin: string) => (await tokenOverHttp(url, admin)).token;

describe('auditledger CLI', () => {
  it('prints an overview and each verb its usage', async () => {
    const overview = runCli(['--help'], {});
    expect((await overview.exited).code).toBe(0);
    expect(overview.output()).toMatch(/serve .*\n.*migrate/);
    for (const verb of ['serve', 'migrate']) {
      const help = runCli([verb, '--help'], {});
      expect((await help.exited).code).toBe(0);
      expect(help.output()).toContain(`auditledger ${verb}`);
    }
    const unknown = runCli(['frobnicate'], {});
    expect((await unknown.exited).code).toBe(2);
    expect(unknown.output()).toContain("unknown command 'frobnicate'");
  });

  it('stops at start-up on an invalid setting, naming the variable', async () => {
    const cli = runCli(['serve'], { PORT: 'eighty' });
    expect((await cli.exited).code).toBe(78);
    expect(cli.output()).toMatch(/PORT: .*expects/);
  });

  describe('with DATABASE_URL', () => {
    let db: TestDatabase;
    beforeAll(async () => {
      db = await createTestDatabase({ empty: true });
    });
    afterAll(() => db.drop());

    it('migrate applies the schema and exits', async () => {
      const cli = runCli(['migrate'], { DATABASE_URL: db.ownerUrl });
      expect((await cli.exited).code).toBe(0);
      expect(cli.output()).toMatch(/database at schema version \d+/);
    });

    it('serve answers /healthz and /readyz, and exits cleanly on SIGTERM', async () => {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-serve-'));
      const cli = runCli(['serve'], {
        DATABASE_URL: db.ownerUrl,
        PORT: '0',
        AUDITLEDGER_DATA_DIR: dataDir,
        AUDITLEDGER_ADMIN_TOKEN: ADMIN,
        AUDITLEDGER_CHECKPOINT_INTERVAL: '1',
        AUDITLEDGER_MAX_BODY_BYTES: '2000',
        AUDITLEDGER_LOG_LEVEL: 'info',
      });
      try {
        const [, url] = await cli.waitFor(LISTENING);
        expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ status: 'ok' });
        expect((await fetch(`${url}/readyz`)).status).toBe(200);
        // Appending end to end over real HTTP.
        const token = await tenantToken(url!, ADMIN);
        const res = await fetch(`${url}/v1/events`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ action: 'cli.test' }),
        });
        expect(res.status).toBe(201);
        // Over real HTTP the body limit holds for declared and for chunked (undeclared) lengths.
        const big = JSON.stringify({ action: 'x', description: 'y'.repeat(3000) });
        for (const body of [big, new Blob([big]).stream()]) {
          const tooBig = await fetch(`${url}/v1/events`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body,
            duplex: 'half',
          } as RequestInit);
          expect(tooBig.status).toBe(413);
        }
        // A client gone before the end of its body is logged as its failure (400), not as the
        // database's (503 database_unavailable, from the socket's ECONNRESET).
        await new Promise<void>((resolve) => {
          const { hostname, port } = new URL(url!);
          const socket = net.connect(Number(port), hostname, () => {
            socket.end(`POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"action":"cut"`);
          });
          socket.on('close', () => resolve()).on('error', () => resolve()).resume();
        });
        let logged: string | undefined;
        for (let i = 0; i < 50 && !logged; i++) {
          await new Promise((r) => setTimeout(r, 100));
          logged = cli.output().split('\n').filter((line) => line.includes('"method":"POST"') && line.includes('"path":"/v1/events"')).at(-1);
        }
        expect(logged).toContain('"status":400');
        // The checkpoint job signs the moved chain within its interval, with the generated key.
        let latest: Response | undefined;
        for (let i = 0; i < 50 && latest?.status !== 200; i++) {
          await new Promise((r) => setTimeout(r, 200));
          latest = await fetch(`${url}/v1/checkpoints/latest`, { headers: { authorization: `Bearer ${token}` } });
        }
        expect(latest!.status).toBe(200);
        const keys = (await (await fetch(`${url}/v1/keys`)).json()) as { keys: { vkey: string }[] };
        expect(await readFile(path.join(dataDir, 'signing-key'), 'utf8')).toMatch(/^PRIVATE\+KEY\+/);
        expect(keys.keys[0]!.vkey).toMatch(/^auditledger-/);
        cli.child.kill('SIGTERM');
        expect(await cli.exited).toEqual({ code: 0, signal: null });
        expect(cli.output()).toContain('production keys belong in a secret store');
        // It started nothing else: no embedded cluster in the data dir.
        await expect(stat(path.join(dataDir, 'postgres'))).rejects.toThrow();
      } finally {
        cli.child.kill('SIGKILL');
        await rm(dataDir, { recursive: true, force: true });
      }
    });
  });

  it('serve shifts the clock only when allowed, says so, and seal then bundles the backdated day', async () => {
    const db = await createTestDatabase();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-clock-'));
    const cli = runCli(['serve'], {
      DATABASE_URL: db.ownerUrl,
      PORT: '0',
      AUDITLEDGER_DATA_DIR: dataDir,
      AUDITLEDGER_ADMIN_TOKEN: ADMIN,
      AUDITLEDGER_CLOCK_OFFSET: '-8d',
      AUDITLEDGER_ALLOW_CLOCK_OFFSET: 'true',
    });
    try {
      const [, url] = await cli.waitFor(LISTENING);
      expect(cli.output()).toContain('the server clock is shifted');
      const token = await tenantToken(url!, ADMIN);
      const res = await fetch(`${url}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ action: 'backdated' }),
      });
      const receivedAt = Date.parse(((await res.json()) as { events: { received_at: string }[] }).events[0]!.received_at);
      expect(Math.abs(Date.now() - 8 * 86_400_000 - receivedAt)).toBeLessThan(60_000);
      cli.child.kill('SIGTERM');
      await cli.exited;

      // The whole flow in a minute: the backdated day is due, and `seal` bundles it.
      const seal = runCli(['seal'], { DATABASE_URL: db.ownerUrl, AUDITLEDGER_DATA_DIR: dataDir });
      expect((await seal.exited).code).toBe(0);
      expect(seal.output()).toMatch(/sealed through \d{4}-\d{2}-\d{2}: \d+ day\(s\), 1 bundle\(s\), 1 event\(s\)/);
      const day = new Date(receivedAt).toISOString().slice(0, 10);
      const bundles = await readdir(path.join(dataDir, 'archive', 'bundles'), { recursive: true });
      expect(bundles.filter((f) => f.endsWith(`${day}.ndjson`))).toHaveLength(1);
    } finally {
      cli.child.kill('SIGKILL');
      await cli.exited;
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  describe('embedded default', () => {
    let dataDir: string;
    beforeAll(async () => {
      dataDir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-embedded-'));
      await chmod(dataDir, 0o755);
    });
    afterAll(async () => {
      // Whatever happened, leave no server running.
      try {
        execFileSync('pkill', ['-f', `${dataDir}/postgres`]);
      } catch {
        // none was left
      }
      await rm(dataDir, { recursive: true, force: true });
    });

    const serve = () => runCli(['serve'], { PORT: '0', AUDITLEDGER_DATA_DIR: dataDir, HOME: os.homedir() });

    it('starts PostgreSQL, prints the admin token path, and serves', async () => {
      const cli = serve();
      try {
        const [, url] = await cli.waitFor(LISTENING);
        expect(cli.output()).toContain(`admin token written to ${dataDir}/admin-token`);
        expect((await stat(path.join(dataDir, 'admin-token'))).mode & 0o777).toBe(0o600);
        const token = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
        const res = await fetch(`${url}/v1/projects`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'embedded' }),
        });
        expect(res.status).toBe(201);
        expect((await fetch(`${url}/readyz`)).status).toBe(200);
      } finally {
        cli.child.kill('SIGKILL'); // as if killed: the next start must recover
        await cli.exited;
      }
    });

    it('recovers from a server left running by a killed process, keeps its data, and stops on SIGINT', async () => {
      const cli = serve();
      const [, url] = await cli.waitFor(LISTENING);
      const token = (await readFile(path.join(dataDir, 'admin-token'), 'utf8')).trim();
      const list = (await (await fetch(`${url}/v1/projects`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
        projects: { name: string }[];
      };
      expect(list.projects.map((p) => p.name)).toEqual(['embedded']);
      expect(cli.output()).not.toContain('admin token written');
      expect(cli.output()).toContain('left running by an earlier process');

      cli.child.kill('SIGINT');
      expect((await cli.exited).code).toBe(0);
      await expect(stat(path.join(dataDir, 'postgres', 'postmaster.pid'))).rejects.toThrow();
    });
  });
});
