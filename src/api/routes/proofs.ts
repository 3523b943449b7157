import { Hono } from 'hono';
import type pg from 'pg';
import { z } from 'zod';
import { treeInclusionProof } from '../../ledger/bundle.js';
import { base64 } from '../../ledger/keys.js';
import { consistencyPath, inclusionPath, ProofError, verifyConsistency, verifyInclusion, type SubtreeHash } from '../../ledger/proof.js';
import { checkpointAt, listCheckpoints, type CheckpointRow } from '../../store/checkpoints.js';
import { getChainHead, getEvent, type ChainHead } from '../../store/events.js';
import { tileTree, TilesMissingError } from '../../store/tiles.js';
import { requireEventsRead, requireScope } from '../auth.js';
import type { AppEnv } from '../context.js';
import { ApiError, invalidFields, notFound } from '../errors.js';
import { pathId, query } from '../input.js';
import { queryInt } from '../schemas.js';
import { sealedEventFailure, type SealedBundles } from '../sealed.js';
import { chainOf, inView } from './chain.js';

const size = queryInt(1);
export const checkpointsQuery = z.strictObject({ limit: queryInt(1, 1000).default(20), before: size.optional() });
export const proofQuery = z.strictObject({ tree_size: size.optional() });
export const consistencyQuery = z.strictObject({ from: size, to: size.optional() });

function presentCheckpoint(row: CheckpointRow) {
  return {
    tree_size: row.tree_size,
    root: row.root.toString('base64'),
    key_id: row.key_id.toString('hex'),
    note: row.note,
    created_at: row.created_at,
  };
}

/** Why a proof of the tree of `size` cannot be served, as the API says it; other errors as they are. */
function damaged(error: unknown, size: number): unknown {
  if (error instanceof TilesMissingError) {
    return new ApiError(409, 'chain_damaged', `the tree of this chain at ${size} cannot be read: ${error.message}; run a verification`);
  }
  if (error instanceof ProofError) {
    return new ApiError(409, 'chain_damaged', `the stored tiles of this chain do not give its tree at ${size}: ${error.message}; run a verification`);
  }
  return error;
}

/** Runs the check of a proof about to be served; a proof that does not verify is never served. */
function served(size: number, check: () => void): void {
  try {
    check();
  } catch (error) {
    throw damaged(error, size);
  }
}

/** The chain's latest signed checkpoint; 404 no_checkpoint when it has none yet. */
export async function latestCheckpoint(db: pg.Pool, environment: string): Promise<CheckpointRow> {
  const [latest] = await listCheckpoints(db, environment, 1);
  if (!latest) throw new ApiError(404, 'no_checkpoint', 'this chain has no signed checkpoint yet');
  return latest;
}

/** Signed checkpoints, and RFC 9162 inclusion and consistency proofs, for the caller's chain. */
export function proofRoutes(db: pg.Pool, sealed: SealedBundles) {
  async function chainHead(environment: string): Promise<ChainHead> {
    const head = await getChainHead(db, environment);
    if (!head) throw new ApiError(409, 'chain_damaged', 'the chain head is missing; run a verification');
    return head;
  }

  /** A requested tree size, or the latest checkpoint's; it must not exceed the head. */
  async function treeSize(environment: string, head: ChainHead, requested: number | undefined, field: string) {
    if (requested === undefined) {
      const [latest] = await listCheckpoints(db, environment, 1);
      if (!latest) throw new ApiError(404, 'no_checkpoint', 'this chain has no signed checkpoint yet; pass a tree size or wait for one');
      return latest.tree_size;
    }
    if (requested > head.tree_size) throw invalidFields([{ field, message: `must be at most the tree size ${head.tree_size}` }]);
    return requested;
  }

  /**
   * The tree of `size` leaves as its tiles give it, for the subtree hashes `plan` asks for
   * (O(log n) rows read), and its root. The root is proven against the chain head's root with a
   * consistency proof from the same tiles, and the caller checks its own proof against the root
   * before serving it: a tampered tile fails the request rather than give a proof that does not verify.
   */
  async function provenTree(environment: string, head: ChainHead, size: number, plan: (mth: SubtreeHash) => void) {
    const toHead = (mth: SubtreeHash) => consistencyPath(size, head.tree_size, mth);
    try {
      const mth = await tileTree(db, environment, head.range, (m) => {
        plan(m);
        m(0, size);
        toHead(m);
      });
      const root = mth(0, size);
      verifyConsistency(size, head.tree_size, toHead(mth), root, Buffer.from(head.root, 'hex'));
      return { mth, root };
    } catch (error) {
      throw damaged(error, size);
    }
  }

  const noteAt = async (environment: string, size: number) => (await checkpointAt(db, environment, size))?.note ?? null;

  // Each route names its scope: a bare use() would reach every route mounted beside these.
  const read = requireScope('events:read');
  return new Hono<AppEnv>()
    .get('/checkpoints/latest', read, async (c) => c.json(presentCheckpoint(await latestCheckpoint(db, chainOf(c).environment))))
    .get('/checkpoints', read, async (c) => {
      const q = query(c, checkpointsQuery);
      const rows = await listCheckpoints(db, chainOf(c).environment, q.limit, q.before === undefined ? undefined : q.before - 1);
      return c.json({ checkpoints: rows.map(presentCheckpoint) });
    })
    // A viewer token may prove the events of its group (the embedded viewer's Verify).
    .get('/events/:id/proof', requireEventsRead, async (c) => {
      const { environment } = chainOf(c);
      const q = query(c, proofQuery);
      const event = await getEvent(db, environment, pathId(c, 'id', 'event'));
      if (!event || !inView(c, event.columns)) throw notFound('event');
      if (q.tree_size === undefined) {
        // A sealed event is proven from its bundle alone, against the bundle's checkpoint.
        const bundle = await sealed.forSeq(environment, event.seq);
        if (bundle) {
          // Never a proof from a bundle that fails, nor one whose leaf is not this event's bytes.
          const failure = sealedEventFailure(bundle, event);
          if (failure) {
            const code = bundle.failures.length ? 'bundle_failed_verification' : 'event_differs_from_bundle';
            throw new ApiError(409, code, `event ${event.seq} cannot be proven from its sealed bundle: ${failure.reason}; run a verification`);
          }
          const proof = treeInclusionProof(bundle.tree!, event.seq);
          return c.json({ ...proof, canonical: event.canonical.toString('utf8'), source: 'bundle' });
        }
      }
      const head = await chainHead(environment);
      const n = await treeSize(environment, head, q.tree_size, 'query.tree_size');
      if (n < event.seq && q.tree_size === undefined) {
        throw new ApiError(404, 'no_checkpoint', `no signed checkpoint covers event seq ${event.seq} yet (the latest is of size ${n}); wait for the next one, or pass tree_size`);
      }
      if (n < event.seq) throw invalidFields([{ field: 'query.tree_size', message: `must be at least the event's seq ${event.seq}` }]);
      const index = event.seq - 1;
      const { mth, root } = await provenTree(environment, head, n, (m) => inclusionPath(index, n, m));
      const proof = inclusionPath(index, n, mth);
      served(n, () => verifyInclusion(index, n, event.hash, proof, root));
      return c.json({
        leaf_index: index,
        tree_size: n,
        leaf_hash: event.hash.toString('base64'),
        proof: proof.map(base64),
        root: root.toString('base64'),
        checkpoint: await noteAt(environment, n),
        canonical: event.canonical.toString('utf8'),
      });
    })
    .get('/consistency', read, async (c) => {
      const { environment } = chainOf(c);
      const q = query(c, consistencyQuery);
      const head = await chainHead(environment);
      const to = await treeSize(environment, head, q.to, 'query.to');
      if (q.from > to) throw invalidFields([{ field: 'query.from', message: `must be at most to (${to})` }]);
      const { mth, root } = await provenTree(environment, head, to, (m) => {
        consistencyPath(q.from, to, m);
        m(0, q.from);
      });
      const proof = consistencyPath(q.from, to, mth);
      const from = mth(0, q.from);
      served(to, () => verifyConsistency(q.from, to, proof, from, root));
      return c.json({
        from: q.from,
        to,
        proof: proof.map(base64),
        roots: { from: from.toString('base64'), to: root.toString('base64') },
        checkpoints: { from: await noteAt(environment, q.from), to: await noteAt(environment, to) },
      });
    });
}
