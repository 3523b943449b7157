// The offline archive verifier's I/O (DESIGN.md "Verification", Offline): lists the archive, groups
// its objects by chain, hands each chain to the pure checks of ledger/verify-archive.ts, and on S3
// asks for each object's Object Lock retention. Needs no database and no server.
import os from 'node:os';
import { checkpointKey, parseBundleKey, parseCheckpointKey, parseTileKey, tileKey } from './layout.js';
import type { TileId } from '../ledger/tiles.js';
import type { VerifierKey } from '../ledger/keys.js';
import {
  archiveScope,
  checkHere,
  mapLimited,
  verifyArchivedChain,
  type ArchiveFailure,
  type ChainObjects,
  type ChainVerification,
  type DayRange,
  type EventTally,
  type ReadObject,
  type Tally,
} from '../ledger/verify-archive.js';
import { readOrWhyNot, type Archive, type Retention } from './archive.js';
import { BundleThreads } from './bundle-threads.js';

export interface VerifyArchiveOptions extends DayRange {
  verifiers: readonly VerifierKey[];
  /** Only this chain, as project/environment. */
  chain?: string | undefined;
  /**
   * When set (S3), every bundle, checkpoint and tile checked must be under Object Lock retention
   * (COMPLIANCE or GOVERNANCE) until at least this many days after it was written.
   */
  retentionDays?: number | undefined;
  /** Threads that check bundles; one per core by default. Each holds a whole bundle in memory. */
  threads?: number | undefined;
}

export interface ArchiveVerification {
  location: string;
  requested: { from: string | null; to: string | null; chain: string | null };
  /** The first and last day of the bundles checked; null when there were none. */
  found: { from: string; to: string } | null;
  bundles: Tally;
  events: EventTally;
  /** The notes archived and checked, and those the bundles imply that are missing (in total, not valid). */
  checkpoints: Tally & { missing: number };
  failures: ArchiveFailure[];
  /** Whether the chains checked hold a bundle: false while no day is sealed yet (archiveScope). */
  sealed: boolean;
  /** No failure at all: bundles checked, or, with no day sealed yet, the chains' checkpoints. */
  ok: boolean;
}

const DAY_MS = 86_400_000;
const RETENTION_BATCH = 32;

/** Verifies every chain of the archive (or one) within the day range; see verifyArchivedChain. */
export async function verifyArchive(archive: Archive, options: VerifyArchiveOptions): Promise<ArchiveVerification> {
  const { chains, strays } = groupByChain(await archive.list('bundles/'), await archive.list('checkpoints/'), await archive.list('tlog/'));
  const selected = [...chains.values()].filter((chain) => options.chain === undefined || chainName(chain) === options.chain);
  const read: ReadObject = (key, into) => readOrWhyNot(archive, key, into);
  // A thread per core checks bundles, a bundle at a time each; chains are walked a few at once so
  // that every thread has work whether the archive holds many chains or one long one.
  const bundles = selected.reduce((sum, chain) => sum + chain.bundles.length, 0);
  const threads = Math.min(options.threads ?? os.availableParallelism(), bundles);
  const checker = threads > 1 ? new BundleThreads(options.verifiers, threads) : checkHere(options.verifiers);
  let results: ChainVerification[];
  try {
    results = await mapLimited(selected, threads + 1, (chain) => verifyArchivedChain(chain, options, read, options.verifiers, checker));
  } finally {
    if (checker instanceof BundleThreads) await checker.close();
  }

  const failures = [
    ...(options.chain === undefined ? strays.map(strayFailure) : []),
    ...results.flatMap((result) => result.failures),
    ...(options.retentionDays === undefined ? [] : await retentionFailures(archive, results, options.retentionDays)),
  ];
  const days = results.flatMap((result) => result.bundles.map((bundle) => bundle.day)).sort();
  const scope = archiveScope(archive.location, options, selected, days.length);
  if (scope.failure) failures.push(scope.failure);
  const faulty = new Set(failures.map((failure) => failure.key));
  const missingNotes = failures.filter((failure) => failure.kind === 'missing-checkpoint').map((failure) => failure.key!);
  const tally = (keys: string[]): Tally => ({ valid: keys.filter((key) => !faulty.has(key)).length, total: keys.length });
  return {
    location: archive.location,
    requested: { from: options.from ?? null, to: options.to ?? null, chain: options.chain ?? null },
    found: days.length ? { from: days[0]!, to: days.at(-1)! } : null,
    bundles: tally(results.flatMap((result) => result.bundles.map((bundle) => bundle.key))),
    events: {
      valid: results.reduce((sum, { events }) => sum + events.valid, 0),
      total: results.reduce((sum, { events }) => sum + events.total, 0),
      uncountedBundles: results.reduce((sum, { events }) => sum + events.uncountedBundles, 0),
    },
    checkpoints: { ...tally([...results.flatMap((result) => result.checkpoints.map((checkpoint) => checkpoint.key)), ...missingNotes]), missing: missingNotes.length },
    failures,
    sealed: scope.sealed,
    ok: failures.length === 0,
  };
}

/** The archive's objects by chain; keys under bundles/, checkpoints/ or tlog/ that are not what the writers make are strays. */
function groupByChain(bundleKeys: string[], checkpointKeys: string[], tileKeys: string[]): { chains: Map<string, ChainObjects>; strays: string[] } {
  const chains = new Map<string, ChainObjects>();
  const strays: string[] = [];
  const chainOf = (project: string, environment: string) => {
    const name = `${project}/${environment}`;
    const noteKey = (size: number) => checkpointKey(project, environment, size);
    const hashTileKey = (tile: TileId) => tileKey(project, environment, tile);
    if (!chains.has(name)) chains.set(name, { project, environment, bundles: [], checkpoints: [], checkpointKey: noteKey, tiles: [], tileKey: hashTileKey });
    return chains.get(name)!;
  };
  // A key must be exactly what the writers make: the parsers accept nothing else.
  for (const key of bundleKeys) {
    const bundle = parseBundleKey(key);
    if (bundle) chainOf(bundle.project, bundle.environment).bundles.push({ key, day: bundle.day, part: bundle.part });
    else strays.push(key);
  }
  for (const key of checkpointKeys) {
    const note = parseCheckpointKey(key);
    if (note) chainOf(note.project, note.environment).checkpoints.push({ key, size: note.size });
    else strays.push(key);
  }
  for (const key of tileKeys) {
    const tile = parseTileKey(key);
    // Tiles of a chain without bundles or notes are checked with nothing: strays too.
    if (tile && chains.has(`${tile.project}/${tile.environment}`)) chainOf(tile.project, tile.environment).tiles.push({ key, tile: tile.tile });
    else strays.push(key);
  }
  return { chains: new Map([...chains].sort(([a], [b]) => (a < b ? -1 : 1))), strays };
}

function chainName(chain: ChainObjects): string {
  return `${chain.project}/${chain.environment}`;
}

function strayFailure(key: string): ArchiveFailure {
  const reason = 'not a bundle, checkpoint or tile the ledger writes (unexpected key)';
  return { kind: 'archive', chain: null, day: null, seq: null, key, reason };
}

/**
 * Object Lock of every object checked. When an object was written is not in the Retention the
 * archive reports, so a lower bound stands in: a bundle is sealed only after its day ended, and a
 * checkpoint is signed after its last event, received no earlier than the day of the bundle holding
 * it (or the last before it). A tile is archived with a checkpoint covering it: a full tile no
 * earlier than the day of the bundle completing it. With no bundle to date it, a checkpoint or a
 * tile must only be locked.
 */
async function retentionFailures(archive: Archive, results: ChainVerification[], days: number): Promise<ArchiveFailure[]> {
  const writtenFrom = (day: string | null) => (day === null ? undefined : startOfDay(day));
  const objects = results.flatMap(({ chain, bundles, checkpoints, tiles }) => [
    ...bundles.map(({ key, day }) => ({ at: { chain, day, seq: null, key }, writtenAfter: startOfDay(day) + DAY_MS })),
    ...checkpoints.map(({ key, day, size }) => ({ at: { chain, day, seq: size, key }, writtenAfter: writtenFrom(day) })),
    ...tiles.map(({ key, day, seq }) => ({ at: { chain, day, seq, key }, writtenAfter: writtenFrom(day) })),
  ]);
  const problems = await mapLimited(objects, RETENTION_BATCH, async ({ at, writtenAfter }) => {
    const reason = retentionProblem(await archive.retention(at.key), writtenAfter, days);
    return reason === undefined ? [] : [{ kind: 'retention' as const, ...at, reason }];
  });
  return problems.flat();
}

function retentionProblem(retention: Retention | undefined, writtenAfter: number | undefined, days: number): string | undefined {
  if (retention === undefined) return 'the object vanished while being checked';
  if (retention.mode !== 'COMPLIANCE' && retention.mode !== 'GOVERNANCE') return 'not under Object Lock retention';
  if (retention.retainUntil === undefined) return `under ${retention.mode} Object Lock without a retain-until date`;
  if (writtenAfter === undefined) return undefined;
  const required = new Date(writtenAfter + days * DAY_MS);
  if (retention.retainUntil >= required) return undefined;
  return (
    `retained (${retention.mode}) only until ${retention.retainUntil.toISOString()}: ${days} day(s) after it was ` +
    `written, no earlier than ${new Date(writtenAfter).toISOString()}, is ${required.toISOString()}`
  );
}

function startOfDay(day: string): number {
  return Date.parse(`${day}T00:00:00Z`);
}
