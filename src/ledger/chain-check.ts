// The one place that decides whether stored events make a chain: contiguous seqs, each event's
// prev the hash of the one before, each hash the hash of its bytes, and the RFC 9162 tree they
// build extending every signed checkpoint (c2sp.org/tlog-checkpoint) of the chain. Whatever reads
// the events (database rows, archive objects) feeds them here in seq order and reports the findings.
import { CheckpointError, openChainCheckpoint, type ChainName, type Checkpoint } from './checkpoint.js';
import { appendLeaves, rangeRoot, type CompactRange } from './compact-range.js';
import { eventHash, GENESIS_PREV } from './event.js';
import type { VerifierKey } from './keys.js';

/** An event as fed to the checker: its seq, stored prev and hash, and its bytes when they are at hand. */
export interface ChainEvent {
  seq: number;
  prev: Buffer;
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

/** The chain's head as recorded: its seq, its tree root and, when it is to be checked, the hash of its last event. */
export interface ChainHead {
  seq: number;
  root: Buffer;
  hash?: Buffer;
}

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
  const expectedPrev = event.seq === 1 ? GENESIS_PREV_BYTES : prevHash;
  if (expectedPrev === undefined) findings.push({ seq: event.seq, reason: `event ${event.seq - 1} is missing: the chain has a gap` });
  else if (!event.prev.equals(expectedPrev)) {
    findings.push({ seq: event.seq, reason: `prev does not link to event ${event.seq - 1}`, expected: hex(expectedPrev), found: hex(event.prev) });
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
 * a size inside a gap is not checked: the gap is the finding.
 */
export class ChainChecker<E extends ChainEvent = ChainEvent> {
  // The tree of the leaves fed, but for those pending (appended in batches: once per signed size or read of `range`).
  private built: CompactRange;
  private pending: Buffer[] = [];
  private previous: Buffer | undefined;
  private expected: number;
  private readonly signed: SignedTree[];
  private readonly verifiers: readonly VerifierKey[];
  private readonly checkEvent: ((event: E) => readonly Finding[]) | undefined;

  /**
   * `signed`: the chain's signed trees after `start` (any order), opened with `verifiers` as they
   * are reached. `checkEvent`: what else the feeder checks of each event (its body, say), reported
   * after the event's own findings and before those of a signed tree at its seq.
   */
  constructor(
    private readonly chain: ChainName,
    start: ChainStart,
    options: { signed?: readonly SignedTree[]; verifiers?: readonly VerifierKey[]; checkEvent?: (event: E) => readonly Finding[] } = {},
  ) {
    this.checkEvent = options.checkEvent;
    this.built = start.range;
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
    this.flush();
    return this.built;
  }

  /** Takes the next event: its findings, and those of the signed trees its seq reaches. */
  add(event: E): Finding[] {
    // After a gap there is no stored hash to link to: the link check reports the gap.
    if (event.seq !== this.expected) this.previous = undefined;
    const findings = eventFindings(event, this.previous);
    if (this.checkEvent) findings.push(...this.checkEvent(event));
    this.pending.push(event.hash);
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
   * The findings at the chain's end: events missing before the head, a tree root that is not the
   * head's, a head hash that is not the last event's (when `head.hash` is given), and a signed tree
   * beyond the head (events were removed from the tail).
   */
  finish(head: ChainHead): Finding[] {
    const findings: Finding[] = [];
    if (this.expected <= head.seq) findings.push({ seq: this.expected, reason: `events ${this.expected} to ${head.seq} are missing` });
    const range = this.range;
    if (range.size === head.seq) {
      const root = rangeRoot(range);
      if (!root.equals(head.root)) {
        findings.push({
          seq: head.seq,
          reason: 'the Merkle root of the stored events does not match the chain head',
          expected: hex(head.root),
          found: hex(root),
        });
      }
      if (head.hash && this.previous && !this.previous.equals(head.hash)) {
        findings.push({ seq: head.seq, reason: `the chain head's hash is not the hash of event ${head.seq}`, expected: hex(this.previous), found: hex(head.hash) });
      }
    }
    const beyond = this.signed.filter((s) => s.size > head.seq).at(-1);
    if (beyond) {
      findings.push({
        seq: head.seq,
        reason: `a ${beyond.what} was signed at size ${beyond.size}, beyond the head at ${head.seq}: events were removed`,
        expected: String(head.seq),
        found: String(beyond.size),
      });
    }
    return findings;
  }

  private flush(): void {
    if (this.pending.length) this.built = appendLeaves(this.built, this.pending);
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
