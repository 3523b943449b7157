import type pg from 'pg';
import type { BundleManifest } from '../ledger/bundle.js';
import { openCheckpoint } from '../ledger/checkpoint.js';
import { appendLeaves, emptyRange, rangeRoot, type CompactRange } from '../ledger/compact-range.js';
import type { VerifierKey } from '../ledger/keys.js';
import { extendTails, levelsCompleted, type TileTails } from '../ledger/tiles.js';
import { checkStoredEvent, type Chain, type Failure } from '../ledger/verify-events.js';
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

/** A signed root the recomputed tree must match at a given size: a checkpoint, or a bundle's. */
interface SignedRoot {
  size: number;
  what: string;
  note: string;
}

async function signedRoots(db: pg.Pool, environment: string, after: number): Promise<SignedRoot[]> {
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
  ].sort((a, b) => a.size - b.size);
}

/** Why a signed root does not vouch for `root` at its size, or undefined when it does. */
function signedRootProblem(signed: SignedRoot, chain: Chain, root: Buffer, verifiers: readonly VerifierKey[]): string | undefined {
  try {
    const { checkpoint } = openCheckpoint(signed.note, verifiers);
    if (!checkpoint.origin.endsWith(`/${chain.project}/${chain.environment}`)) return `the ${signed.what} is signed for another chain`;
    if (checkpoint.size !== signed.size) return `the ${signed.what} is signed for size ${checkpoint.size}`;
    if (!root.equals(Buffer.from(checkpoint.root))) return `the events do not give the root signed in the ${signed.what}`;
    return undefined;
  } catch (error) {
    return `the ${signed.what} does not verify: ${(error as Error).message}`;
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
  const roots = verifiers.length ? await signedRoots(db, chain.environment, from.seq) : [];
  const head = await getChainHead(db, chain.environment);
  if (!head) throw new Error(`no chain for environment ${chain.environment}`);
  const failures: Failure[] = [];
  let range = from.range;
  let prevHash: Buffer | undefined = from.seq === 0 ? undefined : from.hash;
  let expected = from.seq + 1;
  // The tiles' right edge at `from`: empty from the genesis, else derived from the rows below it
  // (verified by earlier runs). Levels it cannot derive are not checked.
  const levels = levelsCompleted(from.seq, head.seq);
  let tails: TileTails | undefined = from.seq === 0 ? Array.from({ length: levels }, () => []) : await readTails(db, chain.environment, from.seq, levels);
  // Tiles completed in the current COPY window, checked once it is read (the connection is busy until then).
  let completedTiles: ExpectedTile[] = [];

  const checkRootsAt = (size: number) => {
    while (roots[0] && roots[0].size <= size) {
      const signed = roots.shift()!;
      if (signed.size !== size) continue; // a size inside a gap: the gap is the failure
      const problem = signedRootProblem(signed, chain, rangeRoot(range), verifiers);
      if (problem) failures.push({ seq: size, reason: problem });
    }
  };

  const client = await db.connect();
  let failed = false;
  try {
    const window = options.seqsPerCopy ?? SEQS_PER_COPY;
    for (let start = expected; start <= head.seq; start += window) {
      for await (const rows of copyEventsBySeq(client, chain.environment, start, Math.min(start + window - 1, head.seq))) {
        let leaves: Buffer[] = [];
        const tileLeaves: Buffer[] = [];
        const tileSize = expected - 1;
        for (const row of rows) {
          // After a gap there is no stored hash to link to: the check reports the gap.
          if (row.seq !== expected) {
            prevHash = undefined;
            tails = undefined;
          }
          tileLeaves.push(row.hash);
          failures.push(...checkStoredEvent(row, chain, prevHash));
          leaves.push(row.hash);
          prevHash = row.hash;
          expected = row.seq + 1;
          if (roots[0] && roots[0].size <= row.seq) {
            range = appendLeaves(range, leaves);
            leaves = [];
            checkRootsAt(row.seq);
          }
        }
        range = appendLeaves(range, leaves);
        if (tails) {
          const completed = extendTails(tileSize, tails, tileLeaves);
          tails = completed.tails;
          completedTiles.push(...completed.tiles.map(expectedTile));
        }
        options.onProgress?.(expected - 1, head.seq);
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
  if (expected <= head.seq) failures.push({ seq: expected, reason: `events ${expected} to ${head.seq} are missing` });
  const root = rangeRoot(range).toString('hex');
  if (range.size === head.seq && root !== head.root) {
    failures.push({ seq: head.seq, reason: 'the Merkle root of the stored events does not match the chain head' });
  }
  const beyond = roots.filter((r) => r.size > head.seq).at(-1);
  if (beyond) failures.push({ seq: head.seq, reason: `a ${beyond.what} was signed at size ${beyond.size}, beyond the head at ${head.seq}: events were removed` });
  failures.sort((a, b) => a.seq - b.seq);
  return {
    ok: failures.length === 0,
    checked: range.size - from.seq,
    from_seq: from.seq + 1,
    head_seq: head.seq,
    root,
    failures,
    end: { seq: range.size, hash: prevHash ?? from.hash, range },
  };
}
