import type PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type pg from 'pg';
import type { VerifierKey } from '../ledger/keys.js';
import { uuidv7 } from '../ledger/uuid.js';
import { verifyChain } from '../store/chain-verify.js';
import {
  allChains,
  finishRun,
  recordFindings,
  saveVerifiedPoint,
  verifiedPoint,
  type ChainRow,
  type RunResult,
} from '../store/verification.js';
import { sendAlert, type AlertTarget } from './alert.js';

export const VERIFY_QUEUE = 'auditledger-verify';

export interface VerifyDeps {
  db: pg.Pool;
  verifiers: readonly VerifierKey[];
  log: Logger;
  alert?: AlertTarget | undefined;
}

/**
 * Verifies one chain from its last verified point to the head and records the run. On failures:
 * an error log line, stored findings, and (for findings not seen before) an alert to the webhook.
 * The verified point advances only over a clean range, so a failure is met again by every later
 * run, but alerted once.
 */
export async function verifyChainRun(deps: VerifyDeps, chain: ChainRow, requestedBy: string, runId = uuidv7()): Promise<RunResult> {
  const { db, log } = deps;
  const started = performance.now();
  const ref = { project: chain.project_id, environment: chain.environment_id };
  try {
    const from = await verifiedPoint(db, chain.environment_id);
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
    const fresh = await recordFindings(db, chain.environment_id, runId, verification.failures);
    if (fresh.length && deps.alert) {
      await sendAlert(deps.alert, { type: 'auditledger.verification.failed', run_id: runId, ...ref, findings: fresh }, log);
    }
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

/** Every chain, one after another (the scheduled run). */
export async function verifyAllChains(deps: VerifyDeps): Promise<RunResult[]> {
  const results: RunResult[] = [];
  for (const chain of await allChains(deps.db)) results.push(await verifyChainRun(deps, chain, 'schedule'));
  return results;
}

interface VerifyJob {
  /** Set for a run asked for through the API; unset for the scheduled run of every chain. */
  chain?: ChainRow;
  runId?: string;
}

/** Every 15 minutes by default, plus runs asked for with POST /v1/verify. */
export async function scheduleVerification(boss: PgBoss, deps: VerifyDeps, cron: string) {
  await boss.createQueue(VERIFY_QUEUE, { name: VERIFY_QUEUE });
  await boss.schedule(VERIFY_QUEUE, cron, {}, { tz: 'UTC' });
  await boss.work<VerifyJob>(VERIFY_QUEUE, async ([job]) => {
    const { chain, runId } = job?.data ?? {};
    if (chain) await verifyChainRun(deps, chain, 'api', runId);
    else await verifyAllChains(deps);
  });
  return (chain: ChainRow, runId: string) => boss.send(VERIFY_QUEUE, { chain, runId } satisfies VerifyJob);
}
