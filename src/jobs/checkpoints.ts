import type PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type pg from 'pg';
import type { Archive } from '../archive/archive.js';
import { checkpointKey } from '../archive/layout.js';
import { chainOrigin, signCheckpoint } from '../ledger/checkpoint.js';
import { appendLeaves, rangeRoot } from '../ledger/compact-range.js';
import { GENESIS_PREV } from '../ledger/event.js';
import type { SigningKey } from '../ledger/keys.js';
import { insertCheckpoint, leaves, movedChains, type MovedChain } from '../store/checkpoints.js';

export const CHECKPOINT_QUEUE = 'auditledger-checkpoints';

export interface CheckpointDeps {
  db: pg.Pool;
  /** Where each checkpoint is put before it is recorded; absent (library mode, wormEnabled false): PostgreSQL only. */
  archive?: Archive | undefined;
  key: SigningKey;
  origin: string;
  log: Logger;
}

/**
 * Why the chain's new events cannot be signed, or undefined when they can: they must be
 * contiguous, each linked to the one before, and together with the last checkpoint's compact
 * range they must give exactly the head's root. So a new checkpoint always extends the previous
 * one: none is ever signed that is inconsistent with an earlier checkpoint of its chain.
 */
async function refusal(db: pg.Pool, chain: MovedChain): Promise<string | undefined> {
  const rows = await leaves(db, chain.environment_id, Math.max(1, chain.last_size), chain.seq);
  let previous = chain.last_size === 0 ? GENESIS_PREV : undefined;
  let expected = Math.max(1, chain.last_size);
  for (const row of rows) {
    if (row.seq !== expected) return `event ${expected} is missing`;
    if (previous !== undefined && row.prev.toString('hex') !== previous) return `event ${row.seq} does not link to event ${row.seq - 1}`;
    previous = row.hash.toString('hex');
    expected++;
  }
  if (expected !== chain.seq + 1) return `events ${expected} to ${chain.seq} are missing`;
  const fresh = rows.filter((r) => r.seq > chain.last_size).map((r) => r.hash);
  const extended = appendLeaves({ size: chain.last_size, hashes: chain.last_range }, fresh);
  const head = { size: chain.seq, hashes: chain.compact_range };
  if (!rangeRoot(extended).equals(rangeRoot(head))) return 'the stored events do not extend the last checkpoint to the head';
  if (previous !== chain.hash.toString('hex')) return 'the head hash is not the hash of the last event';
  return undefined;
}

/** Which chains are due: those whose latest checkpoint was signed at least `intervalMs` before `now` (ms since the epoch). */
export interface CheckpointsDue {
  intervalMs: number;
  now: number;
}

/**
 * Signs a checkpoint of every chain whose head moved (with `due`, only those whose latest
 * checkpoint is at least the interval old, or that have none); archives it first, then records
 * it. Returns how many it signed.
 */
export async function runCheckpoints({ db, archive, key, origin, log }: CheckpointDeps, due?: CheckpointsDue): Promise<number> {
  let signed = 0;
  for (const chain of await movedChains(db, due && new Date(due.now - due.intervalMs))) {
    const refused = await refusal(db, chain);
    if (refused) {
      log.error({ project: chain.project_id, environment: chain.environment_id, seq: chain.seq, reason: refused }, 'checkpoint refused');
      continue;
    }
    const root = rangeRoot({ size: chain.seq, hashes: chain.compact_range });
    const note = signCheckpoint({ origin: chainOrigin(origin, chain.project_id, chain.environment_id), size: chain.seq, root }, key);
    // Archive before recording: a crash in between re-signs the same text next time, which
    // (ed25519 being deterministic) archives the same bytes again, a no-op.
    await archive?.put(checkpointKey(chain.project_id, chain.environment_id, chain.seq), Buffer.from(note));
    await insertCheckpoint(db, {
      environment_id: chain.environment_id,
      tree_size: chain.seq,
      root,
      compact_range: chain.compact_range,
      note,
      key_id: Buffer.from(key.keyId),
    });
    signed++;
  }
  if (signed) log.info({ signed }, 'checkpoints signed');
  return signed;
}

/**
 * The schedule lives in the database, not in a process's timer: each chain is due once its latest
 * checkpoint is an interval old, so restarting processes, however often, never delays a
 * checkpoint. Every process asks for a run when it starts and every quarter interval (at least
 * each second); a run signs only the chains that are due, so a chain is signed within about 1.25
 * intervals of the one before while any process runs. The queue keeps at most one run queued and
 * one running (stately), so N processes do not multiply the work.
 */
export async function scheduleCheckpoints(boss: PgBoss, deps: CheckpointDeps, intervalSeconds: number): Promise<() => void> {
  await boss.createQueue(CHECKPOINT_QUEUE, { name: CHECKPOINT_QUEUE, policy: 'stately' });
  await boss.work(CHECKPOINT_QUEUE, { pollingIntervalSeconds: Math.min(2, intervalSeconds) }, async () => {
    // The true clock, not AUDITLEDGER_CLOCK_OFFSET's: created_at is the database's.
    await runCheckpoints(deps, { intervalMs: intervalSeconds * 1000, now: Date.now() });
  });
  const ask = () => boss.send(CHECKPOINT_QUEUE, {}).catch((error: unknown) => deps.log.error({ err: error }, 'cannot queue checkpoints'));
  await ask();
  const timer = setInterval(ask, Math.max(1, intervalSeconds / 4) * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
