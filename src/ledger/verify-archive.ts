// Offline verification of one chain's archived bundles and checkpoint notes (DESIGN.md
// "Verification", Offline): no database, no server. Objects come through a reading function, so
// this module does no I/O and knows nothing of the archive's key layout (src/archive/verify.ts lists,
// reads and checks Object Lock).
import { BufferPool, type ReadInto } from './buffer-pool.js';
import {
  BundleError,
  manifestSha256,
  parseBundleHead,
  verifyBundle,
  type BundleFailure,
  type BundleManifest,
  type PreviousBundle,
  type SignedManifest,
} from './bundle.js';
import { treeMismatch } from './chain-check.js';
import { CheckpointError, openChainCheckpoint, type ChainName, type Checkpoint } from './checkpoint.js';
import type { VerifierKey } from './keys.js';
import { NoteError } from './note.js';
import { HASH_SIZE, hashViews } from './hash.js';
import {
  extendTails,
  edgeTiles,
  TILE_BYTES,
  TILE_WIDTH,
  tileBytes,
  tileFirstSeq,
  tileHashes,
  tilesAtLevel,
  treeRootFromTiles,
  TileNodes,
  type TileId,
  type TileTails,
} from './tiles.js';

/**
 * The object's bytes; or, when they cannot be read (gone since listed, too large), why not. With
 * `into`, the bytes may be read into the memory it gives for their size (at least that many bytes),
 * which a bundle's check reuses (BundleChecker.memory).
 */
export type ReadObject = (key: string, into?: ReadInto) => Promise<Buffer | string>;

export interface BundleObject {
  key: string;
  /** The UTC day its key names. */
  day: string;
  /** Which of the day's bundles its key names: 1 for the first (bounded bundles: a day may take several). */
  part: number;
}

/** A bundle as its file is named: the day, then `.part` after the first (2024-03-02, 2024-03-02.2, ...). */
function bundleName({ day, part }: BundleObject): string {
  return part === 1 ? day : `${day}.${part}`;
}

/** Bundles in key order: by day, then part. */
function compareBundles(a: BundleObject, b: BundleObject): number {
  return a.day < b.day ? -1 : a.day > b.day ? 1 : a.part - b.part;
}

export interface CheckpointObject {
  key: string;
  /** The tree size its key names. */
  size: number;
}

/** Everything the archive holds of one chain, whatever the range checked. */
export interface ChainObjects {
  project: string;
  environment: string;
  bundles: BundleObject[];
  checkpoints: CheckpointObject[];
  /** The key this chain's checkpoint note of tree size `size` has, or would have (the layout is the caller's). */
  checkpointKey(size: number): string;
  /** The chain's archived hash tiles (C2SP tlog-tiles), full and partial. */
  tiles: TileObject[];
  /** The key the chain's tile has, or would have. */
  tileKey(tile: TileId): string;
}

export interface TileObject {
  key: string;
  tile: TileId;
}

/** Days of bundles to check, inclusive; unset ends are open. */
export interface DayRange {
  from?: string | undefined;
  to?: string | undefined;
}

/**
 * bundle: a bundle object is wrong (seq names the event when known); missing: events in no bundle;
 * checkpoint: a checkpoint note is wrong; missing-checkpoint: a note the archive's bundles imply
 * is not there; tile: an archived hash tile differs from the bundles' events, or a full one they
 * complete is missing (seq: the first event it covers); retention: an object is not locked as long
 * as required; archive: the archive as a whole.
 */
export type FailureKind = 'bundle' | 'missing' | 'checkpoint' | 'missing-checkpoint' | 'tile' | 'retention' | 'archive';

export interface ArchiveFailure {
  kind: FailureKind;
  /** project/environment, or null for the archive as a whole. */
  chain: string | null;
  /** The day of the bundle concerned: for a checkpoint, the bundle holding (or last before) its size. */
  day: string | null;
  seq: number | null;
  /** The object at fault; null when there is none (missing events, the archive). */
  key: string | null;
  reason: string;
}

export interface Tally {
  valid: number;
  total: number;
}

export interface CheckedCheckpoint extends CheckpointObject {
  /** The day of the bundle holding event `size`, or of the last bundle before it; null when none. */
  day: string | null;
}

export interface CheckedTile extends TileObject {
  /** The first seq it covers. */
  seq: number;
  /**
   * A day it was written no earlier than: for a full tile the bundles complete, that of the bundle
   * holding its last event (a tile is archived with a checkpoint covering it); null when not known.
   */
  day: string | null;
}

export interface ChainVerification {
  chain: string;
  /** The bundles checked, in day order. */
  bundles: BundleObject[];
  checkpoints: CheckedCheckpoint[];
  /** The chain's archived tiles, when they were checked (the check started at seq 1); else none. */
  tiles: CheckedTile[];
  /**
   * Events of the bundles checked, as their manifests count them. An event is valid when its
   * bundle verified as a whole (signature, root, continuity) and no failure names its seq.
   */
  events: EventTally;
  failures: ArchiveFailure[];
}

/** Events counted, and the bundles whose events are not: they could not be read or parsed, so no manifest counts them. */
export interface EventTally extends Tally {
  uncountedBundles: number;
}

// Checkpoint notes are small and numerous (one a minute per busy chain): read this many at a time.
const CHECKPOINT_BATCH = 64;
// Bundles started (being checked, or checked) ahead of the oldest unfinished one, whose check has
// not ended: at most this many threads work at once on one chain, and at most 16 checks' leaf
// hashes (3.2 MB each at 100,000 events) wait behind a slow one.
const FINISH_AHEAD = 16;
// Tiles (8 KB) read at a time.
const TILE_BATCH = 32;
// Levels of tiles rebuilt: 256^7 = 2^56 leaves, beyond any seq.
const TILE_LEVELS = 7;

/** Where the range starts: the bundle before it (its day, and its last seq, null if unreadable), or seq 0. */
interface RangeStart {
  day: string | null;
  lastSeq: number | null;
}

interface BundleRecord {
  object: BundleObject;
  /** Null when the bundle could not be read or parsed. */
  manifest: BundleManifest | null;
  failures: BundleFailure[];
}

/** What checking one bundle's bytes gives: verifyParsedBundle's failures, roots, leaf hashes and tile-level nodes. */
export interface BundleCheck {
  failures: BundleFailure[];
  roots: Map<number, Buffer>;
  /** The leaf hashes end to end, 32 bytes an event: one Buffer, not one object a leaf. */
  leaves: Buffer;
  /** The roots of the tiles the bundle's events complete, as its tree computed them. */
  nodes: TileNodes;
  /**
   * Set when the event lines could not be split (parseBundle: an empty line): the bundle is then
   * unread, as one whose manifest cannot be read is, and the other fields are empty.
   */
  unreadable?: BundleFailure | undefined;
}

/**
 * A bundle checked from its bytes, on whatever thread runs it: split into lines and verified
 * (verifyBundle). The lines are framed here rather than when the bundle is first read,
 * so that the bytes are passed over once, on the thread that checks them.
 */
export function checkBundleBytes(bytes: Buffer, verifiers: readonly VerifierKey[], previous: PreviousBundle | undefined, rootSizes: readonly number[]): BundleCheck {
  const { manifest, failures, roots, leaves, nodes } = verifyBundle(bytes, verifiers, previous, rootSizes);
  // verifyBundle reads no manifest only when parseBundle refused the bundle: its one failure says why.
  return { failures, roots, leaves, nodes, unreadable: manifest === null ? failures[0] : undefined };
}

/**
 * Runs verifyParsedBundle over a bundle's bytes, the bulk of an archive check: here, or on other
 * threads. `admit` resolves when another bundle may be read, which bounds the bundles in memory;
 * the returned function gives the place back. `memory` gives a Buffer of `size` bytes to read a
 * bundle into: memory of bundles checked before, reused once their check ends (BufferPool).
 */
export interface BundleChecker {
  admit(): Promise<() => void>;
  memory(size: number): Buffer;
  check(bytes: Buffer, previous: PreviousBundle | undefined, rootSizes: readonly number[]): Promise<BundleCheck>;
}

/** The checker that runs each check on this thread, one bundle at a time. */
export function checkHere(verifiers: readonly VerifierKey[]): BundleChecker {
  const buffers = new BufferPool(1);
  return {
    admit: async () => () => undefined,
    memory: (size) => buffers.take(size),
    check: async (bytes, previous, rootSizes) => {
      const check = checkBundleBytes(bytes, verifiers, previous, rootSizes);
      if (buffers.owns(bytes)) buffers.give(bytes.buffer as ArrayBuffer);
      return check;
    },
  };
}

/** A bundle read, parsed and being checked; or the failure that stopped it being read. */
type StartedBundle = { object: BundleObject } & (
  | { manifest: BundleManifest; manifestSha256: string; previous: PreviousBundle | undefined; checked: Promise<BundleCheck>; settled: boolean }
  | { manifest: null; failure: BundleFailure }
);

/** Whether finishing the bundle would not wait: its check has ended, or it was never started. */
function isChecked(bundle: StartedBundle): boolean {
  return bundle.manifest === null || bundle.settled;
}

/**
 * Checks a chain's bundles within `range`, in day order: each with verifyBundle against the bundle
 * its previous_manifest_sha256 names (the one before the range too); that the object's key names its
 * manifest's chain and day; that the bundles cover every seq from 1 (or from the bundle before the
 * range) without gap or overlap; and every checkpoint note from the first bundle checked on (up to
 * the last one when later bundles exist): its signature, origin and size, and its root against the
 * tree of the bundle holding that size. The note each bundle checked signs (at its last_seq) must
 * be archived: the seal job archives it before the bundle, and the next bundle's consistency
 * proof starts from it.
 */
export async function verifyArchivedChain(
  chain: ChainObjects,
  range: DayRange,
  read: ReadObject,
  verifiers: readonly VerifierKey[],
  checker: BundleChecker = checkHere(verifiers),
): Promise<ChainVerification> {
  const walk = new ChainWalk(chain, read, verifiers, checker);
  const sorted = [...chain.bundles].sort(compareBundles);
  const inRange = (day: string) => (range.from === undefined || day >= range.from) && (range.to === undefined || day <= range.to);
  const checked = sorted.filter(({ day }) => inRange(day));
  const before = range.from === undefined ? undefined : sorted.filter(({ day }) => day < range.from!).at(-1);
  const laterBundles = range.to !== undefined && sorted.some(({ day }) => day > range.to!);

  const start: RangeStart = before ? await walk.readBefore(before) : { day: null, lastSeq: 0 };
  // Tiles are rebuilt from the events, so only from seq 1: a check of a later range starts none.
  if (before === undefined) walk.startTiles();
  await walk.checkBundles(checked);
  await walk.finishTiles();
  await walk.checkPending();
  walk.checkCoverage(start);
  walk.checkImpliedCheckpoints();
  const end = laterBundles ? walk.lastSeq(start.lastSeq ?? 0) : Infinity;
  const inScope = chain.checkpoints.filter(({ size }) => size > (start.lastSeq ?? 0) && size <= end);
  const checkpoints = await walk.checkCheckpoints(inScope, start);
  return { chain: walk.name, bundles: checked, checkpoints, tiles: walk.tiles(), events: walk.events(), failures: walk.sortedFailures() };
}

/** What the archive (or the chain asked for) holds as a whole: scopeFailure's answer. */
export interface ArchiveScope {
  /** Why the archive as a whole fails: it holds nothing of the ledger, or no bundle in the day range. */
  failure: ArchiveFailure | undefined;
  /** Whether a chain checked has a bundle: false while nothing is sealed (a day is sealed after it ends). */
  sealed: boolean;
}

/**
 * Judges the archive as a whole from the chains selected (`chains`, all the archive holds, or the
 * one asked for) and the bundles checked within the range: no chain at all is a failure (the place
 * holds no auditledger archive); chains with bundles but none in the range is one; chains with
 * signed checkpoints (and tiles) but no bundle yet are not, since sealing follows a day's end.
 */
export function archiveScope(location: string, scope: DayRange & { chain?: string | undefined }, chains: readonly ChainObjects[], bundlesChecked: number): ArchiveScope {
  const { from, to, chain } = scope;
  const sealed = chains.some((objects) => objects.bundles.length > 0);
  const failure = (reason: string): ArchiveFailure => ({ kind: 'archive', chain: chain ?? null, day: null, seq: null, key: null, reason });
  if (chains.length === 0) {
    const what = chain ? `no checkpoint or bundle of chain ${chain}` : 'no auditledger archive (no checkpoint or bundle)';
    return { failure: failure(`${location} holds ${what}`), sealed };
  }
  if (sealed && bundlesChecked === 0) {
    const where = [chain && `of chain ${chain}`, from && `from ${from}`, to && `to ${to}`].filter(Boolean).join(' ');
    return { failure: failure(`no bundles ${where ? `${where} ` : ''}in ${location}`), sealed };
  }
  return { failure: undefined, sealed };
}

/**
 * Runs `task` on every item, at most `size` at once, so that many small requests neither crawl nor
 * flood. Results come in item order. When a task throws, the map throws its error at once and no
 * further task starts; those already running end on their own (waiting for them could wait for
 * ever, should they wait on something the failed task was to give back).
 */
export async function mapLimited<T, R>(items: readonly T[], size: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const runner = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = await task(items[i]!);
      } catch (error) {
        next = items.length;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(size, items.length) }, runner));
  return results;
}

/** The state of one chain's check: the manifests seen, the tree roots at checkpoint sizes, the failures. */
class ChainWalk {
  readonly name: string;
  private readonly chain: ChainName;
  private readonly records: BundleRecord[] = [];
  private readonly failures: ArchiveFailure[] = [];
  private readonly bySha = new Map<string, PreviousBundle>();
  private readonly byLastSeq = new Map<number, PreviousBundle>();
  /** Bundles checked alone because the bundle they name had not been seen yet (misnamed, or missing). */
  private readonly pending = new Set<BundleRecord>();
  /** The tree root at each checkpoint size, from the bundles that verified. */
  private readonly roots = new Map<number, Buffer>();
  /** The sizes of the chain's archived checkpoints, ascending. */
  private readonly checkpointSizes: number[];
  private readonly checkpointKey: (size: number) => string;
  /** The chain's archived tiles by `level/index`, each width there is. */
  private readonly tileObjects = new Map<string, TileObject[]>();
  private readonly tileKey: (tile: TileId) => string;
  /** Nothing of the chain is sealed yet: its checkpoints' roots are checked against its tiles instead. */
  private readonly unsealed: boolean;
  /** Tiles found missing or unreadable while rebuilding roots (unsealed), each reported once. */
  private readonly badTiles = new Set<string>();
  /** The tree rebuilt from the bundles' leaves while they verify and continue each other from seq 1; undefined when not checking tiles. */
  private tree: { size: number; tails: TileTails; day: string | null } | undefined;
  /** Whether the tiles were checked, and the day each full tile was completed on, by key. */
  private tilesChecked = false;
  private readonly completedOn = new Map<string, string>();

  constructor(
    chain: ChainObjects,
    private readonly read: ReadObject,
    private readonly verifiers: readonly VerifierKey[],
    private readonly checker: BundleChecker,
  ) {
    this.name = `${chain.project}/${chain.environment}`;
    this.chain = { project: chain.project, environment: chain.environment };
    this.checkpointSizes = chain.checkpoints.map(({ size }) => size).sort((a, b) => a - b);
    this.checkpointKey = chain.checkpointKey;
    this.tileKey = chain.tileKey;
    this.unsealed = chain.bundles.length === 0;
    for (const object of chain.tiles) {
      const at = `${object.tile.level}/${object.tile.index}`;
      this.tileObjects.set(at, [...(this.tileObjects.get(at) ?? []), object]);
    }
  }

  /**
   * Starts checking the archived tiles against the events, as the bundles from seq 1 are checked.
   * A chain with no tiles at all (archived before tiles were, and not backfilled) is not checked.
   */
  startTiles(): void {
    this.tilesChecked = true;
    if (this.tileObjects.size) this.tree = { size: 0, tails: Array.from({ length: TILE_LEVELS }, () => []), day: null };
  }

  /** The chain's archived tiles when they were checked (startTiles), each dated when a bundle completed it. */
  tiles(): CheckedTile[] {
    if (!this.tilesChecked) return [];
    return [...this.tileObjects.values()].flat().map(({ key, tile }) => ({ key, tile, seq: tileFirstSeq(tile), day: this.completedOn.get(key) ?? null }));
  }

  /** The partial tiles at the edge of the tree the bundles gave, as far as it reaches them. */
  async finishTiles(): Promise<void> {
    const tree = this.tree;
    if (!tree) return;
    const edge = tree.tails.flatMap((tail, level) => (tail.length ? [{ level, index: tilesAtLevel(tree.size, level).full, bytes: tileBytes(tail) }] : []));
    await mapLimited(edge, TILE_BATCH, ({ level, index, bytes }) => this.checkTile(tree.day, level, index, bytes));
  }

  /**
   * Feeds a bundle's leaves to the rebuilt tree and checks the archived tiles its events complete.
   * A bundle that failed, or does not continue the tree, ends the tile check: what follows cannot
   * be rebuilt from events known good (its failures are reported with the bundles).
   */
  private async feedTiles(day: string, manifest: BundleManifest, check: BundleCheck): Promise<void> {
    if (!this.tree) return;
    if (check.failures.length || manifest.first_seq !== this.tree.size + 1) {
      this.tree = undefined;
      return;
    }
    // A bundle that verified continues the tree: its nodes are this tree's, hashed once on its thread.
    // TILE_WIDTH leaves at a time, each tile completed made bytes at once: a view per leaf for the
    // whole bundle, held through the tiles' reads, was about 40% of this thread's time collecting garbage.
    let { size, tails } = this.tree;
    const completed: { level: number; index: number; bytes: Buffer }[] = [];
    for (let at = 0; at < check.leaves.length; at += TILE_BYTES) {
      const leaves = hashViews(check.leaves, at / HASH_SIZE, Math.min(TILE_BYTES, check.leaves.length - at) / HASH_SIZE);
      const grown = extendTails(size, tails, leaves, check.nodes);
      completed.push(...grown.tiles.map(({ level, index, hashes }) => ({ level, index, bytes: tileBytes(hashes) })));
      ({ tails } = grown);
      size += leaves.length;
    }
    this.tree = { size: manifest.last_seq, tails, day };
    await mapLimited(completed, TILE_BATCH, ({ level, index, bytes }) => this.checkTile(day, level, index, bytes));
  }

  /**
   * Checks the archived objects of tile level/index against `bytes`, what the events give for its
   * first bytes.length / 32 hashes: each object of that width or less must be their prefix. A full
   * tile the events complete must be archived.
   */
  private async checkTile(day: string | null, level: number, index: number, bytes: Buffer): Promise<void> {
    const objects = this.tileObjects.get(`${level}/${index}`) ?? [];
    const seq = tileFirstSeq({ level, index });
    if (bytes.length === TILE_BYTES && !objects.some(({ tile }) => tile.width === TILE_WIDTH)) {
      const reason = 'the full tile is not in the archive, though the bundles complete it and the chain has tiles';
      this.fail('tile', day, seq, this.tileKey({ level, index, width: TILE_WIDTH }), reason);
    }
    for (const { key, tile } of objects) {
      if (tile.width * HASH_SIZE > bytes.length) continue; // beyond the sealed events: nothing to compare with
      // Full, it was completed by the bundle of `day` (feedTiles): its last event was received that day.
      if (tile.width === TILE_WIDTH && day !== null) this.completedOn.set(key, day);
      const stored = await this.read(key);
      if (typeof stored === 'string') this.fail('tile', day, seq, key, stored);
      else if (!stored.equals(bytes.subarray(0, tile.width * HASH_SIZE))) this.fail('tile', day, seq, key, "the tile's hashes are not those of the bundles' events");
    }
  }

  /** The bundle just before the range: only its manifest, to continue from. lastSeq is null when unreadable. */
  async readBefore(object: BundleObject): Promise<RangeStart> {
    const bundle = parseOrFailure(await this.read(object.key));
    if (!('manifest' in bundle)) return { day: object.day, lastSeq: null };
    this.remember({ manifest: bundle.manifest, manifestSha256: manifestSha256(bundle.manifestLine) });
    return { day: object.day, lastSeq: bundle.manifest.last_seq };
  }

  /**
   * Checks the bundles in day order. Reading and parsing go one at a time, so that each bundle
   * finds the ones before it; the checks themselves overlap as far as the checker admits.
   */
  async checkBundles(objects: readonly BundleObject[]): Promise<void> {
    const started: StartedBundle[] = [];
    for (const object of objects) {
      const bundle = await this.start(object);
      if (bundle.manifest !== null) this.remember({ manifest: bundle.manifest, manifestSha256: bundle.manifestSha256 });
      started.push(bundle);
      // Finished in order, as soon as checked or once a few are ahead: what a check returns (its
      // leaf hashes, for the tiles) is held only while the checks before it run, not for the chain.
      while (started.length > FINISH_AHEAD || (started[0] && isChecked(started[0]))) await this.finish(started.shift()!);
    }
    for (const bundle of started) await this.finish(bundle);
  }

  /** Checks each pending bundle against its predecessor if that turned up later in day order. */
  async checkPending(): Promise<void> {
    for (const record of this.pending) {
      if (!this.bySha.has(record.manifest!.previous_manifest_sha256!)) continue;
      const bundle = await this.start(record.object);
      record.failures = bundle.manifest === null ? [bundle.failure] : (await bundle.checked).failures;
    }
  }

  /** Gaps (events in no bundle) and overlaps (events in two), in seq order from the start. */
  checkCoverage(start: RangeStart): void {
    const parsed = this.records.filter((r): r is BundleRecord & { manifest: BundleManifest } => r.manifest !== null);
    const unreadable = this.records.filter((r) => r.manifest === null).map((r) => r.object);
    let next = start.lastSeq === null ? null : start.lastSeq + 1;
    let previous: BundleObject | null = start.day === null ? null : { key: '', day: start.day, part: Infinity };
    for (const { object, manifest } of parsed.sort((a, b) => a.manifest.first_seq - b.manifest.first_seq)) {
      const { first_seq: first, last_seq: last } = manifest;
      // Events in an unreadable bundle are reported with it, not again as missing.
      const explained = unreadable.some((u) => (previous === null || compareBundles(u, previous) > 0) && compareBundles(u, object) < 0);
      if (next !== null && first > next && !explained) {
        const events = first - 1 === next ? `event ${next} is` : `events ${next}..${first - 1} are`;
        this.fail('missing', object.day, next, null, `${events} in no bundle: a bundle before ${bundleName(object)} is missing`);
      } else if (next !== null && first < next) {
        this.fail('bundle', object.day, first, object.key, `events ${first}..${Math.min(last, next - 1)} are also in an earlier bundle`);
      }
      // Across days checkName finds it (the manifest names its day); within a day only the order tells.
      if (previous?.key && previous.day === object.day && previous.part > object.part) {
        this.fail('bundle', object.day, first, object.key, `its events follow those of ${previous.key}, a later key: the day's bundles are out of order`);
      }
      next = Math.max(next ?? 0, last + 1);
      previous = object;
    }
  }

  /** A note at each readable bundle's last_seq: the checkpoint its manifest signs. */
  checkImpliedCheckpoints(): void {
    const archived = new Set(this.checkpointSizes);
    for (const { object, manifest } of this.records) {
      if (!manifest || archived.has(manifest.last_seq)) continue;
      const size = manifest.last_seq;
      const reason = `the checkpoint note at tree size ${size}, which the bundle's manifest signs, is not in the archive`;
      this.fail('missing-checkpoint', object.day, size, this.checkpointKey(size), reason);
    }
  }

  /** The last seq the bundles checked cover, or `fallback` when none could be read. */
  lastSeq(fallback: number): number {
    return Math.max(fallback, ...this.records.map((r) => r.manifest?.last_seq ?? 0));
  }

  async checkCheckpoints(objects: CheckpointObject[], start: RangeStart): Promise<CheckedCheckpoint[]> {
    const checkpoints = this.withDays(objects, start.day);
    await mapLimited(checkpoints, CHECKPOINT_BATCH, async (checkpoint) => {
      for (const reason of await this.checkpointProblems(checkpoint)) {
        this.fail('checkpoint', checkpoint.day, checkpoint.size, checkpoint.key, reason);
      }
    });
    return checkpoints;
  }

  events(): EventTally {
    let valid = 0;
    let total = 0;
    let uncountedBundles = 0;
    for (const { manifest, failures } of this.records) {
      if (!manifest) {
        uncountedBundles++;
        continue;
      }
      total += manifest.count;
      if (failures.some((f) => f.seq === null)) continue;
      const inRange = (seq: number | null): seq is number => seq !== null && seq >= manifest.first_seq && seq <= manifest.last_seq;
      valid += manifest.count - new Set(failures.map((f) => f.seq).filter(inRange)).size;
    }
    return { valid, total, uncountedBundles };
  }

  sortedFailures(): ArchiveFailure[] {
    const bundleFailures = this.records.flatMap(({ object, failures }) =>
      failures.map(({ seq, reason }) => this.failure('bundle', object.day, seq, object.key, reason)),
    );
    // Stable: within a day and seq, the order found.
    return [...bundleFailures, ...this.failures].sort((a, b) => compareNullable(a.day, b.day) || compareNullable(a.seq, b.seq));
  }

  /** Reads and parses a bundle, and starts its check against the bundle before it, when that has been seen. */
  private async start(object: BundleObject): Promise<StartedBundle> {
    const release = await this.checker.admit();
    try {
      const bytes = await this.read(object.key, (size) => this.checker.memory(size));
      const bundle = parseOrFailure(bytes);
      if (!('manifest' in bundle)) {
        // Nothing to check: its place goes to the next bundle at once.
        release();
        return { object, manifest: null, failure: bundle };
      }
      const { manifest } = bundle;
      const previous = this.previousOf(manifest);
      const rootSizes = this.checkpointSizes.filter((size) => size >= manifest.first_seq && size <= manifest.last_seq);
      // Hashed before the check: a checker on another thread may take the bytes away.
      const sha256 = manifestSha256(bundle.manifestLine);
      const started = { object, manifest, manifestSha256: sha256, previous, checked: this.checker.check(bytes as Buffer, previous, rootSizes), settled: false };
      const settle = () => {
        started.settled = true;
        release();
      };
      started.checked.then(settle, settle);
      return started;
    } catch (error) {
      release();
      throw error;
    }
  }

  private async finish(bundle: StartedBundle): Promise<void> {
    const { object, manifest } = bundle;
    if (manifest === null) {
      this.records.push({ object, manifest, failures: [bundle.failure] });
      return;
    }
    const check = await bundle.checked;
    if (check.unreadable) {
      this.records.push({ object, manifest: null, failures: [check.unreadable] });
      return;
    }
    const { failures, roots } = check;
    await this.feedTiles(object.day, manifest, check);
    const record = { object, manifest, failures };
    this.records.push(record);
    // Checked alone for now: the bundle it names may come later in day order (a misnamed one).
    if (bundle.previous === undefined && manifest.previous_manifest_sha256 !== null) this.pending.add(record);
    // The tree root at each archived checkpoint size within a verified bundle.
    if (failures.length === 0) for (const [size, root] of roots) this.roots.set(size, root);
    this.checkName(object, manifest);
  }

  /** The bundle this one continues: the one it names, else the one ending just before it (whose mismatch verifyBundle reports). */
  private previousOf(manifest: BundleManifest): PreviousBundle | undefined {
    if (manifest.previous_manifest_sha256 === null) return undefined;
    return this.bySha.get(manifest.previous_manifest_sha256) ?? this.byLastSeq.get(manifest.first_seq - 1);
  }

  private remember(bundle: PreviousBundle): void {
    this.bySha.set(bundle.manifestSha256, bundle);
    this.byLastSeq.set(bundle.manifest.last_seq, bundle);
  }

  /** The object's key must name the chain and day its signed manifest states: a renamed or swapped bundle is caught here. */
  private checkName(object: BundleObject, manifest: BundleManifest): void {
    const chain = `${manifest.project}/${manifest.environment}`;
    if (chain !== this.name) this.fail('bundle', object.day, null, object.key, `the object holds a bundle of chain ${chain}`);
    if (manifest.partition !== object.day) {
      this.fail('bundle', object.day, null, object.key, `the object holds the bundle of ${manifest.partition}, not of ${object.day}`);
    }
  }

  private async checkpointProblems(object: CheckpointObject): Promise<string[]> {
    const note = await this.read(object.key);
    if (typeof note === 'string') return [note];
    let checkpoint: Checkpoint;
    try {
      checkpoint = openChainCheckpoint(note, this.verifiers, this.chain).checkpoint;
    } catch (error) {
      if (error instanceof NoteError || error instanceof CheckpointError) return [error.message];
      throw error;
    }
    // The root of the bundles' tree at its size, when a verified bundle reaches it (treeMismatch).
    const mismatch = treeMismatch(checkpoint, object.size, this.roots.get(object.size));
    if (mismatch?.field === 'size') return [`the note is of tree size ${checkpoint.size}, its key names ${object.size}`];
    if (mismatch) return [`its root is not the root of the bundle's tree at size ${object.size}: the ledger signed two different histories`];
    const tiles = this.unsealed && this.tileObjects.size && object.size > 0 ? await this.rootFromTiles(object.size) : undefined;
    const fromTiles = tiles && treeMismatch(checkpoint, object.size, tiles.root);
    if (fromTiles) return [`its root is not that of the archived tiles at size ${object.size} (expected ${fromTiles.expected}, calculated ${fromTiles.found})`];
    return [];
  }

  /**
   * RFC 9162 root of the tree of `size` leaves from the chain's archived tiles (C2SP tlog-tiles: the
   * partial tiles, each of the width that tree has: edgeTiles). Undefined, with a
   * tile failure, when one of them is not archived, cannot be read or is not of its width.
   */
  private async rootFromTiles(size: number): Promise<{ root: Buffer } | undefined> {
    const tiles = new Map<string, Buffer[]>();
    let complete = true;
    for (const tile of edgeTiles(size)) {
      const key = this.tileKey(tile);
      const seq = tileFirstSeq(tile);
      const archived = this.tileObjects.get(`${tile.level}/${tile.index}`)?.some((object) => object.tile.width === tile.width);
      const bytes = archived ? await this.read(key) : `not in the archive, though the checkpoint note at tree size ${size} needs it`;
      const problem = typeof bytes === 'string' ? bytes : bytes.length !== HASH_SIZE * tile.width ? `${bytes.length} bytes, not ${HASH_SIZE * tile.width}` : undefined;
      if (problem === undefined) {
        tiles.set(`${tile.level}/${tile.index}`, tileHashes(bytes as Buffer));
        continue;
      }
      // A full tile is read for many notes: reported once.
      if (!this.badTiles.has(key)) this.fail('tile', null, seq, key, problem);
      this.badTiles.add(key);
      complete = false;
    }
    return complete ? { root: treeRootFromTiles(size, tiles) } : undefined;
  }

  /** The checkpoints by size, each with the day of the bundle holding its size or last before it (else `startDay`). */
  private withDays(objects: CheckpointObject[], startDay: string | null): CheckedCheckpoint[] {
    const holders = this.records.flatMap(({ object, manifest }) => (manifest ? [{ day: object.day, first: manifest.first_seq }] : []));
    holders.sort((a, b) => a.first - b.first);
    let holder = -1;
    return [...objects]
      .sort((a, b) => a.size - b.size)
      .map((object) => {
        while (holder + 1 < holders.length && holders[holder + 1]!.first <= object.size) holder++;
        return { ...object, day: holders[holder]?.day ?? startDay };
      });
  }

  private fail(kind: FailureKind, day: string | null, seq: number | null, key: string | null, reason: string): void {
    this.failures.push(this.failure(kind, day, seq, key, reason));
  }

  private failure(kind: FailureKind, day: string | null, seq: number | null, key: string | null, reason: string): ArchiveFailure {
    return { kind, chain: this.name, day, seq, key, reason };
  }
}

/**
 * The bundle's manifest, or the failure that stops it being read at all. The event lines are split
 * by the check itself (checkHere, or a thread's), not here as well.
 */
function parseOrFailure(bytes: Buffer | string): SignedManifest | BundleFailure {
  if (typeof bytes === 'string') return { seq: null, reason: bytes };
  try {
    return parseBundleHead(bytes);
  } catch (error) {
    if (error instanceof BundleError) return { seq: error.seq, reason: error.message };
    throw error;
  }
}

function compareNullable<T extends string | number>(a: T | null, b: T | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return a < b ? -1 : 1;
}
