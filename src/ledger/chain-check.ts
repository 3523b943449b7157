// The one place that decides whether stored events make a chain: contiguous seqs, each event's
// prev the hash of the one before, each hash the hash of its bytes, and the RFC 9162 tree they
// build extending every signed checkpoint (c2sp.org/tlog-checkpoint) of the chain. Whatever reads
// the events (database rows, archive objects) feeds them here in seq order and reports the findings.
import { CheckpointError, openChainCheckpoint, type ChainName, type Checkpoint } from './checkpoint.js';
import { appendLeaves, rangeRoot, type CompactRange, type NodeSink } from './compact-range.js';
import { eventHash, GENESIS_PREV } from './event.js';
import type { VerifierKey } from './keys.js';

/** An event as fed to the checker: its seq, prev and hash, and its bytes when they are at hand. */
export interface ChainEvent {
  seq: number;
  /** Undefined when the bytes holding it cannot be read (the feeder reports why): its link is then not checked. */
  prev: Buffer | undefined;
  hash: Buffer;
  /** The canonical bytes; when given, `hash` must be their hash. */
  canonical?: Buffer;
}

/**
 * Something that does not verify, at the seq it concerns. `expected` and `found` are the evidence
 * when two values disagree (hex hashes, sizes, origins): what the chain requires and what is there.
 */
export interface Finding {
  seq: number;
  reason: string;
  expected?: string;
  found?: string;
}

/** A signed checkpoint note the events must give the root of at `size`; `what` names it in findings ("checkpoint at 10"). */
export interface SignedTree {
  size: number;
  what: string;
  note: string;
}

/** Where checking starts: after event `seq`, whose hash is `hash` (unknown: undefined), with the compact range of the tree of size `seq`. */
export interface ChainStart {
  seq: number;
  hash: Buffer | undefined;
  range: CompactRange;
}

/** The chain's head as recorded: its seq and, when they are to be checked, its tree root and the hash of its last event. */
export interface ChainHead {
  seq: number;
  root?: Buffer;
  hash?: Buffer;
}

/**
 * Where the events' hashes come from, which decides whom a broken link blames.
 * - 'stored': each event comes with the hash recorded for it (a database row), checked against its
 *   bytes; a prev that is not the stored hash before it is the later event's fault, and a gap is
 *   reported at the event after it ("event N is missing: the chain has a gap"), as a check of that
 *   event alone words it (eventFindings).
 * - 'computed': the hash is computed from the bytes (an archive bundle's line), so it cannot
 *   disagree with them. A prev that is not the hash of the event before means that event's bytes
 *   changed, or this prev did: from the bytes alone the two look the same, and the earlier event is
 *   blamed ("the bytes do not hash to the prev of event N + 1"), as a changed event is blamed at
 *   its own seq. A hash given rather than computed (the start's, the head's) blames the event
 *   linked to it. A gap is reported at its first missing seq, with its extent.
 */
export type HashSource = 'stored' | 'computed';

const GENESIS_PREV_BYTES = Buffer.from(GENESIS_PREV, 'hex');

/**
 * The findings of one event alone, given `prevHash`, the stored hash of event seq - 1 (undefined
 * when that event is missing; seq 1 links to GENESIS_PREV): its hash must be that of its bytes
 * (when given) and its prev must be `prevHash`.
 */
export function eventFindings(event: ChainEvent, prevHash: Buffer | undefined): Finding[] {
  const findings: Finding[] = [];
  if (event.canonical !== undefined) {
    const hash = eventHash(event.canonical);
    if (!hash.equals(event.hash)) {
      findings.push({ seq: event.seq, reason: 'hash does not match the stored bytes', expected: hex(hash), found: hex(event.hash) });
    }
  }
  const expectedPrev = linkedHash(event.seq, prevHash);
  if (expectedPrev === undefined) findings.push({ seq: event.seq, reason: `event ${event.seq - 1} is missing: the chain has a gap` });
  else if (event.prev !== undefined && !event.prev.equals(expectedPrev)) findings.push(prevFinding(event, expectedPrev));
  return findings;
}

// The hash event `seq` must link to: GENESIS_PREV for seq 1, else the hash of event seq - 1.
function linkedHash(seq: number, prevHash: Buffer | undefined): Buffer | undefined {
  return seq === 1 ? GENESIS_PREV_BYTES : prevHash;
}

function prevFinding(event: ChainEvent, expectedPrev: Buffer): Finding {
  return { seq: event.seq, reason: `prev does not link to event ${event.seq - 1}`, expected: hex(expectedPrev), found: hex(event.prev!) };
}

/** The events from..to (inclusive) are not there: one finding, at the first. */
function missingFinding(from: number, to: number): Finding {
  return { seq: from, reason: from === to ? `event ${from} is missing` : `events ${from} to ${to} are missing` };
}

/** The end of a chain as read: the seq the next event would have, and the hash of the last one read (undefined when unknown). */
export interface EventsEnd {
  next: number;
  lastHash: Buffer | undefined;
  /** The root of the events read, when they reach the head and their tree is known. */
  root?: Buffer | undefined;
  /** The largest signed tree beyond the head, if any. */
  beyond?: Pick<SignedTree, 'size' | 'what'> | undefined;
}

/**
 * The findings at a chain's end (the one wording of them, whoever reads the chain): events missing
 * before the head or stored beyond it, a root of the events that is not the head's (`end.root`,
 * when given), the last event's hash that is not the head's (when `head.hash` is given and the
 * last event read is the head's), and a tree signed beyond the head (events were removed from the
 * tail). `hashes`: whom a differing hash blames (HashSource).
 */
export function chainEndFindings(end: EventsEnd, head: ChainHead, hashes: HashSource = 'stored'): Finding[] {
  const findings: Finding[] = [];
  if (end.next <= head.seq) findings.push(missingFinding(end.next, head.seq));
  else if (end.next > head.seq + 1) {
    findings.push({ seq: head.seq + 1, reason: `events ${head.seq + 1} to ${end.next - 1} are stored beyond the chain head at ${head.seq}` });
  }
  if (end.root && head.root && !end.root.equals(head.root)) {
    findings.push({ seq: head.seq, reason: 'the Merkle root of the stored events does not match the chain head', expected: hex(head.root), found: hex(end.root) });
  }
  if (end.next === head.seq + 1 && head.hash && end.lastHash && !end.lastHash.equals(head.hash)) {
    findings.push(
      hashes === 'computed'
        ? { seq: head.seq, reason: `the bytes do not hash to the hash recorded for event ${head.seq}`, expected: hex(head.hash), found: hex(end.lastHash) }
        : { seq: head.seq, reason: `the chain head's hash is not the hash of event ${head.seq}`, expected: hex(end.lastHash), found: hex(head.hash) },
    );
  }
  if (end.beyond && end.beyond.size > head.seq) {
    const { what, size } = end.beyond;
    findings.push({
      seq: head.seq,
      reason: `a ${what} was signed at size ${size}, beyond the head at ${head.seq}: events were removed`,
      expected: String(head.seq),
      found: String(size),
    });
  }
  return findings;
}

/** How a signed checkpoint differs from the tree it should sign: its size, or its root (hex), expected and found. */
export interface TreeMismatch {
  field: 'size' | 'root';
  expected: string;
  found: string;
}

/**
 * Whether `checkpoint` signs the tree of `size` leaves whose RFC 9162 root is `root` (not checked
 * when undefined, as when the tree is not known): the one decision that events extend a signed tree.
 */
export function treeMismatch(checkpoint: Checkpoint, size: number, root: Uint8Array | undefined): TreeMismatch | undefined {
  if (checkpoint.size !== size) return { field: 'size', expected: String(size), found: String(checkpoint.size) };
  if (root !== undefined && !Buffer.from(root).equals(checkpoint.root)) return { field: 'root', expected: hex(checkpoint.root), found: hex(root) };
  return undefined;
}

/**
 * Checks a chain incrementally, with memory bounded by the pending leaves between signed sizes:
 * feed `add` the events in seq order, then call `finish` once. The tree is built from every event
 * fed, so after a gap the root at a signed size cannot match and is reported too. A signed tree at
 * a size inside a gap is not checked: the gap is the finding. Whom a broken link blames depends on
 * where the hashes come from (HashSource).
 */
export class ChainChecker<E extends ChainEvent = ChainEvent> {
  // The tree of the leaves fed, but for those pending (appended in batches: once per signed size or read of `range`).
  private built: CompactRange;
  private pending: Buffer[] = [];
  private previous: Buffer | undefined;
  private expected: number;
  private readonly startSeq: number;
  private readonly signed: SignedTree[];
  private readonly verifiers: readonly VerifierKey[];
  private readonly checkEvent: ((event: E) => readonly Finding[]) | undefined;
  private readonly hashes: HashSource;
  private readonly onNode: NodeSink | undefined;
  private readonly tree: boolean;

  /**
   * `signed`: the chain's signed trees after `start` (any order), opened with `verifiers` as they
   * are reached. `checkEvent`: what else the feeder checks of each event (its body, say), reported
   * after the event's own findings and before those of a signed tree at its seq. `hashes`: where
   * the events' hashes come from ('stored' by default). `onNode`: sees every inner node of the
   * tree as it is built (appendLeaves), for a feeder that builds tiles of it (TileNodes). `tree`:
   * false for a feeder that builds its own tree (a bundle's root is that of its lines as they
   * stand); the checker then holds no leaf, and takes no signed tree, `range` or head root.
   * Throws RangeError when `tree` is false and `signed` is not empty.
   */
  constructor(
    private readonly chain: ChainName,
    start: ChainStart,
    options: {
      signed?: readonly SignedTree[];
      verifiers?: readonly VerifierKey[];
      checkEvent?: (event: E) => readonly Finding[];
      hashes?: HashSource;
      onNode?: NodeSink;
      tree?: boolean;
    } = {},
  ) {
    this.tree = options.tree ?? true;
    if (!this.tree && options.signed?.length) throw new RangeError('a ChainChecker without its tree checks no signed tree');
    this.checkEvent = options.checkEvent;
    this.hashes = options.hashes ?? 'stored';
    this.onNode = options.onNode;
    this.built = start.range;
    this.startSeq = start.seq;
    this.previous = start.seq === 0 ? undefined : start.hash;
    this.expected = start.seq + 1;
    this.signed = [...(options.signed ?? [])].filter((s) => s.size > start.seq).sort((a, b) => a.size - b.size);
    this.verifiers = options.verifiers ?? [];
  }

  /** The seq the next event should have. */
  get next(): number {
    return this.expected;
  }

  /** The hash of the last event fed (undefined before any, or from a start whose hash is unknown). */
  get lastHash(): Buffer | undefined {
    return this.previous;
  }

  /** The compact range of every leaf fed so far, after the start's. */
  get range(): CompactRange {
    if (!this.tree) throw new RangeError('a ChainChecker without its tree has no range');
    this.flush();
    return this.built;
  }

  /** Takes the next event (seqs ascending, each once): its findings, and those of the signed trees its seq reaches. */
  add(event: E): Finding[] {
    const findings = this.hashes === 'computed' ? this.computedLinkFindings(event) : this.storedLinkFindings(event);
    if (this.checkEvent) findings.push(...this.checkEvent(event));
    if (this.tree) this.pending.push(event.hash);
    this.previous = event.hash;
    this.expected = event.seq + 1;
    if (this.signed[0] && this.signed[0].size <= event.seq) {
      this.flush();
      while (this.signed[0] && this.signed[0].size <= event.seq) {
        const tree = this.signed.shift()!;
        if (tree.size === event.seq) findings.push(...this.treeFindings(tree));
      }
    }
    return findings;
  }

  /**
   * The findings at the chain's end (chainEndFindings): events missing before the head, a tree
   * root that is not the head's (when `head.root` is given), a head hash that is not the last
   * event's (when `head.hash` is given), and a signed tree beyond the head.
   */
  finish(head: ChainHead): Finding[] {
    // The tree is built only when its root is asked for.
    if (!this.tree && head.root !== undefined) throw new RangeError('a ChainChecker without its tree checks no root');
    const root = head.root !== undefined && this.built.size + this.pending.length === head.seq ? rangeRoot(this.range) : undefined;
    const beyond = this.signed.filter((s) => s.size > head.seq).at(-1);
    return chainEndFindings({ next: this.expected, lastHash: this.previous, root, beyond }, head, this.hashes);
  }

  // A stored hash is checked against the bytes, and the event's prev against the stored hash before it.
  private storedLinkFindings(event: E): Finding[] {
    // After a gap there is no stored hash to link to: the link check reports the gap.
    return eventFindings(event, event.seq === this.expected ? this.previous : undefined);
  }

  // A computed hash needs no check against the bytes: a broken link blames the event before (HashSource).
  private computedLinkFindings(event: E): Finding[] {
    if (event.seq !== this.expected) return [missingFinding(this.expected, event.seq - 1)];
    const expectedPrev = linkedHash(event.seq, this.previous);
    if (expectedPrev === undefined || event.prev === undefined || event.prev.equals(expectedPrev)) return [];
    // The hash before was given with the start (or is the genesis), not computed: this prev is at fault.
    if (event.seq - 1 === this.startSeq) return [prevFinding(event, expectedPrev)];
    const before = event.seq - 1;
    return [{ seq: before, reason: `the bytes do not hash to the prev of event ${event.seq}`, expected: hex(event.prev), found: hex(expectedPrev) }];
  }

  /** Joins the leaves fed so far to the tree now (appendLeaves: `onNode` sees their nodes). */
  flush(): void {
    if (this.pending.length) this.built = appendLeaves(this.built, this.pending, this.onNode);
    this.pending = [];
  }

  // Whether the signed tree is this chain's, at its size, with the root of the events fed.
  private treeFindings(tree: SignedTree): Finding[] {
    const at = (reason: string, expected?: string, found?: string): Finding[] => [
      { seq: tree.size, reason, ...(expected === undefined ? {} : { expected, found }) },
    ];
    let checkpoint;
    try {
      checkpoint = openChainCheckpoint(tree.note, this.verifiers, this.chain).checkpoint;
    } catch (error) {
      if (error instanceof CheckpointError && error.expected !== undefined) return at(`the ${tree.what} is signed for another chain`, error.expected, error.found);
      return at(`the ${tree.what} does not verify: ${(error as Error).message}`);
    }
    const mismatch = treeMismatch(checkpoint, tree.size, rangeRoot(this.built));
    if (mismatch === undefined) return [];
    const reason = mismatch.field === 'size' ? `the ${tree.what} is signed for size ${checkpoint.size}` : `the events do not give the root signed in the ${tree.what}`;
    return at(reason, mismatch.expected, mismatch.found);
  }
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
