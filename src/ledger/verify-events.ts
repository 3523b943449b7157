// Checks stored events against their own bytes: the hash, the chain link, the ledger fields and
// the extracted columns. Nothing is re-serialized: a scanner confirms the stored bytes are
// canonical and decodes only the fields checked (jcs-scan.ts).
import { chainEndFindings, eventFindings, type Finding } from './chain-check.js';
import { indexColumns, type EventBody, type IndexColumns } from './event.js';
import { scanCanonicalObject, type Shape } from './jcs-scan.js';
import { eventVersionProblem } from './version.js';

/** An events row as stored. */
export interface StoredEvent {
  seq: number;
  id: string;
  received_at: Date;
  prev: Buffer;
  hash: Buffer;
  canonical: Buffer;
  columns: IndexColumns;
}

export interface Chain {
  project: string;
  environment: string;
}

export interface Failure {
  seq: number;
  reason: string;
}

/** A finding as recorded and served: its seq and reason, without the evidence. */
export function failureOf({ seq, reason }: Finding): Failure {
  return { seq, reason };
}

export interface Verification {
  ok: boolean;
  checked: number;
  first_seq: number | null;
  last_seq: number | null;
  failures: Failure[];
}

// What verification reads of a body: the ledger fields and the sources of the index columns.
const CHECKED_FIELDS: Shape = {
  v: true,
  project: true,
  environment: true,
  seq: true,
  id: true,
  received_at: true,
  prev: true,
  // No members wanted: only whether the body has it (a v1 body may not).
  commitments: {},
  event: { action: true, crud: true, created: true, actor: { id: true }, target: { id: true }, group: { id: true } },
};

/** Decodes what is checked of stored bytes, or returns why they are not an event body. */
function decode(canonical: Buffer): EventBody | string {
  const body = scanCanonicalObject(canonical, CHECKED_FIELDS);
  return typeof body === 'string' ? `stored bytes are ${body}` : (body as unknown as EventBody);
}

// Every column, which the Record type keeps complete.
const COLUMNS = Object.keys({
  action: true,
  crud: true,
  actor_id: true,
  target_id: true,
  group_id: true,
  created: true,
} satisfies Record<keyof IndexColumns, true>) as (keyof IndexColumns)[];

function differingColumns(stored: IndexColumns, fromBody: IndexColumns): string[] {
  const differing: string[] = [];
  for (const name of COLUMNS) if (stored[name] !== fromBody[name]) differing.push(name);
  return differing;
}

/**
 * The failures of one stored event. `prevHash` is the stored hash of the event at seq - 1
 * (undefined when that event is missing); seq 1 links to GENESIS_PREV. The hash and the link are
 * chain-check.ts's eventFindings; the rest is checkStoredBody.
 */
export function checkStoredEvent(row: StoredEvent, chain: Chain, prevHash: Buffer | undefined): Failure[] {
  const failures: Failure[] = eventFindings(row, prevHash).map(failureOf);
  failures.push(...checkStoredBody(row, chain));
  return failures;
}

/**
 * The failures of a stored event's bytes against its row and chain: the ledger fields and the
 * extracted columns (not the hash or the link: ChainChecker checks those). Runs for every event a
 * verifier reads, so it compares in place rather than building lists to compare.
 */
export function checkStoredBody(row: StoredEvent, chain: Chain): Failure[] {
  const reasons: string[] = [];
  const body = decode(row.canonical);
  if (typeof body === 'string') reasons.push(body);
  else bodyReasons(row, chain, body, reasons);
  const failures: Failure[] = [];
  for (const reason of reasons) failures.push({ seq: row.seq, reason });
  return failures;
}

// What in a decoded body contradicts its row and chain, added to `reasons`. No closures here:
// this runs per event, and tsx names every closure it creates.
function bodyReasons(row: StoredEvent, chain: Chain, body: EventBody, reasons: string[]): void {
  const version = eventVersionProblem(body.v, body.commitments !== undefined);
  if (version !== undefined) reasons.push(version);
  if (body.project !== chain.project) reasons.push(mismatch('project'));
  if (body.environment !== chain.environment) reasons.push(mismatch('environment'));
  if (body.seq !== row.seq) reasons.push(mismatch('seq'));
  if (body.id !== row.id) reasons.push(mismatch('id'));
  if (body.received_at !== isoString(row.received_at)) reasons.push(mismatch('received_at'));
  if (body.prev !== row.prev.toString('hex')) reasons.push(mismatch('prev'));
  if (typeof body.event !== 'object' || body.event === null) {
    reasons.push('stored bytes hold no event');
    return;
  }
  const columns = differingColumns(row.columns, indexColumns(body.event));
  if (columns.length) reasons.push(`column ${columns.join(', ')} does not match the stored bytes`);
}

// The events of one commit share their received_at, and verifiers read a chain in seq order: one
// toISOString (0.8 µs) per time rather than per event.
let lastTime = Number.NaN;
let lastIso = '';
function isoString(date: Date): string {
  const time = date.getTime();
  if (time !== lastTime) {
    lastIso = date.toISOString();
    lastTime = time;
  }
  return lastIso;
}

function mismatch(name: string): string {
  return `${name} in the stored bytes does not match the row`;
}

/** Checks rows of one chain; `prevHashes` maps seq - 1 of each row to that event's stored hash. */
export function verifyStoredEvents(rows: readonly StoredEvent[], chain: Chain, prevHashes: ReadonlyMap<number, Buffer>): Verification {
  const failures = rows.flatMap((row) => checkStoredEvent(row, chain, prevHashes.get(row.seq - 1)));
  const seqs = rows.map((r) => r.seq);
  return {
    ok: failures.length === 0,
    checked: rows.length,
    first_seq: seqs.length ? Math.min(...seqs) : null,
    last_seq: seqs.length ? Math.max(...seqs) : null,
    failures,
  };
}

/** The end of a chain as stored: its head row, its highest stored event, its largest signed checkpoint. */
export interface ChainEnd {
  head: { seq: number; hash: Buffer };
  /** The stored event with the highest seq; null when none is stored. */
  last: { seq: number; hash: Buffer } | null;
  /** The largest tree size of a recorded checkpoint; 0 when none. */
  checkpoint: number;
}

/**
 * Failures at a chain's end: the head must be the last stored event (same seq and hash), and no
 * checkpoint may have been signed beyond it. chain-check.ts's chainEndFindings decides and words
 * them, as for the scheduled job (ChainChecker.finish), so that a recorded finding is not reported twice.
 */
export function checkChainEnd({ head, last, checkpoint }: ChainEnd): Failure[] {
  const end = { next: (last?.seq ?? 0) + 1, lastHash: last?.hash, beyond: { size: checkpoint, what: `checkpoint at ${checkpoint}` } };
  return chainEndFindings(end, head).map(failureOf);
}
