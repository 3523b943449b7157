import { chmod, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/store/embedded.js';
import { runCli, runCommand, type RunningCli } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/database.js';
import { LISTENING, serveProcess, tokenOverHttp } from '../helpers/server.js';

const ADMIN = `operations-test-admin-${'x'.repeat(24)}`;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A temporary data dir the server's `postgres` user can reach when tests run as root. */
async function dataDir(name: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `auditledger-${name}-`));
  await chmod(dir, 0o755);
  return dir;
}

/** The PID of the embedded PostgreSQL of `dir`, if it runs. */
async function postmaster(dir: string): Promise<number | undefined> {
  const pid = Number((await readFile(path.join(dir, 'postgres', 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]);
  return pid > 0 ? pid : undefined;
}

/** Whether `pid` runs (a zombie does not). */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
}

/** Every process below `pid`. */
async function descendants(pid: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    const stat = /^\d+$/.test(entry) ? await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '') : '';
    if (!stat) continue;
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const found: number[] = [];
  for (let queue = [pid]; queue.length; ) {
    const next = children.get(queue.shift()!) ?? [];
    found.push(...next);
    queue.push(...next);
  }
  return found;
}

/** The exit of `cli`, or a failure naming its output if it has not exited within `ms`. */
async function exitWithin(cli: RunningCli, ms: number) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running after ${ms} ms; output:\n${cli.output()}`)), ms);
  });
  try {
    return await Promise.race([cli.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every 200 ms until it holds (at most `ms`). */
async function eventually(check: () => Promise<boolean>, ms = 20_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) {
    if (await check().catch(() => false)) return true;
  }
  return false;
}

async function append(url: string, token: string): Promise<number> {
  const res = await fetch(`${url}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ action: 'operations.test' }),
  });
  return res.status;
}

/**
 * A TCP relay to PostgreSQL on `target` that can go silent, like a network partition: it then
 * keeps every connection open, and accepts new ones, but passes nothing on in either direction.
 */
async function relay(target: number) {
  let silent = false;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client)).on('error', () => undefined);
    if (silent) return;
    const upstream = connect(target, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream)).on('error', () => undefined);
    client.on('data', (data) => silent || upstream.write(data)).on('close', () => upstream.destroy());
    upstream.on('data', (data) => silent || client.write(data)).on('close', () => silent || client.destroy());
  }).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return {
    port: (server.address() as { port: number }).port,
    silence: () => (silent = true),
    close() {
      server.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

const healthz = async (url: string) => (await fetch(`${url}/healthz`)).status;

describe('commands beside a running embedded service', () => {
  let dir: string;
  let env: Record<string, string>;
  let service: { cli: RunningCli; url: string };
  let token: string;
  beforeAll(async () => {
    dir = await dataDir('beside');
    env = { AUDITLEDGER_DATA_DIR: dir, HOME: os.homedir() };
    service = await serveProcess(env);
    const admin = (await readFile(path.join(dir, 'admin-token'), 'utf8')).trim();
    ({ token } = await tokenOverHttp(service.url, admin));
  });
  afterAll(async () => {
    service.cli.child.kill('SIGKILL');
    await service.cli.exited;
    const pid = await postmaster(dir); // left by a failed test: a fast shutdown of our own server
    if (pid) process.kill(pid, 'SIGINT');
    await eventually(async () => !(await postmaster(dir)));
    await rm(dir, { recursive: true, force: true });
  });

  it('seal, verify and migrate use the running PostgreSQL and leave it running', async () => {
    expect(await append(service.url, token)).toBe(201);
    const postgres = await postmaster(dir);
    for (const verb of ['seal', 'verify', 'migrate']) {
      const command = runCli([verb], env);
      const during = await append(service.url, token);
      const exit = await command.exited;
      expect(exit.code, command.output()).toBe(0);
      expect(command.output()).not.toContain('left running by an earlier process');
      expect(during).toBe(201);
      expect(await append(service.url, token)).toBe(201);
      expect((await fetch(`${service.url}/readyz`)).status).toBe(200);
    }
    expect(await postmaster(dir)).toBe(postgres);
  });

  it('a second serve on the data dir refuses to start, in one line, and harms nothing', async () => {
    const second = runCli(['serve'], { ...env, PORT: '0' });
    try {
      const exit = await exitWithin(second, 60_000);
      expect(exit.code).toBe(1);
      expect(second.output().trim().split('\n')).toEqual([
        expect.stringMatching(/^auditledger serve: another auditledger serve \(pid \d+\) is running on the data dir .+; stop it first/),
      ]);
      expect(await append(service.url, token)).toBe(201);
    } finally {
      second.child.kill('SIGKILL');
    }
  });

  it('SIGTERM to the service stops its PostgreSQL with it', async () => {
    service.cli.child.kill('SIGTERM');
    expect(await exitWithin(service.cli, 30_000)).toEqual({ code: 0, signal: null });
    expect(await postmaster(dir)).toBeUndefined();
  });

  it('commands started together share one server, and the last one out stops it', async () => {
    const commands = [runCli(['verify'], env), runCli(['seal'], env), runCli(['verify'], env)];
    for (const command of commands) expect((await command.exited).code, command.output()).toBe(0);
    expect(await postmaster(dir)).toBeUndefined();
    const state = JSON.parse(await readFile(path.join(dir, 'postgres.json'), 'utf8')) as { port: number; users: unknown[] };
    expect(state).toEqual({ port: expect.any(Number), users: [] });
  });

  it('a lock left empty by a process killed while creating it is taken over, not waited on for ever', async () => {
    const lock = path.join(dir, 'postgres.lock');
    await writeFile(lock, '');
    const minuteAgo = new Date(Date.now() - 60_000);
    await utimes(lock, minuteAgo, minuteAgo);
    const command = runCli(['migrate'], env);
    expect((await exitWithin(command, 20_000)).code, command.output()).toBe(0);
    expect(await readFile(lock, 'utf8').catch(() => 'gone')).toBe('gone');
  });
});

describe('operating it never harms it', () => {
  it('servers started together on a new, empty database all come up (migrations, partitions, the job system)', async () => {
    const db = await createTestDatabase({ empty: true });
    const dirs = await Promise.all([1, 2, 3].map((i) => dataDir(`together-${i}`)));
    const servers = dirs.map((dir) => runCli(['serve'], { DATABASE_URL: db.ownerUrl, AUDITLEDGER_DATA_DIR: dir, AUDITLEDGER_ADMIN_TOKEN: ADMIN, PORT: '0' }));
    try {
      await Promise.all(servers.map((s) => s.waitFor(LISTENING, 60_000)));
    } finally {
      for (const s of servers) s.child.kill('SIGTERM');
      await Promise.all(servers.map((s) => exitWithin(s, 30_000)));
      await db.drop();
      await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    }
  }, 90_000);

  it('a taken HTTP port stops serve with one line naming HOST:PORT', async () => {
    const db = await createTestDatabase();
    const dir = await dataDir('port');
    const taken = createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => taken.once('listening', resolve));
    const { port } = taken.address() as { port: number };
    const cli = runCli(['serve'], {
      DATABASE_URL: db.ownerUrl,
      AUDITLEDGER_DATA_DIR: dir,
      AUDITLEDGER_ADMIN_TOKEN: ADMIN,
      AUDITLEDGER_LOG_LEVEL: 'error', // the output is then what serve says on stderr
      PORT: String(port),
    });
    try {
      const exit = await exitWithin(cli, 60_000);
      expect(exit.code).toBe(1);
      expect(cli.output().trim().split('\n')).toEqual([`auditledger serve: 127.0.0.1:${port} is already in use; stop what listens there or set HOST/PORT`]);
    } finally {
      cli.child.kill('SIGKILL');
      taken.close();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('serve exits 1 with one clear line when its embedded PostgreSQL stops under it', async () => {
    const dir = await dataDir('postgres-dies');
    const { cli } = await serveProcess({
      AUDITLEDGER_DATA_DIR: dir,
      HOME: os.homedir(),
      AUDITLEDGER_DB_UNREACHABLE_SECONDS: '1',
      AUDITLEDGER_SHUTDOWN_TIMEOUT: '5',
    });
    try {
      process.kill((await postmaster(dir))!, 'SIGINT'); // a fast shutdown, as by an operator's pg_ctl stop
      const exit = await exitWithin(cli, 30_000);
      expect(exit.code).toBe(1);
      expect(cli.output()).toContain('the embedded PostgreSQL stopped under the service; exiting');
    } finally {
      cli.child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);

  /** `npm start` in its own process group; `stop` signals it as a supervisor or a terminal would. */
  const npmStart = async (stop: (npm: RunningCli) => void) => {
    const db = await createTestDatabase();
    const dir = await dataDir('npm-start');
    const env = { HOME: os.homedir(), DATABASE_URL: db.ownerUrl, AUDITLEDGER_DATA_DIR: dir, AUDITLEDGER_ADMIN_TOKEN: ADMIN, PORT: '0' };
    const npm = runCommand('npm', ['start'], env, { cwd: ROOT, detached: true });
    let below: number[] = [];
    try {
      const [, url] = await npm.waitFor(LISTENING);
      below = await descendants(npm.child.pid!);
      expect(below.length).toBeGreaterThan(0);
      stop(npm);
      const exit = await exitWithin(npm, 30_000);
      expect(await eventually(async () => !(await Promise.all(below.map(running))).some(Boolean), 10_000)).toBe(true);
      await expect(fetch(`${url}/healthz`)).rejects.toThrow();
      return { exit, output: npm.output() };
    } finally {
      for (const pid of below) if (await running(pid)) process.kill(pid, 'SIGKILL');
      npm.child.kill('SIGKILL');
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    }
  };

  it('SIGTERM to npm start stops the server and leaves no process behind', async () => {
    await npmStart((npm) => npm.child.kill('SIGTERM'));
  }, 60_000);

  it('Ctrl-C on npm start (SIGINT to its group, so twice to the server) shuts down cleanly', async () => {
    const { exit, output } = await npmStart((npm) => process.kill(-npm.child.pid!, 'SIGINT'));
    expect(exit.code, output).toBe(0);
    expect(output).not.toContain('abandoned');
  }, 60_000);
});

describe('when its database goes away', () => {
  let pgDir: string;
  let postgres: EmbeddedPostgres;
  let network: Awaited<ReturnType<typeof relay>>;
  let dir: string;
  let service: { cli: RunningCli; url: string };
  const log = pino({ level: 'warn' });
  beforeAll(async () => {
    // A PostgreSQL of this test's own, to stop and start again (never the shared test cluster),
    // reached through a relay that can fail like a network.
    pgDir = await dataDir('own-postgres');
    postgres = await startEmbeddedPostgres(pgDir, log);
    network = await relay(postgres.port);
    const url = new URL(postgres.adminUrl());
    url.port = String(network.port);
    dir = await dataDir('db-gone');
    service = await serveProcess({
      DATABASE_URL: url.toString(),
      AUDITLEDGER_DATA_DIR: dir,
      AUDITLEDGER_ADMIN_TOKEN: ADMIN,
      AUDITLEDGER_DB_UNREACHABLE_SECONDS: '1',
      AUDITLEDGER_SHUTDOWN_TIMEOUT: '3',
      AUDITLEDGER_CHECKPOINT_INTERVAL: '1',
    });
  });
  afterAll(async () => {
    service.cli.child.kill('SIGKILL');
    network.close();
    await postgres.stop();
    await rm(pgDir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });

  it('/healthz fails while it is down, and the service works again when it returns', async () => {
    const { token } = await tokenOverHttp(service.url, ADMIN);
    expect(await append(service.url, token)).toBe(201);
    const port = postgres.port;
    await postgres.stop();
    expect(await eventually(async () => (await healthz(service.url)) === 503)).toBe(true);

    postgres = await startEmbeddedPostgres(pgDir, log);
    expect(postgres.port).toBe(port); // the server keeps its port when it can
    expect(await eventually(async () => (await healthz(service.url)) === 200)).toBe(true);
    expect(await eventually(async () => (await append(service.url, token)) === 201)).toBe(true);
    // The job system works again too: a checkpoint job signs both events.
    const latest = async () => {
      const res = await fetch(`${service.url}/v1/checkpoints/latest`, { headers: { authorization: `Bearer ${token}` } });
      return res.status === 200 && ((await res.json()) as { tree_size: number }).tree_size === 2;
    };
    expect(await eventually(latest)).toBe(true);
  }, 60_000);

  it('SIGTERM with the database unreachable ends at the shutdown timeout, exit 1, naming what it abandoned', async () => {
    network.silence();
    expect(await eventually(async () => (await healthz(service.url)) === 503)).toBe(true);
    service.cli.child.kill('SIGTERM');
    const exit = await exitWithin(service.cli, 20_000);
    expect(exit.code).toBe(1);
    // The token usage flush waits on the silent database for ever; the steps after it never ran.
    expect(service.cli.output()).toMatch(/shutdown did not end within 3 s; abandoned: token usage flush, group commit flush, checkpoint timer, pg-boss stop, database pools/);
  }, 60_000);
});
