// Ceilings of `npm run bench`: for (c), (d) and (f), the same load or data put through only the
// work that no implementation can skip, on this machine, in the same run. A target above its
// ceiling cannot be met here by any change to the service or the verifiers.
import { once } from 'node:events';
import path from 'node:path';
import type pg from 'pg';
import type { LocalArchive } from '../src/archive/local.js';
import { LEDGER_FIELDS } from '../src/ledger/bundle.js';
import { appendLeaves, emptyRange } from '../src/ledger/compact-range.js';
import { eventHash } from '../src/ledger/event.js';
import { scanCanonicalObject } from '../src/ledger/jcs-scan.js';
import { copyEventsBySeq } from '../src/store/event-copy.js';
import { startWorker, ThreadPool } from '../src/thread-pool.js';
import type { BareServerKind } from './bench-bare-server.js';

export interface BareServer {
  url: URL;
  /** CPU ms the server's thread has used so far, and the requests it has answered (Linux only). */
  usage(): Promise<{ cpuMs: number; requests: number }>;
  stop(): Promise<void>;
}

/** A bare server of bench-bare-server.ts, on a worker thread. */
export async function startBareServer(kind: BareServerKind): Promise<BareServer> {
  const worker = startWorker(new URL('./bench-bare-server.ts', import.meta.url), { workerData: kind });
  const [{ port }] = (await once(worker, 'message')) as [{ port: number }];
  return {
    url: new URL(`http://127.0.0.1:${port}/`),
    async usage() {
      worker.postMessage('usage');
      return (await once(worker, 'message'))[0] as { cpuMs: number; requests: number };
    },
    stop: async () => void (await worker.terminate()),
  };
}

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

/** (f)'s ceiling: every bundle of the archive through bench-hash-thread.ts, on `threads` threads. */
export async function hashArchive(archive: LocalArchive, threads: number): Promise<{ eventsPerSecond: number; events: number }> {
  const files = (await archive.list('bundles/')).map((key) => path.join(archive.location, key));
  const pool = new ThreadPool<string, number>(new URL('./bench-hash-thread.ts', import.meta.url), undefined, threads);
  try {
    const started = performance.now();
    const events = (await Promise.all(files.map((file) => pool.run(file)))).reduce((sum, n) => sum + n, 0);
    return { eventsPerSecond: events / ((performance.now() - started) / 1000), events };
  } finally {
    await pool.close();
  }
}
