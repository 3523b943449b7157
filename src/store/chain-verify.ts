import type pg from 'pg';
import { appendLeaves, emptyRange, rangeRoot, type CompactRange } from '../ledger/compact-range.js';
import { checkStoredEvent, type Chain, type Failure } from '../ledger/verify-events.js';
import { eventsBySeq, getChainHead } from './events.js';

export interface ChainVerification {
  ok: boolean;
  checked: number;
  head_seq: number;
  root: string;
  failures: Failure[];
}

const PAGE = 5000;

/**
 * Recomputes a whole chain from the database: every event's hash from its stored bytes, every
 * link, the extracted columns, gaps, and the Merkle root against the chain head. Reads in seq
 * order a page at a time, so memory stays bounded whatever the chain's length.
 */
export async function verifyChain(db: pg.Pool, chain: Chain, onProgress?: (checked: number) => void): Promise<ChainVerification> {
  const head = await getChainHead(db, chain.environment);
  if (!head) throw new Error(`no chain for environment ${chain.environment}`);
  const failures: Failure[] = [];
  let range: CompactRange = emptyRange();
  let prevHash: Buffer | undefined;
  let expected = 1;

  // The next page is fetched while the current one is checked.
  const fetchFrom = (from: number) => (from <= head.seq ? eventsBySeq(db, chain.environment, from, head.seq, PAGE) : Promise.resolve([]));
  let next = fetchFrom(1);
  for (;;) {
    const rows = await next;
    if (rows.length === 0) break;
    next = fetchFrom(rows[rows.length - 1]!.seq + 1);
    const leaves: Buffer[] = [];
    for (const row of rows) {
      // After a gap there is no stored hash to link to: the check reports the gap.
      if (row.seq !== expected) prevHash = undefined;
      failures.push(...checkStoredEvent(row, chain, prevHash));
      leaves.push(row.hash);
      prevHash = row.hash;
      expected = row.seq + 1;
    }
    range = appendLeaves(range, leaves);
    onProgress?.(expected - 1);
  }
  if (expected <= head.seq) failures.push({ seq: expected, reason: `events ${expected} to ${head.seq} are missing` });
  const root = rangeRoot(range).toString('hex');
  if (range.size === head.seq && root !== head.root) {
    failures.push({ seq: head.seq, reason: 'the Merkle root of the stored events does not match the chain head' });
  }
  return { ok: failures.length === 0, checked: range.size, head_seq: head.seq, root, failures };
}
