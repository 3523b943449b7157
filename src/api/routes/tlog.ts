import { Hono } from 'hono';
import type pg from 'pg';
import { parseTilePath, tileBytes, tileInTree, TILE_WIDTH, type TilePath } from '../../ledger/tiles.js';
import { canonicalBySeq } from '../../store/events.js';
import { readTiles, TilesMissingError } from '../../store/tiles.js';
import { requireScope } from '../auth.js';
import type { AppEnv } from '../context.js';
import { ApiError, invalidFields } from '../errors.js';
import { chainOf } from './chain.js';
import { latestCheckpoint } from './proofs.js';

/** C2SP tlog-tiles entry bundles prefix each entry with its length as a big-endian uint16. */
const MAX_ENTRY_BYTES = 0xffff;

// A tile's bytes never change once the tree has them (a partial tile of width W too): cacheable
// for ever, but only by the caller (the routes need a token).
const IMMUTABLE = { 'content-type': 'application/octet-stream', 'cache-control': 'private, max-age=31536000, immutable' };

/**
 * The caller's chain as a C2SP tlog-tiles log (https://c2sp.org/tlog-tiles) under /v1/tlog: its
 * latest signed checkpoint (C2SP tlog-checkpoint) at `checkpoint`, hash tiles at
 * `tile/<L>/<N>[.p/<W>]` and entry bundles (the events' canonical bytes) at
 * `tile/entries/<N>[.p/<W>]`. Only tiles of the tree the latest checkpoint signs are served, so a
 * standard client that fetches the checkpoint can verify everything it reads against it.
 */
export function tlogRoutes(db: pg.Pool) {
  const read = requireScope('events:read');

  return new Hono<AppEnv>()
    .get('/tlog/checkpoint', read, async (c) => {
      const latest = await latestCheckpoint(db, chainOf(c).environment);
      return c.body(latest.note, 200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'private, no-cache' });
    })
    .get('/tlog/tile/:path{.+}', read, async (c) => {
      const { environment } = chainOf(c);
      // The path as sent, not percent-decoded: only the C2SP spelling names a tile (not tile/0/%30%30%30).
      const sent = new URL(c.req.url).pathname;
      const tile = parseTilePath(sent.slice(sent.indexOf('/tlog/tile/') + '/tlog/'.length));
      if (!tile) {
        throw invalidFields([{ field: 'path', message: 'must be a C2SP tile path: tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]' }]);
      }
      const { tree_size: size } = await latestCheckpoint(db, environment);
      const signed = tileInTree(size, tile.level, tile.index);
      if (!signed || tile.width > signed.width) {
        throw new ApiError(404, 'not_found', `tile ${c.req.param('path')} is not in the tree of the latest checkpoint (size ${size})`);
      }
      try {
        const bytes = tile.kind === 'entries' ? await entryBundle(db, environment, tile) : tileBytes((await readTiles(db, environment, [tile])).get(`${tile.level}/${tile.index}`)!);
        return c.body(new Uint8Array(bytes), 200, IMMUTABLE);
      } catch (error) {
        if (error instanceof TilesMissingError) throw new ApiError(409, 'chain_damaged', `${error.message}; run a verification`);
        throw error;
      }
    });
}

/** The events of an entry bundle, each as a big-endian uint16 length and its canonical bytes (C2SP tlog-tiles "Log Entries"). */
async function entryBundle(db: pg.Pool, environment: string, tile: TilePath): Promise<Buffer> {
  const first = tile.index * TILE_WIDTH + 1;
  const events = await canonicalBySeq(db, environment, first, first + tile.width - 1);
  if (events.length !== tile.width || events.some((e, i) => e.seq !== first + i)) {
    throw new TilesMissingError(`events ${first} to ${first + tile.width - 1} are not all stored`);
  }
  const parts: Buffer[] = [];
  for (const { seq, canonical } of events) {
    if (canonical.length > MAX_ENTRY_BYTES) {
      throw new ApiError(409, 'entry_too_large', `event ${seq} has ${canonical.length} bytes; an entry bundle holds entries of at most ${MAX_ENTRY_BYTES}`);
    }
    const length = Buffer.alloc(2);
    length.writeUInt16BE(canonical.length);
    parts.push(length, canonical);
  }
  return Buffer.concat(parts);
}
