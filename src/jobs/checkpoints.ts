import type PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type pg from 'pg';
import { ArchiveConflictError, type Archive } from '../archive/archive.js';
import { checkpointKey, parseTileKey, tileKey } from '../archive/layout.js';
import { chainOrigin, CheckpointError, parseCheckpoint, signCheckpoint } from '../ledger/checkpoint.js';
import { noteText } from '../ledger/note.js';
import { ChainChecker } from '../ledger/chain-check.js';
import { rangeProblem, rangeRoot } from '../ledger/compact-range.js';
import type { SigningKey } from '../ledger/keys.js';
import { SignedTreeTiles, TILE_WIDTH, tileBytes, tileFirstSeq, tilesGrown, type TileId, type TileMismatch } from '../ledger/tiles.js';
import { mapLimited } from '../ledger/verify-archive.js';
import { insertCheckpoint, leaves, movedChains, type MovedChain } from '../store/checkpoints.js';
import { OWNER_POOL_SIZE } from '../store/database.js';
import { isDatabaseUnavailable } from '../store/errors.js';
import { readTiles, recordTilesArchived, tilesBehind, TilesMissingError } from '../store/tiles.js';
import { isFindingRecorded, type ChainRow } from '../store/verification.js';
import type { AlertTarget } from './alert.js';
import { raiseDamage } from './verify.js';

export const CHECKPOINT_QUEUE = 'auditledger-checkpoints';

export interface CheckpointDeps {
  db: pg.Pool;
  /** Where each checkpoint is put before it is recorded; absent (library mode, wormEnabled false): PostgreSQL only. */
  archive?: Archive | undefined;
  key: SigningKey;
  origin: string;
  log: Logger;
  /** Where damage found while archiving (an archived object with other bytes) is alerted, as verification findings are. */
  alert?: AlertTarget | undefined;
}

/**
 * Why the chain's new events cannot be signed, or undefined when they can (the first finding of
 * ChainChecker): from the last checkpoint's compact range, they must be contiguous, each linked to
 * the one before, and give exactly the head's root and hash. So a new checkpoint always extends
 * the previous one: none is ever signed that is inconsistent with an earlier checkpoint of its chain.
 * A stored compact range that does not fit its size (damage) is a refusal too.
 */
async function refusal(db: pg.Pool, chain: MovedChain): Promise<string | undefined> {
  const damaged = rangeProblem({ size: chain.seq, hashes: chain.compact_range }) ?? rangeProblem({ size: chain.last_size, hashes: chain.last_range });
  if (damaged !== undefined) return `a stored compact range is damaged: ${damaged}`;
  const rows = await leaves(db, chain.environment_id, Math.max(1, chain.last_size), chain.seq);
  // The event at the checkpoint's size is read for its hash only, which the next event links to.
  const anchor = chain.last_size > 0 && rows[0]?.seq === chain.last_size ? rows.shift() : undefined;
  const checker = new ChainChecker(
    { project: chain.project_id, environment: chain.environment_id },
    { seq: chain.last_size, hash: anchor?.hash, range: { size: chain.last_size, hashes: chain.last_range } },
  );
  const findings = rows.flatMap((row) => checker.add(row));
  findings.push(...checker.finish({ seq: chain.seq, root: rangeRoot({ size: chain.seq, hashes: chain.compact_range }), hash: chain.hash }));
  return findings[0]?.reason;
}

/** Which chains are due: those whose latest checkpoint was signed at least `intervalMs` before `now` (ms since the epoch). */
export interface CheckpointsDue {
  intervalMs: number;
  now: number;
}

/**
 * Signs a checkpoint of every chain whose head moved (with `due`, only those whose latest
 * checkpoint is at least the interval old, or that have none); archives the hash tiles of its tree
 * (archiveTiles) and then the note, then records it. Then archives the tiles of every chain whose
 * archived tiles are behind its latest checkpoint (a backfill). Chains are independent: CHAINS_AT_ONCE
 * of them are done at once. Returns how many it signed.
 */
export async function runCheckpoints(deps: CheckpointDeps, due?: CheckpointsDue): Promise<number> {
  const { db, archive, log } = deps;
  const failed = new ChainFailures(log);
  const moved = await movedChains(db, due && new Date(due.now - due.intervalMs));
  const signed = (await mapLimited(moved, CHAINS_AT_ONCE, (chain) => failed.unless(chain, 'checkpoint not signed', () => signChain(deps, chain)))).filter(Boolean).length;
  if (signed) log.info({ signed }, 'checkpoints signed');
  // Chains whose tiles are behind their latest checkpoint: notes the seal job signed, chains
  // archived before tiles were, runs that stopped half way, and notes a process without this
  // archive signed (library mode with wormEnabled: false). The note follows its tiles, as above,
  // so the archive never holds the tiles of a tree without the note that signs it.
  if (archive) {
    await mapLimited(await tilesBehind(db), CHAINS_AT_ONCE, (chain) =>
      failed.unless(chain, 'tiles not archived', () => archiveTiles({ ...deps, archive }, chain, chain.archived, chain.tree_size, chain.note)),
    );
  }
  failed.summarize();
  return signed;
}

// Lines a run logs for chains that failed, one each; beyond that a count, so that an archive that
// refuses every write does not log once per chain every quarter interval.
const FAILURES_LOGGED = 10;

/**
 * One chain's failure (an archive that refuses a write: EACCES, ENOTDIR, an S3 error…) must not
 * stop the run for the others; each is logged naming the chain, and the chain is tried again next
 * run. A database that cannot be reached fails every chain alike: that stops the run.
 */
class ChainFailures {
  private count = 0;
  constructor(private readonly log: Logger) {}

  /** What `work` (a chain's signing or archiving) gives, or false when it threw. */
  async unless(chain: { project_id: string; environment_id: string }, message: string, work: () => Promise<boolean>): Promise<boolean> {
    try {
      return await work();
    } catch (error) {
      if (isDatabaseUnavailable(error)) throw error;
      if (++this.count <= FAILURES_LOGGED) {
        this.log.error({ project: chain.project_id, environment: chain.environment_id, reason: error instanceof Error ? error.message : String(error) }, message);
      }
      return false;
    }
  }

  summarize(): void {
    if (this.count > FAILURES_LOGGED) this.log.error({ failed: this.count, logged: FAILURES_LOGGED }, 'chains failed in this checkpoint run; the first are logged above');
  }
}

// Each chain's work is mostly waiting (PostgreSQL round trips, the archive's writes): one at a time,
// 1,000 moved chains took 10 s. As many as the owner pool has connections, so as not to queue on it.
const CHAINS_AT_ONCE = OWNER_POOL_SIZE;

/** Signs, archives (tiles, then the note) and records a checkpoint of `chain` at its head; false when refused. */
async function signChain(deps: CheckpointDeps, chain: MovedChain): Promise<boolean> {
  const { db, archive, key, origin, log } = deps;
  const refused = await refusal(db, chain);
  if (refused) {
    log.error({ project: chain.project_id, environment: chain.environment_id, seq: chain.seq, reason: refused }, 'checkpoint refused');
    return false;
  }
  const root = rangeRoot({ size: chain.seq, hashes: chain.compact_range });
  const note = signCheckpoint({ origin: chainOrigin(origin, chain.project_id, chain.environment_id), size: chain.seq, root }, key);
  // The tiles, then the note (archiveTiles): a client that finds the note finds the tiles of its
  // tree. Archived before recording: a crash in between re-signs the same text next time, which
  // (ed25519 being deterministic) archives the same bytes again, a no-op. When the tiles could
  // not be archived, neither is the note: the checkpoint is recorded all the same, and the
  // backfill archives both once the tiles can be.
  if (archive) await archiveTiles({ ...deps, archive }, chain, chain.archived, chain.seq, note);
  await insertCheckpoint(db, {
    environment_id: chain.environment_id,
    tree_size: chain.seq,
    root,
    compact_range: chain.compact_range,
    note,
    key_id: Buffer.from(key.keyId),
  });
  return true;
}

// Tiles read from PostgreSQL per statement, and PUT at once.
const TILE_BATCH = 64;
const TILE_PUTS = 8;

/**
 * Writes to the archive the hash tiles a chain's tree gains from `from` to `to` leaves (tilesGrown:
 * the full tiles completed, and the partial tiles of `to`, each width its own write-once object),
 * then `note` (the signed checkpoint at `to`), then records `to` as archived. True when done. Each
 * batch of tiles read from PostgreSQL is first found to be the tree the note signs
 * (SignedTreeTiles: the partial tiles give its root, each full tile's root is its parent's hash),
 * so that the write-once archive never holds a tile, nor a note, that a later read could not prove
 * honest events from. A tile that cannot be read (its rows are gone) is logged and the chain left
 * behind. So is a tile that is not the signed tree's, and an archived object with other bytes,
 * which is never replaced: both are damage (the stored tiles or the archive were altered), also
 * recorded as a finding of the chain at the first seq the tile or object covers and alerted, once
 * (raiseDamage); a later run that meets it again only logs it. Throws CheckpointError or NoteError
 * when `note` is not a signed checkpoint of size `to`.
 */
export async function archiveTiles(
  deps: Pick<CheckpointDeps, 'db' | 'log' | 'alert'> & { archive: Archive },
  chain: ChainRow,
  from: number,
  to: number,
  note: string,
): Promise<boolean> {
  const { db, archive, log } = deps;
  const { project_id: project, environment_id: environment } = chain;
  const started = performance.now();
  const signed = parseCheckpoint(noteText(note));
  if (signed.size !== to) throw new CheckpointError(`the note to archive with the tiles of tree size ${to} is of tree size ${signed.size}`);
  const check = new SignedTreeTiles(to, signed.root);
  try {
    let batch: TileId[] = [];
    const flush = async () => {
      const read = check.needs(batch);
      const tiles = await readTiles(db, environment, read);
      const mismatch = check.check(read, tiles);
      if (mismatch) throw new TileMismatchError(mismatch);
      await mapLimited(batch, TILE_PUTS, (id) => archive.put(tileKey(project, environment, id), tileBytes(tiles.get(`${id.level}/${id.index}`)!)));
      batch = [];
    };
    for (const id of tilesGrown(from, to)) {
      batch.push(id);
      if (batch.length === TILE_BATCH) await flush();
    }
    if (batch.length) await flush();
    await archive.put(checkpointKey(project, environment, to), Buffer.from(note));
  } catch (error) {
    if (!(error instanceof TilesMissingError || error instanceof ArchiveConflictError || error instanceof TileMismatchError)) throw error;
    const evidence = error instanceof TileMismatchError ? { expected: error.mismatch.expected.toString('hex'), found: error.mismatch.found.toString('hex') } : {};
    log.error({ project, environment, from, to, reason: error.message, ...evidence }, 'tiles not archived');
    if (!(error instanceof TilesMissingError)) {
      // The reason names the tile or object, not the tree size: the same damage met by later runs is the same finding.
      const seq = error instanceof TileMismatchError ? tileFirstSeq(error.mismatch.tiles[0]!) : conflictSeq(error.key, to);
      const failure = { seq, reason: `cannot archive the chain's tiles: ${error.message}` };
      const run = { from_seq: from + 1, to_seq: to, duration_ms: Math.round(performance.now() - started) };
      if (!(await isFindingRecorded(db, environment, failure))) await raiseDamage(deps, chain, 'checkpoints', run, failure);
    }
    return false;
  }
  await recordTilesArchived(db, environment, to);
  return true;
}

/** Tiles read from PostgreSQL are not the tree the checkpoint signs: the stored tiles were altered. */
class TileMismatchError extends Error {
  override name = 'TileMismatchError';
  constructor(readonly mismatch: TileMismatch) {
    const names = mismatch.tiles.map(({ level, index }) => `${level}/${index}`).join(', ');
    super(
      mismatch.tiles[0]!.width === TILE_WIDTH
        ? `tile ${names} in the database is not the signed tree's: its root is not the hash at its place in the tile one level up`
        : `${mismatch.tiles.length > 1 ? 'tiles' : 'tile'} ${names} in the database ${mismatch.tiles.length > 1 ? 'are' : 'is'} not the signed tree's: the partial tiles do not give the signed root`,
    );
  }
}

// The first seq an archived object covers: a tile's first, a note's tree size (`size`, the note archived here).
function conflictSeq(key: string, size: number): number {
  const tile = parseTileKey(key);
  return tile ? tileFirstSeq(tile.tile) : size;
}

/**
 * The schedule lives in the database, not in a process's timer: each chain is due once its latest
 * checkpoint is an interval old, so restarting processes, however often, never delays a
 * checkpoint. Every process asks for a run when it starts and every quarter interval (at least
 * each second); a run signs only the chains that are due, so a chain is signed within about 1.25
 * intervals of the one before while any process runs. The queue keeps at most one run queued and
 * one running (stately), so N processes do not multiply the work. A run expires after
 * checkpointRunExpiry seconds: the run of a process that died holds back the next one
 * only that long (plus pg-boss's supervision, every BOSS_SUPERVISION_SECONDS), not pg-boss's
 * default 15 minutes. A live run that outlasts it may meet a second one: both sign the same
 * heads, the same bytes (deterministic ed25519), which the archive and the table take once.
 */
export async function scheduleCheckpoints(boss: PgBoss, deps: CheckpointDeps, intervalSeconds: number): Promise<() => void> {
  await boss.createQueue(CHECKPOINT_QUEUE, { name: CHECKPOINT_QUEUE, policy: 'stately' });
  await boss.work(CHECKPOINT_QUEUE, { pollingIntervalSeconds: Math.min(2, intervalSeconds) }, async () => {
    // The true clock, not AUDITLEDGER_CLOCK_OFFSET's: created_at is the database's.
    await runCheckpoints(deps, { intervalMs: intervalSeconds * 1000, now: Date.now() }).catch((error: unknown) => {
      // pg-boss keeps the error with the job; the log is where an operator looks.
      deps.log[isDatabaseUnavailable(error) ? 'debug' : 'error']({ reason: error instanceof Error ? error.message : String(error) }, 'checkpoint run failed');
      throw error;
    });
  });
  // During a database outage every ask fails alike: debug only (serve's probe logs the outage once).
  const ask = () =>
    boss.send(CHECKPOINT_QUEUE, {}, { expireInSeconds: checkpointRunExpiry(intervalSeconds) }).catch((error: unknown) => deps.log[isDatabaseUnavailable(error) ? 'debug' : 'error']({ err: error }, 'cannot queue checkpoints'));
  await ask();
  const timer = setInterval(ask, Math.max(1, intervalSeconds / 4) * 1000);
  timer.unref();
  return () => clearInterval(timer);
}

/** Seconds a checkpoint run may stay active before pg-boss fails it: a minute, or the interval if longer (1,000 chains take about 5 s). */
function checkpointRunExpiry(intervalSeconds: number): number {
  return Math.max(60, intervalSeconds);
}
