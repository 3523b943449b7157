// A thread of the (f) ceiling in `npm run bench`: reads a bundle file and does only the work every
// verifier of it must do per event (both hashes the format defines and a canonical-JSON scan of
// the ledger fields), checking nothing. Answers the number of event lines.
import { readFileSync } from 'node:fs';
import { LEDGER_FIELDS, sha256InPieces } from '../src/ledger/bundle.js';
import { eventHash } from '../src/ledger/event.js';
import { scanCanonicalObject } from '../src/ledger/jcs-scan.js';
import { serveTasks } from '../src/thread-pool.js';

const NEWLINE = 0x0a;

serveTasks<undefined, string, number>((file) => {
  const bytes = readFileSync(file);
  const eventsStart = bytes.indexOf(NEWLINE) + 1;
  sha256InPieces(bytes.subarray(eventsStart)); // events_sha256
  let lines = 0;
  for (let at = eventsStart; at < bytes.length; lines++) {
    const end = bytes.indexOf(NEWLINE, at);
    const line = bytes.subarray(at, end);
    eventHash(line);
    scanCanonicalObject(line, LEDGER_FIELDS);
    at = end + 1;
  }
  return lines;
});
