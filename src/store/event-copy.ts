// Reading a chain's events in bulk for verification. COPY ... TO STDOUT (FORMAT binary) hands over
// each row's bytes as stored: PostgreSQL sends rows about twice as fast as a SELECT (no hex
// encoding of bytea), and Node decodes no hex either. Measured on 200k events: 425k rows/s out of
// PostgreSQL, against 194k/s for the same rows as text.
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { isUuid } from '../ledger/uuid.js';
import type { StoredEvent } from '../ledger/verify-events.js';

// The columns in the order the reader decodes them, each cast to the type it expects.
const COLUMNS =
  'seq::int8, id::text, received_at::timestamptz, prev, hash, canonical, action::text, crud::text, ' +
  'actor_id::text, target_id::text, group_id::text, created::timestamptz';
const FIELD_COUNT = 12;

/**
 * The events of a chain with seq in [from, to], in seq order, a batch at a time as they arrive.
 * COPY takes no bind parameters: the environment must be a UUID and the bounds integers, which
 * are checked before they are written into the statement.
 */
export async function* copyEventsBySeq(client: pg.PoolClient, environment: string, from: number, to: number): AsyncGenerator<StoredEvent[]> {
  if (!isUuid(environment) || !Number.isSafeInteger(from) || !Number.isSafeInteger(to)) {
    throw new Error(`copyEventsBySeq: bad chain range ${environment} ${from}..${to}`);
  }
  const sql =
    `COPY (SELECT ${COLUMNS} FROM events WHERE environment_id = '${environment}' AND seq >= ${from} AND seq <= ${to} ` +
    'ORDER BY seq) TO STDOUT (FORMAT binary)';
  const reader = new CopyBinaryReader();
  for await (const chunk of client.query(copyTo(sql))) {
    const rows = reader.push(chunk as Buffer);
    if (rows.length) yield rows;
  }
  reader.end();
}

// PostgreSQL's binary COPY format (PostgreSQL docs, "COPY", Binary Format).
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const HEADER_SIZE = SIGNATURE.length + 8; // then flags and header-extension length, int32 each
const POSTGRES_EPOCH_MS = Date.UTC(2000, 0, 1);

/** Decodes the COPY stream into events; chunks may end anywhere, even inside a row. */
export class CopyBinaryReader {
  private pending: Buffer = Buffer.alloc(0);
  private headerRead = false;
  private ended = false;

  push(chunk: Buffer): StoredEvent[] {
    let bytes: Buffer = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    if (!this.headerRead) {
      if (bytes.length < HEADER_SIZE) {
        this.pending = bytes;
        return [];
      }
      if (!bytes.subarray(0, SIGNATURE.length).equals(SIGNATURE)) throw new Error('COPY output is not in the binary format');
      bytes = bytes.subarray(HEADER_SIZE + bytes.readUInt32BE(SIGNATURE.length + 4));
      this.headerRead = true;
    }
    const rows: StoredEvent[] = [];
    let at = 0;
    for (;;) {
      if (at + 2 > bytes.length) break;
      const fields = bytes.readInt16BE(at);
      if (fields === -1) {
        this.ended = true;
        at += 2;
        break;
      }
      if (fields !== FIELD_COUNT) throw new Error(`COPY row has ${fields} fields, want ${FIELD_COUNT}`);
      const end = rowEnd(bytes, at + 2);
      if (end === undefined) break;
      rows.push(decodeRow(bytes, at + 2));
      at = end;
    }
    this.pending = bytes.subarray(at);
    return rows;
  }

  /** Throws unless the stream ended with the COPY trailer and nothing after it. */
  end(): void {
    if (!this.ended || this.pending.length) throw new Error('COPY output ended before its trailer');
  }
}

// Where the row whose fields start at `at` ends, or undefined when it is not all there yet.
function rowEnd(bytes: Buffer, at: number): number | undefined {
  for (let i = 0; i < FIELD_COUNT; i++) {
    if (at + 4 > bytes.length) return undefined;
    const length = bytes.readInt32BE(at);
    at += 4 + Math.max(length, 0);
  }
  return at <= bytes.length ? at : undefined;
}

// One row, known to be complete. bytea fields are views of the chunk, not copies.
function decodeRow(bytes: Buffer, at: number): StoredEvent {
  const fields: (Buffer | null)[] = new Array(FIELD_COUNT);
  for (let i = 0; i < FIELD_COUNT; i++) {
    const length = bytes.readInt32BE(at);
    at += 4;
    fields[i] = length < 0 ? null : bytes.subarray(at, at + length);
    at += Math.max(length, 0);
  }
  const [seq, id, receivedAt, prev, hash, canonical, action, crud, actorId, targetId, groupId, created] = fields;
  return {
    seq: int8(seq!),
    id: id!.toString('latin1'),
    received_at: new Date(timestampMs(receivedAt!)),
    prev: prev!,
    hash: hash!,
    canonical: canonical!,
    columns: {
      action: action!.toString('utf8'),
      crud: (crud?.toString('latin1') ?? null) as StoredEvent['columns']['crud'],
      actor_id: text(actorId),
      target_id: text(targetId),
      group_id: text(groupId),
      created: created ? timestampMs(created) : null,
    },
  };
}

function text(field: Buffer | null | undefined): string | null {
  return field ? field.toString('utf8') : null;
}

function int8(field: Buffer): number {
  return field.readInt32BE(0) * 2 ** 32 + field.readUInt32BE(4);
}

// timestamptz: microseconds since 2000-01-01 UTC. Stored times have millisecond precision.
function timestampMs(field: Buffer): number {
  return POSTGRES_EPOCH_MS + Math.floor(int8(field) / 1000);
}
