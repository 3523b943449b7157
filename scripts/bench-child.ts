// The measured side of `npm run bench` phases (e), (f) and (h), in a process of its own so that its
// peak RSS is that of the job alone, not of the bench's load generator and COPY buffers. It loads
// only what the job needs and runs it once: runSeal through the days due now (what `auditledger
// seal` runs), or verifyArchive over a folder (what `auditledger verify-archive` runs).
//
// Input: the environment variable AUDITLEDGER_BENCH_JOB, a ChildJob as JSON.
// Output on stdout, one JSON line each: {"started": true} as the clock starts; the job's result
// (SealResult or ArchiveResult) as it stops; then, once stdin ends (the bench has sampled the CPU
// meanwhile), {"maxRssKb": n} at exit.
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { LocalArchive } from '../src/archive/local.js';
import { verifyArchive } from '../src/archive/verify.js';
import { runSeal, type SealReport } from '../src/jobs/seal.js';
import { parseSigningKey, parseVerifierKey } from '../src/ledger/keys.js';
import type { ArchiveFailure } from '../src/ledger/verify-archive.js';
import { createPools } from '../src/store/database.js';

/** runSeal through one day, into a local archive. */
export interface SealJob {
  kind: 'seal';
  /** Owner (or superuser) URL of the bench database. */
  databaseUrl: string;
  /** Folder of the LocalArchive the checkpoints went to. */
  archive: string;
  /** The signing key the checkpoints were signed with, encoded (encodeSigningKey). */
  key: string;
  origin: string;
  /** The last day runSeal seals (YYYY-MM-DD): named, not computed from the clock, so that a run crossing midnight seals the same days. */
  through: string;
}

/** verifyArchive of a local archive, with its default threads (one per core), as the CLI runs it. */
export interface ArchiveJob {
  kind: 'verify-archive';
  /** Folder of the LocalArchive. */
  archive: string;
  /** The verifier key (vkey) of the key that signed it. */
  vkey: string;
  /** Only this chain, as project/environment (the CLI's --chain). */
  chain?: string | undefined;
}

export type ChildJob = SealJob | ArchiveJob;

/** What every job reports: its wall time and this process's CPU time over it (user + system). */
interface Timed {
  ms: number;
  cpuMs: number;
}

export type SealResult = Timed & SealReport;

export interface ArchiveResult extends Timed {
  ok: boolean;
  bundles: number;
  events: number;
  /** The first few failures, for the error message when not ok. */
  failures: ArchiveFailure[];
}

/**
 * This process's own peak RSS. Linux carries getrusage's maxrss across fork and exec, so a child
 * of a large parent reports the parent's size; VmHWM in /proc belongs to this process's memory alone.
 */
function peakRssKb(): number {
  const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return hwm ? Number(hwm[1]) : process.resourceUsage().maxRSS;
}

const send = (message: object) => process.stdout.write(`${JSON.stringify(message)}\n`);

/** Waits for the bench to close our stdin: it has sampled the CPU meter by then. */
async function stdinEnd(): Promise<void> {
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once('end', resolve));
}

/** Runs `job` between the "started" line and its result line, timing it. */
async function timed<T extends object>(job: () => Promise<T>): Promise<void> {
  send({ started: true });
  const cpu = process.cpuUsage();
  const started = performance.now();
  const result = await job();
  const ms = performance.now() - started;
  const { user, system } = process.cpuUsage(cpu);
  send({ ms, cpuMs: (user + system) / 1000, ...result });
}

async function seal(job: SealJob): Promise<void> {
  const pools = createPools(job.databaseUrl, undefined, 1);
  try {
    const deps = {
      db: pools.owner,
      archive: new LocalArchive(job.archive),
      keyring: { current: parseSigningKey(job.key), retired: [], origin: job.origin },
      log: pino({ level: 'silent' }),
    };
    await timed(async () => {
      const report = await runSeal(deps, job.through);
      if (!report) throw new Error('another seal holds the seal lock');
      return report;
    });
    await stdinEnd();
  } finally {
    await pools.end();
  }
}

async function verify(job: ArchiveJob): Promise<void> {
  const archive = new LocalArchive(job.archive);
  await timed(async () => {
    const report = await verifyArchive(archive, { verifiers: [parseVerifierKey(job.vkey)], chain: job.chain });
    return { ok: report.ok, bundles: report.bundles.total, events: report.events.total, failures: report.failures.slice(0, 5) };
  });
  await stdinEnd();
}


const job = JSON.parse(process.env.AUDITLEDGER_BENCH_JOB ?? 'null') as ChildJob | null;
if (!job) throw new Error('bench-child.ts is run by scripts/bench.ts, with AUDITLEDGER_BENCH_JOB set');
await (job.kind === 'seal' ? seal(job) : verify(job));
send({ maxRssKb: peakRssKb() });
