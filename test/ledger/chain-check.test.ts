import { describe, expect, it } from 'vitest';
import { chainEndFindings, ChainChecker, type ChainEvent, type Finding, type SignedTree } from '../../src/ledger/chain-check.js';
import { chainOrigin, openChainCheckpoint, CheckpointError, signCheckpoint } from '../../src/ledger/checkpoint.js';
import { appendLeaves, emptyRange, rangeRoot } from '../../src/ledger/compact-range.js';
import { merkleRoot } from '../../src/ledger/tree.js';
import { ENVIRONMENT, KEY, makeChain, ORIGIN, PROJECT, stored } from '../helpers/bundles.js';

const CHAIN = { project: PROJECT, environment: ENVIRONMENT };
const EVENTS = makeChain([20]).map(stored);
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const rootAt = (size: number): Buffer => merkleRoot(EVENTS.slice(0, size).map((e) => e.hash));
const signedAt = (size: number, root = rootAt(size), origin = ORIGIN): SignedTree => ({
  size,
  what: `checkpoint at ${size}`,
  note: signCheckpoint({ origin, size, root }, KEY),
});
const GENESIS = { seq: 0, hash: undefined, range: emptyRange() };

// Feeds `events` to a checker from the genesis and returns every finding, the end's included.
function check(events: readonly ChainEvent[], signed: SignedTree[] = [], head = { seq: 20, root: rootAt(20) }): Finding[] {
  const checker = new ChainChecker(CHAIN, GENESIS, { signed, verifiers: [KEY] });
  return [...events.flatMap((event) => checker.add(event)), ...checker.finish(head)];
}

describe('ChainChecker', () => {
  it('finds nothing in a whole chain extending every signed checkpoint, and ends at its tree', () => {
    const checker = new ChainChecker(CHAIN, GENESIS, { signed: [signedAt(7), signedAt(20), signedAt(1)], verifiers: [KEY] });
    expect(EVENTS.flatMap((event) => checker.add(event))).toEqual([]);
    expect(checker.finish({ seq: 20, root: rootAt(20), hash: EVENTS[19]!.hash })).toEqual([]);
    expect(rangeRoot(checker.range)).toEqual(rootAt(20));
    expect(checker.lastHash).toEqual(EVENTS[19]!.hash);
    expect(checker.next).toBe(21);
  });

  it('reports a gap once, at the event after it, and the missing tail', () => {
    const findings = check([...EVENTS.slice(0, 4), ...EVENTS.slice(6, 15)]);
    expect(findings).toEqual([
      { seq: 7, reason: 'event 6 is missing: the chain has a gap' },
      { seq: 16, reason: 'events 16 to 20 are missing' },
    ]);
  });

  it('reports a broken link with the hash expected and the prev found', () => {
    const forged = { ...EVENTS[9]!, prev: EVENTS[7]!.hash };
    expect(check([...EVENTS.slice(0, 9), forged, ...EVENTS.slice(10)]).filter((f) => f.seq === 10)).toEqual([
      { seq: 10, reason: 'prev does not link to event 9', expected: hex(EVENTS[8]!.hash), found: hex(EVENTS[7]!.hash) },
    ]);
  });

  it('reports altered bytes with the hash of the bytes and the hash stored', () => {
    const altered = Buffer.from(EVENTS[4]!.canonical.toString().replace('user.login', 'user.logout'));
    const findings = check([...EVENTS.slice(0, 4), { ...EVENTS[4]!, canonical: altered }, ...EVENTS.slice(5)]);
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ seq: 5, reason: 'hash does not match the stored bytes', found: hex(EVENTS[4]!.hash) });
    expect(findings[0]!.expected).not.toBe(findings[0]!.found);
  });

  it('reports events that do not extend a signed checkpoint, with the signed root and the root found', () => {
    const other = Buffer.alloc(32, 7);
    expect(check(EVENTS, [signedAt(5), signedAt(12, other)])).toEqual([
      { seq: 12, reason: 'the events do not give the root signed in the checkpoint at 12', expected: hex(other), found: hex(rootAt(12)) },
    ]);
    // Rewritten history, consistently re-linked: only the signed root can tell.
    const rewritten = makeChain([20]).map((e, i) => (i === 2 ? { ...stored(e), hash: Buffer.alloc(32, 1) } : stored(e)));
    const relinked = rewritten.map((e, i) => (i === 3 ? { ...e, prev: Buffer.alloc(32, 1) } : e));
    const withoutBytes = relinked.map(({ canonical: _, ...e }) => e);
    const findings = check(withoutBytes, [signedAt(10)], { seq: 20, root: rootAt(20) });
    expect(findings.map((f) => f.reason)).toEqual([
      'the events do not give the root signed in the checkpoint at 10',
      'the Merkle root of the stored events does not match the chain head',
    ]);
    expect(findings[0]).toMatchObject({ expected: hex(rootAt(10)) });
  });

  it("reports a checkpoint of another chain, of another size, and one beyond the head", () => {
    const otherChain = signedAt(6, rootAt(6), chainOrigin('ledger.example', PROJECT, 'staging'));
    const wrongSize = { ...signedAt(9), size: 8, what: 'checkpoint at 8' };
    expect(check(EVENTS.slice(0, 15), [otherChain, wrongSize, signedAt(18)], { seq: 15, root: rootAt(15) })).toEqual([
      { seq: 6, reason: 'the checkpoint at 6 is signed for another chain', expected: `/${PROJECT}/${ENVIRONMENT}`, found: `ledger.example/${PROJECT}/staging` },
      { seq: 8, reason: 'the checkpoint at 8 is signed for size 9', expected: '8', found: '9' },
      { seq: 15, reason: 'a checkpoint at 18 was signed at size 18, beyond the head at 15: events were removed', expected: '15', found: '18' },
    ]);
  });

  it('continues from a verified point: the first event links to its hash, the tree extends its range', () => {
    const range = appendLeaves(emptyRange(), EVENTS.slice(0, 10).map((e) => e.hash));
    const checker = new ChainChecker(CHAIN, { seq: 10, hash: EVENTS[9]!.hash, range }, { signed: [signedAt(5), signedAt(16)], verifiers: [KEY] });
    expect(EVENTS.slice(10).flatMap((event) => checker.add(event))).toEqual([]);
    expect(checker.finish({ seq: 20, root: rootAt(20) })).toEqual([]);
    const unknown = new ChainChecker(CHAIN, { seq: 10, hash: undefined, range });
    expect(unknown.add(EVENTS[10]!)).toEqual([{ seq: 11, reason: 'event 10 is missing: the chain has a gap' }]);
  });

  it('without its tree, finds what it finds with it but a root, and refuses what needs the tree', () => {
    const forged = { ...EVENTS[9]!, prev: EVENTS[7]!.hash };
    const events = [...EVENTS.slice(0, 9), forged, ...EVENTS.slice(10, 18)];
    const feed = (tree: boolean) => {
      const checker = new ChainChecker(CHAIN, GENESIS, { tree });
      return [...events.flatMap((event) => checker.add(event)), ...checker.finish({ seq: 20, hash: EVENTS[19]!.hash })];
    };
    expect(feed(false)).toEqual(feed(true));
    expect(feed(false).map((f) => f.seq)).toEqual([10, 19]);
    const checker = new ChainChecker(CHAIN, GENESIS, { tree: false });
    EVENTS.forEach((event) => checker.add(event));
    expect(() => checker.range).toThrow(RangeError);
    expect(() => checker.finish({ seq: 20, root: rootAt(20) })).toThrow(RangeError);
    expect(() => new ChainChecker(CHAIN, GENESIS, { tree: false, signed: [signedAt(5)], verifiers: [KEY] })).toThrow(RangeError);
  });
});

describe("ChainChecker with hashes computed from the bytes (an archive bundle's lines)", () => {
  // What a bundle's reader has of each line: the hash of its bytes and the prev they hold.
  const lines = EVENTS.map(({ seq, prev, hash }) => ({ seq, prev, hash }));
  const from = (seq: number) => ({ seq, hash: seq === 0 ? undefined : EVENTS[seq - 1]!.hash, range: emptyRange() });
  function computed(events: readonly ChainEvent[], start = from(0), head: { seq: number; hash?: Buffer } = { seq: 20, hash: EVENTS[19]!.hash }): Finding[] {
    const checker = new ChainChecker(CHAIN, start, { hashes: 'computed' });
    return [...events.flatMap((event) => checker.add(event)), ...checker.finish(head)];
  }

  it('finds nothing in a whole chain', () => {
    expect(computed(lines)).toEqual([]);
    expect(computed(lines.slice(10), from(10))).toEqual([]);
  });

  it('blames a broken link on the event before it, whose bytes no longer hash to the prev recorded after them', () => {
    const changed = { ...lines[4]!, hash: Buffer.alloc(32, 5) };
    expect(computed([...lines.slice(0, 4), changed, ...lines.slice(5)])).toEqual([
      { seq: 5, reason: 'the bytes do not hash to the prev of event 6', expected: hex(EVENTS[4]!.hash), found: hex(changed.hash) },
    ]);
    // The same finding in stored mode blames the later event, whose prev does not link.
    expect(check([...lines.slice(0, 4), changed, ...lines.slice(5)], [], { seq: 20, root: rootAt(20) }).map((f) => f.seq)).toContain(6);
  });

  it('blames the first event when its prev is not the hash given with the start, or the genesis', () => {
    const forged = { ...lines[10]!, prev: Buffer.alloc(32, 9) };
    expect(computed([forged, ...lines.slice(11)], from(10))).toEqual([
      { seq: 11, reason: 'prev does not link to event 10', expected: hex(EVENTS[9]!.hash), found: hex(forged.prev) },
    ]);
    expect(computed([{ ...lines[0]!, prev: Buffer.alloc(32, 9) }, ...lines.slice(1)])).toMatchObject([{ seq: 1, reason: 'prev does not link to event 0' }]);
  });

  it('reports a gap at its first missing seq with its extent, and the missing tail', () => {
    expect(computed([...lines.slice(0, 4), ...lines.slice(5, 9), ...lines.slice(12, 18)])).toEqual([
      { seq: 5, reason: 'event 5 is missing' },
      { seq: 10, reason: 'events 10 to 12 are missing' },
      { seq: 19, reason: 'events 19 to 20 are missing' },
    ]);
  });

  it("reports a last event whose bytes do not hash to the head's recorded hash, at the head", () => {
    const recorded = Buffer.alloc(32, 3);
    expect(computed(lines, from(0), { seq: 20, hash: recorded })).toEqual([
      { seq: 20, reason: 'the bytes do not hash to the hash recorded for event 20', expected: hex(recorded), found: hex(EVENTS[19]!.hash) },
    ]);
  });

  it('does not check the link of an event whose bytes cannot be read (prev unknown), but links the next one to its hash', () => {
    const unreadable = { ...lines[6]!, prev: undefined };
    expect(computed([...lines.slice(0, 6), unreadable, ...lines.slice(7)])).toEqual([]);
  });
});

describe('chainEndFindings', () => {
  const head = { seq: 5, hash: EVENTS[4]!.hash };
  it('reports events missing before the head, stored beyond it, a last hash that is not the head\'s, and a tree signed beyond it', () => {
    expect(chainEndFindings({ next: 4, lastHash: EVENTS[2]!.hash }, head)).toEqual([{ seq: 4, reason: 'events 4 to 5 are missing' }]);
    expect(chainEndFindings({ next: 5, lastHash: EVENTS[3]!.hash }, head)).toEqual([{ seq: 5, reason: 'event 5 is missing' }]);
    expect(chainEndFindings({ next: 8, lastHash: EVENTS[6]!.hash }, head)).toEqual([{ seq: 6, reason: 'events 6 to 7 are stored beyond the chain head at 5' }]);
    expect(chainEndFindings({ next: 6, lastHash: EVENTS[5]!.hash }, head)).toEqual([
      { seq: 5, reason: "the chain head's hash is not the hash of event 5", expected: hex(EVENTS[5]!.hash), found: hex(EVENTS[4]!.hash) },
    ]);
    expect(chainEndFindings({ next: 6, lastHash: EVENTS[4]!.hash, beyond: { size: 9, what: 'checkpoint at 9' } }, head)).toEqual([
      { seq: 5, reason: 'a checkpoint at 9 was signed at size 9, beyond the head at 5: events were removed', expected: '5', found: '9' },
    ]);
    expect(chainEndFindings({ next: 6, lastHash: EVENTS[4]!.hash, beyond: { size: 5, what: 'checkpoint at 5' } }, head)).toEqual([]);
  });
});

describe('openChainCheckpoint', () => {
  it("opens a checkpoint of the chain and refuses another chain's, naming the origin expected and found", () => {
    expect(openChainCheckpoint(signedAt(3).note, [KEY], CHAIN).checkpoint.size).toBe(3);
    const other = signedAt(3, rootAt(3), chainOrigin('ledger.example', `${PROJECT}-2`, ENVIRONMENT)).note;
    let error: unknown;
    try {
      openChainCheckpoint(other, [KEY], CHAIN);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(CheckpointError);
    expect(error).toMatchObject({ expected: `/${PROJECT}/${ENVIRONMENT}`, found: `ledger.example/${PROJECT}-2/${ENVIRONMENT}` });
  });
});
