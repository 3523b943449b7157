// The sealing side of `npm run bench` phase (e), in a process of its own so that its peak RSS is
// that of sealing alone, not of the bench's load generator and COPY buffers. It loads only what
// `auditledger seal` needs to seal, runs runSeal once through the days due now, and reports.
//
// Input: the environment variable AUDITLEDGER_BENCH_SEAL, a SealJob as JSON.
// Output on stdout, one JSON line each: {"started": true} as the clock starts; the SealResult as it
// stops; then, once stdin ends (the bench has sampled the CPU meanwhile), {"maxRssKb": n} at exit.
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { LocalArchive } from '../src/archive/local.js';
import { dueThrough, runSeal } from '../src/jobs/seal.js';
import { parseSigningKey } from '../src/ledger/keys.js';
import { createPools } from '../src/store/database.js';

export interface SealJob {
  /** Owner (or superuser) URL of the bench database. */
  databaseUrl: string;
  /** Folder of the LocalArchive the checkpoints went to. */
  archive: string;
  /** The signing key the checkpoints were signed with, encoded (encodeSigningKey). */
  key: string;
  origin: string;
  /** runSeal seals through dueThrough(now, afterDays). */
  afterDays: number;
}

export interface SealResult {
  ms: number;
  /** CPU time of this process during the measure (user + system). */
  cpuMs: number;
  days: string[];
  bundles: number;
  events: number;
  waiting: string[];
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

const job = JSON.parse(process.env.AUDITLEDGER_BENCH_SEAL ?? 'null') as SealJob | null;
if (!job) throw new Error('bench-seal.ts is run by scripts/bench.ts, with AUDITLEDGER_BENCH_SEAL set');
const pools = createPools(job.databaseUrl, undefined, 1);
try {
  const deps = {
    db: pools.owner,
    archive: new LocalArchive(job.archive),
    keyring: { current: parseSigningKey(job.key), retired: [], origin: job.origin },
    log: pino({ level: 'silent' }),
  };
  send({ started: true });
  const cpu = process.cpuUsage();
  const started = performance.now();
  const report = await runSeal(deps, dueThrough(Date.now(), job.afterDays));
  const ms = performance.now() - started;
  const { user, system } = process.cpuUsage(cpu);
  if (!report) throw new Error('another seal holds the seal lock');
  send({ ms, cpuMs: (user + system) / 1000, ...report } satisfies SealResult);
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once('end', resolve));
} finally {
  await pools.end();
}
send({ maxRssKb: peakRssKb() });
