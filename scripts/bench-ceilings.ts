// Ceilings of `npm run bench` for (d) and (f) (bench-bare-server.ts has (c)'s): the same data put
// through only the work that no implementation can skip, on this machine, in the same run. A
// target above its ceiling cannot be met here by any change to the verifiers.
import path from 'node:path';
import type pg from 'pg';
import type { LocalArchive } from '../src/archive/local.js';
import { LEDGER_FIELDS } from '../src/ledger/bundle.js';
import { appendLeaves, emptyRange } from '../src/ledger/compact-range.js';
import { eventHash } from '../src/ledger/event.js';
import { scanCanonicalObject } from '../src/ledger/jcs-scan.js';
import { copyEventsBySeq } from '../src/store/event-copy.js';
import { ThreadPool } from '../src/thread-pool.js';

/**
 * (d)'s ceiling: the chain's rows read as verifyChain reads them (binary COPY, decoded) and one
 * SHA-256 per event, nothing checked. With `floor`, also the work no verifier of the chain can
 * skip beyond that, whatever its design: the tree's inner nodes (one SHA-256 of 65 bytes per event,
 * appendLeaves) and a scan of the ledger fields it compares with the row (the scan in (f)'s
 * ceiling). A floor below 0.75 x the ceiling puts issue 18's (d) target out of reach of any
 * verifier built on these parts.
 */
export async function readAndHashChain(db: pg.Pool, environment: string, lastSeq: number, floor = false): Promise<{ eventsPerSecond: number }> {
  const client = await db.connect();
  try {
    const started = performance.now();
    let events = 0;
    let range = emptyRange();
    for await (const rows of copyEventsBySeq(client, environment, 1, lastSeq)) {
      for (const row of rows) {
        eventHash(row.canonical);
        if (floor) scanCanonicalObject(row.canonical, LEDGER_FIELDS);
      }
      if (floor) range = appendLeaves(range, rows.map((row) => row.hash));
      events += rows.length;
    }
    if (events !== lastSeq) throw new Error(`(d) ${floor ? 'floor' : 'ceiling'}: read ${events} events, not ${lastSeq}`);
    return { eventsPerSecond: events / ((performance.now() - started) / 1000) };
  } finally {
    client.release();
  }
}

/**
 * (f)'s ceiling: every bundle of the archive through bench-hash-thread.ts, on `threads` threads.
 * With `floor`, also the tree's inner nodes, as (d)'s floor, and each event's link to the one
 * before: (f)'s floor. It leaves out the work of a verifier's main thread (reading and comparing
 * the archived tiles, the checkpoint notes), so it is the most any verify-archive built on these
 * parts can reach, and likely more.
 */
export async function hashArchive(archive: LocalArchive, threads: number, floor = false): Promise<{ eventsPerSecond: number; events: number }> {
  const files = (await archive.list('bundles/')).map((key) => path.join(archive.location, key));
  const pool = new ThreadPool<string, number>(new URL('./bench-hash-thread.ts', import.meta.url), floor, threads);
  try {
    const started = performance.now();
    const events = (await Promise.all(files.map((file) => pool.run(file)))).reduce((sum, n) => sum + n, 0);
    return { eventsPerSecond: events / ((performance.now() - started) / 1000), events };
  } finally {
    await pool.close();
  }
}
