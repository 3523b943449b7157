import type pg from 'pg';
import { ObjectTooLargeError, type Archive } from '../archive/archive.js';
import {
  BundleError,
  bundleLeaf,
  parseBundle,
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

/**
 * Reads sealed bundles back from the archive, verified against the ledger's keys, for queries
 * and proofs of sealed events. The few most recent are kept, as leaf hashes only (a page of events
 * usually falls in one bundle; a bundle's bytes can be hundreds of MB).
 */
export class SealedBundles {
  private readonly cache = new Map<string, Promise<SealedBundle>>();

  constructor(
    private readonly db: pg.Pool,
    private readonly archive: Archive,
    private readonly verifiers: readonly VerifierKey[],
  ) {}

  /** The bundle holding event `seq` of the chain, or undefined when the event is not sealed. */
  async forSeq(environment: string, seq: number): Promise<SealedBundle | undefined> {
    const seal = await sealOfSeq(this.db, environment, seq);
    return seal && this.load(seal);
  }

  /**
   * Failures of sealed events among `rows`: their stored bytes must be the bundle's, and the
   * bundle must verify (signature, hashes, Merkle root against its signed checkpoint).
   */
  async check(environment: string, rows: readonly StoredEvent[]): Promise<Failure[]> {
    const failures: Failure[] = [];
    for (const row of rows) {
      const bundle = await this.forSeq(environment, row.seq);
      if (!bundle) continue;
      const sealed = bundle.tree && bundleLeaf(bundle.tree, row.seq);
      if (bundle.failures.length) failures.push({ seq: row.seq, reason: `its sealed bundle fails verification: ${bundle.failures[0]!.reason}` });
      // The same leaf hash is the same bytes (SHA-256), without keeping the bundle's bytes around.
      else if (!sealed?.equals(eventHash(row.canonical))) failures.push({ seq: row.seq, reason: 'stored bytes differ from the sealed bundle' });
    }
    return failures;
  }

  private load(seal: SealRow): Promise<SealedBundle> {
    const cached = this.cache.get(seal.id);
    if (cached) return cached;
    const loading = this.read(seal);
    setRecent(this.cache, seal.id, loading, CACHED_BUNDLES);
    loading.catch(() => this.cache.delete(seal.id));
    return loading;
  }

  private async read(seal: SealRow): Promise<SealedBundle> {
    const unchecked = (reason: string): SealedBundle => ({ seal, tree: null, failures: [{ seq: seal.first_seq, reason }] });
    let bytes: Buffer | undefined;
    try {
      bytes = await this.archive.get(seal.archive_key);
    } catch (error) {
      if (!(error instanceof ObjectTooLargeError)) throw error;
      return unchecked(`bundle ${seal.archive_key} is ${error.size} bytes, too large to read back and compare`);
    }
    if (!bytes) return unchecked(`bundle ${seal.archive_key} is missing from the archive`);
    let parsed: ParsedBundle;
    try {
      parsed = parseBundle(bytes);
    } catch (error) {
      if (!(error instanceof BundleError)) throw error;
      return unchecked(error.message);
    }
    const { failures, leaves } = verifyParsedBundle(parsed, bytes, this.verifiers);
    return { seal, tree: { manifest: parsed.manifest, leaves: Buffer.concat(leaves) }, failures: failures.map((f) => ({ seq: f.seq ?? seal.first_seq, reason: f.reason })) };
  }
}
