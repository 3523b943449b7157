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
import { BundleBuilder, manifestSha256 } from '../ledger/bundle.js';
import { chainOrigin, signCheckpoint } from '../ledger/checkpoint.js';
import { appendLeaves, emptyRange, rangeRoot } from '../ledger/compact-range.js';
import { GENESIS_PREV } from '../ledger/event.js';
import { uuidv7 } from '../ledger/uuid.js';
import type { Keyring } from '../signing-key.js';
import { checkpointAt, insertCheckpoint, leaves } from '../store/checkpoints.js';
import {
  chainsOnDay,
  checkpointFrom,
  eventsOnDay,
  insertSeal,
  markDaySealed,
  previousSeal,
  sealOfDay,
  unsealedDays,
  withSealLock,
  type ChainDay,
} from '../store/seals.js';

export const SEAL_QUEUE = 'auditledger-seal';
const DAY_MS = 86_400_000;
// Rows read at a time. Each row arrives as a ~1 KB hex string: with pages of 5000 they lived long
// enough to be promoted, and sealing a million events peaked at 480 MB RSS; with 1000, under 200 MB.
const PAGE = 1000;

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
  keyring: Keyring;
  log: Logger;
  /** For tests: throw at a step to simulate a crash there. */
  faults?: { beforePut?(key: string): void; afterPut?(key: string): void };
  onProgress?(progress: SealProgress): void;
}

export interface SealReport {
  days: string[];
  bundles: number;
  events: number;
  /** Days left unsealed because a chain's events there are not yet under a signed checkpoint. */
  waiting: string[];
}

/** The last day due for sealing: it ended more than `afterDays` days before `now`. */
export function dueThrough(now: number, afterDays: number): string {
  return new Date((Math.floor(now / DAY_MS) - afterDays - 1) * DAY_MS).toISOString().slice(0, 10);
}

/**
 * Seals every unsealed day up to `through`, oldest first. Each chain's events of the day become
 * one bundle: checked while streamed, signed, PUT, read back and compared, then recorded. A day is
 * marked sealed (and its partition closed to new rows) only when all its bundles are recorded.
 * Everything is deterministic, so a run killed at any point and started again ends with exactly
 * one bundle per chain and day, with the same bytes. Returns undefined if another seal is running.
 */
export async function runSeal(deps: SealDeps, through: string): Promise<SealReport | undefined> {
  return withSealLock(deps.db, async () => {
    if (deps.archive instanceof S3Archive) await deps.archive.assertObjectLock();
    const report: SealReport = { days: [], bundles: 0, events: 0, waiting: [] };
    for (const day of await unsealedDays(deps.db, through)) {
      const chains = await chainsOnDay(deps.db, day);
      let ready = true;
      for (const chain of chains) {
        const sealed = await sealChainDay(deps, day, chain);
        if (sealed === 'waiting') {
          ready = false;
          break;
        }
        report.bundles += sealed;
        report.events += sealed ? chain.count : 0;
      }
      // Later days build on this one: stop at the first that cannot be completed.
      if (!ready) {
        report.waiting.push(day);
        deps.log.warn({ day }, 'day not sealed yet: its newest events are not under a signed checkpoint');
        break;
      }
      await markDaySealed(deps.db, day, chains.length);
      report.days.push(day);
      deps.log.info({ day, bundles: chains.length }, 'day sealed');
    }
    return report;
  });
}

/** Seals one chain's events of one day; 1 when a bundle was made, 0 when it existed already. */
async function sealChainDay(deps: SealDeps, day: string, chain: ChainDay): Promise<number | 'waiting'> {
  const { db, archive, keyring } = deps;
  const env = chain.environment_id;
  if (await sealOfDay(db, env, day)) return 0;
  const previous = await previousSeal(db, env, day);
  const startSize = previous?.last_seq ?? 0;
  if (chain.first_seq !== startSize + 1) {
    throw new Error(`chain ${env}: ${day} starts at seq ${chain.first_seq}, but its sealed bundles end at ${startSize}`);
  }
  // The bundle's checkpoint must agree with what was signed before: a later checkpoint must exist.
  const covering = await checkpointFrom(db, env, chain.last_seq);
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
    for (let from = chain.first_seq; from <= chain.last_seq; ) {
      const page = await eventsOnDay(db, env, day, from, PAGE);
      if (page.length === 0) throw new Error(`chain ${env}: events ${from} to ${chain.last_seq} of ${day} vanished while sealing`);
      for (const event of page) if (!lines.write(builder.add(event))) await once(lines, 'drain');
      from = page[page.length - 1]!.seq + 1;
      deps.onProgress?.({ day, chain: env, sealed: from - chain.first_seq, total: chain.count });
    }
    lines.end();
    await finished(lines);

    const root = builder.root;
    const later = await leaves(db, env, chain.last_seq + 1, covering.tree_size);
    const extended = appendLeaves(builder.endRange, later.map((l) => l.hash));
    if (!rangeRoot(extended).equals(covering.root)) {
      throw new Error(`chain ${env}: the events up to ${chain.last_seq} do not match the signed checkpoint at ${covering.tree_size}`);
    }
    const checkpoint = await checkpointNote(deps, chain, root, builder.endRange.hashes);
    const { manifestLine, manifest } = builder.finish({ checkpoint, key: keyring.current });
    const bundleFile = path.join(work, 'bundle');
    await writeFile(bundleFile, manifestLine);
    await pipeline(createReadStream(eventsFile), createWriteStream(bundleFile, { flags: 'a' }));
    const body = await fileBody(bundleFile);

    const key = bundleKey(chain.project_id, env, day);
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
      first_seq: chain.first_seq,
      last_seq: chain.last_seq,
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
    return 1;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The signed checkpoint at the bundle's last seq: the stored one, or a new one recorded now. */
async function checkpointNote(deps: SealDeps, chain: ChainDay, root: Buffer, range: Buffer[]): Promise<string> {
  const existing = await checkpointAt(deps.db, chain.environment_id, chain.last_seq);
  if (existing) return existing.note;
  const { current, origin } = deps.keyring;
  const note = signCheckpoint({ origin: chainOrigin(origin, chain.project_id, chain.environment_id), size: chain.last_seq, root }, current);
  // Archived like every checkpoint, before it is recorded (see runCheckpoints).
  await deps.archive.put(checkpointKey(chain.project_id, chain.environment_id, chain.last_seq), Buffer.from(note));
  await insertCheckpoint(deps.db, {
    environment_id: chain.environment_id,
    tree_size: chain.last_seq,
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
    await runSeal(deps, dueThrough(now(), afterDays));
  });
}
