import type pg from 'pg';
import { objectReadProblem, type Archive, type ObjectIdentity } from '../archive/archive.js';
import {
  BundleError,
  bundleLeaf,
  parseBundle,
  sha256InPieces,
  verifyParsedBundle,
  type BundleTree,
  type ParsedBundle,
} from '../ledger/bundle.js';
import { eventHash } from '../ledger/event.js';
import type { VerifierKey } from '../ledger/keys.js';
import type { Failure, StoredEvent } from '../ledger/verify-events.js';
import { setRecent } from '../recent-map.js';
import { sealOfSeq, type SealRow } from '../store/seals.js';

/** A sealed bundle read from the archive and verified: its events' bytes by seq. */
export interface SealedBundle {
  seal: SealRow;
  /** Its manifest and leaf hashes (32 bytes an event, not the events); null when missing or unreadable. */
  tree: BundleTree | null;
  failures: Failure[];
}

const CACHED_BUNDLES = 4;

/** A bundle being read or read, and the archive object's identity (its stamp) before it was read. */
interface Cached {
  stamp: string;
  bundle: Promise<SealedBundle>;
}

/**
 * Why event `row` cannot be held to its sealed bundle: the bundle fails verification, or it holds
 * other bytes for that seq. Undefined when the bundle verified and holds exactly these bytes.
 */
export function sealedEventFailure(bundle: SealedBundle, row: StoredEvent): Failure | undefined {
  if (bundle.failures.length) return { seq: row.seq, reason: `its sealed bundle fails verification: ${bundle.failures[0]!.reason}` };
  // The same leaf hash is the same bytes (SHA-256), without keeping the bundle's bytes around.
  const sealed = bundle.tree && bundleLeaf(bundle.tree, row.seq);
  if (!sealed?.equals(eventHash(row.canonical))) return { seq: row.seq, reason: 'stored bytes differ from the sealed bundle' };
  return undefined;
}

/**
 * Reads sealed bundles back from the archive, verified against the ledger's keys and the seal
 * record (version, size, SHA-256), for queries and proofs of sealed events. The few most recent
 * that verified are kept, as leaf hashes only (a page of events usually falls in one bundle; a
 * bundle's bytes can be hundreds of MB). Every use first asks the archive who the object is now
 * (Archive.identity): a kept bundle is used only while that is unchanged, else read and verified
 * again. A bundle that fails is never kept: it is read again on its next use.
 */
export class SealedBundles {
  private readonly cache = new Map<string, Cached>();

  constructor(
    private readonly db: pg.Pool,
    /** Absent in library mode with wormEnabled false: sealed events then cannot be checked here. */
    private readonly archive: Archive | undefined,
    private readonly verifiers: readonly VerifierKey[],
  ) {}

  /** The bundle holding event `seq` of the chain, or undefined when the event is not sealed. */
  async forSeq(environment: string, seq: number): Promise<SealedBundle | undefined> {
    const seal = await sealOfSeq(this.db, environment, seq);
    return seal && this.load(seal);
  }

  /**
   * Failures of sealed events among `rows` (see sealedEventFailure). Rows come in seq order, so
   * each bundle is looked up and checked once per call, not once per row.
   */
  async check(environment: string, rows: readonly StoredEvent[]): Promise<Failure[]> {
    const failures: Failure[] = [];
    let bundle: SealedBundle | undefined;
    for (const row of rows) {
      if (!bundle || row.seq < bundle.seal.first_seq || row.seq > bundle.seal.last_seq) bundle = await this.forSeq(environment, row.seq);
      const failure = bundle && sealedEventFailure(bundle, row);
      if (failure) failures.push(failure);
    }
    return failures;
  }

  private async load(seal: SealRow): Promise<SealedBundle> {
    // Asked before the bytes are read: a change after this is seen by the next use; one before the
    // read shows in the bytes, which must be the sealed ones.
    if (!this.archive) return unchecked(seal, `bundle ${seal.archive_key} cannot be read: this process has no archive (library mode with wormEnabled false)`);
    let identity: ObjectIdentity | undefined;
    try {
      identity = await this.archive.identity(seal.archive_key);
    } catch (error) {
      this.cache.delete(seal.id);
      return unreadable(seal, error);
    }
    if (!identity) {
      this.cache.delete(seal.id);
      return unchecked(seal, `bundle ${seal.archive_key} is missing from the archive`);
    }
    const cached = this.cache.get(seal.id);
    if (cached?.stamp === identity.stamp) return cached.bundle;
    const entry: Cached = { stamp: identity.stamp, bundle: this.read(seal, identity, this.archive) };
    setRecent(this.cache, seal.id, entry, CACHED_BUNDLES);
    const forget = () => {
      if (this.cache.get(seal.id) === entry) this.cache.delete(seal.id);
    };
    entry.bundle.then((bundle) => {
      if (bundle.failures.length) forget();
    }, forget);
    return entry.bundle;
  }

  private async read(seal: SealRow, identity: ObjectIdentity, archive: Archive): Promise<SealedBundle> {
    const key = seal.archive_key;
    if (seal.version_id !== null && identity.versionId !== seal.version_id) {
      return unchecked(seal, `bundle ${key} is version ${identity.versionId ?? '(none)'} in the archive, not the sealed version ${seal.version_id}`);
    }
    let bytes: Buffer | undefined;
    try {
      bytes = await archive.get(key);
    } catch (error) {
      return unreadable(seal, error);
    }
    if (!bytes) return unchecked(seal, `bundle ${key} is missing from the archive`);
    if (bytes.length !== seal.bytes || !sha256InPieces(bytes).equals(seal.sha256)) {
      return unchecked(seal, `bundle ${key} is not the object sealed: its ${bytes.length} bytes differ from the ${seal.bytes} recorded (SHA-256)`);
    }
    let parsed: ParsedBundle;
    try {
      parsed = parseBundle(bytes);
    } catch (error) {
      if (!(error instanceof BundleError)) throw error;
      return unchecked(seal, error.message);
    }
    const { failures, leaves } = verifyParsedBundle(parsed, bytes, this.verifiers);
    return { seal, tree: { manifest: parsed.manifest, leaves }, failures: failures.map((f) => ({ seq: f.seq ?? seal.first_seq, reason: f.reason })) };
  }
}

/**
 * A bundle whose object cannot be read, for a reason of that object alone (see objectReadProblem):
 * too large, or its file a FIFO, a device, a folder or a link loop. Rethrows any other error, one
 * of the archive as a whole.
 */
function unreadable(seal: SealRow, error: unknown): SealedBundle {
  const problem = objectReadProblem(error);
  if (problem === undefined) throw error;
  return unchecked(seal, `bundle ${seal.archive_key} cannot be read: ${problem}`);
}

/** A bundle that could not be checked, for `reason`. */
function unchecked(seal: SealRow, reason: string): SealedBundle {
  return { seal, tree: null, failures: [{ seq: seal.first_seq, reason }] };
}
