import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BundleBuilder,
  BundleError,
  bundleInclusionProof,
  findBundleEvent,
  manifestSha256,
  parseBundle,
  sha256InPieces,
  signManifest,
  verifyBundle,
  verifyParsedBundle,
  type BundleFailure,
  type BundleManifest,
} from '../../src/ledger/bundle.js';
import { chainOrigin, openCheckpoint, signCheckpoint } from '../../src/ledger/checkpoint.js';
import { appendLeaves, emptyRange } from '../../src/ledger/compact-range.js';
import { encodeEvent, GENESIS_PREV, type EncodedEvent, type LedgerFields } from '../../src/ledger/event.js';
import { canonicalBytes } from '../../src/ledger/jcs.js';
import { TileNodes } from '../../src/ledger/tiles.js';
import { inclusionProof, verifyConsistency, verifyInclusion } from '../../src/ledger/proof.js';
import { merkleRoot } from '../../src/ledger/tree.js';
import { uuidv7 } from '../../src/ledger/uuid.js';
import { verifyInclusionDocument } from '../../src/ledger/verify-proof.js';
import { DAYS, ENVIRONMENT, KEY, makeChain, ORIGIN, OTHER_KEY, PROJECT, seal, stored, type Sealed } from '../helpers/bundles.js';

const NL = Buffer.from('\n');
const b64 = (s: string): Buffer => Buffer.from(s, 'base64');

const EVENTS = makeChain(DAYS.map((d) => d.count));
const BUNDLES = seal(EVENTS);
const [FIRST, MIDDLE, LAST] = BUNDLES as [Sealed, Sealed, Sealed];

const splitLines = (bytes: Buffer): Buffer[] => {
  const lines: Buffer[] = [];
  for (let from = 0; from < bytes.length; from = bytes.indexOf(NL, from) + 1) lines.push(bytes.subarray(from, bytes.indexOf(NL, from)));
  return lines;
};
const joinLines = (lines: readonly Buffer[]): Buffer => Buffer.concat(lines.flatMap((line) => [line, NL]));
// Line index of event `seq` in the middle bundle (line 0 is the manifest).
const lineOf = (seq: number): number => 1 + seq - MIDDLE.manifest.first_seq;

function tamper(bundle: Sealed, change: (lines: Buffer[]) => Buffer[]): Buffer {
  return joinLines(change(splitLines(bundle.bytes).map((line) => Buffer.from(line))));
}

// A bundle whose manifest is rewritten and signed again with `key`, keeping its event lines.
function remanifest(bundle: Sealed, change: Partial<BundleManifest>, key = KEY): Buffer {
  const { key_id: _id, signature: _sig, ...fields } = { ...bundle.manifest, ...change };
  return tamper(bundle, ([, ...events]) => [signManifest(fields, key).manifestLine.subarray(0, -1), ...events]);
}

// Flips a bit of the action's first letter: the line stays JSON, and canonical.
function flipAction(line: Buffer): void {
  const at = line.indexOf('"action":"') + 10;
  line[at] = line[at]! ^ 0x01;
}

const eventSeqs = (failures: readonly BundleFailure[]): number[] => [
  ...new Set(failures.flatMap((f) => (f.seq === null ? [] : [f.seq]))),
];
const reasons = (failures: readonly BundleFailure[]): string[] => failures.map((f) => f.reason);

describe('bundle format', () => {
  it('writes a signed manifest line, then the stored bytes of each event in seq order', () => {
    const lines = splitLines(MIDDLE.bytes);
    expect(lines.length).toBe(1 + 21);
    expect(MIDDLE.bytes.at(-1)).toBe(0x0a);
    lines.slice(1).forEach((line, i) => expect(line.equals(EVENTS[13 + i]!.canonical)).toBe(true));
    // The manifest line is the manifest's RFC 8785 form.
    expect(lines[0]!.equals(canonicalBytes(MIDDLE.manifest))).toBe(true);
    expect(Object.keys(MIDDLE.manifest).sort()).toEqual(
      [
        'v',
        'project',
        'environment',
        'partition',
        'first_seq',
        'last_seq',
        'count',
        'first_prev',
        'last_hash',
        'start_range',
        'checkpoint',
        'consistency_proof',
        'events_sha256',
        'previous_manifest_sha256',
        'key_id',
        'signature',
      ].sort(),
    );
    expect(MIDDLE.manifest).toMatchObject({
      v: 1,
      project: PROJECT,
      environment: ENVIRONMENT,
      partition: '2024-03-02',
      first_seq: 14,
      last_seq: 34,
      count: 21,
      first_prev: EVENTS[12]!.hash.toString('hex'),
      last_hash: EVENTS[33]!.hash.toString('hex'),
      previous_manifest_sha256: FIRST.previous.manifestSha256,
      key_id: Buffer.from(KEY.keyId).toString('hex'),
    });
    // start_range: the compact range of the 13 = 8 + 4 + 1 leaves before first_seq.
    const leaves = EVENTS.map((e) => e.hash);
    expect(MIDDLE.manifest.start_range).toEqual({
      size: 13,
      hashes: [merkleRoot(leaves.slice(0, 8)), merkleRoot(leaves.slice(8, 12)), leaves[12]!].map((h) => h.toString('hex')),
    });
    const events = Buffer.concat(lines.slice(1).flatMap((line) => [line, NL]));
    expect(MIDDLE.manifest.events_sha256).toBe(createHash('sha256').update(events).digest('hex'));
    expect(MIDDLE.previous.manifestSha256).toBe(createHash('sha256').update(lines[0]!).digest('hex'));
  });

  it("starts a chain's first bundle from the empty tree", () => {
    expect(FIRST.manifest).toMatchObject({
      first_seq: 1,
      last_seq: 13,
      first_prev: GENESIS_PREV,
      start_range: { size: 0, hashes: [] },
      consistency_proof: [],
      previous_manifest_sha256: null,
    });
  });

  it('signs a checkpoint at last_seq and a consistency proof from the previous checkpoint', () => {
    const leaves = EVENTS.map((e) => e.hash);
    for (const [before, bundle] of [
      [FIRST, MIDDLE],
      [MIDDLE, LAST],
    ] as const) {
      const { checkpoint } = openCheckpoint(bundle.manifest.checkpoint, [KEY], ORIGIN);
      expect(checkpoint.size).toBe(bundle.manifest.last_seq);
      expect(Buffer.from(checkpoint.root).equals(merkleRoot(leaves.slice(0, checkpoint.size)))).toBe(true);
      expect(bundle.root.equals(checkpoint.root)).toBe(true);
      expect(bundle.endRange).toEqual(appendLeaves(emptyRange(), leaves.slice(0, checkpoint.size)));
      const previous = openCheckpoint(before.manifest.checkpoint, [KEY], ORIGIN).checkpoint;
      verifyConsistency(previous.size, checkpoint.size, bundle.manifest.consistency_proof.map(b64), previous.root, checkpoint.root);
    }
  });

  it('gives byte-identical bundles for the same inputs', () => {
    const again = seal(EVENTS);
    again.forEach((bundle, i) => expect(bundle.bytes.equals(BUNDLES[i]!.bytes)).toBe(true));
  });

  it('parses back into the manifest, its line and the event bytes', () => {
    const parsed = parseBundle(MIDDLE.bytes);
    expect(parsed.manifest).toEqual(MIDDLE.manifest);
    expect(manifestSha256(parsed.manifestLine)).toBe(MIDDLE.previous.manifestSha256);
    expect(Array.from(parsed.events, (e) => e.toString())).toEqual(EVENTS.slice(13, 34).map((e) => e.canonical.toString()));
    expect(parsed.events.length).toBe(21);
    expect(parsed.events.at(20)).toEqual(EVENTS[33]!.canonical);
    for (const i of [-1, 21, 0.5, NaN]) expect(parsed.events.at(i), String(i)).toBeUndefined();
  });
});

describe('verifyBundle', () => {
  it('accepts each bundle alone and against the one before', () => {
    BUNDLES.forEach((bundle, i) => {
      const verification = verifyBundle(bundle.bytes, [KEY]);
      expect(verification).toMatchObject({ manifest: bundle.manifest, failures: [] });
      expect(verification.leaves).toEqual(Buffer.concat(EVENTS.slice(bundle.manifest.first_seq - 1, bundle.manifest.last_seq).map((e) => e.hash)));
      const before = BUNDLES[i - 1];
      if (before) expect(verifyBundle(bundle.bytes, [KEY], before.previous).failures).toEqual([]);
    });
  });

  it('hashes the events a piece at a time as in one go (a bundle over 2 GiB is hashed in pieces)', () => {
    const { bytes } = BUNDLES[1]!;
    const whole = createHash('sha256').update(bytes).digest();
    for (const piece of [1, 7, 64, bytes.length - 1, bytes.length, bytes.length + 1]) expect(sha256InPieces(bytes, piece)).toEqual(whole);
  });

  it('gives the tree root at each size asked for within the bundle', () => {
    const { first_seq: first, last_seq: last } = MIDDLE.manifest;
    const sizes = [first - 1, first, first + 2, last, last + 1];
    const { failures, roots } = verifyParsedBundle(parseBundle(MIDDLE.bytes), MIDDLE.bytes, [KEY], undefined, sizes);
    expect(failures).toEqual([]);
    expect([...roots.keys()]).toEqual([first, first + 2, last]);
    for (const [size, root] of roots) expect(root).toEqual(merkleRoot(EVENTS.slice(0, size).map((e) => e.hash)));
  });

  it('accepts a retired key among the verifiers, whatever the order', () => {
    expect(verifyBundle(MIDDLE.bytes, [OTHER_KEY, KEY]).failures).toEqual([]);
  });

  it('reports a byte flipped in an event line at that event', () => {
    const bytes = tamper(MIDDLE, (lines) => {
      flipAction(lines[lineOf(20)]!);
      return lines;
    });
    const { failures } = verifyBundle(bytes, [KEY]);
    expect(eventSeqs(failures)).toEqual([20]);
    expect(failures).toContainEqual({ seq: 20, reason: 'the bytes do not hash to the prev of event 21' });
    expect(reasons(failures)).toContain('events_sha256 does not match the event lines');
    expect(reasons(failures)).toContain('checkpoint: its root is not the Merkle root of start_range and the events');
  });

  it('reports a flip that breaks the JSON at the event in that position', () => {
    const bytes = tamper(MIDDLE, (lines) => {
      lines[lineOf(20)]![0] = 0x5b; // '{' becomes '['
      return lines;
    });
    const { failures } = verifyBundle(bytes, [KEY]);
    expect(eventSeqs(failures)).toEqual([20]);
    expect(failures).toContainEqual({ seq: 20, reason: 'the line is not JSON' });
  });

  it('reports a flip in the last event against last_hash', () => {
    const bytes = tamper(MIDDLE, (lines) => {
      flipAction(lines.at(-1)!);
      return lines;
    });
    expect(eventSeqs(verifyBundle(bytes, [KEY]).failures)).toEqual([34]);
  });

  it('reports a removed event line as that event missing', () => {
    const bytes = tamper(MIDDLE, (lines) => lines.filter((_, i) => i !== lineOf(20)));
    const { failures } = verifyBundle(bytes, [KEY]);
    expect(failures.filter((f) => f.seq !== null)).toEqual([{ seq: 20, reason: 'event 20 is missing' }]);
    expect(reasons(failures)).toContain('the bundle has 20 event lines, not count 21');
  });

  it('reports removed lines as one gap', () => {
    const bytes = tamper(MIDDLE, (lines) => lines.filter((_, i) => i < lineOf(18) || i > lineOf(25)));
    expect(verifyBundle(bytes, [KEY]).failures.filter((f) => f.seq !== null)).toEqual([
      { seq: 18, reason: 'events 18 to 25 are missing' },
    ]);
  });

  it('reports two swapped lines', () => {
    const bytes = tamper(MIDDLE, (lines) => {
      [lines[lineOf(20)], lines[lineOf(21)]] = [lines[lineOf(21)]!, lines[lineOf(20)]!];
      return lines;
    });
    const { failures } = verifyBundle(bytes, [KEY]);
    expect(failures.filter((f) => f.seq !== null)).toEqual([{ seq: 20, reason: 'out of order: the line follows event 21' }]);
    expect(reasons(failures)).toContain('events_sha256 does not match the event lines');
    expect(reasons(failures)).toContain('checkpoint: its root is not the Merkle root of start_range and the events');
  });

  it('reports a forged event inserted in the middle, linked to the event before it', () => {
    const forged = forge(21, EVENTS[19]!);
    const bytes = tamper(MIDDLE, (lines) => [...lines.slice(0, lineOf(21)), forged.canonical, ...lines.slice(lineOf(21))]);
    const { failures } = verifyBundle(bytes, [KEY]);
    expect(eventSeqs(failures)).toEqual([21]);
    expect(reasons(failures)).toEqual(
      expect.arrayContaining([
        '2 lines hold this seq',
        'the bytes do not hash to the prev of event 22',
        'the bundle has 22 event lines, not count 21',
      ]),
    );
  });

  it('reports a forged event appended after the last', () => {
    const bytes = tamper(MIDDLE, (lines) => [...lines, forge(35, EVENTS[33]!).canonical]);
    const { failures } = verifyBundle(bytes, [KEY]);
    expect(failures.filter((f) => f.seq !== null)).toEqual([{ seq: 35, reason: "seq is outside the bundle's range 14..34" }]);
  });

  it('checks the link of a line whose body contradicts the bundle', () => {
    const linked = tamper(MIDDLE, (lines) => [...lines.slice(0, -1), forge(34, EVENTS[32]!, { project: 'other' }).canonical]);
    const failures = verifyBundle(linked, [KEY]).failures;
    expect(failures).toContainEqual({ seq: 34, reason: `project "other" is not the bundle's "${PROJECT}"` });
    expect(eventSeqs(failures)).toEqual([34]);
    // Linked to event 32 instead: the link 33 -> 34 breaks, whatever else is wrong with the line.
    const unlinked = tamper(MIDDLE, (lines) => [...lines.slice(0, -1), forge(34, EVENTS[31]!, { project: 'other' }).canonical]);
    expect(verifyBundle(unlinked, [KEY]).failures).toContainEqual({ seq: 33, reason: 'the bytes do not hash to the prev of event 34' });
  });

  it('names the event of any bit flipped in an event line, or one beside it', () => {
    const events = splitLines(MIDDLE.bytes).slice(1);
    const first = MIDDLE.manifest.first_seq;
    const flip = fc.record({ line: fc.nat(events.length - 1), at: fc.nat(), bit: fc.nat(7) });
    fc.assert(
      fc.property(flip, ({ line, at, bit }) => {
        const offset = at % events[line]!.length;
        const flipped = events[line]![offset]! ^ (1 << bit);
        fc.pre(flipped !== NL[0]); // a new line is another tampering: a line split in two
        const bytes = tamper(MIDDLE, (lines) => {
          lines[1 + line]![offset] = flipped;
          return lines;
        });
        // A flip in a seq may move the blame to the seq it now claims: the line's own, or one beside it.
        const seqs = eventSeqs(verifyBundle(bytes, [KEY]).failures);
        expect(seqs.some((seq) => Math.abs(seq - (first + line)) <= 1), `${seqs}`).toBe(true);
      }),
      { numRuns: 400 },
    );
  });

  it('reports a prev that is not 64 lowercase hex digits at its event, and does not blame the event before', () => {
    const hash = EVENTS[32]!.hash.toString('hex');
    for (const prev of ['zz'.repeat(32), hash.slice(0, 62) + 'zz', hash.slice(0, 63), hash.slice(0, 2), hash + '00', hash.toUpperCase()]) {
      const bytes = tamper(MIDDLE, (lines) => [...lines.slice(0, -1), forge(34, EVENTS[32]!, { prev }).canonical]);
      const { failures } = verifyBundle(bytes, [KEY]);
      expect(failures, prev).toContainEqual({ seq: 34, reason: `prev "${prev}" is not 64 lowercase hex digits` });
      // Event 33 is intact: a malformed prev says nothing of it.
      expect(failures.filter((f) => f.seq === 33), prev).toEqual([]);
    }
    // A prev that is not a string at all is named with its JSON.
    for (const shown of ['123', 'null', `["${hash}"]`]) {
      const line = Buffer.from(forge(34, EVENTS[32]!).canonical.toString().replace(/"prev":"[0-9a-f]{64}"/, `"prev":${shown}`));
      const bytes = tamper(MIDDLE, (lines) => [...lines.slice(0, -1), line]);
      expect(verifyBundle(bytes, [KEY]).failures).toContainEqual({ seq: 34, reason: `the line is not an event body: prev must be a string, got ${shown}` });
    }
  });

  it('reports an event of another chain or day at its seq', () => {
    const foreign = makeChain([13, 21], 'other')[19]!;
    const bytes = tamper(MIDDLE, (lines) => lines.map((line, i) => (i === lineOf(20) ? foreign.canonical : line)));
    const { failures } = verifyBundle(bytes, [KEY]);
    // The replacement's prev differs too, so the link 19 -> 20 breaks as well: from the bytes alone,
    // event 19 altered and event 20's prev altered look the same.
    expect(eventSeqs(failures)).toEqual([19, 20]);
    expect(failures).toContainEqual({ seq: 19, reason: 'the bytes do not hash to the prev of event 20' });
    expect(failures).toContainEqual({ seq: 20, reason: `project "other" is not the bundle's "${PROJECT}"` });
    const early = tamper(MIDDLE, (lines) => lines.map((line, i) => (i === lineOf(20) ? EVENTS[2]!.canonical : line)));
    expect(verifyBundle(early, [KEY]).failures).toContainEqual({
      seq: 3,
      reason: `received_at ${EVENTS[2]!.body.received_at} is not on 2024-03-02 (UTC), the bundle's partition`,
    });
  });

  it('reports an altered manifest by its signature', () => {
    const altered = { ...MIDDLE.manifest, previous_manifest_sha256: 'ab'.repeat(32) };
    const bytes = tamper(MIDDLE, ([, ...events]) => [canonicalBytes(altered), ...events]);
    expect(verifyBundle(bytes, [KEY]).failures).toEqual([
      { seq: null, reason: `manifest signature does not verify with key ledger.example+${altered.key_id}: the manifest was altered` },
    ]);
  });

  it('reports a non-canonical manifest line even when its content is intact', () => {
    const bytes = tamper(MIDDLE, ([, ...events]) => [Buffer.from(JSON.stringify(MIDDLE.manifest, null, 0).replace('{', '{ ')), ...events]);
    expect(verifyBundle(bytes, [KEY]).failures).toEqual([{ seq: null, reason: 'the manifest line is not in canonical (RFC 8785) form' }]);
  });

  it('fails with a wrong key: neither the manifest nor the checkpoint verifies', () => {
    const { failures } = verifyBundle(MIDDLE.bytes, [OTHER_KEY]);
    expect(failures).toEqual([
      { seq: null, reason: `manifest signature: no verifier key has key id ${MIDDLE.manifest.key_id}` },
      { seq: null, reason: expect.stringMatching(/^checkpoint: note has no signature by a known key/) },
    ]);
  });

  it('reports a checkpoint replaced by one signed with another key', () => {
    const checkpoint = signCheckpoint({ origin: ORIGIN, size: 34, root: MIDDLE.root }, OTHER_KEY);
    const resigned = verifyBundle(remanifest(MIDDLE, { checkpoint }), [KEY]);
    expect(resigned.failures).toEqual([{ seq: null, reason: expect.stringMatching(/^checkpoint: note has no signature by a known key/) }]);
    const swapped = tamper(MIDDLE, ([, ...events]) => [canonicalBytes({ ...MIDDLE.manifest, checkpoint }), ...events]);
    expect(reasons(verifyBundle(swapped, [KEY]).failures)).toEqual([
      expect.stringMatching(/^manifest signature does not verify/),
      expect.stringMatching(/^checkpoint: note has no signature by a known key/),
    ]);
  });

  it("reports a genuine checkpoint of another chain, size or root", () => {
    const otherChain = signCheckpoint({ origin: chainOrigin('ledger.example', PROJECT, 'staging'), size: 34, root: MIDDLE.root }, KEY);
    expect(verifyBundle(remanifest(MIDDLE, { checkpoint: otherChain }), [KEY]).failures).toEqual([
      { seq: null, reason: `checkpoint: origin "ledger.example/${PROJECT}/staging" is not of chain ${PROJECT}/${ENVIRONMENT}` },
    ]);
    expect(reasons(verifyBundle(remanifest(MIDDLE, { checkpoint: FIRST.manifest.checkpoint }), [KEY]).failures)).toEqual([
      'checkpoint: tree size 13 is not last_seq 34',
      expect.stringMatching(/^consistency_proof does not prove the checkpoint extends start_range/),
    ]);
  });

  it('reports a consistency proof that does not match', () => {
    const proof = [...MIDDLE.manifest.consistency_proof];
    proof[0] = LAST.manifest.consistency_proof[0]!;
    expect(reasons(verifyBundle(remanifest(MIDDLE, { consistency_proof: proof }), [KEY]).failures)).toEqual([
      expect.stringMatching(/^consistency_proof does not prove the checkpoint extends start_range: root1 mismatch/),
    ]);
  });

  it('reports a bundle verified against the wrong predecessor', () => {
    expect(verifyBundle(LAST.bytes, [KEY]).failures).toEqual([]);
    expect(reasons(verifyBundle(LAST.bytes, [KEY], FIRST.previous).failures)).toEqual([
      "first_seq 35 does not follow the previous bundle's last_seq 13",
      "first_prev is not the previous bundle's last_hash",
      "previous_manifest_sha256 is not the SHA-256 of the previous bundle's manifest line",
      "start_range is not the tree of the previous bundle's checkpoint",
    ]);
    expect(reasons(verifyBundle(MIDDLE.bytes, [KEY], LAST.previous).failures)).toContain(
      'partition 2024-03-02 is before the previous 2024-03-03',
    );
  });

  it("reports a first line whose prev is not first_prev, at that line (first_prev is given, not computed)", () => {
    const firstPrev = 'ab'.repeat(32);
    expect(verifyBundle(remanifest(MIDDLE, { first_prev: firstPrev }), [KEY]).failures).toEqual([
      { seq: 14, reason: 'prev does not link to event 13' },
    ]);
  });

  it("reports a first bundle that breaks a chain's first-bundle rules", () => {
    const bytes = remanifest(FIRST, { first_prev: 'ab'.repeat(32), previous_manifest_sha256: 'cd'.repeat(32) });
    expect(verifyBundle(bytes, [KEY]).failures).toEqual([
      { seq: null, reason: "first_prev of a chain's first bundle must be 64 zeros" },
      { seq: null, reason: "previous_manifest_sha256 must be null exactly for a chain's first bundle (empty start_range)" },
      // Not event 1: it links to the genesis as it must; the manifest's first_prev is what is wrong.
    ]);
  });

  it('reports malformed bundles without throwing', () => {
    const manifestLine = splitLines(MIDDLE.bytes)[0]!;
    const { count: _count, ...withoutCount } = MIDDLE.manifest;
    const cases: [Buffer, RegExp, number?][] = [
      [Buffer.alloc(0), /^the bundle is empty/],
      [manifestLine, /^line 1 is cut short: .* each line ends in "\\n"$/],
      // A cut or empty event line, once the manifest is read, names the event whose place it is.
      [MIDDLE.bytes.subarray(0, -1), /^line 22, where event 34 belongs, is cut short/, 34],
      [MIDDLE.bytes.subarray(0, MIDDLE.bytes.indexOf('"seq":20')), /^line 8, where event 20 belongs, is cut short/, 20],
      [Buffer.concat([manifestLine, NL, NL]), /^line 2, where event 14 belongs, is empty$/, 14],
      [joinLines([...splitLines(MIDDLE.bytes).slice(0, 3), Buffer.alloc(0), ...splitLines(MIDDLE.bytes).slice(3)]), /^line 4, where event 16 belongs, is empty$/, 16],
      [Buffer.concat([NL, MIDDLE.bytes]), /^line 1 is empty$/],
      // A line past the last event is no event's place.
      [Buffer.concat([MIDDLE.bytes, NL]), /^line 23, after the bundle's last event 34, is empty$/],
      [Buffer.from('not json\n'), /not UTF-8 JSON/],
      [Buffer.from('[1]\n'), /not a JSON object/],
      [Buffer.concat([Buffer.from([0xff]), manifestLine, NL]), /not UTF-8 JSON/],
      [joinLines([canonicalBytes({ ...MIDDLE.manifest, extra: 1 })]), /unknown field\(s\) extra/],
      [joinLines([canonicalBytes(withoutCount)]), /lacks field\(s\) count/],
      [joinLines([canonicalBytes({ ...MIDDLE.manifest, partition: '2024-02-30' })]), /partition must be a UTC day YYYY-MM-DD/],
      [joinLines([canonicalBytes({ ...MIDDLE.manifest, last_hash: 'AB'.repeat(32) })]), /last_hash must be 64 lowercase hex digits/],
      // Shown as JSON: a hash in an array does not print as a hash.
      [joinLines([canonicalBytes({ ...MIDDLE.manifest, first_prev: [MIDDLE.manifest.first_prev] })]), /first_prev must be 64 lowercase hex digits, got \["[0-9a-f]{64}"\]$/],
      [joinLines([canonicalBytes({ ...MIDDLE.manifest, start_range: { size: 13, hashes: [] } })]), /start_range must be/],
      [joinLines([canonicalBytes({ ...MIDDLE.manifest, count: 0 })]), /count must be an integer >= 1/],
    ];
    for (const [bytes, message, seq = null] of cases) {
      expect(() => parseBundle(bytes)).toThrow(BundleError);
      expect(() => parseBundle(bytes)).toThrow(message);
      expect(verifyBundle(bytes, [KEY])).toEqual({
        manifest: null,
        failures: [{ seq, reason: expect.stringMatching(message) }],
        leaves: Buffer.alloc(0),
        roots: new Map(),
        nodes: expect.any(TileNodes),
      });
    }
  });
});

describe('bundleInclusionProof', () => {
  it('proves every event of every bundle from the bundle alone', () => {
    const leaves = EVENTS.map((e) => e.hash);
    for (const bundle of BUNDLES) {
      const parsed = parseBundle(bundle.bytes);
      const { root } = openCheckpoint(parsed.manifest.checkpoint, [KEY]).checkpoint;
      for (let seq = parsed.manifest.first_seq; seq <= parsed.manifest.last_seq; seq++) {
        const doc = bundleInclusionProof(parsed, seq);
        expect(doc).toMatchObject({ leaf_index: seq - 1, tree_size: parsed.manifest.last_seq, checkpoint: parsed.manifest.checkpoint });
        expect(doc.proof.map(b64)).toEqual(inclusionProof(seq - 1, doc.tree_size, leaves));
        verifyInclusion(doc.leaf_index, doc.tree_size, b64(doc.leaf_hash), doc.proof.map(b64), root);
        expect(verifyInclusionDocument(doc, [KEY])).toMatch(`(seq ${seq}) is included in the signed checkpoint of ${ORIGIN} at size`);
      }
    }
  });

  it('refuses a seq outside the bundle', () => {
    const parsed = parseBundle(MIDDLE.bytes);
    for (const seq of [13, 35, 14.5]) expect(() => bundleInclusionProof(parsed, seq)).toThrow(/is not in the bundle \(14\.\.34\)/);
  });
});

describe('findBundleEvent', () => {
  it("finds an event's line by the id in its body, not by the id's text elsewhere in a line", () => {
    const parsed = parseBundle(MIDDLE.bytes);
    const target = EVENTS[19]!;
    expect(findBundleEvent(parsed, target.body.id)).toEqual({ seq: 20, canonical: target.canonical });
    // A later event whose payload names the id: not taken for it.
    const decoy = forge(22, EVENTS[20]!, {});
    const named = encodeEvent({ action: 'x', target: { id: target.body.id } }, { ...decoy.body });
    expect(named.canonical.includes(`"id":"${target.body.id}"`)).toBe(true);
    const bytes = tamper(MIDDLE, (lines) => [lines[0]!, named.canonical, ...lines.slice(1).filter((_, i) => i !== 19 - 13)]);
    expect(findBundleEvent(parseBundle(bytes), target.body.id)).toBeUndefined();
    expect(findBundleEvent(parsed, uuidv7())).toBeUndefined();
  });
});

describe('BundleBuilder', () => {
  const start = {
    project: PROJECT,
    environment: ENVIRONMENT,
    partition: '2024-03-02',
    startRange: FIRST.endRange,
    firstPrev: FIRST.manifest.last_hash,
    previousManifestSha256: FIRST.previous.manifestSha256,
  };

  it('refuses an event that is not the next one, does not link, or does not hash to its bytes, naming its seq', () => {
    const builder = new BundleBuilder(start);
    expect(() => builder.add(stored(EVENTS[14]!))).toThrow(new BundleError('event 15: not the next event: want seq 14', 15));
    expect(() => builder.add({ ...stored(EVENTS[13]!), hash: EVENTS[12]!.hash })).toThrow(
      new BundleError('event 14: hash does not match the stored bytes', 14),
    );
    expect(() => builder.add({ ...stored(EVENTS[13]!), prev: EVENTS[11]!.hash })).toThrow(
      new BundleError('event 14: prev does not link to event 13', 14),
    );
    builder.add(stored(EVENTS[13]!));
    expect(() => builder.add(stored(forge(15, EVENTS[12]!)))).toThrow(new BundleError('event 15: prev does not link to event 14', 15));
    expect(() => builder.add(stored(forge(15, EVENTS[13]!, { project: 'other' })))).toThrow(
      new BundleError(`event 15: project "other" is not the bundle's "${PROJECT}"`, 15),
    );
    expect(() => builder.add(stored(forge(15, EVENTS[13]!, { received_at: '2024-03-03T00:00:00.000Z' })))).toThrow(
      new BundleError("event 15: received_at 2024-03-03T00:00:00.000Z is not on 2024-03-02 (UTC), the bundle's partition", 15),
    );
    expect(builder.count).toBe(1);
  });

  it('refuses a checkpoint that is not of its tree, and an empty bundle', () => {
    const builder = new BundleBuilder(start);
    expect(() => builder.finish({ checkpoint: FIRST.manifest.checkpoint, key: KEY })).toThrow('a bundle holds at least one event');
    builder.add(stored(EVENTS[13]!));
    expect(() => builder.finish({ checkpoint: FIRST.manifest.checkpoint, key: KEY })).toThrow(
      new BundleError('checkpoint: tree size 13 is not last_seq 14'),
    );
    const foreign = signCheckpoint({ origin: ORIGIN, size: 14, root: builder.root }, OTHER_KEY);
    expect(() => builder.finish({ checkpoint: foreign, key: KEY })).toThrow(/checkpoint: note has no signature by a known key/);
    const right = signCheckpoint({ origin: ORIGIN, size: 14, root: builder.root }, KEY);
    expect(builder.finish({ checkpoint: right, key: KEY }).manifest.last_seq).toBe(14);
  });

  it('refuses a start that breaks the format or the first-bundle rules', () => {
    expect(() => new BundleBuilder({ ...start, partition: '2024-3-2' })).toThrow(/partition must be a UTC day/);
    expect(() => new BundleBuilder({ ...start, firstPrev: 'xyz' })).toThrow(/first_prev must be 64 lowercase hex digits/);
    expect(() => new BundleBuilder({ ...start, startRange: { size: 13, hashes: [] } })).toThrow(/start_range must be/);
    expect(() => new BundleBuilder({ ...start, previousManifestSha256: null })).toThrow(/must be null exactly for a chain's first bundle/);
    expect(() => new BundleBuilder({ ...start, startRange: emptyRange(), previousManifestSha256: null })).toThrow(
      /first_prev of a chain's first bundle must be 64 zeros/,
    );
  });

  it('seals thousands of events per bundle, past its first leaf buffer', () => {
    const counts = [1500, 2600, 700];
    const events = makeChain(counts);
    const bundles = seal(events, counts);
    bundles.forEach((bundle, i) => {
      expect(verifyBundle(bundle.bytes, [KEY], bundles[i - 1]?.previous).failures).toEqual([]);
    });
    const parsed = parseBundle(bundles[1]!.bytes);
    const doc = bundleInclusionProof(parsed, 4000);
    expect(verifyInclusionDocument(doc, [KEY])).toMatch('(seq 4000) is included');
  });
});

// A forged event `seq` of the middle day, linked to `after`.
function forge(seq: number, after: EncodedEvent, fields: Partial<LedgerFields> = {}): EncodedEvent {
  const time = Date.parse('2024-03-02T12:00:00Z');
  return encodeEvent(
    { action: 'forged.event' },
    {
      project: PROJECT,
      environment: ENVIRONMENT,
      seq,
      id: uuidv7(time),
      received_at: new Date(time).toISOString(),
      prev: after.hash.toString('hex'),
      ...fields,
    },
  );
}
