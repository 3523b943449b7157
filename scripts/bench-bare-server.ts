// The HTTP ceilings and floor of `npm run bench`, each a process of its own run with the service's
// Node flags, so that its CPU is counted as the service's is (every thread of the process, the
// garbage collector's included). `node:http` and `hono` do for a POST only what no server can
// skip: read the body, parse its JSON, answer 201 with a receipt-sized JSON body; the same load
// against them shows what this machine's HTTP alone allows, written on node:http or on Hono and
// @hono/node-server as the service is. `append` is the floor of (c1) and (c3): the Hono server
// and what every durable append of an event must add to it, on these parts, and nothing else (see
// appendFloor). Prints "bare server listening on <url>" once it listens.
//
//   node <the service's flags> --import tsx scripts/bench-bare-server.ts node:http|hono|append
//   (append: DATABASE_URL, a database of the service's where the bench made the plain table
//   bench_floor: CREATE TABLE bench_floor (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS
//   INCLUDING INDEXES))
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { ZodError } from 'zod';
import { eventLimits, eventSchemas, splitInput } from '../src/api/event-schema.js';
import { loadConfig } from '../src/config.js';
import { encodeCanonicalEvent, GENESIS_PREV, indexColumns, type AuditEvent } from '../src/ledger/event.js';
import { canonicalize } from '../src/ledger/jcs.js';
import { uuidv7 } from '../src/ledger/uuid.js';

export type BareServerKind = 'node:http' | 'hono' | 'append';

interface Receipt {
  id: string;
  seq: number;
  hash: string;
  received_at: string;
}

const JSON_TYPE = { 'content-type': 'application/json' };

function answer(receipt: Receipt): string {
  return JSON.stringify({ events: [receipt], tree_size: receipt.seq, root: receipt.hash });
}

function bareReceipt(event: { action?: unknown }): Receipt {
  return { id: String(event.action), seq: 0, hash: '0'.repeat(64), received_at: new Date().toISOString() };
}

/**
 * The floor of a single-event append: the service's event schema (zod), the event's RFC 8785 body
 * with its ledger fields and its leaf hash (src/ledger/event.ts), and a group commit of every
 * event waiting, whatever its chain, into a table shaped like `events`, one statement and commit
 * at a time, each event answered once its commit is durable. A chain per `chain` key (the bearer
 * token, unchecked), kept in memory. It leaves out all the service adds beyond that:
 * authentication, the I-JSON checks of the body, idempotency keys, the personal data policy, the
 * chain head rows and their locks, the Merkle tree (compact ranges, tiles, the root in the
 * receipt), the request id, logging and metrics. Resolves with the event's receipt; rejects with
 * the zod error of an invalid event.
 */
function appendFloor(db: pg.Pool): (chain: string, input: unknown) => Promise<Receipt> {
  const schema = eventSchemas(eventLimits(loadConfig({}))).event;
  const project = randomUUID();
  const chains = new Map<string, { environment: string; seq: number; prev: string }>();
  let waiting: { chain: string; event: AuditEvent; canonical: string; settle: (receipt: Receipt | Error) => void }[] = [];
  let committing = false;

  async function commit(): Promise<void> {
    committing = true;
    while (waiting.length > 0) {
      const batch = waiting;
      waiting = [];
      const received_at = new Date().toISOString();
      const encoded = batch.map(({ chain: key, event, canonical }) => {
        let chain = chains.get(key);
        if (chain === undefined) chains.set(key, (chain = { environment: randomUUID(), seq: 0, prev: GENESIS_PREV }));
        const fields = { project, environment: chain.environment, seq: ++chain.seq, id: uuidv7(), received_at, prev: chain.prev };
        const row = encodeCanonicalEvent(event, canonical, fields);
        chain.prev = row.hash.toString('hex');
        return { row, hashHex: chain.prev, columns: indexColumns(event) };
      });
      // Event bytes as two binary parameters, as the service sends them: each row's prev and hash, then the bodies.
      let at = 0;
      const lengths = encoded.map(({ row }) => row.canonical.length);
      try {
        await db.query({
          name: 'floor-append',
          text: `INSERT INTO bench_floor (environment_id, received_at, seq, id, prev, hash, canonical, action, crud, actor_id, target_id, group_id, created)
                 SELECT r.environment_id, $1::timestamptz, r.seq, r.id, substring($2::bytea FROM r.n::int * 64 - 63 FOR 32), substring($2::bytea FROM r.n::int * 64 - 31 FOR 32),
                        substring($3::bytea FROM r.at + 1 FOR r.length), r.action, r.crud, r.actor_id, r.target_id, r.group_id, r.created
                   FROM unnest($4::uuid[], $5::bigint[], $6::uuid[], $7::int[], $8::int[], $9::text[], $10::"char"[], $11::text[], $12::text[], $13::text[], $14::timestamptz[])
                        WITH ORDINALITY AS r(environment_id, seq, id, at, length, action, crud, actor_id, target_id, group_id, created, n)`,
          values: [
            received_at,
            Buffer.concat(encoded.flatMap(({ row }) => [Buffer.from(row.body.prev, 'hex'), row.hash])),
            Buffer.concat(encoded.map(({ row }) => row.canonical)),
            encoded.map(({ row }) => row.body.environment),
            encoded.map(({ row }) => row.body.seq),
            encoded.map(({ row }) => row.body.id),
            lengths.map((length) => (at += length) - length),
            lengths,
            encoded.map(({ columns }) => columns.action),
            encoded.map(({ columns }) => columns.crud),
            encoded.map(({ columns }) => columns.actor_id),
            encoded.map(({ columns }) => columns.target_id),
            encoded.map(({ columns }) => columns.group_id),
            encoded.map(({ columns }) => (columns.created === null ? null : new Date(columns.created).toISOString())),
          ],
        });
        batch.forEach(({ settle }, i) => {
          const { row, hashHex } = encoded[i]!;
          settle({ id: row.body.id, seq: row.body.seq, hash: hashHex, received_at });
        });
      } catch (error) {
        batch.forEach(({ settle }) => settle(error as Error));
      }
    }
    committing = false;
  }

  return (chain, input) => {
    const { event } = splitInput(schema.parse(input));
    const receipt = new Promise<Receipt>((resolve, reject) => {
      waiting.push({ chain, event, canonical: canonicalize(event), settle: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
    });
    if (!committing) void commit();
    return receipt;
  };
}

const kind = process.argv[2] as BareServerKind;
const listening = (server: { address(): AddressInfo | string | null }) => () =>
  console.log(`bare server listening on http://127.0.0.1:${(server.address() as AddressInfo).port}/`);

// A body that is not JSON, or an event the schema refuses: 400 with the reason, as the bench never
// sends one; anything else (the database) 500.
const refused = (error: unknown) => (error instanceof SyntaxError || error instanceof ZodError ? 400 : 500);
const problem = (error: unknown) => JSON.stringify({ error: error instanceof Error ? error.message : String(error) });

if (kind === 'hono' || kind === 'append') {
  if (kind === 'append' && !process.env.DATABASE_URL) throw new Error('the append floor needs DATABASE_URL, where bench_floor is');
  const append = kind === 'append' ? appendFloor(new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 })) : undefined;
  const app = new Hono()
    .post('/v1/events', async (c) => {
      const input = await c.req.json();
      const receipt = append ? await append(c.req.header('authorization') ?? '', input) : bareReceipt(input as { action?: unknown });
      return c.body(answer(receipt), 201, JSON_TYPE);
    })
    .onError((error, c) => c.body(problem(error), refused(error), JSON_TYPE));
  const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => listening(server)());
} else if (kind === 'node:http') {
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      let status = 201;
      let body: string;
      try {
        body = answer(bareReceipt(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { action?: unknown }));
      } catch (error) {
        [status, body] = [refused(error), problem(error)];
      }
      response.writeHead(status, { ...JSON_TYPE, 'content-length': Buffer.byteLength(body) });
      response.end(body);
    });
  });
  server.listen(0, '127.0.0.1', listening(server));
} else {
  throw new Error(`unknown bare server ${kind}: node:http, hono or append`);
}
