// A thread of the (f) ceiling and floor in `npm run bench`: reads a bundle file and does only the
// work every verifier of it must do per event (both hashes the format defines and a canonical-JSON
// scan of the ledger fields), checking nothing. The floor (shared data `true`) adds what no verifier
// of the format can skip beyond that: the tree's inner nodes (appendLeaves: one SHA-256 of 65 bytes
// per event), as (d)'s floor does, and the hash chain's link (the event's prev, 64 hex digits,
// against the leaf hash before it). Answers the number of event lines. Each bundle is read into the
// memory of the one before, as verify-archive reads them (BufferPool).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { BufferPool } from '../src/ledger/buffer-pool.js';
import { LEDGER_FIELDS, sha256InPieces } from '../src/ledger/bundle.js';
import { appendLeaves, emptyRange } from '../src/ledger/compact-range.js';
import { eventHash } from '../src/ledger/event.js';
import { HASH_SIZE } from '../src/ledger/hash.js';
import { scanCanonicalObject } from '../src/ledger/jcs-scan.js';
import { serveTasks } from '../src/thread-pool.js';

const NEWLINE = 0x0a;
// Leaves joined to the floor's tree at a time: none is kept beyond its chunk, as verify-archive keeps none.
const CHUNK = 256;

const buffers = new BufferPool(1);

function readReused(file: string): Buffer {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const bytes = buffers.take(size);
    for (let read = 0; read < size; ) {
      const n = readSync(fd, bytes, read, size - read, read);
      if (n === 0) throw new Error(`${file} ended at byte ${read} of ${size}`);
      read += n;
    }
    return bytes;
  } finally {
    closeSync(fd);
  }
}

serveTasks<boolean | undefined, string, number>((file, floor) => {
  const bytes = readReused(file);
  const eventsStart = bytes.indexOf(NEWLINE) + 1;
  sha256InPieces(bytes.subarray(eventsStart)); // events_sha256
  // From an empty range rather than the bundle's start_range: the same inner nodes per event, give or take a few.
  let range = emptyRange();
  let chunk: Buffer[] = [];
  let lines = 0;
  let before: Buffer | undefined;
  const prev = Buffer.alloc(HASH_SIZE);
  let links = 0;
  for (let at = eventsStart; at < bytes.length; lines++) {
    const end = bytes.indexOf(NEWLINE, at);
    const line = bytes.subarray(at, end);
    const leaf = eventHash(line);
    const body = scanCanonicalObject(line, LEDGER_FIELDS);
    if (floor) {
      // The link decoded and compared, its outcome kept only so that it is not optimized away.
      if (before && typeof body !== 'string' && prev.write(body.prev as string, 'hex') === HASH_SIZE && prev.equals(before)) links++;
      before = leaf;
      if (chunk.push(leaf) === CHUNK) {
        range = appendLeaves(range, chunk);
        chunk = [];
      }
    }
    at = end + 1;
  }
  if (floor) appendLeaves(range, chunk);
  if (floor && links !== lines - 1) throw new Error(`(f) floor: ${lines - 1 - links} of ${lines - 1} links do not hold`);
  buffers.give(bytes.buffer as ArrayBuffer);
  return lines;
});
