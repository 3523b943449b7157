import { Hono } from 'hono';
import type pg from 'pg';
import { z } from 'zod';
import { getSeal, listSeals, type SealRow } from '../../store/seals.js';
import { requireScope } from '../auth.js';
import type { AppEnv } from '../context.js';
import { notFound } from '../errors.js';
import { pathId, query } from '../input.js';
import { dateParam, queryInt } from '../schemas.js';
import { chainOf } from './chain.js';

export const bundlesQuery = z.strictObject({ limit: queryInt(1, 1000).default(100), before: dateParam.optional() });

function present(seal: SealRow) {
  return {
    id: seal.id,
    partition: seal.partition,
    first_seq: seal.first_seq,
    last_seq: seal.last_seq,
    count: seal.last_seq - seal.first_seq + 1,
    root: seal.root.toString('base64'),
    archive: {
      location: seal.archive_location,
      key: seal.archive_key,
      version_id: seal.version_id,
      sha256: seal.sha256.toString('hex'),
      bytes: seal.bytes,
    },
    created_at: seal.created_at,
  };
}

/** The caller's chain's sealed bundles: where each is and what its manifest says. */
export function bundleRoutes(db: pg.Pool) {
  const read = requireScope('events:read');
  return new Hono<AppEnv>()
    .get('/bundles', read, async (c) => {
      const q = query(c, bundlesQuery);
      const rows = await listSeals(db, chainOf(c).environment, q.limit, q.before);
      const days = new Set(rows.map((row) => row.partition)).size;
      return c.json({ bundles: rows.map(present), next_before: days === q.limit ? rows.at(-1)!.partition : null });
    })
    .get('/bundles/:id', read, async (c) => {
      const seal = await getSeal(db, chainOf(c).environment, pathId(c, 'id', 'bundle'));
      if (!seal) throw notFound('bundle');
      return c.json({ ...present(seal), manifest: JSON.parse(seal.manifest) });
    });
}
