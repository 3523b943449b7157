import { Hono } from 'hono';
import type pg from 'pg';
import { z } from 'zod';
import { treeInclusionProof } from '../../ledger/bundle.js';
import { base64 } from '../../ledger/keys.js';
import { consistencyProof, inclusionProof } from '../../ledger/proof.js';
import { merkleRoot } from '../../ledger/tree.js';
import { checkpointAt, leaves, listCheckpoints, type CheckpointRow } from '../../store/checkpoints.js';
import { getChainHead, getEvent } from '../../store/events.js';
import { requireEventsRead, requireScope } from '../auth.js';
import type { AppEnv } from '../context.js';
import { ApiError, invalidFields, notFound } from '../errors.js';
import { pathId, query } from '../input.js';
import { sealedEventFailure, type SealedBundles } from '../sealed.js';
import { chainOf, inView } from './chain.js';

const size = z.coerce.number().int().min(1);
export const checkpointsQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(1000).default(20), before: size.optional() });
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

/** Signed checkpoints, and RFC 9162 inclusion and consistency proofs, for the caller's chain. */
export function proofRoutes(db: pg.Pool, sealed: SealedBundles) {
  /** The leaf hashes 1..treeSize. O(treeSize) rows read: proofs cost grows with the chain. */
  async function leafHashes(environment: string, treeSize: number): Promise<Buffer[]> {
    const rows = await leaves(db, environment, 1, treeSize);
    if (rows.length !== treeSize || rows.some((r, i) => r.seq !== i + 1)) {
      throw new ApiError(409, 'chain_damaged', `events of this chain up to ${treeSize} are missing; run a verification`);
    }
    return rows.map((r) => r.hash);
  }

  /** A requested tree size, or the latest checkpoint's; it must not exceed the head. */
  async function treeSize(environment: string, requested: number | undefined, field: string) {
    const head = await getChainHead(db, environment);
    if (!head) throw new ApiError(409, 'chain_damaged', 'the chain head is missing; run a verification');
    if (requested === undefined) {
      const [latest] = await listCheckpoints(db, environment, 1);
      if (!latest) throw new ApiError(404, 'no_checkpoint', 'this chain has no signed checkpoint yet; pass a tree size or wait for one');
      return latest.tree_size;
    }
    if (requested > head.tree_size) throw invalidFields([{ field, message: `must be at most the tree size ${head.tree_size}` }]);
    return requested;
  }

  const noteAt = async (environment: string, size: number) => (await checkpointAt(db, environment, size))?.note ?? null;

  // Each route names its scope: a bare use() would reach every route mounted beside these.
  const read = requireScope('events:read');
  return new Hono<AppEnv>()
    .get('/checkpoints/latest', read, async (c) => {
      const [latest] = await listCheckpoints(db, chainOf(c).environment, 1);
      if (!latest) throw new ApiError(404, 'no_checkpoint', 'this chain has no signed checkpoint yet');
      return c.json(presentCheckpoint(latest));
    })
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
      const n = await treeSize(environment, q.tree_size, 'query.tree_size');
      if (n < event.seq) throw invalidFields([{ field: 'query.tree_size', message: `must be at least the event's seq ${event.seq}` }]);
      const hashes = await leafHashes(environment, n);
      return c.json({
        leaf_index: event.seq - 1,
        tree_size: n,
        leaf_hash: hashes[event.seq - 1]!.toString('base64'),
        proof: inclusionProof(event.seq - 1, n, hashes).map(base64),
        root: merkleRoot(hashes).toString('base64'),
        checkpoint: await noteAt(environment, n),
        canonical: event.canonical.toString('utf8'),
      });
    })
    .get('/consistency', read, async (c) => {
      const { environment } = chainOf(c);
      const q = query(c, consistencyQuery);
      const to = await treeSize(environment, q.to, 'query.to');
      if (q.from > to) throw invalidFields([{ field: 'query.from', message: `must be at most to (${to})` }]);
      const hashes = await leafHashes(environment, to);
      return c.json({
        from: q.from,
        to,
        proof: consistencyProof(q.from, to, hashes).map(base64),
        roots: { from: merkleRoot(hashes.slice(0, q.from)).toString('base64'), to: merkleRoot(hashes).toString('base64') },
        checkpoints: { from: await noteAt(environment, q.from), to: await noteAt(environment, to) },
      });
    });
}
