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
      const end = locateFields(bytes, at + 2);
      if (end === undefined) break;
      rows.push(decodeRow(bytes));
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

// Field i of the current row spans [starts[i], ends[i]); a NULL has start -1.
const starts = new Int32Array(FIELD_COUNT);
const ends = new Int32Array(FIELD_COUNT);

// Finds the fields of the row whose first field starts at `at`: where the row ends, or undefined
// when it is not all there yet.
function locateFields(bytes: Buffer, at: number): number | undefined {
  for (let i = 0; i < FIELD_COUNT; i++) {
    if (at + 4 > bytes.length) return undefined;
    const length = bytes.readInt32BE(at);
    at += 4;
    starts[i] = length < 0 ? -1 : at;
    ends[i] = at += Math.max(length, 0);
  }
  return at <= bytes.length ? at : undefined;
}

// The row locateFields found complete. The bytea fields become views of the chunk, not copies; the
// rest are read in place.
function decodeRow(bytes: Buffer): StoredEvent {
  return {
    seq: int8(bytes, starts[0]!),
    id: bytes.toString('latin1', starts[1], ends[1]),
    received_at: new Date(timestampMs(bytes, starts[2]!)),
    prev: bytes.subarray(starts[3], ends[3]),
    hash: bytes.subarray(starts[4], ends[4]),
    canonical: bytes.subarray(starts[5], ends[5]),
    columns: {
      action: text(bytes, 6)!,
      crud: text(bytes, 7) as StoredEvent['columns']['crud'],
      actor_id: text(bytes, 8),
      target_id: text(bytes, 9),
      group_id: text(bytes, 10),
      created: starts[11]! < 0 ? null : timestampMs(bytes, starts[11]!),
    },
  };
}

// Hot helpers are module functions, not closures: tsx names every closure it creates, per call.
function text(bytes: Buffer, field: number): string | null {
  return starts[field]! < 0 ? null : bytes.toString('utf8', starts[field], ends[field]);
}

function int8(bytes: Buffer, at: number): number {
  return bytes.readInt32BE(at) * 2 ** 32 + bytes.readUInt32BE(at + 4);
}

// timestamptz: microseconds since 2000-01-01 UTC. Stored times have millisecond precision.
function timestampMs(bytes: Buffer, at: number): number {
  return POSTGRES_EPOCH_MS + Math.floor(int8(bytes, at) / 1000);
}
