import { randomBytes } from 'node:crypto';

// Random bits are drawn from a pool: one randomBytes call per id costs several times more.
const POOL_SIZE = 4096;
let pool = randomBytes(POOL_SIZE);
let offset = 0;

function random16(): Buffer {
  if (offset + 16 > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    offset = 0;
  }
  offset += 16;
  return Buffer.from(pool.subarray(offset - 16, offset));
}

/**
 * RFC 9562 UUIDv7: 48-bit Unix milliseconds, then random bits. Ids sort by creation time,
 * which keeps index inserts at the right edge and lets lists page by id.
 */
export function uuidv7(now: number = Date.now()): string {
  const bytes = random16();
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = 0x70 | (bytes[6]! & 0x0f);
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

/**
 * The Unix milliseconds of a UUIDv7 (RFC 9562 section 5.7: version 7, variant 10), or undefined
 * when `value` is not one. The ledger's event ids are UUIDv7 of the time the event was received.
 */
export function uuidv7Time(value: string): number | undefined {
  if (!isUuid(value) || value[14] !== '7' || !'89abAB'.includes(value[19]!)) return undefined;
  return Number.parseInt(value.slice(0, 8) + value.slice(9, 13), 16);
}
