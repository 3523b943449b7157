import type PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type pg from 'pg';
import type { VerifierKey } from '../ledger/keys.js';
import { uuidv7 } from '../ledger/uuid.js';
import { GENESIS_POINT, verifyChain } from '../store/chain-verify.js';
import type { Failure } from '../ledger/verify-events.js';
import {
  abandonRun,
  allChains,
  claimRun,
  finishRun,
  queueRun,
  recordFindings,
  saveVerifiedPoint,
  verifiedPoint,
  type ChainRow,
  type RunLimit,
  type RunRequest,
  type RunResult,
} from '../store/verification.js';
import { sendAlert, type AlertTarget } from './alert.js';

/** Runs asked for through the API, one job each, taken in the order they were asked for. */
export const VERIFY_QUEUE = 'auditledger-verify';
/** The scheduled walk over every chain: a queue of its own, so API runs never wait behind it. */
export const SCHEDULED_VERIFY_QUEUE = 'auditledger-verify-schedule';
/** The scheduled walk over every chain from its first event: a queue (and so a schedule) of its own. */
export const FULL_VERIFY_QUEUE = 'auditledger-verify-full';

/**
 * Where a run starts: `incremental` from the chain's last verified point (events appended since),
 * `full` from its first event, so that damage done to a range verified earlier is found too.
 */
export type RunScope = 'incremental' | 'full';

export interface VerifyDeps {
  db: pg.Pool;
  verifiers: readonly VerifierKey[];
  log: Logger;
  alert?: AlertTarget | undefined;
}

/**
 * Verifies one chain to the head, from its last verified point or (`full`) from its first event,
 * and records the run. On failures:
 * an error log line, stored findings, and (for findings not seen before) an alert to the webhook.
 * The verified point advances only over a clean range, so a failure is met again by every later
 * run, but alerted once.
 */
export async function verifyChainRun(
  deps: VerifyDeps,
  chain: ChainRow,
  requestedBy: string,
  runId = uuidv7(),
  scope: RunScope = 'incremental',
): Promise<RunResult> {
  const { db, log } = deps;
  const started = performance.now();
  const ref = { project: chain.project_id, environment: chain.environment_id };
  try {
    const from = scope === 'full' ? GENESIS_POINT : await verifiedPoint(db, chain.environment_id);
    const verification = await verifyChain(db, ref, { from, verifiers: deps.verifiers });
    const result: RunResult = {
      status: 'done',
      from_seq: verification.from_seq,
      to_seq: verification.head_seq,
      ok: verification.ok,
      checked: verification.checked,
      duration_ms: Math.round(performance.now() - started),
      first_failure: verification.failures[0] ?? null,
    };
    await finishRun(db, runId, chain.environment_id, requestedBy, result);
    if (verification.ok) {
      await saveVerifiedPoint(db, chain.environment_id, verification.end);
      return result;
    }
    log.error({ ...ref, run: runId, failure: result.first_failure, failures: verification.failures.length }, 'verification failed');
    await raiseFindings(deps, chain, runId, verification.failures);
    return result;
  } catch (error) {
    log.error({ ...ref, run: runId, err: error }, 'verification could not run');
    const result: RunResult = {
      status: 'error',
      from_seq: null,
      to_seq: null,
      ok: null,
      checked: null,
      duration_ms: Math.round(performance.now() - started),
      first_failure: { seq: 0, reason: (error as Error).message },
    };
    await finishRun(db, runId, chain.environment_id, requestedBy, result);
    return result;
  }
}

/**
 * Stores failures of a run as findings of the chain and POSTs those not found before to the
 * alert webhook (see sendAlert: never throws for the webhook).
 */
export async function raiseFindings(
  deps: Pick<VerifyDeps, 'db' | 'log' | 'alert'>,
  chain: ChainRow,
  runId: string,
  failures: Failure[],
): Promise<void> {
  const fresh = await recordFindings(deps.db, chain.environment_id, runId, failures);
  if (fresh.length && deps.alert) {
    const payload = { type: 'auditledger.verification.failed', run_id: runId, project: chain.project_id, environment: chain.environment_id, findings: fresh };
    await sendAlert(deps.alert, payload, deps.log);
  }
}

/**
 * Damage a job other than verification found in a chain (a day it cannot seal, an archived object
 * that differs from what it would write): recorded as a finished run of `requestedBy` that failed
 * at `failure`, which is stored as a finding and alerted as a run's are (raiseFindings).
 */
export async function raiseDamage(
  deps: Pick<VerifyDeps, 'db' | 'log' | 'alert'>,
  chain: ChainRow,
  requestedBy: string,
  run: Pick<RunResult, 'from_seq' | 'to_seq' | 'duration_ms'>,
  failure: Failure,
): Promise<void> {
  const runId = uuidv7();
  await finishRun(deps.db, runId, chain.environment_id, requestedBy, { status: 'done', ...run, ok: false, checked: null, first_failure: failure });
  await raiseFindings(deps, chain, runId, [failure]);
}

/** Every chain, one after another (the scheduled runs). */
export async function verifyAllChains(deps: VerifyDeps, scope: RunScope = 'incremental'): Promise<RunResult[]> {
  const results: RunResult[] = [];
  for (const chain of await allChains(deps.db)) results.push(await verifyChainRun(deps, chain, 'schedule', uuidv7(), scope));
  return results;
}

const LIVE_JOB_STATES = new Set(['created', 'retry', 'active']);

/** A run asked for through the API, queued as a row (queueRun) and as a job with the run's id. */
export interface VerifyJob {
  chain: ChainRow;
  runId: string;
}

/**
 * Runs a queued run unless it has ended already (a job delivered again). A run asked for is full:
 * whoever asks wants the whole chain checked now, and dedup and the rate limit bound the cost.
 */
export async function runRequested(deps: VerifyDeps, { chain, runId }: VerifyJob): Promise<void> {
  if (await claimRun(deps.db, chain.environment_id, runId)) await verifyChainRun(deps, chain, 'api', runId, 'full');
}

/** When the scheduled walks run (cron, UTC). */
export interface VerifySchedule {
  /** Each chain from its last verified point: the events appended since. */
  incremental: string;
  /** Each chain from its first event: damage to ranges verified before. */
  full: string;
}

/**
 * Every chain on `schedule` (from the verified point every 15 minutes, and whole daily, by
 * default), and the runs asked for with POST /v1/verify. Returns how to ask for one (see
 * queueRun): its job is sent in the transaction that queues it.
 */
export async function scheduleVerification(boss: PgBoss, deps: VerifyDeps, schedule: VerifySchedule) {
  // Earlier versions scheduled the walk on VERIFY_QUEUE, where it would wait behind API runs.
  await boss.unschedule(VERIFY_QUEUE);
  for (const [queue, cron, scope] of [
    [SCHEDULED_VERIFY_QUEUE, schedule.incremental, 'incremental'],
    [FULL_VERIFY_QUEUE, schedule.full, 'full'],
  ] as const) {
    // One walk of each kind at a time, and at most one more waiting, however long a walk takes.
    await boss.createQueue(queue, { name: queue, policy: 'stately' });
    await boss.schedule(queue, cron, {}, { tz: 'UTC' });
    await boss.work(queue, () => verifyAllChains(deps, scope));
  }

  const request = await verificationRequests(boss, deps.db);
  await boss.work<VerifyJob>(VERIFY_QUEUE, async ([job]) => {
    if (job?.data.runId) await runRequested(deps, job.data);
  });
  return request;
}

/**
 * How a process asks for a verification run (POST /v1/verify) without running any job itself
 * (`serve --workers`: one process runs the jobs, every process takes requests): the run is queued
 * and its job sent in one transaction, for whichever process works VERIFY_QUEUE.
 */
export async function verificationRequests(boss: PgBoss, db: VerifyDeps['db']) {
  await boss.createQueue(VERIFY_QUEUE, { name: VERIFY_QUEUE });
  return async (chain: ChainRow, tokenId: string, limit: RunLimit): Promise<RunRequest> => {
    for (;;) {
      const request = await queueRun(db, chain.environment_id, tokenId, limit, (runId, client) =>
        boss.send(VERIFY_QUEUE, { chain, runId } satisfies VerifyJob, { id: runId, db: { executeSql: (text, values) => client.query(text, values) } }),
      );
      if (!('run_id' in request) || !request.deduplicated) return request;
      // The run waiting is answered only while its job (sent with the run's id) can still run it:
      // one that failed (its worker met a database outage more often than pg-boss retries) or is
      // gone would otherwise hold the chain's queue forever.
      const job = await boss.getJobById(VERIFY_QUEUE, request.run_id);
      if (job && LIVE_JOB_STATES.has(job.state)) return request;
      await abandonRun(db, chain.environment_id, request.run_id, 'its job was lost before it ran');
    }
  };
}
