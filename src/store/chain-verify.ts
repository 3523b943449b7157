import type pg from 'pg';
import type { BundleManifest } from '../ledger/bundle.js';
import { ChainChecker, type SignedTree } from '../ledger/chain-check.js';
import { emptyRange, rangeRoot, type CompactRange } from '../ledger/compact-range.js';
import type { VerifierKey } from '../ledger/keys.js';
import { extendTails, levelsCompleted, TileNodes, type TileTails } from '../ledger/tiles.js';
import { checkStoredBody, failureOf, type Chain, type Failure, type StoredEvent } from '../ledger/verify-events.js';
import { ChainHeadDamagedError } from './errors.js';
import { copyEventsBySeq } from './event-copy.js';
import { getChainHead } from './events.js';
import { expectedTile, readTails, tileFailures, type ExpectedTile } from './tiles.js';

export interface ChainVerification {
  ok: boolean;
  /** Events checked in this run. */
  checked: number;
  from_seq: number;
  head_seq: number;
  root: string;
  failures: Failure[];
  /** Where the next run can start when this one found nothing. */
  end: VerifiedPoint;
}

/** A point of a chain already verified: its seq, the hash there, and the compact range. */
export interface VerifiedPoint {
  seq: number;
  hash: Buffer;
  range: CompactRange;
}

// Seqs per COPY statement. Each statement reads in a snapshot of its own, so that checking a long
// chain never holds one open for long (which would hold back vacuum of every other table).
const SEQS_PER_COPY = 500_000;

export const GENESIS_POINT: VerifiedPoint = { seq: 0, hash: Buffer.alloc(32), range: emptyRange() };

async function signedTrees(db: pg.Pool, environment: string, after: number): Promise<SignedTree[]> {
  const checkpoints = await db.query<{ tree_size: number; note: string }>(
    'SELECT tree_size, note FROM checkpoints WHERE environment_id = $1 AND tree_size > $2',
    [environment, after],
  );
  const seals = await db.query<{ last_seq: number; partition: string; manifest: string }>(
    `SELECT last_seq, to_char(partition, 'YYYY-MM-DD') AS partition, manifest FROM seals WHERE environment_id = $1 AND last_seq > $2`,
    [environment, after],
  );
  return [
    ...checkpoints.rows.map((r) => ({ size: r.tree_size, what: `checkpoint at ${r.tree_size}`, note: r.note })),
    ...seals.rows.map((r) => ({
      size: r.last_seq,
      what: `bundle of ${r.partition}`,
      note: (JSON.parse(r.manifest) as BundleManifest).checkpoint,
    })),
  ];
}

// The chain's head: a damaged one (its compact range does not fit its seq) is a failure at its
// seq, and the events are still checked up to it, against no root.
async function storedHead(db: pg.Pool, environment: string, failures: Failure[]): Promise<{ seq: number; root?: string }> {
  try {
    const head = await getChainHead(db, environment);
    if (!head) throw new Error(`no chain for environment ${environment}`);
    return head;
  } catch (error) {
    if (!(error instanceof ChainHeadDamagedError)) throw error;
    failures.push({ seq: error.seq, reason: `the chain head's compact range is damaged: ${error.problem}` });
    return { seq: error.seq };
  }
}

/**
 * Recomputes a chain from the database, from `from` (a verified point; the genesis by default)
 * to the head: every event's hash from its stored bytes, every link, the extracted columns, gaps,
 * the Merkle root at each signed checkpoint and sealed bundle (their signatures too), the root
 * at the head, and every stored full tile (C2SP tlog-tiles) the events complete, recomputed from
 * them (up to the first gap, after which tiles cannot be placed). A signed checkpoint beyond the
 * head means events were removed from the tail.
 * Streams the events (COPY), so memory stays bounded whatever the chain's length.
 */
export async function verifyChain(
  db: pg.Pool,
  chain: Chain,
  options: {
    from?: VerifiedPoint;
    verifiers?: readonly VerifierKey[];
    onProgress?: (seq: number, head: number) => void;
    /** Seqs read per COPY statement (SEQS_PER_COPY). */
    seqsPerCopy?: number;
  } = {},
): Promise<ChainVerification> {
  const from = options.from ?? GENESIS_POINT;
  const verifiers = options.verifiers ?? [];
  // Signed roots first, then the head: a checkpoint signed in between is then never mistaken
  // for one beyond the head.
  const signed = verifiers.length ? await signedTrees(db, chain.environment, from.seq) : [];
  const failures: Failure[] = [];
  const head = await storedHead(db, chain.environment, failures);
  // The tiles' roots come from the checker's tree, which hashes every inner node anyway.
  const nodes = new TileNodes();
  const checker = new ChainChecker(chain, from, {
    signed,
    verifiers,
    checkEvent: (row: StoredEvent) => checkStoredBody(row, chain),
    onNode: nodes.onNode,
  });
  // The tiles' right edge at `from`: empty from the genesis, else derived from the rows below it
  // (verified by earlier runs). Levels it cannot derive are not checked.
  const levels = levelsCompleted(from.seq, head.seq);
  let tails: TileTails | undefined = from.seq === 0 ? Array.from({ length: levels }, () => []) : await readTails(db, chain.environment, from.seq, levels);
  // Tiles completed in the current COPY window, checked once it is read (the connection is busy until then).
  let completedTiles: ExpectedTile[] = [];

  const client = await db.connect();
  let failed = false;
  try {
    const window = options.seqsPerCopy ?? SEQS_PER_COPY;
    for (let start = checker.next; start <= head.seq; start += window) {
      for await (const rows of copyEventsBySeq(client, chain.environment, start, Math.min(start + window - 1, head.seq))) {
        const tileLeaves: Buffer[] = [];
        const tileSize = checker.next - 1;
        for (const row of rows) {
          // After a gap, tiles cannot be placed.
          if (row.seq !== checker.next) tails = undefined;
          tileLeaves.push(row.hash);
          for (const finding of checker.add(row)) failures.push(failureOf(finding));
        }
        // The batch's leaves join the tree now: its inner nodes are at hand for the tiles, and the
        // rows' buffers are not held until the end.
        checker.flush();
        if (tails) {
          const completed = extendTails(tileSize, tails, tileLeaves, nodes);
          tails = completed.tails;
          completedTiles.push(...completed.tiles.map(expectedTile));
        }
        nodes.clear();
        options.onProgress?.(checker.next - 1, head.seq);
      }
      failures.push(...(await tileFailures(client, chain.environment, completedTiles)));
      completedTiles = [];
    }
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    // A COPY left half read leaves the connection unusable: it is closed, not pooled.
    client.release(failed);
  }
  for (const finding of checker.finish({ seq: head.seq, root: head.root === undefined ? undefined : Buffer.from(head.root, 'hex') })) failures.push(failureOf(finding));
  const range = checker.range;
  failures.sort((a, b) => a.seq - b.seq);
  return {
    ok: failures.length === 0,
    checked: range.size - from.seq,
    from_seq: from.seq + 1,
    head_seq: head.seq,
    root: rangeRoot(range).toString('hex'),
    failures,
    end: { seq: range.size, hash: checker.lastHash ?? from.hash, range },
  };
}
