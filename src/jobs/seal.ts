import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { finished, pipeline } from 'node:stream/promises';
import type PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import type pg from 'pg';
import { fileBody, type Archive } from '../archive/archive.js';
import { bundleKey, checkpointKey } from '../archive/layout.js';
import { S3Archive } from '../archive/s3.js';
import { BundleBuilder, BundleError, manifestSha256 } from '../ledger/bundle.js';
import { chainOrigin, signCheckpoint } from '../ledger/checkpoint.js';
import { appendLeaves, emptyRange, rangeRoot, type CompactRange } from '../ledger/compact-range.js';
import { GENESIS_PREV } from '../ledger/event.js';
import { uuidv7 } from '../ledger/uuid.js';
import { isUtcDay } from '../utc-day.js';
import type { Keyring } from '../signing-key.js';
import { checkpointAt, insertCheckpoint, leaves } from '../store/checkpoints.js';
import {
  chainsOnDay,
  checkpointFrom,
  eventsOnDay,
  insertSeal,
  markDaySealed,
  previousSeal,
  sealsOfDay,
  bundlesOfDay,
  type SealRow,
  unsealedDays,
  withSealLock,
  type ChainDay,
} from '../store/seals.js';
import type { AlertTarget } from './alert.js';
import { raiseDamage } from './verify.js';

export const SEAL_QUEUE = 'auditledger-seal';
const DAY_MS = 86_400_000;
// Rows read at a time. Each row arrives as a ~1 KB hex string: with pages of 5000 they lived long
// enough to be promoted, and sealing a million events peaked at 480 MB RSS; with 1000, under 200 MB.
const PAGE = 1000;
// Leaf hashes (and links, ~100 bytes a row) read at a time.
const LEAF_PAGE = 10_000;

/** How far sealing has got: events of `chain` sealed so far on `day`, of `total`. */
export interface SealProgress {
  day: string;
  chain: string;
  sealed: number;
  total: number;
}

export interface SealDeps {
  db: pg.Pool;
  archive: Archive;
  /** The signing keys; sealing needs no subject key. */
  keyring: Omit<Keyring, 'subjectKey'>;
  log: Logger;
  /** Where damage found while sealing is alerted, as verification findings are. */
  alert?: AlertTarget | undefined;
  /** For tests: throw at a step to simulate a crash there. */
  faults?: { beforePut?(key: string): void; afterPut?(key: string): void };
  onProgress?(progress: SealProgress): void;
  /** The server clock (ms since the epoch), which decides which days have ended; Date.now unless given. */
  now?: () => number;
  /** Most events in one bundle (AUDITLEDGER_BUNDLE_MAX_EVENTS); DEFAULT_MAX_EVENTS unless given. */
  maxEvents?: number | undefined;
}

/** AUDITLEDGER_BUNDLE_MAX_EVENTS's default (src/config.ts), for callers without a configuration. */
export const DEFAULT_MAX_EVENTS = 100_000;

export interface SealReport {
  days: string[];
  bundles: number;
  events: number;
  /** Days left unsealed because a chain's events there are not yet under a signed checkpoint. */
  waiting: string[];
  /** Chains that could not be sealed because their stored events are damaged (each reported once). */
  failed: SealFailure[];
}

/** A chain-day left unsealed because its stored events are damaged: recorded as a finding of the chain. */
export interface SealFailure {
  project: string;
  environment: string;
  /** The UTC day, YYYY-MM-DD. */
  day: string;
  /** The event at fault (for a mismatch with the signed checkpoint, the day's last). */
  seq: number;
  reason: string;
}

/** The chain's stored events cannot make a bundle that verifies: a finding, not an outage. */
class ChainDamage extends Error {
  constructor(
    readonly seq: number,
    reason: string,
  ) {
    super(reason);
  }
}

/** A `through` day that runSeal refuses: see assertSealable. */
export class UnsealableDayError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsealableDayError';
  }
}

/**
 * Checks that `through` is a real UTC day (YYYY-MM-DD, year 0001 on) that ended before `now` (ms
 * since the epoch). A day still taking events is never sealed: its bundle would miss the events
 * appended after it, and closing its partition would refuse every append until midnight.
 * Throws UnsealableDayError saying why.
 */
export function assertSealable(through: string, now: number): void {
  if (!isUtcDay(through)) throw new UnsealableDayError(`${through} is not a day (YYYY-MM-DD, from 0001-01-01)`);
  if (Date.parse(`${through}T00:00:00Z`) + DAY_MS > now) {
    const today = new Date(now).toISOString().slice(0, 10);
    throw new UnsealableDayError(`${through} has not ended (it is ${today} on the server clock): only days that ended can be sealed`);
  }
}

/** The last day due for sealing: it ended more than `afterDays` days before `now`. */
export function dueThrough(now: number, afterDays: number): string {
  return new Date((Math.floor(now / DAY_MS) - afterDays - 1) * DAY_MS).toISOString().slice(0, 10);
}

/**
 * Seals every unsealed day up to `through`, oldest first. Each chain's events of the day become
 * bundles of at most maxEvents events (bundle k of a day continues bundle k - 1 as a day's bundle
 * continues the day before's): each checked while streamed, signed, PUT, read back and compared,
 * then recorded. A day is marked sealed (and its partition closed to new rows) only when all its
 * bundles are recorded. Everything is deterministic, so a run killed at any point and started
 * again ends with exactly the same bundles, with the same bytes. A chain whose day cannot be sealed (its
 * events are not under a signed checkpoint yet, or are damaged) seals none of its later days in
 * this run, as their bundles would continue that one; the other chains go on. Damage is logged,
 * recorded as a verification finding, alerted, and listed in `failed`. Database and archive errors
 * still throw, and so does a `through` that has not ended (UnsealableDayError, before anything is
 * done). Returns undefined if another seal is running.
 */
export async function runSeal(deps: SealDeps, through: string): Promise<SealReport | undefined> {
  assertSealable(through, (deps.now ?? Date.now)());
  return withSealLock(deps.db, async () => {
    if (deps.archive instanceof S3Archive) await deps.archive.assertObjectLock();
    const report: SealReport = { days: [], bundles: 0, events: 0, waiting: [], failed: [] };
    const stopped = new Map<string, 'waiting' | 'failed'>(); // chains that cannot continue, and why
    for (const day of await unsealedDays(deps.db, through)) {
      const chains = await chainsOnDay(deps.db, day);
      for (const chain of chains) {
        if (stopped.has(chain.environment_id)) continue;
        const sealed = await sealOrReport(deps, day, chain, report);
        if (sealed === 'failed') stopped.set(chain.environment_id, sealed);
        else {
          report.bundles += sealed.bundles;
          report.events += sealed.events;
          if (sealed.waiting) stopped.set(chain.environment_id, 'waiting');
        }
      }
      const unsealed = new Set(chains.flatMap((c) => stopped.get(c.environment_id) ?? []));
      if (unsealed.has('waiting')) {
        report.waiting.push(day);
        deps.log.warn({ day }, 'day not sealed yet: its newest events are not under a signed checkpoint');
      }
      if (unsealed.size) continue;
      const bundles = await bundlesOfDay(deps.db, day);
      await markDaySealed(deps.db, day, bundles);
      report.days.push(day);
      deps.log.info({ day, bundles }, 'day sealed');
    }
    return report;
  });
}

/** Seals one chain-day (see sealChainDay); damage is reported, not thrown: 'failed'. */
async function sealOrReport(deps: SealDeps, day: string, chain: ChainDay, report: SealReport): Promise<Sealed | 'failed'> {
  const started = performance.now();
  try {
    return await sealChainDay(deps, day, chain);
  } catch (error) {
    if (!(error instanceof ChainDamage || error instanceof BundleError)) throw error;
    // A BundleError without a seq is about the day as a whole: its last event is where it ends.
    const seq = error instanceof ChainDamage ? error.seq : (error.seq ?? chain.last_seq);
    const failure: SealFailure = { project: chain.project_id, environment: chain.environment_id, day, seq, reason: error.message };
    report.failed.push(failure);
    deps.log.error(failure, 'chain not sealed: its stored events are damaged');
    const run = { from_seq: chain.first_seq, to_seq: chain.last_seq, duration_ms: Math.round(performance.now() - started) };
    await raiseDamage(deps, chain, 'seal', run, { seq, reason: `cannot seal ${day}: ${error.message}` });
    return 'failed';
  }
}

/** Bundles and events one chain-day's seal added; waiting: it stopped at a bundle no signed checkpoint covers yet. */
interface Sealed {
  bundles: number;
  events: number;
  waiting: boolean;
}

/**
 * Seals one chain's events of one day into bundles of at most deps.maxEvents events each,
 * continuing after those already sealed (a run cut short resumes at the next bundle). Throws
 * ChainDamage or BundleError when the stored events cannot make a bundle that verifies.
 */
async function sealChainDay(deps: SealDeps, day: string, chain: ChainDay): Promise<Sealed> {
  const { db } = deps;
  const env = chain.environment_id;
  const maxEvents = deps.maxEvents ?? DEFAULT_MAX_EVENTS;
  const sealed: Sealed = { bundles: 0, events: 0, waiting: false };
  for (let part = (await sealsOfDay(db, env, day)) + 1; ; part++) {
    const previous = await previousSeal(db, env, day);
    const first = (previous?.last_seq ?? 0) + 1;
    if (part === 1 && chain.first_seq !== first) {
      throw new ChainDamage(first, `the day starts at seq ${chain.first_seq}, but the chain's sealed bundles end at ${first - 1}`);
    }
    if (first > chain.last_seq) return sealed;
    const last = Math.min(chain.last_seq, first + maxEvents - 1);
    const made = await sealBundle(deps, day, chain, part, previous, last);
    if (made === 'waiting') return { ...sealed, waiting: true };
    sealed.bundles++;
    sealed.events += last - first + 1;
  }
}

/**
 * Seals events previous.last_seq + 1 to `last` of the chain's `day` as bundle `part` of the day:
 * checked while streamed from PostgreSQL a page at a time to a temporary file (memory does not
 * grow with the bundle), signed, PUT, read back and compared, then recorded. 'waiting' when no
 * signed checkpoint covers `last` yet.
 */
async function sealBundle(
  deps: SealDeps,
  day: string,
  chain: ChainDay,
  part: number,
  previous: SealRow | undefined,
  last: number,
): Promise<'waiting' | undefined> {
  const { db, archive, keyring } = deps;
  const env = chain.environment_id;
  const first = (previous?.last_seq ?? 0) + 1;
  // The bundle's checkpoint must agree with what was signed before: a later checkpoint must exist.
  const covering = await checkpointFrom(db, env, last);
  if (!covering) return 'waiting';

  const builder = new BundleBuilder({
    project: chain.project_id,
    environment: env,
    partition: day,
    startRange: previous ? { size: previous.last_seq, hashes: previous.end_range } : emptyRange(),
    firstPrev: previous?.last_hash.toString('hex') ?? GENESIS_PREV,
    previousManifestSha256: previous?.manifest_sha256.toString('hex') ?? null,
  });
  // Event lines go to a temporary file as they are checked: a bundle never has to fit in memory.
  const work = await mkdtemp(path.join(os.tmpdir(), 'auditledger-seal-'));
  try {
    const eventsFile = path.join(work, 'events');
    const lines = createWriteStream(eventsFile);
    for (let from = first; from <= last; ) {
      const page = await eventsOnDay(db, env, day, from, Math.min(PAGE, last - from + 1));
      if (page.length === 0) throw new ChainDamage(from, `events ${from} to ${last} vanished while sealing`);
      for (const event of page) if (!lines.write(builder.add(event))) await once(lines, 'drain');
      from = page[page.length - 1]!.seq + 1;
      deps.onProgress?.({ day, chain: env, sealed: from - chain.first_seq, total: chain.count });
    }
    lines.end();
    await finished(lines);

    const root = builder.root;
    const extended = await extendFromStore(db, env, builder.endRange, covering.tree_size);
    if (!rangeRoot(extended).equals(covering.root)) {
      throw new ChainDamage(last, `the events up to ${last} do not match the signed checkpoint at ${covering.tree_size}`);
    }
    const checkpoint = await checkpointNote(deps, chain, last, root, builder.endRange.hashes);
    const { manifestLine, manifest } = builder.finish({ checkpoint, key: keyring.current });
    const bundleFile = path.join(work, 'bundle');
    await writeFile(bundleFile, manifestLine);
    await pipeline(createReadStream(eventsFile), createWriteStream(bundleFile, { flags: 'a' }));
    const body = await fileBody(bundleFile);

    const key = bundleKey(chain.project_id, env, day, part);
    deps.faults?.beforePut?.(key);
    const { versionId } = await archive.put(key, body);
    deps.faults?.afterPut?.(key);
    if (!(await archive.sha256(key))?.equals(body.sha256)) {
      throw new Error(`bundle ${key} read back from ${archive.location} differs from what was written`);
    }
    await insertSeal(db, {
      id: uuidv7(),
      environment_id: env,
      partition: day,
      first_seq: first,
      last_seq: last,
      root,
      end_range: builder.endRange.hashes,
      last_hash: Buffer.from(manifest.last_hash, 'hex'),
      manifest: manifestLine.toString('utf8').trimEnd(),
      manifest_sha256: Buffer.from(manifestSha256(manifestLine), 'hex'),
      archive_location: archive.location,
      archive_key: key,
      version_id: versionId ?? null,
      sha256: body.sha256,
      bytes: body.size,
    });
    return undefined;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * `range` grown by the chain's stored leaves up to `size`, read a page at a time: the first
 * checkpoint after a bundle may be far on (a quiet chain's, or one signed at the day's end).
 */
async function extendFromStore(db: pg.Pool, environment: string, range: CompactRange, size: number): Promise<CompactRange> {
  for (let from = range.size + 1; from <= size; from += LEAF_PAGE) {
    const page = await leaves(db, environment, from, Math.min(size, from + LEAF_PAGE - 1));
    range = appendLeaves(range, page.map((l) => l.hash));
  }
  return range;
}

/** The signed checkpoint at the bundle's last seq: the stored one, or a new one recorded now. */
async function checkpointNote(deps: SealDeps, chain: ChainDay, size: number, root: Buffer, range: Buffer[]): Promise<string> {
  const existing = await checkpointAt(deps.db, chain.environment_id, size);
  if (existing) return existing.note;
  const { current, origin } = deps.keyring;
  const note = signCheckpoint({ origin: chainOrigin(origin, chain.project_id, chain.environment_id), size, root }, current);
  // Archived like every checkpoint, before it is recorded (see runCheckpoints).
  await deps.archive.put(checkpointKey(chain.project_id, chain.environment_id, size), Buffer.from(note));
  await insertCheckpoint(deps.db, {
    environment_id: chain.environment_id,
    tree_size: size,
    root,
    compact_range: range,
    note,
    key_id: Buffer.from(current.keyId),
  });
  return note;
}

/** Hourly by default; the seal lock keeps runs single-flight across processes. */
export async function scheduleSeal(boss: PgBoss, deps: SealDeps, cron: string, afterDays: number, now: () => number) {
  await boss.createQueue(SEAL_QUEUE, { name: SEAL_QUEUE, policy: 'singleton' });
  await boss.schedule(SEAL_QUEUE, cron, {}, { tz: 'UTC' });
  await boss.work(SEAL_QUEUE, async () => {
    await runSeal({ ...deps, now }, dueThrough(now(), afterDays));
  });
}
