// Ingest and verification benchmark against a real PostgreSQL and the real service, in one run:
//   (a) raw COPY into a plain table shaped like `events`: the ceiling the others are compared with;
//   (b) batched HTTP ingest; (c) single-event HTTP ingest on one chain, on 16 and (c3) each request
//   to a random one of 1,000; (i) batched ingest again against `serve --workers 2`;
//   (d) full-chain verification; (e) sealing a million events of one past day across 4 chains, by
//   runSeal in a child process of its own (wall time and peak RSS); (f) verify-archive of what (e)
//   sealed, then of one chain's day of each size (peak RSS, which must not grow with the day);
//   (g) inclusion and consistency proof latency over HTTP on a chain of 10,000 events and on one
//   of 3 million; (h) sealing that chain's day of 3 million events (time, peak RSS, bundles).
//   (c), (d) and (f) each get a ceiling beside them: the same load or data through only the work
//   no implementation can skip (bench-bare-server.ts, bench-ceilings.ts); (c1), (c3), (d) and (f)
//   a floor too, that work and what every append or verifier must add to it; (p) batched ingest of
//   events with three personal values each under the default policy (issue 17), beside (p0), the
//   same events on a chain whose policy keeps them clear. Every other phase runs under that empty
//   policy, so their events carry no commitments. Targets are printed beside the figures, never
//   asserted.
//
//   npm run bench -- [--events N] [--seconds S] [--workers W] [--seal-events N] [--chain-events N] [--proofs N]
//                    [--rounds R] [--only personal|proofs|single|verify|workers]
//
// A quick check that every phase runs (figures meaningless):
//   npm run bench -- --events 20000 --seconds 1 --seal-events 200000 --chain-events 300000 --proofs 50
//
// (p0) and (p) take turns, R runs each (4 unless given) of S / R seconds, so that both see the
// same machine. --only personal runs them alone (no (a), no other phase): their ratio, in a minute.
// --only proofs builds the large chain and runs (g) alone: its ratios, in a few minutes. --only single
// runs (c1), (c2), (c3) and the bare servers: the single-event ratios and CPU per event, in two minutes.
// --only verify grows one chain to --events and runs (d), (e) and (f) with their ceilings and
// floors; (e) and (f) take --seal-events, not --events.
// --only workers runs (b)'s batches of 100 on one chain and on 8, and (i): one worker against two.
//
// PostgreSQL: a fresh database at DATABASE_URL (a superuser URL) when set, otherwise an embedded
// server in a temporary folder. The service runs as a child process (`auditledger serve`) so it
// never shares an event loop with the load generator, which runs in worker threads.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import pino from 'pino';
import { LocalArchive } from '../src/archive/local.js';
import { runCheckpoints, type CheckpointDeps } from '../src/jobs/checkpoints.js';
import { DEFAULT_MAX_EVENTS } from '../src/jobs/seal.js';
import { appendLeaves, emptyRange, type CompactRange } from '../src/ledger/compact-range.js';
import { encodeCanonicalEvent, encodeEvent, GENESIS_PREV, indexColumns, type AuditEvent } from '../src/ledger/event.js';
import { canonicalize } from '../src/ledger/jcs.js';
import { encodeSigningKey, generateSigningKey, verifierKey, type SigningKey, type VerifierKey } from '../src/ledger/keys.js';
import { verifyConsistency, verifyInclusion } from '../src/ledger/proof.js';
import { extendTails, tileBytes, type TileTails } from '../src/ledger/tiles.js';
import { DEFAULT_POLICY } from '../src/ledger/personal.js';
import { uuidv7 } from '../src/ledger/uuid.js';
import { verifyChain } from '../src/store/chain-verify.js';
import { checkpointAt } from '../src/store/checkpoints.js';
import { createPools } from '../src/store/database.js';
import { getChainHead } from '../src/store/events.js';
import { startEmbeddedPostgres } from '../src/store/embedded.js';
import { startWorker } from '../src/thread-pool.js';
import { createEnvironment, createProject } from '../src/store/tenants.js';
import type { BareServerKind } from './bench-bare-server.js';
import { hashArchive, readAndHashChain } from './bench-ceilings.js';
import type { ArchiveJob, ArchiveResult, ChildJob, SealJob, SealResult } from './bench-child.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(ROOT, 'src/cli/bin.js');
const BARE_SERVER = path.join(ROOT, 'scripts/bench-bare-server.ts');
const WARMUP_MS = 1000;

/**
 * A realistic event: 472 bytes of JSON as sent, about 750 stored once the ledger fields are added.
 * The phases other than (p) run under a policy that names nothing personal, so it is stored whole.
 */
const EVENT: AuditEvent = {
  action: 'invoice.payment.captured',
  crud: 'u',
  actor: { id: 'user_8f3a2c9e41d7', name: 'Jane Doe' },
  target: { id: 'inv_2026_000184273', type: 'invoice' },
  group: { id: 'org_5d1e77a0c2b4', name: 'Acme Corporation' },
  source_ip: '203.0.113.42',
  fields: { amount: '1249.00', currency: 'EUR', method: 'card', card_last4: '4242' },
  metadata: {
    request_id: 'req_01JQ7X9K2M4N6P8R0T2V4W6Y8Z',
    user_agent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Safari/605.1.15',
    attempt: 1,
  },
};

/** EVENT's RFC 8785 form, computed once as the append path computes it before taking the chain lock. */
const EVENT_CANONICAL = canonicalize(EVENT);

/** EVENT with the three values the default personal data policy commits to: actor name and href, source IP. */
const PERSONAL_EVENT: AuditEvent = { ...EVENT, actor: { ...EVENT.actor!, href: 'https://app.example.com/users/user_8f3a2c9e41d7' } };

/** A policy with no personal path: events are stored whole, as before format v2. */
const NO_PERSONAL_DATA = { subjects: [] };

interface Options {
  /** Rows COPYed in (a), and the least number of events (d) verifies. */
  events: number;
  /** Measured seconds of each HTTP phase, after the warm-up. */
  seconds: number;
  /** Load-generator threads. */
  workers: number;
  /** Events (e) seals, spread over 4 chains. */
  sealEvents: number;
  /** Events of the one chain's day that (g) proves and (h) seals. */
  chainEvents: number;
  /** Measured proofs of each kind on each chain in (g). */
  proofs: number;
  /** The turns (p0) and (p) take, each measuring seconds / rounds. */
  rounds: number;
  /**
   * One part of the run alone: (p0) and (p), (g) (with the chain it needs), (c1)-(c3) with the
   * bare servers, (d), (e) and (f) with their ceilings, or (b) 100 and (i); undefined for all.
   */
  only: 'personal' | 'proofs' | 'single' | 'verify' | 'workers' | undefined;
}

function onlyOption(value: string | undefined): Options['only'] {
  if (value === undefined || value === 'personal' || value === 'proofs' || value === 'single' || value === 'verify' || value === 'workers') return value;
  throw new Error(`--only must be personal, proofs, single, verify or workers, got ${value}`);
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      events: { type: 'string', default: '200000' },
      seconds: { type: 'string', default: '8' },
      // One thread of node:http client tops out near 10k requests/s here; (c) needs more.
      workers: { type: 'string', default: '2' },
      'seal-events': { type: 'string', default: '1000000' },
      'chain-events': { type: 'string', default: '3000000' },
      proofs: { type: 'string', default: '500' },
      rounds: { type: 'string', default: '4' },
      only: { type: 'string' },
    },
    strict: true,
  });
  const positive = (name: keyof typeof values) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${values[name]}`);
    return n;
  };
  return {
    events: positive('events'),
    seconds: positive('seconds'),
    workers: positive('workers'),
    sealEvents: positive('seal-events'),
    chainEvents: positive('chain-events'),
    proofs: positive('proofs'),
    rounds: positive('rounds'),
    only: onlyOption(values.only),
  };
}

/** A line on stderr, after the seconds since the run started. */
const progress = (message: string) => process.stderr.write(`bench: ${(performance.now() / 1000).toFixed(0)} s: ${message}\n`);
const count = (n: number) => Math.round(n).toLocaleString('en-US');

// ---------------------------------------------------------------------------------------------
// Teardown

/** Steps undone last-in first-out, exactly once, whether the run ends, fails or is interrupted. */
class Teardown {
  private readonly steps: (() => Promise<unknown>)[] = [];
  private running: Promise<void> | undefined;

  add(step: () => Promise<unknown>): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    return (this.running ??= this.unwind());
  }

  private async unwind(): Promise<void> {
    while (this.steps.length) {
      // One failed step must not leave the later ones (the server, the folder) behind.
      await this.steps.pop()!().catch((error: unknown) => progress(`teardown: ${(error as Error).message}`));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and the service

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

/** DATABASE_URL, or the superuser URL of an embedded server in `dir`, stopped at teardown. */
async function superuserUrl(dir: string, teardown: Teardown): Promise<string> {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  const embedded = await startEmbeddedPostgres(dir, pino({ level: 'warn' }));
  teardown.add(() => embedded.stop());
  return embedded.adminUrl();
}

/** A database of this run's own, dropped at teardown; returns its (superuser) URL. */
async function benchDatabase(superuser: string, teardown: Teardown): Promise<string> {
  const name = `auditledger_bench_${randomBytes(6).toString('hex')}`;
  await withClient(superuser, (c) => c.query(`CREATE DATABASE ${name}`));
  teardown.add(() => withClient(superuser, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)));
  const url = new URL(superuser);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Sends SIGTERM and waits for the exit; SIGKILL if the graceful stop hangs. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/**
 * The URL a child prints once it listens ("auditledger listening on <url>", or a bare server's
 * line); fails if its output ends (it stopped) before. Every other line (its warnings, on stdout)
 * is passed on, which also keeps the pipe from filling.
 */
function listeningUrl(child: ChildProcess, name: string): Promise<URL> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    let listening = false;
    lines.on('line', (line) => {
      const match = listening ? null : /^(?:auditledger|bare server) listening on (http:\/\/\S+)$/.exec(line);
      if (match) {
        listening = true;
        resolve(new URL(match[1]!));
      } else {
        process.stderr.write(`${name}: ${line}\n`);
      }
    });
    lines.once('close', () => reject(new Error(`the ${name} stopped before listening (its output is above)`)));
  });
}

interface RunningService {
  url: URL;
  pid: number;
  /** Stops it before teardown does (which then has nothing left to do). */
  stop(): Promise<void>;
}

/** The V8 flags the service runs with, as bin.js's shebang, npm start and the Dockerfile give them. */
const SERVICE_FLAGS = ['--max-semi-space-size=64', '--no-allocation-site-pretenuring'];

/**
 * Starts a server of ours with the service's V8 flags (`args` after them), in a process group of
 * its own so that Ctrl-C reaches only us and it is stopped in order at teardown.
 */
async function startListening(name: string, args: string[], env: Record<string, string>, teardown: Teardown): Promise<RunningService> {
  const child = spawn(process.execPath, [...SERVICE_FLAGS, ...args], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  teardown.add(() => stopProcess(child));
  return { url: await listeningUrl(child, name), pid: child.pid!, stop: () => stopProcess(child) };
}

/** Starts `auditledger serve` on the bench database; `env` adds settings. */
function startService(
  databaseUrl: string,
  dataDir: string,
  adminToken: string,
  teardown: Teardown,
  { workers = 1, env = {} }: { workers?: number; env?: Record<string, string> } = {},
): Promise<RunningService> {
  const args = [BIN, 'serve', ...(workers > 1 ? ['--workers', String(workers)] : [])];
  return startListening('service', args, {
    DATABASE_URL: databaseUrl,
    PORT: '0',
    AUDITLEDGER_DATA_DIR: dataDir,
    AUDITLEDGER_ADMIN_TOKEN: adminToken,
    AUDITLEDGER_LOG_LEVEL: 'warn',
    ...env,
  }, teardown);
}

/** A server of bench-bare-server.ts (`append` writes to bench_floor at `databaseUrl`). */
function startBareServer(kind: BareServerKind, databaseUrl: string, teardown: Teardown): Promise<RunningService> {
  return startListening(`bare server ${kind}`, ['--import', 'tsx', BARE_SERVER, kind], { DATABASE_URL: databaseUrl }, teardown);
}

// ---------------------------------------------------------------------------------------------
// Tenants: one project, one environment (chain) with its own token per phase or spread chain

interface Chain {
  project: string;
  environment: string;
  token: string;
}

async function adminPost<T>(base: URL, adminToken: string, route: string, body: unknown): Promise<T> {
  const response = await fetch(new URL(route, base), {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (response.status !== 201) throw new Error(`POST ${route}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/** Sets a personal data policy through the admin API (`scope`: /v1/projects/:id[/environments/:id]). */
async function putPolicy(base: URL, adminToken: string, scope: string, policy: unknown): Promise<void> {
  const response = await fetch(new URL(`${scope}/personal-data-policy`, base), {
    method: 'PUT',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(policy),
  });
  if (response.status !== 200) throw new Error(`PUT ${scope}/personal-data-policy: ${response.status} ${await response.text()}`);
}

async function createChains(base: URL, adminToken: string, names: readonly string[]): Promise<Map<string, Chain>> {
  const project = await adminPost<{ id: string }>(base, adminToken, '/v1/projects', { name: 'bench' });
  // Before any chain exists, so that no chain records a change: none but (p)'s commit to anything.
  await putPolicy(base, adminToken, `/v1/projects/${project.id}`, NO_PERSONAL_DATA);
  const chains = new Map<string, Chain>();
  for (const name of names) {
    const environments = `/v1/projects/${project.id}/environments`;
    const environment = await adminPost<{ id: string }>(base, adminToken, environments, { name });
    const { token } = await adminPost<{ token: string }>(base, adminToken, `${environments}/${environment.id}/tokens`, {
      name: 'bench',
    });
    chains.set(name, { project: project.id, environment: environment.id, token });
  }
  return chains;
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc): on a 2-core machine the service, PostgreSQL and the load generator
// compete for the same cores, and anything else running skews every figure; this shows who used them.

/** Average cores in use during a measure. */
interface CpuShare {
  service: number;
  postgres: number;
  /** This process: the load-generator threads, the COPY stream, verifyChain. */
  bench: number;
  /** Everything outside this run. */
  other: number;
}

interface CpuTimes {
  wallMs: number;
  machineMs: number;
  serviceMs: number;
  postgresMs: number;
  benchMs: number;
}

const TICK_MS = 10; // /proc counts CPU time in USER_HZ ticks, 100 per second on Linux

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces): [0] is field 3, state. */
function statFields(pid: number | string): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU ms of a process (utime + stime); with `reaped`, plus that of its exited children. */
function processCpuMs(pid: number | string, reaped = false): number {
  const [utime, stime, cutime, cstime] = statFields(pid).slice(11, 15).map(Number) as [number, number, number, number];
  return (utime + stime + (reaped ? cutime + cstime : 0)) * TICK_MS;
}

/**
 * Waits until process `pid` has used under 5% of a core over a second, or `limitMs` passed: after
 * many chains took events, the service's jobs sign their checkpoints for a while (after (c3),
 * 1,000 of them), which would take CPU from the next phase.
 */
async function untilIdle(pid: number, limitMs = 60_000): Promise<void> {
  const started = performance.now();
  for (let waited = false; performance.now() < started + limitMs; waited = true) {
    const before = processCpuMs(pid);
    await sleep(1000);
    if (processCpuMs(pid) - before < 50) return;
    if (!waited) progress('waiting for the service to idle (its jobs)');
  }
}

/** CPU ms of a PostgreSQL server: its postmaster and every backend, running or exited. */
function postgresCpuMs(postmaster: number): number {
  let ms = processCpuMs(postmaster, true);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (Number(statFields(entry)[1]) === postmaster) ms += processCpuMs(entry);
    } catch {
      // The process ended meanwhile; its time is now in the postmaster's reaped children.
    }
  }
  return ms;
}

/** CPU ms the whole machine has spent busy (user, nice, system, irq, softirq; not steal, the hypervisor's). */
function machineBusyMs(): number {
  const [user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq!) * TICK_MS;
}

class CpuMeter {
  private constructor(
    private readonly servicePid: number | undefined,
    private readonly postmasterPid: number,
  ) {}

  /** The same meter with another process in the service's column (the sealing child in (e)), or none. */
  withService(pid: number | undefined): CpuMeter {
    return new CpuMeter(pid, this.postmasterPid);
  }

  /** A meter, or undefined where /proc cannot show the processes (not Linux, or PostgreSQL on another host). */
  static async open(db: pg.Pool, servicePid: number): Promise<CpuMeter | undefined> {
    try {
      const { rows } = await db.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const backend = rows[0]!.pid;
      if (readFileSync(`/proc/${backend}/comm`, 'utf8').trim() !== 'postgres') return undefined;
      const meter = new CpuMeter(servicePid, Number(statFields(backend)[1]));
      meter.sample(); // fail here rather than in the middle of a measure
      return meter;
    } catch {
      return undefined;
    }
  }

  sample(): CpuTimes {
    const { user, system } = process.cpuUsage();
    return {
      wallMs: performance.now(),
      machineMs: machineBusyMs(),
      serviceMs: this.servicePid === undefined ? 0 : processCpuMs(this.servicePid),
      postgresMs: postgresCpuMs(this.postmasterPid),
      benchMs: (user + system) / 1000,
    };
  }

  since(start: CpuTimes): CpuShare {
    const end = this.sample();
    const cores = (key: keyof CpuTimes) => (end[key] - start[key]) / (end.wallMs - start.wallMs);
    const [service, postgres, bench] = [cores('serviceMs'), cores('postgresMs'), cores('benchMs')];
    return { service, postgres, bench, other: Math.max(0, cores('machineMs') - service - postgres - bench) };
  }
}

/** Runs one measure and notes the cores each party used meanwhile. */
/** The service's append transactions and the events they took so far (GET /metrics, Prometheus text). */
async function commits(base: URL): Promise<{ transactions: number; events: number }> {
  const text = await (await fetch(new URL('/metrics', base))).text();
  const value = (name: string) => Number(text.split('\n').find((line) => line.startsWith(`${name} `))?.slice(name.length + 1) ?? Number.NaN);
  return { transactions: value('auditledger_group_commit_events_count'), events: value('auditledger_group_commit_events_sum') };
}

/**
 * Checkpoints signed so far. The service's job signs every chain that moved, every quarter of its
 * interval (60 s): after (c3), 1,000 of them, for seconds of its CPU, which may fall within a phase.
 */
async function checkpointCount(db: pg.Pool): Promise<number> {
  return Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM checkpoints')).rows[0]!.n);
}

interface SignedAfter {
  signed: number;
  seconds: number;
  /** The service's CPU meanwhile, in ms. */
  cpuMs: number;
}

/**
 * Waits, up to `limitMs`, until every chain with events has a checkpoint (the service's job signs
 * a new chain at its next run, within a quarter interval), then until the service idles: so that
 * the job's round over the chains a phase moved does not fall on the next phase. Returns what the
 * job signed meanwhile and the service's CPU.
 */
async function untilSigned(db: pg.Pool, pid: number, limitMs = 60_000): Promise<SignedAfter> {
  const started = performance.now();
  const [signedBefore, cpuBefore] = [await checkpointCount(db), processCpuMs(pid)];
  const unsigned = async () =>
    Number(
      (await db.query<{ n: string }>('SELECT count(*) AS n FROM chain_heads h WHERE h.seq > 0 AND NOT EXISTS (SELECT FROM checkpoints c WHERE c.environment_id = h.environment_id)'))
        .rows[0]!.n,
    );
  while ((await unsigned()) > 0 && performance.now() < started + limitMs) await sleep(250);
  await untilIdle(pid);
  return { signed: (await checkpointCount(db)) - signedBefore, seconds: (performance.now() - started) / 1000, cpuMs: processCpuMs(pid) - cpuBefore };
}

async function metered<T>(meter: CpuMeter | undefined, run: () => Promise<T>): Promise<T & { cpu?: CpuShare | undefined }> {
  const start = meter?.sample();
  const result = await run();
  return { ...result, cpu: start && meter!.since(start) };
}

// ---------------------------------------------------------------------------------------------
// (a) COPY: the ceiling

const COPY_COLUMNS = 'environment_id, seq, id, received_at, prev, hash, canonical, action, crud, actor_id, target_id, group_id, created';
const COPY_CHUNK_ROWS = 1000;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** One field in COPY text format; bytea as hex. */
function copyField(value: string | number | Buffer | null): string {
  if (value === null) return '\\N';
  if (Buffer.isBuffer(value)) return `\\\\x${value.toString('hex')}`;
  return String(value).replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!);
}

/**
 * A chain of `total` events as COPY text chunks, each row built as appendToChain builds it:
 * UUIDv7 id, never-decreasing received_at, prev linking to the previous hash, index columns.
 * Built before the clock starts, so (a) measures PostgreSQL alone.
 */
function chainAsCopyText(total: number): Buffer[] {
  const chain = { project: uuidv7(), environment: uuidv7() };
  const columns = indexColumns(EVENT);
  const created = columns.created === null ? null : new Date(columns.created).toISOString();
  const chunks: Buffer[] = [];
  let lines = '';
  let prev: Buffer = Buffer.from(GENESIS_PREV, 'hex');
  let receivedAtMs = 0;
  for (let seq = 1; seq <= total; seq++) {
    receivedAtMs = Math.max(Date.now(), receivedAtMs);
    const receivedAt = new Date(receivedAtMs).toISOString();
    const id = uuidv7(receivedAtMs);
    const { canonical, hash } = encodeEvent(EVENT, { ...chain, seq, id, received_at: receivedAt, prev: prev.toString('hex') });
    const row = [
      chain.environment, seq, id, receivedAt, prev, hash, canonical,
      columns.action, columns.crud, columns.actor_id, columns.target_id, columns.group_id, created,
    ];
    lines += `${row.map(copyField).join('\t')}\n`;
    prev = hash;
    if (seq % COPY_CHUNK_ROWS === 0 || seq === total) {
      chunks.push(Buffer.from(lines));
      lines = '';
    }
  }
  return chunks;
}

/** Index definitions of a table with its own names taken out, to compare two tables' indexes. */
async function indexShapes(db: pg.Pool, table: string): Promise<string[]> {
  const { rows } = await db.query<{ shape: string }>(
    `SELECT CASE WHEN indisprimary THEN 'PRIMARY KEY ' ELSE '' END
            || regexp_replace(pg_get_indexdef(indexrelid), ' INDEX \\S+ ON (ONLY )?\\S+', ' INDEX ON') AS shape
       FROM pg_index WHERE indrelid = $1::regclass ORDER BY 1`,
    [table],
  );
  return rows.map((r) => r.shape);
}

/**
 * A plain table with the columns, checks, primary key and indexes of the partitioned `events`;
 * fails if the indexes differ, since (a) and the (c) floor would then be no fair measure.
 */
async function createPlainEventsTable(db: pg.Pool, table: string): Promise<void> {
  await db.query(`CREATE TABLE ${table} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`);
  const [events, copy] = await Promise.all([indexShapes(db, 'events'), indexShapes(db, table)]);
  if (events.join('\n') !== copy.join('\n')) {
    throw new Error(`${table}'s indexes differ from events':\n${copy.join('\n')}\nvs\n${events.join('\n')}`);
  }
}

/** COPYs `rows` (`count` of them, COPY text) into `target` (a table and its columns), in one statement. */
async function copyInto(db: pg.Pool, target: string, rows: Iterable<Buffer>, count: number): Promise<void> {
  const client = await db.connect();
  try {
    const copy = client.query(copyFrom(`COPY ${target} FROM STDIN`));
    await pipeline(Readable.from(rows), copy);
    if (copy.rowCount !== count) throw new Error(`COPY stored ${copy.rowCount} rows into ${target}, not ${count}`);
  } finally {
    client.release();
  }
}

/** One COPY of the chunks into bench_copy, committed; events per second. */
async function copyRows(db: pg.Pool, chunks: Buffer[], total: number): Promise<{ eventsPerSecond: number }> {
  const started = performance.now();
  await copyInto(db, `bench_copy (${COPY_COLUMNS})`, chunks, total);
  return { eventsPerSecond: total / ((performance.now() - started) / 1000) };
}

// ---------------------------------------------------------------------------------------------
// (b), (c) HTTP ingest: closed-loop connections in worker threads

/** What one load-generator thread runs: a connection per token, each posting `body` in a loop. */
interface LoadSpec {
  url: string;
  body: Uint8Array;
  eventsPerRequest: number;
  tokens: string[];
  /** When given, each request goes to one of these tokens' chains at random (the connection's own token is unused). */
  randomTokens?: string[] | undefined;
  warmupMs: number;
  measureMs: number;
}

interface LoadResult {
  /** Events in requests answered 201 within the measured window. */
  acknowledged: number;
  /** Answers outside 2xx, and failed requests, within the measured window. */
  errors: number;
  /** Milliseconds per request within the measured window. */
  latencies: number[];
}

/** POSTs one body; resolves with the HTTP status, or 0 when the request failed. */
function post(agent: http.Agent, url: URL, headers: http.OutgoingHttpHeaders, body: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const request = http.request(
      { agent, hostname: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers },
      (response) => {
        response.resume();
        response.once('end', () => resolve(response.statusCode ?? 0));
      },
    );
    request.once('error', () => resolve(0));
    request.end(body);
  });
}

/** Runs every connection of a spec until the window ends; counts what completes inside it. */
async function generateLoad(spec: LoadSpec): Promise<LoadResult> {
  const url = new URL('/v1/events', spec.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.tokens.length });
  const body = Buffer.from(spec.body.buffer, spec.body.byteOffset, spec.body.byteLength);
  const result: LoadResult = { acknowledged: 0, errors: 0, latencies: [] };
  const measureFrom = performance.now() + spec.warmupMs;
  const measureTo = measureFrom + spec.measureMs;

  const headersFor = (token: string) => ({ 'content-type': 'application/json', 'content-length': body.length, authorization: `Bearer ${token}` });
  const random = spec.randomTokens?.map(headersFor);
  const connection = async (token: string) => {
    let headers = headersFor(token);
    while (performance.now() < measureTo) {
      if (random) headers = random[Math.floor(Math.random() * random.length)]!;
      const sent = performance.now();
      const status = await post(agent, url, headers, body);
      const answered = performance.now();
      if (answered < measureFrom || answered > measureTo) continue;
      if (status === 201) result.acknowledged += spec.eventsPerRequest;
      else if (status < 200 || status >= 300) result.errors += 1;
      result.latencies.push(answered - sent);
    }
  };
  await Promise.all(spec.tokens.map(connection));
  return result;
}

/** Worker side: announce readiness, start on the go signal, post the result. */
async function loadWorker(): Promise<void> {
  const port = parentPort!;
  port.postMessage('ready');
  await once(port, 'message');
  port.postMessage(await generateLoad(workerData as LoadSpec));
}

/** Runs specs in one thread each, started together once all are ready; merges their results. */
async function runLoad(specs: LoadSpec[]): Promise<LoadResult> {
  const workers = specs.map((spec) => startWorker(import.meta.url, { workerData: spec }));
  try {
    await Promise.all(workers.map((worker) => once(worker, 'message')));
    for (const worker of workers) worker.postMessage('go');
    const results = await Promise.all(workers.map(async (worker) => (await once(worker, 'message'))[0] as LoadResult));
    return {
      acknowledged: results.reduce((sum, r) => sum + r.acknowledged, 0),
      errors: results.reduce((sum, r) => sum + r.errors, 0),
      latencies: results.flatMap((r) => r.latencies),
    };
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}

/** The request body of `size` events: a bare event for one, `{"events": [...]}` for a batch. */
function requestBody(size: number, event = EVENT): Buffer {
  return Buffer.from(JSON.stringify(size === 1 ? event : { events: Array.from({ length: size }, () => event) }));
}

/** Milliseconds per request. */
interface Latency {
  p50: number;
  p99: number;
}

/** Nearest-rank percentile of unsorted samples. */
function percentile(samples: number[], p: number): number {
  const sorted = Float64Array.from(samples).sort();
  return sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? Number.NaN;
}

interface IngestPhase {
  key: string;
  label: string;
  /** Chain names; connection i posts to chain i modulo their number. */
  chains: string[];
  connections: number;
  eventsPerRequest: number;
  /** Each request to a chain of `chains` at random, rather than connection i to chain i modulo their number. */
  random?: boolean;
  target?: Target;
  /** The event sent; EVENT unless given. */
  event?: AuditEvent;
  /** The personal data policy of the phase's chains; the project's (none personal) unless given. */
  policy?: unknown;
}

interface IngestFigures {
  eventsPerSecond: number;
  latency: Latency;
  errors: number;
}

/** Splits a phase's connections over the worker threads, runs it, and sums it up. */
async function measureIngest(base: URL, phase: IngestPhase, chains: Map<string, Chain>, options: Options): Promise<IngestFigures> {
  return ingestFigures([await runIngest(base, phase, chains, options, options.seconds)], options.seconds);
}

/** The figures of a phase from what its runs, `seconds` measured in all, acknowledged. */
function ingestFigures(results: LoadResult[], seconds: number): IngestFigures {
  const latencies = results.flatMap((r) => r.latencies);
  return {
    eventsPerSecond: results.reduce((sum, r) => sum + r.acknowledged, 0) / seconds,
    latency: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99) },
    errors: results.reduce((sum, r) => sum + r.errors, 0),
  };
}

/** One run of a phase: a warm-up, then `seconds` measured. */
async function runIngest(base: URL, phase: IngestPhase, chains: Map<string, Chain>, options: Options, seconds: number): Promise<LoadResult> {
  const tokens = Array.from({ length: phase.connections }, (_, i) => chains.get(phase.chains[i % phase.chains.length]!)!.token);
  const body = requestBody(phase.eventsPerRequest, phase.event);
  const threads = Math.min(options.workers, phase.connections);
  const specs = Array.from({ length: threads }, (_, w): LoadSpec => ({
    url: base.toString(),
    body,
    eventsPerRequest: phase.eventsPerRequest,
    tokens: tokens.filter((_, i) => i % threads === w),
    randomTokens: phase.random ? phase.chains.map((name) => chains.get(name)!.token) : undefined,
    warmupMs: WARMUP_MS,
    measureMs: seconds * 1000,
  }));
  return runLoad(specs);
}

/**
 * Runs phases in turn, `rounds` times, each run measuring `options.seconds / rounds`, and sums
 * each phase up: two phases compared this way see the same machine, even while the load of
 * processes outside the run comes and goes. Each phase's CPU shares are the mean of its runs'.
 */
async function measureAlternately(
  base: URL,
  phases: IngestPhase[],
  chains: Map<string, Chain>,
  options: Options,
  meter: CpuMeter | undefined,
): Promise<(IngestFigures & { cpu?: CpuShare | undefined })[]> {
  const seconds = options.seconds / options.rounds;
  const runs = phases.map(() => [] as { result: LoadResult; cpu?: CpuShare | undefined }[]);
  for (let round = 0; round < options.rounds; round++) {
    for (const [i, phase] of phases.entries()) runs[i]!.push(await metered(meter, async () => ({ result: await runIngest(base, phase, chains, options, seconds) })));
  }
  return runs.map((phaseRuns) => {
    const shares = phaseRuns.flatMap((r) => (r.cpu ? [r.cpu] : []));
    const mean = (key: keyof CpuShare) => shares.reduce((sum, share) => sum + share[key], 0) / shares.length;
    const cpu = shares.length === phaseRuns.length ? { service: mean('service'), postgres: mean('postgres'), bench: mean('bench'), other: mean('other') } : undefined;
    return { ...ingestFigures(phaseRuns.map((r) => r.result), options.seconds), cpu };
  });
}

// ---------------------------------------------------------------------------------------------
// (d) Verification

/** Appends `total` events to a chain over HTTP, in batches of up to 1000, 8 requests at a time. */
async function appendEvents(base: URL, chain: Chain, total: number): Promise<void> {
  let remaining = total;
  const sender = async () => {
    while (remaining > 0) {
      const size = Math.min(1000, remaining);
      remaining -= size;
      const response = await fetch(new URL('/v1/events', base), {
        method: 'POST',
        headers: { authorization: `Bearer ${chain.token}`, 'content-type': 'application/json' },
        body: requestBody(size),
      });
      if (response.status !== 201) throw new Error(`appending events: ${response.status} ${await response.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, sender));
}

/** The chain holding the most events, first grown to at least `least` events. */
async function longestChain(db: pg.Pool, base: URL, chains: Map<string, Chain>, least: number): Promise<Chain> {
  const { rows } = await db.query<{ environment_id: string; seq: number }>(
    'SELECT environment_id, seq FROM chain_heads ORDER BY seq DESC LIMIT 1',
  );
  const head = rows[0]!;
  const chain = [...chains.values()].find((c) => c.environment === head.environment_id)!;
  if (head.seq < least) {
    progress(`(d) growing the longest chain from ${count(head.seq)} to ${count(least)} events`);
    await appendEvents(base, chain, least - head.seq);
  }
  return chain;
}

async function measureVerification(db: pg.Pool, chain: Chain): Promise<{ eventsPerSecond: number; checked: number }> {
  const started = performance.now();
  const verification = await verifyChain(db, chain);
  const seconds = (performance.now() - started) / 1000;
  if (!verification.ok) throw new Error(`verifyChain failed: ${JSON.stringify(verification.failures.slice(0, 5))}`);
  return { eventsPerSecond: verification.checked / seconds, checked: verification.checked };
}

// ---------------------------------------------------------------------------------------------
// (e), (h) Past days seeded by COPY with their tiles, sealed by runSeal in a child process

const DAY_MS = 86_400_000;
const SEAL_CHAINS = 4;
/** How many days back (e)'s events were received: due for sealing whatever the hour. */
const SEAL_DAYS_AGO = 10;
/**
 * How many days back the one chain of (g) and (h) was received: never due for the services' own
 * seal job (AUDITLEDGER_SEAL_AFTER_DAYS, 7 by default), and long enough ago that no run crosses
 * into it at midnight.
 */
const CHAIN_DAYS_AGO = 2;
/**
 * Checkpoints signed over the day of (g) and (h), one after each 96th of its events: the
 * checkpoint job signs a busy chain every minute (1,440 a day), so a bundle's end is never far
 * from a checkpoint; this is fewer, so sealing checks more leaves against them than it would there.
 */
const CHAIN_CHECKPOINTS = 96;
const CHILD = path.join(ROOT, 'scripts/bench-child.ts');
const SEAL_TARGET = { seconds: 60, rssMb: 300 };
/**
 * Issue 16 asks verify-archive's peak RSS to be independent of day size: the larger day's at most
 * this times the smaller's, a margin for what garbage collection leaves from run to run.
 */
const RSS_TARGET = 1.25;
/** Levels of tiles a seeded chain carries (256^8 leaves, more than any chain here), so every full tile is written. */
const SEEDED_LEVELS = 8;

/** The UTC day `daysAgo` days before today, YYYY-MM-DD. */
const pastDay = (daysAgo: number) => new Date((Math.floor(Date.now() / DAY_MS) - daysAgo) * DAY_MS).toISOString().slice(0, 10);

/** A chain seeded by COPY, and what its rows so far leave: what the append path keeps in chain_heads and tiles. */
interface SeededChain {
  project: string;
  environment: string;
  /** Events it holds once seeded, received at evenly spaced times over its day. */
  events: number;
  head: { seq: number; hash: Buffer; range: CompactRange; lastReceivedAt: string };
  /** The partial tile of each level (C2SP tlog-tiles). */
  tails: TileTails;
}

/** A new chain of `project`, without events. */
async function seededChain(db: pg.Pool, project: string, name: string, events: number): Promise<SeededChain> {
  const environment = (await createEnvironment(db, project, name))!;
  return {
    project,
    environment: environment.id,
    events,
    head: { seq: 0, hash: Buffer.from(GENESIS_PREV, 'hex'), range: emptyRange(), lastReceivedAt: '' },
    tails: Array.from({ length: SEEDED_LEVELS }, () => []),
  };
}

/** A full tile as its row in `tiles` holds it. */
interface SeededTile {
  environment: string;
  level: number;
  index: number;
  /** The 256 hashes end to end. */
  hashes: Buffer;
  root: Buffer;
}

/** A chain's events from its head to seq `to`. */
interface Segment {
  chain: SeededChain;
  to: number;
}

/**
 * Each segment's events as COPY text chunks, each row built as appendToChain builds it (prev
 * linking to the previous hash, UUIDv7 id of its received_at, index columns), received at evenly
 * spaced, never-decreasing milliseconds over the UTC day starting at `dayMs`. Lazy, so the rows
 * never all sit in memory. Each chunk moves its chain's head and tails as appending its rows
 * would, and adds the tiles it completes (extendTails, as the append path) to `tiles`.
 */
function* segmentRows(segments: readonly Segment[], dayMs: number, tiles: SeededTile[]): Generator<Buffer> {
  const columns = indexColumns(EVENT);
  const created = columns.created === null ? null : new Date(columns.created).toISOString();
  for (const { chain, to } of segments) {
    const { project, environment, events } = chain;
    let lines = '';
    let leaves: Buffer[] = [];
    let prev = chain.head.hash;
    for (let seq = chain.head.seq + 1; seq <= to; seq++) {
      const receivedAtMs = dayMs + Math.floor(((seq - 1) * DAY_MS) / events);
      const receivedAt = new Date(receivedAtMs).toISOString();
      const id = uuidv7(receivedAtMs);
      const fields = { project, environment, seq, id, received_at: receivedAt, prev: prev.toString('hex') };
      const { canonical, hash } = encodeCanonicalEvent(EVENT, EVENT_CANONICAL, fields);
      const row = [
        environment, seq, id, receivedAt, prev, hash, canonical,
        columns.action, columns.crud, columns.actor_id, columns.target_id, columns.group_id, created,
      ];
      lines += `${row.map(copyField).join('\t')}\n`;
      leaves.push(hash);
      prev = hash;
      if (seq % COPY_CHUNK_ROWS === 0 || seq === to) {
        const extended = extendTails(chain.head.seq, chain.tails, leaves);
        for (const { level, index, hashes, root } of extended.tiles) tiles.push({ environment, level, index, hashes: tileBytes(hashes), root });
        chain.tails = extended.tails;
        chain.head = { seq, hash, range: appendLeaves(chain.head.range, leaves), lastReceivedAt: receivedAt };
        leaves = [];
        yield Buffer.from(lines);
        lines = '';
      }
    }
  }
}

/** The tiles as COPY text, a row each. */
function* tileRows(tiles: readonly SeededTile[]): Generator<Buffer> {
  for (const { environment, level, index, hashes, root } of tiles) {
    yield Buffer.from(`${[environment, level, index, hashes, root].map(copyField).join('\t')}\n`);
  }
}

/**
 * COPYs each segment's events and the tiles they complete, then moves each chain head as the
 * append path moves it: the chains then verify and prove as if their events had been appended.
 */
async function seedSegments(db: pg.Pool, segments: readonly Segment[], dayMs: number): Promise<void> {
  const events = segments.reduce((sum, { chain, to }) => sum + to - chain.head.seq, 0);
  const tiles: SeededTile[] = [];
  await copyInto(db, `events (${COPY_COLUMNS})`, segmentRows(segments, dayMs, tiles), events);
  await copyInto(db, 'tiles (environment_id, level, tile_index, hashes, root)', tileRows(tiles), tiles.length);
  for (const { chain: { environment, head } } of segments) {
    await db.query(
      'UPDATE chain_heads SET seq = $2, hash = $3, compact_range = $4, last_received_at = $5, updated_at = now() WHERE environment_id = $1',
      [environment, head.seq, head.hash, head.range.hashes, head.lastReceivedAt],
    );
  }
}

/**
 * Creates `day`'s partition, runs `seed`, then vacuums and analyzes the partition and the tiles: a
 * day due for sealing was vacuumed and analyzed by autovacuum long before; done now, it cannot
 * start during a measure instead.
 */
async function seedDay<T>(db: pg.Pool, day: string, seed: () => Promise<T>): Promise<T> {
  const { rows } = await db.query<{ partition: string }>('SELECT auditledger_ensure_partition($1::date) AS partition', [day]);
  const seeded = await seed();
  const partition = rows[0]!.partition; // as auditledger_ensure_partition names it
  progress(`VACUUM (ANALYZE) ${partition}, tiles`);
  await db.query(`VACUUM (ANALYZE) ${partition}, tiles`);
  return seeded;
}

/** Setup of (e), not measured: `total` events over 4 new chains, received on `day`, with their tiles. */
function loadPastDay(db: pg.Pool, total: number, day: string): Promise<SeededChain[]> {
  return seedDay(db, day, async () => {
    const project = await createProject(db, 'bench-seal');
    const chains: SeededChain[] = [];
    for (let i = 0; i < SEAL_CHAINS; i++) {
      const events = Math.floor((total + SEAL_CHAINS - 1 - i) / SEAL_CHAINS);
      if (events > 0) chains.push(await seededChain(db, project.id, `seal-${i + 1}`, events));
    }
    await seedSegments(db, chains.map((chain) => ({ chain, to: chain.events })), Date.parse(day));
    return chains;
  });
}

/**
 * Setup of (g) and (h), not measured: one chain's day of `events` events received on `day`,
 * COPYed with its tiles in CHAIN_CHECKPOINTS steps, each followed by runCheckpoints (signing
 * the chain, archiving its tiles and note) as the checkpoint job follows a chain's day.
 */
function loadChainDay(checkpoints: CheckpointDeps, events: number, day: string): Promise<SeededChain> {
  const { db } = checkpoints;
  return seedDay(db, day, async () => {
    const project = await createProject(db, 'bench-chain');
    const chain = await seededChain(db, project.id, 'day', events);
    for (let step = 1; step <= CHAIN_CHECKPOINTS; step++) {
      await seedSegments(db, [{ chain, to: Math.round((events * step) / CHAIN_CHECKPOINTS) }], Date.parse(day));
      await runCheckpoints(checkpoints);
    }
    return chain;
  });
}

/** What a child job measured: its wall time, its peak RSS, and the cores in use meanwhile. */
interface ChildFigures<R> {
  seconds: number;
  eventsPerSecond: number;
  rssMb: number;
  result: R;
  cpu?: CpuShare | undefined;
}

/**
 * Runs bench-child.ts on `job` and reads its lines: the meter is sampled from its "started" line
 * to its result, with the child in the service's column; its peak RSS comes last, as it exits.
 */
async function runChild<R extends { ms: number; events: number }>(job: ChildJob, meter: CpuMeter | undefined, teardown: Teardown): Promise<ChildFigures<R>> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, AUDITLEDGER_BENCH_JOB: JSON.stringify(job) },
  });
  teardown.add(() => stopProcess(child));
  const exited = once(child, 'exit');
  const childMeter = meter?.withService(child.pid!);
  let start: CpuTimes | undefined;
  let cpu: CpuShare | undefined;
  let result: R | undefined;
  let maxRssKb: number | undefined;
  for await (const line of createInterface({ input: child.stdout! })) {
    let message: { started?: true; maxRssKb?: number };
    try {
      message = JSON.parse(line) as typeof message;
    } catch {
      process.stderr.write(`bench-child: ${line}\n`);
      continue;
    }
    if (message.started) {
      start = childMeter?.sample();
    } else if (message.maxRssKb !== undefined) {
      maxRssKb = message.maxRssKb;
    } else {
      cpu = start && childMeter!.since(start);
      result = message as R;
      child.stdin!.end();
    }
  }
  const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
  if (code !== 0 || !result || maxRssKb === undefined) throw new Error(`the ${job.kind} child ended with ${signal ?? `exit code ${code}`}`);
  const seconds = result.ms / 1000;
  return { seconds, eventsPerSecond: result.events / seconds, rssMb: (maxRssKb * 1024) / 1e6, result, cpu };
}

/** The signing key of (e) and (h)'s checkpoints and bundles, and their origin prefix. */
interface Signer {
  key: SigningKey;
  origin: string;
}

/**
 * runSeal in the child, through `day`; fails unless it sealed exactly
 * `day`, its `chains` in bounded bundles (each chain's day takes ceil(events / N) of them).
 */
async function sealInChild(
  databaseUrl: string,
  archive: LocalArchive,
  signer: Signer,
  day: string,
  chains: readonly SeededChain[],
  meter: CpuMeter | undefined,
  teardown: Teardown,
): Promise<ChildFigures<SealResult>> {
  const job: SealJob = { kind: 'seal', databaseUrl, archive: archive.location, key: encodeSigningKey(signer.key), origin: signer.origin, through: day };
  const figures = await runChild<SealResult>(job, meter, teardown);
  const { days, bundles, events, waiting, failed } = figures.result;
  const expected = chains.reduce((sum, chain) => sum + Math.ceil(chain.events / DEFAULT_MAX_EVENTS), 0);
  const total = chains.reduce((sum, chain) => sum + chain.events, 0);
  if (days.join() !== day || bundles !== expected || events !== total || waiting.length || failed.length) {
    throw new Error(`sealed ${JSON.stringify({ days, bundles, events, waiting, failed })}, not ${expected} bundles of ${total} events on ${day}`);
  }
  return figures;
}

/** (e): setup (events, tiles, heads, checkpoints) unmeasured, then runSeal measured in the child, then checked. */
async function measureSeal(
  db: pg.Pool,
  databaseUrl: string,
  archive: LocalArchive,
  signer: Signer,
  total: number,
  meter: CpuMeter | undefined,
  teardown: Teardown,
): Promise<ChildFigures<SealResult> & { chains: SeededChain[] }> {
  const day = pastDay(SEAL_DAYS_AGO);
  // The run's other chains (the ingest phases') are signed and their tiles archived elsewhere
  // first: the sealed folder then holds only the sealed chains, whose bundles the (f) ceiling reads.
  progress("(e) signing the run's other chains into a folder of their own");
  await runCheckpoints({ db, archive: new LocalArchive(`${archive.location}-other-chains`), ...signer, log: pino({ level: 'silent' }) });
  progress(`(e) building and COPYing ${count(total)} events received on ${day}, with their tiles`);
  const chains = await loadPastDay(db, total, day);

  progress('(e) signing checkpoints');
  await runCheckpoints({ db, archive, ...signer, log: pino({ level: 'silent' }) });
  for (const chain of chains) {
    if (!(await checkpointAt(db, chain.environment, chain.events))) throw new Error(`(e): chain ${chain.environment} has no checkpoint`);
  }

  progress('(e) runSeal in a child process');
  return { ...(await sealInChild(databaseUrl, archive, signer, day, chains, meter, teardown)), chains };
}

/**
 * (f): verify-archive of a folder, or of one chain of it, in the child, as a compliance team would
 * run it; fails unless everything verifies and the bundles held `events` events.
 */
async function measureArchiveVerification(
  archive: LocalArchive,
  key: VerifierKey,
  events: number,
  meter: CpuMeter | undefined,
  teardown: Teardown,
  chain?: SeededChain,
): Promise<ChildFigures<ArchiveResult>> {
  const job: ArchiveJob = { kind: 'verify-archive', archive: archive.location, vkey: verifierKey(key), chain: chain && `${chain.project}/${chain.environment}` };
  const figures = await runChild<ArchiveResult>(job, meter, teardown);
  const { ok, failures, events: checked } = figures.result;
  if (!ok || checked !== events) throw new Error(`verify-archive of ${job.chain ?? archive.location}: ${checked} events, not ${events}; ${JSON.stringify(failures)}`);
  return figures;
}

// ---------------------------------------------------------------------------------------------
// (g) Proof latency: inclusion and consistency proofs over HTTP, one request at a time

/** A cron that comes once a year: the proof service's scheduled verification stays out of (g). */
const NEVER = '0 0 1 1 *';
/** A service whose scheduled verifications (incremental and full) never run. */
const QUIET = { env: { AUDITLEDGER_VERIFY_CRON: NEVER, AUDITLEDGER_FULL_VERIFY_CRON: NEVER } };
/** Requests of each kind to each chain before the measured ones (connections, prepared statements, JIT). */
const PROOF_WARMUP = 20;
/** The smaller chain of (g). */
const SMALL_CHAIN_EVENTS = 10_000;
/** Issue 16: proof latency on the large chain at most this times that on the small one. */
const PROOF_TARGET = 1.5;

/** A chain (g) proves events of, at its head. */
interface ProvenChain {
  environment: string;
  token: string;
  size: number;
  root: Buffer;
}

interface ProofLatency {
  inclusion: Latency;
  consistency: Latency;
}

/** A new API token (every scope) of a chain, from the admin API. */
async function chainToken(base: URL, adminToken: string, project: string, environment: string): Promise<string> {
  const route = `/v1/projects/${project}/environments/${environment}/tokens`;
  return (await adminPost<{ token: string }>(base, adminToken, route, { name: 'bench' })).token;
}

/** A chain as (g) proves it: at its head as stored now. */
async function provenChain(db: pg.Pool, environment: string, token: string): Promise<ProvenChain> {
  const head = (await getChainHead(db, environment))!;
  return { environment, token, size: head.tree_size, root: Buffer.from(head.root, 'hex') };
}

/**
 * `proofs` inclusion proofs of random events of each chain (GET /v1/events/:id/proof at the
 * head's tree size), then `proofs` consistency proofs from a random size to the head (GET
 * /v1/consistency), one request at a time, the chains taking turns so that both see the same
 * machine. Each latency is the request until its body is read; each proof is then checked
 * against the head's root, so a wrong or short answer fails the run rather than look fast.
 */
async function measureProofs(base: URL, db: pg.Pool, chains: readonly ProvenChain[], proofs: number): Promise<ProofLatency[]> {
  const random = (below: number) => 1 + Math.floor(Math.random() * below);
  const events = await Promise.all(
    chains.map(async (chain) => {
      const seqs = Array.from({ length: PROOF_WARMUP + proofs }, () => random(chain.size));
      const { rows } = await db.query<{ seq: number; id: string; hash: Buffer }>(
        'SELECT seq, id, hash FROM events WHERE environment_id = $1 AND seq = ANY($2::bigint[])',
        [chain.environment, seqs],
      );
      const bySeq = new Map(rows.map((row) => [Number(row.seq), row]));
      return seqs.map((seq) => bySeq.get(seq)!);
    }),
  );
  const get = async (chain: ProvenChain, route: string) => {
    const started = performance.now();
    const response = await fetch(new URL(route, base), { headers: { authorization: `Bearer ${chain.token}` } });
    const body = await response.text();
    const ms = performance.now() - started;
    if (response.status !== 200) throw new Error(`(g) GET ${route}: ${response.status} ${body}`);
    return { ms, body: JSON.parse(body) as Record<string, unknown> };
  };
  const decode = (hashes: unknown) => (hashes as string[]).map((hash) => Buffer.from(hash, 'base64'));
  const inclusion = async (c: number, i: number) => {
    const chain = chains[c]!;
    const event = events[c]![i]!;
    const { ms, body } = await get(chain, `/v1/events/${event.id}/proof?tree_size=${chain.size}`);
    verifyInclusion(event.seq - 1, chain.size, event.hash, decode(body.proof), chain.root);
    return ms;
  };
  const consistency = async (c: number, i: number) => {
    const chain = chains[c]!;
    const from = events[c]![i]!.seq; // a random size in 1..size
    const { ms, body } = await get(chain, `/v1/consistency?from=${from}&to=${chain.size}`);
    const roots = body.roots as { from: string; to: string };
    verifyConsistency(from, chain.size, decode(body.proof), Buffer.from(roots.from, 'base64'), chain.root);
    if (!Buffer.from(roots.to, 'base64').equals(chain.root)) throw new Error(`(g) consistency to ${chain.size}: not the head's root`);
    return ms;
  };
  const latencies = chains.map(() => ({ inclusion: [] as number[], consistency: [] as number[] }));
  for (const kind of ['inclusion', 'consistency'] as const) {
    const prove = kind === 'inclusion' ? inclusion : consistency;
    for (let i = 0; i < PROOF_WARMUP + proofs; i++) {
      for (let c = 0; c < chains.length; c++) {
        const ms = await prove(c, i);
        if (i >= PROOF_WARMUP) latencies[c]![kind].push(ms);
      }
    }
  }
  const summary = (samples: number[]): Latency => ({ p50: percentile(samples, 0.5), p99: percentile(samples, 0.99) });
  return latencies.map((l) => ({ inclusion: summary(l.inclusion), consistency: summary(l.consistency) }));
}

// ---------------------------------------------------------------------------------------------
// The run and its report

interface Target {
  text: string;
  met(eventsPerSecond: number, ceiling: number): boolean;
}

const BATCH_TARGET: Target = { text: '>= 0.3 x (a)', met: (eps, ceiling) => eps >= 0.3 * ceiling };
const SPREAD_CHAINS = Array.from({ length: 16 }, (_, i) => `spread-${String(i + 1).padStart(2, '0')}`);

const SINGLE_EVENTS: IngestPhase = {
  key: '(c1)',
  label: '(c1) HTTP single events, 64 connections, 1 chain',
  chains: ['single'],
  connections: 64,
  eventsPerRequest: 1,
  target: { text: '>= 15,000/s', met: (eps) => eps >= 15_000 },
};

const INGEST_PHASES: IngestPhase[] = [
  {
    key: '(b) 100',
    label: '(b) HTTP batches of 100, 8 connections',
    chains: ['batch-100'],
    connections: 8,
    eventsPerRequest: 100,
    target: BATCH_TARGET,
  },
  {
    key: '(b) 1000',
    label: '(b) HTTP batches of 1000, 8 connections',
    chains: ['batch-1000'],
    connections: 8,
    eventsPerRequest: 1000,
    target: BATCH_TARGET,
  },
  {
    key: '(b) 8 chains',
    label: '(b) HTTP batches of 100, 8 connections, each to its own one of 8 chains',
    chains: Array.from({ length: 8 }, (_, i) => `batch-own-${i + 1}`),
    connections: 8,
    eventsPerRequest: 100,
    target: BATCH_TARGET,
  },
  SINGLE_EVENTS,
  {
    key: '(c2)',
    label: '(c2) HTTP single events, 64 connections, 16 chains',
    chains: SPREAD_CHAINS,
    connections: 64,
    eventsPerRequest: 1,
  },
  {
    key: '(c3)',
    label: '(c3) HTTP single events, 64 connections, each to a random one of 1,000 chains',
    chains: Array.from({ length: 1000 }, (_, i) => `random-${String(i + 1).padStart(4, '0')}`),
    connections: 64,
    eventsPerRequest: 1,
    random: true,
  },
  // The same bodies, measured in turns (measureAlternately): only the policy differs.
  {
    key: '(p0)',
    label: '(p0) HTTP batches of 100, 8 connections, events with 3 personal-path values kept clear (no policy)',
    chains: ['personal-clear'],
    connections: 8,
    eventsPerRequest: 100,
    event: PERSONAL_EVENT,
  },
  {
    key: '(p)',
    label: '(p) the same under the default policy: 3 commitments per event, 3 values to personal_values',
    chains: ['personal-default'],
    connections: 8,
    eventsPerRequest: 100,
    event: PERSONAL_EVENT,
    policy: DEFAULT_POLICY,
    target: { text: '>= 0.8 x (p0)', met: (eps) => eps >= 0.8 * personalBaseline },
  },
];

// (p0)'s rate, for (p)'s target, which compares the two.
let personalBaseline = Number.NaN;

/**
 * Batched ingest again, against `serve --workers 2` on the same database: what a second core
 * gives, on one chain (whose appends its head lock serializes) and on 8 (each connection's own).
 */
const WORKERS_PHASES = INGEST_PHASES.filter((p) => p.key === '(b) 100' || p.key === '(b) 8 chains').map((phase) => ({
  phase,
  key: phase.key === '(b) 100' ? '(i)' : '(i) 8 chains',
  label: `(i)${phase.label.slice('(b)'.length)}, serve --workers 2`,
}));

interface Measure {
  /** Short name, for the error counts and the CPU table. */
  key: string;
  label: string;
  /** Undefined for a measure of latency alone. */
  eventsPerSecond?: number | undefined;
  latency?: Latency | undefined;
  /** Non-2xx answers and failed requests of an HTTP phase. */
  errors?: number;
  target?: Target | undefined;
  cpu?: CpuShare | undefined;
  /** CPU µs of the serving process per acknowledged event (for a bare server: per request answered). */
  cpuUsPerEvent?: number | undefined;
  /** Events per append transaction over the phase (warm-up included), from the service's /metrics. */
  eventsPerCommit?: number | undefined;
  /** Checkpoints the service's job signed over the phase (warm-up included): its CPU is the service's. */
  checkpointsSigned?: number | undefined;
  /** What the job did after the phase, until every chain the phase moved had a checkpoint (untilSigned). */
  signedAfter?: SignedAfter | undefined;
}

interface Report {
  postgres: string;
  measures: Measure[];
  /** Lines printed under the figures. */
  notes: string[];
}

/**
 * (g): proofs on a chain of SMALL_CHAIN_EVENTS appended over HTTP and on `dayChain`, against a
 * service of its own, started now: had another run meanwhile, its jobs would have signed the chain
 * with its own key, and its scheduled verification would read the whole chain. Returns the
 * measures and the ratios line.
 */
async function proofPhase(
  db: pg.Pool,
  databaseUrl: string,
  dir: string,
  adminToken: string,
  dayChain: SeededChain,
  options: Options,
  meter: CpuMeter | undefined,
  teardown: Teardown,
): Promise<{ measures: Measure[]; ratios: string }> {
  const measures: Measure[] = [];
  const proofService = await startService(databaseUrl, path.join(dir, 'service-proofs'), adminToken, teardown, QUIET);
  let proven: ProvenChain[];
  let proofFigures: { latency: ProofLatency[]; cpu?: CpuShare | undefined };
  try {
    progress(`(g) appending a chain of ${count(SMALL_CHAIN_EVENTS)} events over HTTP`);
    const small = (await createEnvironment(db, dayChain.project, 'small'))!;
    const smallToken = await chainToken(proofService.url, adminToken, dayChain.project, small.id);
    await appendEvents(proofService.url, { project: dayChain.project, environment: small.id, token: smallToken }, SMALL_CHAIN_EVENTS);
    proven = [
      await provenChain(db, small.id, smallToken),
      await provenChain(db, dayChain.environment, await chainToken(proofService.url, adminToken, dayChain.project, dayChain.environment)),
    ];
    progress(`(g) ${count(options.proofs)} inclusion and ${count(options.proofs)} consistency proofs on each chain, one request at a time`);
    proofFigures = await metered(meter?.withService(proofService.pid), async () => ({ latency: await measureProofs(proofService.url, db, proven, options.proofs) }));
  } finally {
    await proofService.stop();
  }
  const proofRatios: string[] = [];
  for (const kind of ['inclusion', 'consistency'] as const) {
    const [smaller, larger] = proofFigures.latency.map((latency) => latency[kind]) as [Latency, Latency];
    const ratio = { p50: larger.p50 / smaller.p50, p99: larger.p99 / smaller.p99 };
    proofRatios.push(`${kind} p50 ${ratio.p50.toFixed(2)}, p99 ${ratio.p99.toFixed(2)}`);
    const label = (size: number) => `(g) ${kind} proofs, chain of ${count(size)} events, ${count(options.proofs)} GETs one at a time`;
    measures.push(
      // The cores in use over all of (g), shown once.
      { key: kind === 'inclusion' ? '(g)' : `(g) ${kind} small`, label: label(proven[0]!.size), latency: smaller, cpu: kind === 'inclusion' ? proofFigures.cpu : undefined },
      {
        key: `(g) ${kind} large`,
        label: label(proven[1]!.size),
        latency: larger,
        target: {
          text: `p50 and p99 <= ${PROOF_TARGET} x the ${count(proven[0]!.size)}-event chain's (${ratio.p50.toFixed(2)}, ${ratio.p99.toFixed(2)})`,
          met: () => ratio.p50 <= PROOF_TARGET && ratio.p99 <= PROOF_TARGET,
        },
      },
    );
  }

  return {
    measures,
    ratios: `(g) latency on ${count(proven[1]!.size)} / on ${count(proven[0]!.size)} events: ${proofRatios.join('; ')}`,
  };
}

/** The chain of (g) and (h): one day of options.chainEvents events, COPYed with its tiles and signed as it grew. */
async function seedChainDay(db: pg.Pool, dir: string, signer: Signer, options: Options) {
  const day = pastDay(CHAIN_DAYS_AGO);
  progress(`(g), (h) building and COPYing one chain's day of ${count(options.chainEvents)} events received on ${day}, with its tiles, signing it ${CHAIN_CHECKPOINTS} times`);
  const chainArchive = new LocalArchive(path.join(dir, 'chain-archive'));
  const dayChain = await loadChainDay({ db, archive: chainArchive, ...signer, log: pino({ level: 'silent' }) }, options.chainEvents, day);
  return { day, chainArchive, dayChain };
}

/** The key the bench's seals and checkpoints are signed with, new each run. */
function benchSigner(): Signer {
  return { key: generateSigningKey('auditledger-bench'), origin: 'bench.auditledger.example' };
}

async function bench(options: Options, teardown: Teardown): Promise<Report> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'auditledger-bench-'));
  teardown.add(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755); // the embedded server runs as `postgres` when we are root

  const superuser = await superuserUrl(dir, teardown);
  const databaseUrl = await benchDatabase(superuser, teardown);
  const adminToken = `ala_${randomBytes(32).toString('base64url')}`;
  // Alone, (g) would meet a scheduled verification this service queued (pg-boss keeps it for the next).
  const service = await startService(databaseUrl, path.join(dir, 'service'), adminToken, teardown, options.only === 'proofs' ? QUIET : {});
  const pools = createPools(databaseUrl, undefined, 1); // the owner pool reads int8 as numbers, as verifyChain expects
  teardown.add(() => pools.end());
  const db = pools.owner;
  const { rows } = await db.query<{ server_version: string }>('SHOW server_version');
  const meter = await CpuMeter.open(db, service.pid);

  const measures: Measure[] = [];
  if (options.only === 'proofs') {
    await service.stop(); // its jobs would sign the chain with a key of their own
    const { dayChain } = await seedChainDay(db, dir, benchSigner(), options);
    const proofs = await proofPhase(db, databaseUrl, dir, adminToken, dayChain, options, meter, teardown);
    return { postgres: rows[0]!.server_version, measures: proofs.measures, notes: [`Ratios (issue 16 target): ${proofs.ratios} (<= ${PROOF_TARGET}).`] };
  }
  if (options.only === undefined) {
    progress(`(a) building and COPYing ${count(options.events)} rows`);
    const chunks = chainAsCopyText(options.events);
    await createPlainEventsTable(db, 'bench_copy');
    measures.push({
      key: '(a)',
      label: `(a) COPY ${count(options.events)} rows into a plain events table`,
      ...(await metered(meter, () => copyRows(db, chunks, options.events))),
    });
  }

  const personal = INGEST_PHASES.filter((p) => p.key === '(p0)' || p.key === '(p)');
  const single = INGEST_PHASES.filter((p) => p.key === '(c1)' || p.key === '(c2)' || p.key === '(c3)');
  const phases =
    options.only === 'personal' ? personal : options.only === 'single' ? single : options.only === 'workers' ? WORKERS_PHASES.map((w) => w.phase) : options.only === 'verify' ? [] : INGEST_PHASES;
  // Alone, (d) grows (b)'s chain.
  const chains = await createChains(service.url, adminToken, [...new Set((phases.length > 0 ? phases : [WORKERS_PHASES[0]!.phase]).flatMap((p) => p.chains))]);
  for (const phase of phases) {
    for (const name of phase.policy ? phase.chains : []) {
      const chain = chains.get(name)!;
      await putPolicy(service.url, adminToken, `/v1/projects/${chain.project}/environments/${chain.environment}`, phase.policy);
    }
  }
  // The bare servers first, while the service is idle: after (c3), its jobs sign the checkpoints of
  // 1,000 chains, which took up to half a core from the servers measured then.
  const bareMeasures = options.only === undefined || options.only === 'single' ? await measureBareServers(db, databaseUrl, chains, options, meter, teardown) : [];
  const record = (phase: IngestPhase, figures: IngestFigures & { cpu?: CpuShare | undefined }) => {
    measures.push({ key: phase.key, label: phase.label, target: phase.target, ...figures, cpuUsPerEvent: cpuUsPerEvent(figures) });
  };
  for (const phase of phases.filter((p) => !personal.includes(p))) {
    await untilIdle(service.pid);
    progress(`${phase.label}: ${WARMUP_MS / 1000} s warm-up + ${options.seconds} s`);
    const before = await commits(service.url);
    const signedBefore = await checkpointCount(db);
    record(phase, await metered(meter, () => measureIngest(service.url, phase, chains, options)));
    const after = await commits(service.url);
    measures.at(-1)!.eventsPerCommit = (after.events - before.events) / (after.transactions - before.transactions);
    measures.at(-1)!.checkpointsSigned = (await checkpointCount(db)) - signedBefore;
    measures.at(-1)!.signedAfter = await untilSigned(db, service.pid);
  }
  if (phases.includes(personal[0]!)) {
    await untilIdle(service.pid);
    progress(`(p0) and (p) in turn, ${options.rounds} times each: ${WARMUP_MS / 1000} s warm-up + ${options.seconds / options.rounds} s`);
    const alternated = await measureAlternately(service.url, personal, chains, options, meter);
    personal.forEach((phase, i) => record(phase, alternated[i]!));
    personalBaseline = eventsPerSecond(measures, '(p0)');
  }
  const personalRatio = `Ratio (issue 17 target): (p) / (p0) = ${(eventsPerSecond(measures, '(p)') / eventsPerSecond(measures, '(p0)')).toFixed(2)} (>= 0.8).`;
  if (options.only === 'personal') return { postgres: rows[0]!.server_version, measures, notes: [personalRatio] };
  measures.push(...bareMeasures);

  if (options.only === 'single') return { postgres: rows[0]!.server_version, measures, notes: [`Ratios (issue 18 targets): ${ratios(measures)}.`] };
  if (options.only !== 'verify') {
    // The 1-worker service idles meanwhile; the CPU meter follows one process, so this is not metered.
    await untilIdle(service.pid);
    const twoWorkers = await startService(databaseUrl, path.join(dir, 'service-2'), adminToken, teardown, { workers: 2 });
    try {
      for (const { phase, key, label } of WORKERS_PHASES) {
        const oneWorker = measures.find((m) => m.key === phase.key)!;
        progress(`${label}: ${WARMUP_MS / 1000} s warm-up + ${options.seconds} s`);
        measures.push({
          key,
          label,
          target: { text: `>= 1.3 x ${phase.key} (1 worker)`, met: (eps) => eps >= 1.3 * oneWorker.eventsPerSecond! },
          ...(await measureIngest(twoWorkers.url, phase, chains, options)),
        });
      }
    } finally {
      await twoWorkers.stop();
    }
    if (options.only === 'workers') return { postgres: rows[0]!.server_version, measures, notes: [`Ratios (issue 18 targets): ${ratios(measures)}.`] };
  }

  const chain = await longestChain(db, service.url, chains, options.events);
  // The service's scheduled jobs (checkpoints, verification, sealing) would run during (d) and
  // (e): the rest of the run needs only the database.
  await service.stop();
  const databaseOnly = meter?.withService(undefined);
  progress('(d) verifyChain');
  const { checked, ...verification } = await metered(databaseOnly, () => measureVerification(db, chain));
  measures.push({
    key: '(d)',
    label: `(d) verifyChain over ${count(checked)} events`,
    target: { text: '>= 300,000/s', met: (eps) => eps >= 300_000 },
    ...verification,
  });
  progress('(d) ceiling: reading the chain and hashing each event');
  measures.push({
    key: '(d) ceiling',
    label: '(d) ceiling: the same chain read as verifyChain reads it, one SHA-256 per event, nothing checked',
    ...(await readAndHashChain(db, chain.environment, checked)),
  });
  progress('(d) floor: reading the chain, hashing each event, its inner nodes, and scanning its ledger fields');
  measures.push({
    key: '(d) floor',
    label: "(d) floor: the ceiling's work and what no verifier can skip beyond it (the tree's inner nodes, the ledger-field scan), nothing checked",
    ...(await readAndHashChain(db, chain.environment, checked, true)),
  });

  const signer = benchSigner();
  const sealArchive = new LocalArchive(path.join(dir, 'seal-archive'));
  const seal = await measureSeal(db, databaseUrl, sealArchive, signer, options.sealEvents, meter, teardown);
  const sealTarget = `< ${SEAL_TARGET.seconds} s and < ${SEAL_TARGET.rssMb} MB peak RSS`;
  measures.push({
    key: '(e)',
    label: `(e) runSeal of ${count(options.sealEvents)} events across ${seal.chains.length} chains (${seal.result.bundles} bundles): ${seal.seconds.toFixed(1)} s, peak RSS ${seal.rssMb.toFixed(0)} MB`,
    target: { text: sealTarget, met: () => seal.seconds < SEAL_TARGET.seconds && seal.rssMb < SEAL_TARGET.rssMb },
    eventsPerSecond: seal.eventsPerSecond,
    cpu: seal.cpu,
  });
  progress('(f) verify-archive of the sealed folder, in a child process');
  const verified = await measureArchiveVerification(sealArchive, signer.key, options.sealEvents, meter, teardown);
  measures.push({
    key: '(f)',
    label: `(f) verify-archive of the sealed folder, ${count(options.sealEvents)} events: peak RSS ${verified.rssMb.toFixed(0)} MB`,
    target: { text: '>= 500,000/s', met: (eps) => eps >= 500_000 },
    eventsPerSecond: verified.eventsPerSecond,
    cpu: verified.cpu,
  });
  const threads = os.availableParallelism();
  progress('(f) ceiling: hashing and scanning the bundles');
  const hashed = await hashArchive(sealArchive, threads);
  if (hashed.events !== options.sealEvents) throw new Error(`(f) ceiling: hashed ${hashed.events} events, not ${options.sealEvents}`);
  measures.push({
    key: '(f) ceiling',
    label: `(f) ceiling: the same bundles, both hashes and the ledger-field scan per event, nothing checked, ${threads} threads`,
    eventsPerSecond: hashed.eventsPerSecond,
  });
  progress("(f) floor: the ceiling's work, the tree's inner nodes and each event's link");
  const floored = await hashArchive(sealArchive, threads, true);
  if (floored.events !== options.sealEvents) throw new Error(`(f) floor: hashed ${floored.events} events, not ${options.sealEvents}`);
  measures.push({
    key: '(f) floor',
    label: `(f) floor: the ceiling's work and what no verifier can skip beyond it (the tree's inner nodes, each event's prev against the leaf before), nothing reported, ${threads} threads`,
    eventsPerSecond: floored.eventsPerSecond,
  });
  if (options.only === 'verify') return { postgres: rows[0]!.server_version, measures, notes: [`Ratios (issue 18 targets): ${ratios(measures)}.`] };

  const { day, chainArchive, dayChain } = await seedChainDay(db, dir, signer, options);
  const proofs = await proofPhase(db, databaseUrl, dir, adminToken, dayChain, options, meter, teardown);
  measures.push(...proofs.measures);

  progress(`(h) runSeal of one chain's day of ${count(options.chainEvents)} events, in a child process`);
  const chainSeal = await sealInChild(databaseUrl, chainArchive, signer, day, [dayChain], meter, teardown);
  measures.push({
    key: '(h)',
    label:
      `(h) runSeal of one chain's day of ${count(options.chainEvents)} events (${chainSeal.result.bundles} bundles):` +
      ` ${chainSeal.seconds.toFixed(1)} s, peak RSS ${chainSeal.rssMb.toFixed(0)} MB`,
    target: { text: `< ${SEAL_TARGET.rssMb} MB peak RSS`, met: () => chainSeal.rssMb < SEAL_TARGET.rssMb },
    eventsPerSecond: chainSeal.eventsPerSecond,
    cpu: chainSeal.cpu,
  });

  // verify-archive of one chain's day of each size: (e)'s first chain's, and (h)'s.
  const days = [seal.chains[0]!, dayChain] as const;
  const dayFigures: ChildFigures<ArchiveResult>[] = [];
  for (const [i, chain] of days.entries()) {
    progress(`(f) verify-archive of one chain's day of ${count(chain.events)} events, in a child process`);
    const figures = await measureArchiveVerification(i === 0 ? sealArchive : chainArchive, signer.key, chain.events, meter, teardown, chain);
    dayFigures.push(figures);
  }
  const rssRatio = dayFigures[1]!.rssMb / dayFigures[0]!.rssMb;
  for (const [i, chain] of days.entries()) {
    const { rssMb, eventsPerSecond, cpu } = dayFigures[i]!;
    measures.push({
      key: `(f) day ${i + 1}`,
      label: `(f) verify-archive --chain, one chain's day of ${count(chain.events)} events (${i === 0 ? "(e)'s first" : "(h)'s"}): peak RSS ${rssMb.toFixed(0)} MB`,
      target:
        i === 0
          ? undefined
          : {
              text: `peak RSS <= ${RSS_TARGET} x the ${count(days[0].events)}-event day's: independent of day size (${rssRatio.toFixed(2)})`,
              met: () => rssRatio <= RSS_TARGET,
            },
      eventsPerSecond,
      cpu,
    });
  }

  const notes = [
    `(e), (f) and (h) each in a child process (node --import tsx scripts/bench-child.ts), the service stopped; (e) ${seal.result.bundles}` +
      ` bundles into a local archive, sealing CPU ${(seal.result.cpuMs / 1000).toFixed(1)} s; (h) ${chainSeal.result.bundles} bundles,` +
      ` sealing CPU ${(chainSeal.result.cpuMs / 1000).toFixed(1)} s. (f) reads the folders alone, no database.`,
    `(g) and (h): the chain's day was COPYed with its tiles and signed ${CHAIN_CHECKPOINTS} times as it grew (runCheckpoints);` +
      ` the ${count(SMALL_CHAIN_EVENTS)}-event chain was appended over HTTP. (g) ran against a service started then, its scheduled` +
      ` verification off; proofs at each chain's head, the chains taking turns, after ${PROOF_WARMUP} unmeasured of each kind.`,
    `Ratios (issue 18 targets): ${ratios(measures)}.`,
    `Ratios (issue 16 targets): ${proofs.ratios}` +
      ` (<= ${PROOF_TARGET}); (f) peak RSS on a day of ${count(days[1].events)} / of ${count(days[0].events)} events = ${rssRatio.toFixed(2)}` +
      ` (<= ${RSS_TARGET}, independent of day size); (h) peak RSS ${chainSeal.rssMb.toFixed(0)} MB (< ${SEAL_TARGET.rssMb}).`,
    personalRatio,
  ];
  return { postgres: rows[0]!.server_version, measures, notes };
}

/** The events/s of the measure `key`; NaN when it did not run. */
function eventsPerSecond(measures: Measure[], key: string): number {
  return measures.find((m) => m.key === key)?.eventsPerSecond ?? Number.NaN;
}

/** CPU µs per event: the serving process's cores over the phase (warm-ups included) per event acknowledged in its window. */
function cpuUsPerEvent(figures: IngestFigures & { cpu?: CpuShare | undefined }): number | undefined {
  return figures.cpu && (figures.cpu.service * 1e6) / figures.eventsPerSecond;
}

/** (c)'s ceilings and floors: (c1)'s load against each server of bench-bare-server.ts in turn, then (c3)'s against the floor. */
async function measureBareServers(
  db: pg.Pool,
  databaseUrl: string,
  chains: Map<string, Chain>,
  options: Options,
  meter: CpuMeter | undefined,
  teardown: Teardown,
): Promise<Measure[]> {
  const c3 = INGEST_PHASES.find((phase) => phase.key === '(c3)')!;
  const servers = [
    ['node:http', '(c) node:http', '(c) ceiling: the load of (c1) against a bare node:http server', SINGLE_EVENTS],
    ['hono', '(c) hono', '(c) ceiling with the stack: the same against a bare Hono server', SINGLE_EVENTS],
    ['append', '(c1) floor', '(c1) floor: the bare Hono server and what every durable append must add (validate, encode, hash, group-commit the row)', SINGLE_EVENTS],
    ['append', '(c3) floor', "(c3) floor: the same with (c3)'s load, each request to a random one of 1,000 chains", c3],
  ] as const;
  await createPlainEventsTable(db, 'bench_floor');
  const measures: Measure[] = [];
  for (const [kind, key, label, phase] of servers) {
    progress(`${label}: ${WARMUP_MS / 1000} s warm-up + ${options.seconds} s`);
    const bare = await startBareServer(kind, databaseUrl, teardown);
    try {
      const figures = await metered(meter?.withService(bare.pid), () => measureIngest(bare.url, phase, chains, options));
      measures.push({ key, label, ...figures, cpuUsPerEvent: cpuUsPerEvent(figures) });
    } finally {
      await bare.stop();
    }
  }
  return measures;
}

/** The ratios issue 18 sets targets on, each `a / b = x (target)`. */
function ratios(measures: Measure[]): string {
  const eps = (key: string) => eventsPerSecond(measures, key);
  const cpuUs = (key: string) => measures.find((m) => m.key === key)?.cpuUsPerEvent ?? Number.NaN;
  return (
    [
      ['(c1)', '(c) hono', 0.5],
      ['(c2)', '(c1)', 0.9],
      ['(c3)', '(c1)', 0.9],
      ['(d)', '(d) ceiling', 0.75],
      ['(f)', '(f) ceiling', 0.75],
      ...WORKERS_PHASES.map(({ phase, key }) => [key, phase.key, 1.3] as const),
    ] as const
  )
    .filter(([a, b]) => !Number.isNaN(eps(a) / eps(b))) // phases this run left out
    .map(([a, b, target]) => `${a} / ${b} = ${(eps(a) / eps(b)).toFixed(2)} (>= ${target})`)
    .concat(Number.isNaN(cpuUs('(c1)') / cpuUs('(c) hono')) ? [] : [`CPU per event (c1) / (c) hono = ${(cpuUs('(c1)') / cpuUs('(c) hono')).toFixed(2)} (<= 1.5)`])
    .concat(
      Number.isNaN(eps('(c1) floor') / eps('(c) hono') + cpuUs('(c1) floor') / cpuUs('(c) hono'))
        ? []
        : [
            `(c1) floor / (c) hono = ${(eps('(c1) floor') / eps('(c) hono')).toFixed(2)} in events/s and ${(cpuUs('(c1) floor') / cpuUs('(c) hono')).toFixed(2)} in CPU per event, (c3) floor / (c1) floor = ${(eps('(c3) floor') / eps('(c1) floor')).toFixed(2)} (the floor: the most events/s and the least CPU an append built on these parts can reach)`,
          ],
    )
    .concat(
      (['(d)', '(f)'] as const)
        .filter((v) => !Number.isNaN(eps(`${v} floor`)))
        .map((v) => `${v} floor / ${v} ceiling = ${(eps(`${v} floor`) / eps(`${v} ceiling`)).toFixed(2)} (the most a verifier built on these parts can reach)`),
    )
    .join('; ');
}

function figuresTable(measures: Measure[]): string[] {
  const ceiling = eventsPerSecond(measures, '(a)');
  const ms = (n: number | undefined) => (n === undefined ? '' : n.toFixed(1));
  return [
    '| measure | events/s | p50 ms | p99 ms | x (a) | target |',
    '|---|---:|---:|---:|---:|---|',
    ...measures.map(({ label, eventsPerSecond: eps, latency, target }) => {
      // A target set against (a) cannot be judged in a run without it (--only).
      const judged = !(Number.isNaN(ceiling) && target?.text.includes('(a)'));
      const met = target && judged ? `${target.text}: ${target.met(eps ?? Number.NaN, ceiling) ? 'met' : 'missed'}` : '';
      const rate = eps === undefined ? ['', ''] : [count(eps), Number.isNaN(ceiling) ? '' : (eps / ceiling).toFixed(2)];
      return `| ${label} | ${rate[0]} | ${ms(latency?.p50)} | ${ms(latency?.p99)} | ${rate[1]} | ${met} |`;
    }),
  ];
}

function cpuTable(measures: Measure[]): string[] {
  const cores = (n: number) => n.toFixed(2);
  return [
    `CPU in use during each measure, in cores of ${os.cpus().length} (service: in (e), (f) and (h) the measuring child, in (g) the` +
      ' proof service, over all its proofs; bench: this process; other: processes outside this run):',
    '',
    '| measure | service | PostgreSQL | bench | other | service CPU µs per event (bare servers: per request) | events per commit | checkpoints signed meanwhile |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...measures.flatMap(({ key, cpu, cpuUsPerEvent, eventsPerCommit, checkpointsSigned }) => {
      if (!cpu && cpuUsPerEvent === undefined) return [];
      const shares = cpu ? [cpu.service, cpu.postgres, cpu.bench, cpu.other].map(cores) : ['', '', '', ''];
      const perCommit = eventsPerCommit === undefined ? '' : eventsPerCommit.toFixed(1);
      return [`| ${key} | ${shares.join(' | ')} | ${cpuUsPerEvent === undefined ? '' : cpuUsPerEvent.toFixed(0)} | ${perCommit} | ${checkpointsSigned ?? ''} |`];
    }),
    ...signedAfterNote(measures),
  ];
}

/** The checkpoint job's work after each ingest phase (untilSigned), where it signed any. */
function signedAfterNote(measures: Measure[]): string[] {
  const phases = measures.flatMap(({ key, signedAfter: after }) =>
    // A few checkpoints' share of the service's idle CPU and of the waits' polling would be no figure of theirs.
    after && after.signed > 0
      ? [`${key} ${count(after.signed)} in ${after.seconds.toFixed(1)} s, ${count(after.cpuMs)} ms${after.signed >= 100 ? ` (${(after.cpuMs / after.signed).toFixed(1)} ms a checkpoint)` : ''}`]
      : [],
  );
  if (phases.length === 0) return [];
  return ['', `The service's checkpoint job after each phase, until every chain with events had a checkpoint (checkpoints signed, time waited, the service's CPU meanwhile): ${phases.join('; ')}.`];
}

function printReport(report: Report, options: Options, seconds: number): void {
  const cpus = os.cpus();
  const errors = report.measures.flatMap((m) => (m.errors === undefined ? [] : [`${m.key}: ${m.errors}`]));
  const lines = [
    `machine: ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores; node ${process.version}; PostgreSQL ${report.postgres}` +
      ` (${process.env.DATABASE_URL ? 'DATABASE_URL' : 'embedded'})`,
    `HTTP phases: ${WARMUP_MS / 1000} s warm-up + ${options.seconds} s each; load generator: ${options.workers} worker threads`,
    '',
    ...figuresTable(report.measures),
    '',
    ...(errors.length > 0 ? [`non-2xx answers: ${errors.join(', ')}`] : []),
    ...report.notes,
    '',
    ...(report.measures.some((m) => m.cpu) ? [...cpuTable(report.measures), ''] : []),
    `run time: ${seconds.toFixed(0)} s`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(): Promise<void> {
  const started = performance.now();
  const options = parseOptions();
  const teardown = new Teardown();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      progress(`${signal}: stopping the service and PostgreSQL`);
      void teardown.run().finally(() => process.exit(128 + os.constants.signals[signal]));
    });
  }
  let report: Report;
  try {
    report = await bench(options, teardown);
  } finally {
    await teardown.run();
  }
  printReport(report, options, (performance.now() - started) / 1000);
}

if (isMainThread) await main();
else await loadWorker();
