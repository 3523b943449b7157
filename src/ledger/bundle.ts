// Bundles (DESIGN.md "Ledger format v1", Bundle): one archive object per chain per sealed UTC day.
// NDJSON: the first line is the signed manifest, the others the stored canonical event bodies in
// seq order, each line ending in "\n". A bundle alone proves its events' inclusion in its checkpoint
// (start_range + its own leaves); consecutive bundles prove each other by first_prev, start_range,
// the consistency proof and previous_manifest_sha256.
import { createHash, type Hash } from 'node:crypto';
import { CheckpointError, openChainCheckpoint, type ChainName, type Checkpoint } from './checkpoint.js';
import { ChainChecker, eventFindings, treeMismatch, type ChainEvent, type Finding } from './chain-check.js';
import { appendLeaf, appendLeaves, rangeRoot, type CompactRange } from './compact-range.js';
import { eventHash, GENESIS_PREV, type EventBody } from './event.js';
import { decodeHexHash, HASH_SIZE, hashAt, hashViews } from './hash.js';
import { canonicalBytes } from './jcs.js';
import { scanCanonicalObject } from './jcs-scan.js';
import {
  base64,
  checkSigningKey,
  decodeBase64,
  keyIdHex,
  signBytes,
  verifyBytes,
  SIGNATURE_SIZE,
  type SigningKey,
  type VerifierKey,
} from './keys.js';
import { NoteError } from './note.js';
import { ProofError, verifyConsistency } from './proof.js';
import { rangeConsistencyProof, rangeInclusionProof } from './range-proof.js';
import { onesCount } from './tree.js';
import { TileNodes } from './tiles.js';
import { eventVersionProblem, MANIFEST_VERSION, MANIFEST_VERSIONS, unknownVersion } from './version.js';
import type { InclusionDocument } from './verify-proof.js';

/** A bundle or bundle input that is malformed, or inconsistent with its chain; `seq` names the event at fault, if one is. */
export class BundleError extends Error {
  override name = 'BundleError';
  constructor(
    message: string,
    readonly seq: number | null = null,
  ) {
    super(message);
  }
}

/** The first line of a bundle. Field names and encodings are part of the stable format. */
export interface BundleManifest {
  v: typeof MANIFEST_VERSION;
  project: string;
  environment: string;
  /** The UTC day, YYYY-MM-DD, on which the bundle's events were received. */
  partition: string;
  first_seq: number;
  last_seq: number;
  count: number;
  /** Hex hash of event first_seq - 1 (the previous bundle's last_hash), GENESIS_PREV for seq 1. */
  first_prev: string;
  /** Hex hash of event last_seq. */
  last_hash: string;
  /** The compact range before first_seq: the previous bundle's tree, in O(log n) hashes. */
  start_range: { size: number; hashes: string[] };
  /** The signed checkpoint note at tree size last_seq. */
  checkpoint: string;
  /** Base64 RFC 9162 consistency proof from first_seq - 1 (the previous checkpoint) to last_seq. */
  consistency_proof: string[];
  /** Hex SHA-256 of all event lines, each with its "\n". */
  events_sha256: string;
  /** manifestSha256 of the previous bundle; null for a chain's first bundle. */
  previous_manifest_sha256: string | null;
  /** Hex key id of the signing key. */
  key_id: string;
  /** Base64 Ed25519 signature of the RFC 8785 form of the manifest without `signature`. */
  signature: string;
}

export type UnsignedManifest = Omit<BundleManifest, 'key_id' | 'signature'>;

/** An event as stored (a subset of verify-events StoredEvent). */
export interface BundleEvent {
  seq: number;
  hash: Buffer;
  prev: Buffer;
  canonical: Buffer;
}

export interface SignedManifest {
  manifest: BundleManifest;
  /** The manifest's RFC 8785 form and "\n": the bundle's first line, the same for the same range. */
  manifestLine: Buffer;
}

export interface ParsedBundle extends SignedManifest {
  /** The event lines without their "\n", byte for byte. */
  events: EventLines;
}

/**
 * A bundle's event lines, each without its "\n", as views of the bundle's bytes made when asked
 * for: a bundle of n events holds no n objects while it is checked (each one the garbage collector
 * would copy until the check ends).
 */
export class EventLines implements Iterable<Buffer> {
  /** `starts[i]` is where line i begins; one more entry, the end of the bytes, closes the last. */
  constructor(
    private readonly bytes: Buffer,
    private readonly starts: readonly number[],
  ) {}

  get length(): number {
    return this.starts.length - 1;
  }

  /** Line `i` (0-based) without its "\n"; undefined outside 0..length - 1. */
  at(i: number): Buffer | undefined {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) return undefined;
    return this.bytes.subarray(this.starts[i]!, this.starts[i + 1]! - 1);
  }

  *[Symbol.iterator](): Iterator<Buffer> {
    for (let i = 0; i < this.length; i++) yield this.at(i)!;
  }
}

export interface BundleFailure {
  /** The event at fault, or null for the bundle as a whole. */
  seq: number | null;
  reason: string;
}

export interface BundleVerification {
  /** Null when the bundle could not be parsed. */
  manifest: BundleManifest | null;
  failures: BundleFailure[];
  /** The lines' leaf hashes end to end, 32 bytes a line in line order (for proofs without hashing again); empty when unparsed. */
  leaves: Buffer;
  /** The tree root at each of the sizes asked for that the bundle's lines reach. */
  roots: Map<number, Buffer>;
  /** The tile-level nodes the tree computed over the lines (on top of start_range): the roots of the tiles they complete. */
  nodes: TileNodes;
}

/** The bundle before, as the next one is checked against it. */
export interface PreviousBundle {
  manifest: BundleManifest;
  manifestSha256: string;
}

export interface BundleStart {
  project: string;
  environment: string;
  /** The UTC day YYYY-MM-DD. */
  partition: string;
  /** The compact range before the first event: the previous bundle's endRange, or empty. */
  startRange: CompactRange;
  /** Hex hash of event startRange.size: the previous bundle's last_hash, or GENESIS_PREV. */
  firstPrev: string;
  /** manifestSha256 of the previous bundle, or null for the chain's first. */
  previousManifestSha256: string | null;
}

const NEWLINE = Buffer.from('\n');
// With the length apart: /^[0-9a-f]{64}$/ took three times as long. An archive check decodes each
// event's prev with decodeHexHash instead, which checks the digits as it goes.
const HEX_DIGITS = /^[0-9a-f]*$/;
const DAY = /^[0-9]{4}-[0-9]{2}-[0-9]{2}$/;
const HEX_WANT = '64 lowercase hex digits';

/**
 * Builds a bundle as events stream in, in seq order. Memory stays bounded by 32 bytes per event:
 * it keeps the leaf hashes (for the consistency proof) and a running SHA-256, never event bytes.
 */
export class BundleBuilder {
  private range: CompactRange;
  private lastHash: string;
  private leaves = Buffer.alloc(1024 * HASH_SIZE);
  private readonly eventsHash: Hash = createHash('sha256');

  constructor(private readonly start: BundleStart) {
    const { project, environment, partition, startRange, firstPrev, previousManifestSha256 } = start;
    const problem =
      fieldProblem({
        project,
        environment,
        partition,
        first_prev: firstPrev,
        start_range: rangeJson(startRange),
        previous_manifest_sha256: previousManifestSha256,
      }, FIELDS) ?? firstBundleProblems(startRange.size, firstPrev, previousManifestSha256)[0];
    if (problem !== undefined) throw new BundleError(problem);
    this.range = startRange;
    this.lastHash = firstPrev;
  }

  /** The number of events added. */
  get count(): number {
    return this.range.size - this.start.startRange.size;
  }

  /** The compact range after the last event: the next bundle's startRange. */
  get endRange(): CompactRange {
    return { size: this.range.size, hashes: this.range.hashes.slice() };
  }

  /** The Merkle tree root at the last event. */
  get root(): Buffer {
    return rangeRoot(this.range);
  }

  /**
   * Takes the next event, checking it as verifyBundle will: seq, hash, link, and the body's own
   * fields. Returns its line (the canonical bytes and "\n") to write. Throws BundleError.
   */
  add(event: BundleEvent): Buffer {
    const seq = this.range.size + 1;
    const problem = this.eventProblem(event, seq);
    if (problem !== undefined) throw new BundleError(`event ${event.seq}: ${problem}`, event.seq);
    const line = Buffer.concat([event.canonical, NEWLINE]);
    this.eventsHash.update(line);
    this.pushLeaf(event.hash);
    this.range = appendLeaf(this.range, event.hash);
    this.lastHash = event.hash.toString('hex');
    return line;
  }

  /**
   * The signed manifest line. `checkpoint` is the note at tree size last_seq, signed with `key`
   * for this chain; it must match the tree built, so that no bundle is signed that would not verify.
   * Throws BundleError.
   */
  finish({ checkpoint, key }: { checkpoint: string; key: SigningKey }): SignedManifest {
    const { project, environment, partition, startRange, firstPrev, previousManifestSha256 } = this.start;
    const count = this.count;
    if (count === 0) throw new BundleError('a bundle holds at least one event');
    const lastSeq = this.range.size;
    const opened = openSigned(checkpoint, [key], this.start);
    const problem = typeof opened === 'string' ? opened : checkpointProblems(opened, lastSeq, this.root)[0];
    if (problem !== undefined) throw new BundleError(`checkpoint: ${problem}`);
    const leaves = this.leaves.subarray(0, count * HASH_SIZE);
    return signManifest(
      {
        v: MANIFEST_VERSION,
        project,
        environment,
        partition,
        first_seq: startRange.size + 1,
        last_seq: lastSeq,
        count,
        first_prev: firstPrev,
        last_hash: this.lastHash,
        start_range: rangeJson(startRange),
        checkpoint,
        consistency_proof: rangeConsistencyProof(startRange, leaves, startRange.size, lastSeq).map(base64),
        // A copy, so finishing does not end the hash: the builder stays usable.
        events_sha256: this.eventsHash.copy().digest('hex'),
        previous_manifest_sha256: previousManifestSha256,
      },
      key,
    );
  }

  private eventProblem(event: BundleEvent, seq: number): string | undefined {
    if (event.seq !== seq) return `not the next event: want seq ${seq}`;
    // The hash of the bytes and the link, as ChainChecker decides them.
    const finding = eventFindings(event, Buffer.from(this.lastHash, 'hex'))[0];
    if (finding !== undefined) return finding.reason;
    const body = readBody(event.canonical);
    if (typeof body === 'string') return body;
    if (body.seq !== seq) return `seq in the body is ${body.seq}`;
    if (body.prev !== this.lastHash) return 'prev in the body does not match the stored prev';
    return bodyProblems(body, this.start)[0];
  }

  // Doubles the leaf buffer when full: amortized O(1) per event, one allocation per doubling.
  private pushLeaf(hash: Buffer): void {
    const offset = this.count * HASH_SIZE;
    if (offset + HASH_SIZE > this.leaves.length) {
      const grown = Buffer.alloc(this.leaves.length * 2);
      this.leaves.copy(grown);
      this.leaves = grown;
    }
    hash.copy(this.leaves, offset);
  }
}

/**
 * Signs the manifest: the key id joins the signed fields, and the signature covers their RFC 8785
 * form. That form ends in "}", a signed note's text in "\n", so a signature of one can never pass
 * for the other although one key signs both.
 */
export function signManifest(fields: UnsignedManifest, key: SigningKey): SignedManifest {
  checkSigningKey(key);
  const unsigned = { ...fields, key_id: keyIdHex(key.keyId) };
  const manifest: BundleManifest = { ...unsigned, signature: base64(signBytes(key, canonicalBytes(unsigned))) };
  return { manifest, manifestLine: Buffer.concat([canonicalBytes(manifest), NEWLINE]) };
}

/** Hex SHA-256 of a manifest line without its "\n": what the next bundle's previous_manifest_sha256 holds. */
export function manifestSha256(manifestLine: Buffer): string {
  if (manifestLine.at(-1) !== NEWLINE[0]) throw new BundleError('a manifest line ends in "\\n"');
  return createHash('sha256').update(manifestLine.subarray(0, -1)).digest('hex');
}

/**
 * A bundle's manifest, once its first line and last byte are checked: it is NDJSON, a manifest line
 * with valid fields and then lines each ending in "\n". The event lines are neither split off nor
 * looked at (parseBundle does both, in one pass): a verifier learns from the manifest alone which
 * bundle this is before checking it. Throws BundleError, whose seq names the event whose line is
 * cut short when the manifest could be read.
 */
export function parseBundleHead(bytes: Buffer): SignedManifest {
  if (bytes.length === 0) throw new BundleError('the bundle is empty: a bundle is NDJSON, a manifest line and then its events');
  if (bytes[0] === NEWLINE[0]) throw new BundleError('line 1 is empty');
  const firstEnd = bytes.indexOf(NEWLINE);
  if (firstEnd < 0) throw new BundleError('line 1 is cut short: a bundle is NDJSON, each line ends in "\\n"');
  const head = { manifest: parseManifest(bytes.subarray(0, firstEnd)), manifestLine: bytes.subarray(0, firstEnd + 1) };
  if (bytes.at(-1) !== NEWLINE[0]) throw lineError(head.manifest, newlinesThrough(bytes, bytes.length - 1) + 1, 'is cut short: a bundle is NDJSON, each line ends in "\\n"');
  return head;
}

// A malformed event line: line 2 holds event first_seq, line 3 the next, and so on; a line past
// last_seq holds no event of the bundle.
function lineError(manifest: BundleManifest, line: number, what: string): BundleError {
  const seq = manifest.first_seq + line - 2;
  if (seq > manifest.last_seq) return new BundleError(`line ${line}, after the bundle's last event ${manifest.last_seq}, ${what}`);
  return new BundleError(`line ${line}, where event ${seq} belongs, ${what}`, seq);
}

/**
 * Splits a bundle into its manifest and event lines, checked as parseBundleHead checks them, and
 * none of them empty. Throws BundleError, whose seq names the event whose line is cut short or empty
 * when the manifest could be read.
 */
export function parseBundle(bytes: Buffer): ParsedBundle {
  const head = parseBundleHead(bytes);
  const starts: number[] = [];
  for (let from = head.manifestLine.length; from < bytes.length; from = bytes.indexOf(NEWLINE, from) + 1) {
    if (bytes[from] === NEWLINE[0]) throw lineError(head.manifest, starts.length + 2, 'is empty');
    starts.push(from);
  }
  starts.push(bytes.length);
  return { ...head, events: new EventLines(bytes, starts) };
}

// The number of "\n" in bytes [0, end].
function newlinesThrough(bytes: Buffer, end: number): number {
  let count = 0;
  for (let at = bytes.indexOf(NEWLINE); at >= 0 && at <= end; at = bytes.indexOf(NEWLINE, at + 1)) count++;
  return count;
}

/**
 * Checks everything a bundle claims that can be checked from it, its verifier keys and, when given,
 * the bundle before it. Reports every problem found rather than stopping at the first; throws only
 * for a caller's mistake. `rootSizes`: as verifyParsedBundle's.
 */
export function verifyBundle(bytes: Buffer, verifiers: readonly VerifierKey[], previous?: PreviousBundle, rootSizes: readonly number[] = []): BundleVerification {
  let bundle: ParsedBundle;
  try {
    bundle = parseBundle(bytes);
  } catch (error) {
    if (error instanceof BundleError) return { manifest: null, failures: [{ seq: error.seq, reason: error.message }], leaves: Buffer.alloc(0), roots: new Map(), nodes: new TileNodes() };
    throw error;
  }
  return verifyParsedBundle(bundle, bytes, verifiers, previous, rootSizes);
}

/**
 * verifyBundle for a bundle its caller has parsed already (from `bytes`). `rootSizes`: tree sizes
 * whose roots the caller wants (of archived checkpoints, say), computed on the way to last_seq.
 */
export function verifyParsedBundle(
  bundle: ParsedBundle,
  bytes: Buffer,
  verifiers: readonly VerifierKey[],
  previous?: PreviousBundle,
  rootSizes: readonly number[] = [],
): BundleVerification {
  const { manifest, manifestLine, events } = bundle;
  const whole = (reason: string): BundleFailure => ({ seq: null, reason });
  const eventsSha256 = sha256InPieces(bytes.subarray(manifestLine.length)).toString('hex');
  const lines = readLines(events, manifest);
  // The leaves are the lines as they stand: any line changed, moved or missing changes the root.
  const nodes = new TileNodes();
  const tree = growRange(compactRange(manifest.start_range), lines.hashes, [...rootSizes, manifest.last_seq], nodes);
  const failures = [
    ...manifestProblems(bundle, eventsSha256, verifiers).map(whole),
    ...eventFailures(manifest, lines),
    ...treeProblems(manifest, tree.roots.get(tree.end.size)!, verifiers).map(whole),
    ...(previous ? continuityProblems(manifest, previous, verifiers).map(whole) : []),
  ];
  const asked = new Set(rootSizes);
  const roots = new Map([...tree.roots].filter(([size]) => asked.has(size)));
  return { manifest, failures, leaves: lines.hashes, roots, nodes };
}

// node:crypto takes at most 2 GiB in one update; a bundle may be larger.
const HASH_PIECE = 2 ** 30;

/** SHA-256 of `bytes`, fed to the hash a piece at a time (`piece` bytes; tests make it small). */
export function sha256InPieces(bytes: Uint8Array, piece = HASH_PIECE): Buffer {
  const hash = createHash('sha256');
  for (let at = 0; at < bytes.length; at += piece) hash.update(bytes.subarray(at, at + piece));
  return hash.digest();
}

// Leaf hashes joined to a range at a time: a view each for a chunk, not for the whole bundle.
const LEAF_CHUNK = 256;

// The compact range after `leaves` (hashes end to end), and the root at each of `sizes` on the way
// and at the end; `nodes` keeps the tile-level nodes computed on the way.
function growRange(start: CompactRange, leaves: Buffer, sizes: readonly number[], nodes: TileNodes): { end: CompactRange; roots: Map<number, Buffer> } {
  const endSize = start.size + leaves.length / HASH_SIZE;
  const stops = [...new Set(sizes)].filter((size) => size > start.size && size <= endSize).sort((a, b) => a - b);
  const roots = new Map<number, Buffer>();
  let range = start;
  for (const size of [...stops, endSize]) {
    while (range.size < size) {
      const from = range.size - start.size;
      range = appendLeaves(range, hashViews(leaves, from, Math.min(LEAF_CHUNK, size - range.size)), nodes.onNode);
    }
    roots.set(size, rangeRoot(range));
  }
  return { end: range, roots };
}

/**
 * An inclusion proof of event `seq` in the bundle's checkpoint, from the bundle alone: left
 * siblings come from start_range, the rest from its own leaves. The document is the one
 * GET /v1/events/:id/proof serves, so verifyInclusionDocument checks it offline.
 */
export function bundleInclusionProof(bundle: ParsedBundle, seq: number): InclusionDocument {
  const canonical = bundle.events.at(seq - bundle.manifest.first_seq);
  const doc = treeInclusionProof(bundleTree(bundle), seq);
  return { ...doc, canonical: canonical!.toString('utf8') };
}

/**
 * The line of event `id` (lowercase, as event bodies hold it) in a parsed bundle, found by the id
 * in its body: a line that holds the id's text elsewhere (in its event, say) is not taken for it.
 * Undefined when no line is that event's.
 */
export function findBundleEvent(bundle: ParsedBundle, id: string): { seq: number; canonical: Buffer } | undefined {
  const text = `"id":${JSON.stringify(id)}`;
  for (const line of bundle.events) {
    if (!line.includes(text)) continue;
    const body = scanCanonicalObject(line, { id: true, seq: true });
    if (typeof body !== 'string' && body.id === id && isSeq(body.seq)) return { seq: body.seq as number, canonical: line };
  }
  return undefined;
}

/** What proofs need of a bundle: its manifest and its leaf hashes, 32 bytes an event. */
export interface BundleTree {
  manifest: BundleManifest;
  /** The events' leaf hashes, end to end. */
  leaves: Buffer;
}

export function bundleTree(bundle: ParsedBundle): BundleTree {
  return { manifest: bundle.manifest, leaves: Buffer.concat(Array.from(bundle.events, eventHash)) };
}

/** The leaf hash of event `seq` of the bundle, or undefined when the bundle does not hold it. */
export function bundleLeaf(tree: BundleTree, seq: number): Buffer | undefined {
  const index = seq - tree.manifest.first_seq;
  if (!Number.isSafeInteger(index) || index < 0 || (index + 1) * HASH_SIZE > tree.leaves.length) return undefined;
  return hashAt(tree.leaves, index);
}

/** An inclusion proof of event `seq` in the bundle's checkpoint, from its start_range and leaves. */
export function treeInclusionProof(tree: BundleTree, seq: number): Omit<InclusionDocument, 'canonical'> {
  const { manifest, leaves } = tree;
  const leaf = bundleLeaf(tree, seq);
  if (!leaf) {
    throw new RangeError(`seq ${seq} is not in the bundle (${manifest.first_seq}..${manifest.first_seq + leaves.length / HASH_SIZE - 1})`);
  }
  const proof = rangeInclusionProof(compactRange(manifest.start_range), leaves, seq - 1, manifest.last_seq);
  return {
    leaf_index: seq - 1,
    tree_size: manifest.last_seq,
    leaf_hash: base64(leaf),
    proof: proof.map(base64),
    checkpoint: manifest.checkpoint,
  };
}

// --- the manifest

type FieldCheck = readonly [check: (value: unknown) => boolean, want: string];

const isString = (x: unknown): boolean => typeof x === 'string';
const isText = (x: unknown): boolean => isString(x) && x !== '';
const isSeq = (x: unknown): boolean => Number.isSafeInteger(x) && (x as number) >= 1;
const isHexHash = (x: unknown): x is string => typeof x === 'string' && x.length === 2 * HASH_SIZE && HEX_DIGITS.test(x);
const isBase64Hash = (x: unknown): boolean => typeof x === 'string' && decodeBase64(x)?.length === HASH_SIZE;

// A real calendar day: the round trip through Date rejects 2024-02-30.
const isDay = (x: unknown): boolean =>
  typeof x === 'string' && DAY.test(x) && !Number.isNaN(Date.parse(x)) && new Date(x).toISOString().slice(0, 10) === x;

function isRangeJson(x: unknown): boolean {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const { size, hashes, ...rest } = x as Record<string, unknown>;
  return (
    Object.keys(rest).length === 0 &&
    Number.isSafeInteger(size) &&
    (size as number) >= 0 &&
    Array.isArray(hashes) &&
    hashes.length === onesCount(size as number) &&
    hashes.every(isHexHash)
  );
}

const FIELDS: { readonly [K in keyof BundleManifest]: FieldCheck } = {
  v: [(x) => unknownVersion('manifest', x, MANIFEST_VERSIONS) === undefined, `one of ${MANIFEST_VERSIONS.join(', ')}`],
  project: [isText, 'a non-empty string'],
  environment: [isText, 'a non-empty string'],
  partition: [isDay, 'a UTC day YYYY-MM-DD'],
  first_seq: [isSeq, 'an integer >= 1'],
  last_seq: [isSeq, 'an integer >= 1'],
  count: [isSeq, 'an integer >= 1 (a bundle holds at least one event)'],
  first_prev: [isHexHash, HEX_WANT],
  last_hash: [isHexHash, HEX_WANT],
  start_range: [isRangeJson, '{size, hashes}: one hex hash per set bit of size, largest subtree first'],
  checkpoint: [isText, 'a signed checkpoint note'],
  consistency_proof: [(x) => Array.isArray(x) && x.every(isBase64Hash), 'a list of base64 32-byte hashes'],
  events_sha256: [isHexHash, HEX_WANT],
  previous_manifest_sha256: [(x) => x === null || isHexHash(x), `null or ${HEX_WANT}`],
  key_id: [(x) => typeof x === 'string' && /^[0-9a-f]{8}$/.test(x), '8 lowercase hex digits'],
  signature: [(x) => typeof x === 'string' && decodeBase64(x)?.length === SIGNATURE_SIZE, `base64 of ${SIGNATURE_SIZE} bytes`],
};

// What a bundle needs of an event body's ledger fields before it checks them against itself.
const BODY_FIELDS: { readonly [K in 'seq' | 'prev' | 'project' | 'environment' | 'received_at']: FieldCheck } = {
  seq: [isSeq, 'an integer from 1'],
  prev: [isString, 'a string'],
  project: [isString, 'a string'],
  environment: [isString, 'a string'],
  received_at: [isString, 'a string'],
};

// The first field of `fields` that is not what `checks` wants, as a message.
function fieldProblem<K extends string>(fields: { readonly [key in K]?: unknown }, checks: { readonly [key in K]: FieldCheck }): string | undefined {
  for (const [name, value] of Object.entries(fields)) {
    const [check, want] = checks[name as K];
    if (!check(value)) return `${name} must be ${want}, got ${show(value)}`;
  }
  return undefined;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function parseManifest(line: Buffer): BundleManifest {
  let manifest: unknown;
  try {
    manifest = JSON.parse(UTF8.decode(line));
  } catch {
    throw new BundleError('the manifest line is not UTF-8 JSON');
  }
  if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest)) {
    throw new BundleError('the manifest line is not a JSON object');
  }
  // First: another version may name other fields, and its fields are not ours to judge. A line
  // without v is no manifest of any version: the field checks below say what it lacks.
  const version = Object.hasOwn(manifest, 'v') ? unknownVersion('manifest', (manifest as { v: unknown }).v, MANIFEST_VERSIONS) : undefined;
  if (version !== undefined) throw new BundleError(version);
  const unknown = Object.keys(manifest).filter((name) => !Object.hasOwn(FIELDS, name));
  if (unknown.length) throw new BundleError(`manifest has unknown field(s) ${unknown.join(', ')}`);
  const missing = Object.keys(FIELDS).filter((name) => !Object.hasOwn(manifest, name));
  if (missing.length) throw new BundleError(`manifest lacks field(s) ${missing.join(', ')}`);
  const problem = fieldProblem(manifest, FIELDS);
  if (problem !== undefined) throw new BundleError(`manifest ${problem}`);
  return manifest as BundleManifest;
}

// Problems of the manifest and what it says of the bundle as a whole: form, signature, event
// lines, counts, and the first-bundle rules.
function manifestProblems(bundle: ParsedBundle, eventsSha256: string, verifiers: readonly VerifierKey[]): string[] {
  const { manifest, manifestLine, events } = bundle;
  const { first_seq, last_seq, count, start_range, first_prev, previous_manifest_sha256 } = manifest;
  const problems: string[] = [];
  // The line is the manifest's RFC 8785 form, so the same range always gives the same bytes.
  if (!canonicalBytes(manifest).equals(manifestLine.subarray(0, -1))) {
    problems.push('the manifest line is not in canonical (RFC 8785) form');
  }
  const signature = signatureProblem(manifest, verifiers);
  if (signature !== undefined) problems.push(signature);
  if (eventsSha256 !== manifest.events_sha256) problems.push('events_sha256 does not match the event lines');
  if (events.length !== count) problems.push(`the bundle has ${events.length} event lines, not count ${count}`);
  if (count !== last_seq - first_seq + 1) {
    problems.push(`count ${count} is not last_seq - first_seq + 1 = ${last_seq - first_seq + 1}`);
  }
  if (first_seq !== start_range.size + 1) {
    problems.push(`first_seq ${first_seq} does not follow start_range, of size ${start_range.size}`);
  }
  return [...problems, ...firstBundleProblems(start_range.size, first_prev, previous_manifest_sha256)];
}

function signatureProblem(manifest: BundleManifest, verifiers: readonly VerifierKey[]): string | undefined {
  const { signature, ...unsigned } = manifest;
  const keys = verifiers.filter((key) => keyIdHex(key.keyId) === manifest.key_id);
  if (keys.length === 0) return `manifest signature: no verifier key has key id ${manifest.key_id}`;
  const message = canonicalBytes(unsigned);
  const bytes = decodeBase64(signature) as Uint8Array;
  if (keys.some((key) => verifyBytes(key, message, bytes))) return undefined;
  const names = keys.map((key) => `${key.name}+${manifest.key_id}`).join(', ');
  return `manifest signature does not verify with key ${names}: the manifest was altered`;
}

// Only a chain's first bundle starts at the empty tree, and it alone links to GENESIS_PREV and to
// no previous manifest.
function firstBundleProblems(startSize: number, firstPrev: string, previousManifest: string | null): string[] {
  const problems: string[] = [];
  if (startSize === 0 && firstPrev !== GENESIS_PREV) problems.push("first_prev of a chain's first bundle must be 64 zeros");
  if ((startSize === 0) !== (previousManifest === null)) {
    problems.push("previous_manifest_sha256 must be null exactly for a chain's first bundle (empty start_range)");
  }
  return problems;
}

// --- the events

// A bundle's lines, a column per field rather than an object and two buffers per line: the lines
// live until the bundle is checked, and copying per-line objects that long-lived at every
// scavenge (on V8's helper threads too) cost about 8% of an archive check's CPU.
interface Lines {
  /** The seq each body claims; for an unreadable body, the one its line's position implies. */
  seqs: number[];
  /** The lines' leaf hashes, end to end. */
  hashes: Buffer;
  /** The bodies' prevs decoded, end to end, in memory the next check reuses (prevMemory); a line in `odd` has its own instead. */
  prevs: Buffer;
  /** The lines, by index, whose body is unreadable or has problems (a prev not 64 lowercase hex digits among them): usually none. */
  odd: Map<number, OddLine>;
}

interface OddLine {
  /**
   * Undefined when the body is unreadable or its prev is not 64 lowercase hex digits: its link is
   * then not checked, since a malformed prev says nothing of the event before (its own problem is
   * reported at this line).
   */
  prev: Buffer | undefined;
  problems: readonly string[];
}

const NO_PROBLEMS: readonly string[] = [];

// Each line's leaf hash and ledger fields. The body is checked here and not kept (a decoded body
// per line was once most of the garbage collector's work).
function readLines(events: EventLines, manifest: BundleManifest): Lines {
  const lines: Lines = {
    seqs: new Array<number>(events.length),
    hashes: Buffer.allocUnsafeSlow(events.length * HASH_SIZE),
    prevs: prevMemory(events.length * HASH_SIZE),
    odd: new Map(),
  };
  for (let i = 0; i < events.length; i++) {
    const canonical = events.at(i)!;
    eventHash(canonical).copy(lines.hashes, i * HASH_SIZE);
    const body = readBody(canonical);
    if (typeof body === 'string') {
      lines.seqs[i] = manifest.first_seq + i;
      lines.odd.set(i, { prev: undefined, problems: [body] });
      continue;
    }
    lines.seqs[i] = body.seq;
    const prevRead = decodeHexHash(body.prev, lines.prevs, i * HASH_SIZE);
    const problems = bodyProblems(body, manifest, prevRead);
    if (problems.length) lines.odd.set(i, { prev: prevRead ? hashAt(lines.prevs, i) : undefined, problems });
  }
  return lines;
}

// The memory the prevs of the bundle being checked are decoded into, kept from one check to the
// next: new memory costs more on some machines than the work done in it (3.2 MB at 100,000
// events; README "New memory costs more than reading on this machine"). Safe to share because a
// check is synchronous and no view of it outlives the check.
let prevs = Buffer.alloc(0);

function prevMemory(size: number): Buffer {
  if (prevs.length < size) prevs = Buffer.allocUnsafeSlow(size);
  return prevs.subarray(0, size);
}

/** Line `i` as the chain checker takes it. */
function chainEvent(lines: Lines, i: number): ChainEvent {
  const odd = lines.odd.get(i);
  return { seq: lines.seqs[i]!, hash: hashAt(lines.hashes, i), prev: odd ? odd.prev : hashAt(lines.prevs, i) };
}

// What a bundle checks of a body: its ledger fields.
type LedgerFields = Pick<EventBody, 'v' | 'seq' | 'prev' | 'project' | 'environment' | 'received_at' | 'commitments'>;
// `commitments` with no members wanted: only whether the body has it (a v1 body may not).
export const LEDGER_FIELDS = { v: true, seq: true, prev: true, project: true, environment: true, received_at: true, commitments: {} } as const;

// The ledger fields of the event body stored as `canonical`, or why it is not one: its bytes must
// be exactly its RFC 8785 form.
function readBody(canonical: Buffer): LedgerFields | string {
  const body = scanCanonicalObject(canonical, LEDGER_FIELDS);
  if (typeof body === 'string') return `the line is ${body}`;
  const { seq, prev, project, environment, received_at } = body;
  // Checked inline, once per event; BODY_FIELDS only words what is wrong.
  if (!isSeq(seq) || ![prev, project, environment, received_at].every((x) => typeof x === 'string')) {
    return `the line is not an event body: ${fieldProblem({ seq, prev, project, environment, received_at }, BODY_FIELDS)}`;
  }
  return body as unknown as LedgerFields;
}

// What in a readable body contradicts the bundle it is in.
function bodyProblems(body: LedgerFields, bundle: Pick<BundleManifest, 'project' | 'environment' | 'partition'>, prevIsHex = isHexHash(body.prev)): string[] {
  const problems: string[] = [];
  const version = eventVersionProblem(body.v, body.commitments !== undefined);
  if (version !== undefined) problems.push(version);
  if (body.project !== bundle.project) problems.push(`project ${show(body.project)} is not the bundle's ${show(bundle.project)}`);
  if (body.environment !== bundle.environment) {
    problems.push(`environment ${show(body.environment)} is not the bundle's ${show(bundle.environment)}`);
  }
  // As the ledger writes it: the link check alone would blame the event before (its bytes do not hash to this).
  if (!prevIsHex) problems.push(`prev ${show(body.prev)} is not ${HEX_WANT}`);
  // A partition holds the events received on its UTC day (DESIGN.md "Storage rules").
  if (!isIsoTime(body.received_at)) {
    problems.push(`received_at ${show(body.received_at)} is not an ISO 8601 UTC time`);
  } else if (body.received_at.slice(0, 10) !== bundle.partition) {
    problems.push(`received_at ${body.received_at} is not on ${bundle.partition} (UTC), the bundle's partition`);
  }
  return problems;
}

// Whether `value` is a time as Date.prototype.toISOString writes it. A bundle's events are all on
// one day: once that day has passed the Date round trip, a time of day on it needs only the
// pattern (a Date per event was a tenth of an archive check).
const TIME_OF_DAY = /^T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$/;
let checkedDay = '';

function isIsoTime(value: string): boolean {
  const day = value.slice(0, 10);
  if (day === checkedDay && TIME_OF_DAY.test(value.slice(10))) return true;
  const time = Date.parse(value);
  if (Number.isNaN(time) || new Date(time).toISOString() !== value) return false;
  if (DAY.test(day)) checkedDay = day;
  return true;
}

/**
 * Failures of the event lines, each at the seq it concerns, in seq order. Lines are matched by the
 * seq in their body, so a removed, duplicated or moved line is named once rather than shifting the
 * blame onto every line after it. What is the bundle's own (a line's body, its place, a seq held
 * twice) is decided here; the chain (gaps, links to first_prev and between lines, last_hash) by
 * ChainChecker, fed the first line of each seq in range, with hashes computed from the lines: a
 * changed line is reported at its own seq, as the next event's prev (or last_hash) records its hash.
 */
function eventFailures(manifest: BundleManifest, lines: Lines): BundleFailure[] {
  const { first_seq: first, last_seq: last } = manifest;
  const { seqs } = lines;
  const failures: BundleFailure[] = [];
  const fail = (seq: number, reason: string) => failures.push({ seq, reason });
  seqs.forEach((seq, i) => {
    for (const problem of lines.odd.get(i)?.problems ?? NO_PROBLEMS) fail(seq, problem);
    if (seq < first || seq > last) fail(seq, `seq is outside the bundle's range ${first}..${last}`);
    if (i > 0 && seq < seqs[i - 1]!) fail(seq, `out of order: the line follows event ${seqs[i - 1]}`);
  });
  const start = { seq: first - 1, hash: Buffer.from(manifest.first_prev, 'hex'), range: compactRange(manifest.start_range) };
  const checker = new ChainChecker(manifest, start, { hashes: 'computed', tree: false });
  const report = (findings: readonly Finding[]) => findings.forEach(({ seq, reason }) => fail(seq, reason));
  forEachSeq(seqs, (i, lineCount) => {
    const seq = seqs[i]!;
    if (lineCount > 1) fail(seq, `${lineCount} lines hold this seq`);
    if (seq >= first && seq <= last) report(checker.add(chainEvent(lines, i)));
  });
  // The bundle's root is that of its lines as they stand (growRange, treeProblems), not the checker's.
  report(checker.finish({ seq: last, hash: Buffer.from(manifest.last_hash, 'hex') }));
  return failures.sort((a, b) => (a.seq as number) - (b.seq as number));
}

// Calls `visit` with the first line of each seq, in seq order (lines holding the same seq in their
// own order), and how many lines hold that seq. Lines are nearly always strictly in seq order
// already: each is then its own seq, visited in place, with no list of the lines made (two lists of
// a number per line cost their new memory at every bundle).
function forEachSeq(seqs: readonly number[], visit: (line: number, lineCount: number) => void): void {
  if (seqs.every((seq, i) => i === 0 || seqs[i - 1]! < seq)) {
    for (let i = 0; i < seqs.length; i++) visit(i, 1);
    return;
  }
  const sorted = Array.from(seqs, (_, i) => i).sort((a, b) => seqs[a]! - seqs[b]! || a - b);
  for (let start = 0; start < sorted.length; ) {
    let end = start + 1;
    while (end < sorted.length && seqs[sorted[end]!] === seqs[sorted[start]!]) end++;
    visit(sorted[start]!, end - start);
    start = end;
  }
}

// --- the tree and the chain of bundles

// The checkpoint of the chain opened with the known keys (openChainCheckpoint), or why it cannot be.
function openSigned(note: string, verifiers: readonly VerifierKey[], chain: ChainName): Checkpoint | string {
  try {
    return openChainCheckpoint(note, verifiers, chain).checkpoint;
  } catch (error) {
    if (error instanceof NoteError || error instanceof CheckpointError) return error.message;
    throw error;
  }
}

// The chain's checkpoint must be at last_seq, with the tree's root (treeMismatch).
function checkpointProblems(checkpoint: Checkpoint, lastSeq: number, root: Buffer): string[] {
  const mismatch = treeMismatch(checkpoint, lastSeq, root);
  if (mismatch === undefined) return [];
  return [mismatch.field === 'size' ? `tree size ${checkpoint.size} is not last_seq ${lastSeq}` : 'its root is not the Merkle root of start_range and the events'];
}

// `root`: the root of start_range and the lines.
function treeProblems(manifest: BundleManifest, root: Buffer, verifiers: readonly VerifierKey[]): string[] {
  const checkpoint = openSigned(manifest.checkpoint, verifiers, manifest);
  if (typeof checkpoint === 'string') return [`checkpoint: ${checkpoint}`];
  const start = compactRange(manifest.start_range);
  const problems = checkpointProblems(checkpoint, manifest.last_seq, root).map(
    (problem) => `checkpoint: ${problem}`,
  );
  try {
    const proof = manifest.consistency_proof.map((hash) => decodeBase64(hash) as Uint8Array);
    verifyConsistency(start.size, checkpoint.size, proof, rangeRoot(start), checkpoint.root);
  } catch (error) {
    if (!(error instanceof ProofError)) throw error;
    problems.push(`consistency_proof does not prove the checkpoint extends start_range: ${error.message}`);
  }
  return problems;
}

/**
 * This bundle continues `previous`. The start_range root equal to the previous checkpoint's root
 * (at the same size) makes start_range the previous tree; with the consistency proof checked in
 * treeProblems against that root, the checkpoint provably extends the previous one.
 */
function continuityProblems(manifest: BundleManifest, previous: PreviousBundle, verifiers: readonly VerifierKey[]): string[] {
  const before = previous.manifest;
  const problems: string[] = [];
  if (before.project !== manifest.project || before.environment !== manifest.environment) {
    problems.push(`the previous bundle is of chain ${before.project}/${before.environment}`);
  }
  // A day may take several bundles (bounded bundles): the same partition continues.
  if (before.partition > manifest.partition) {
    problems.push(`partition ${manifest.partition} is before the previous ${before.partition}`);
  }
  if (manifest.first_seq !== before.last_seq + 1) {
    problems.push(`first_seq ${manifest.first_seq} does not follow the previous bundle's last_seq ${before.last_seq}`);
  }
  if (manifest.first_prev !== before.last_hash) problems.push("first_prev is not the previous bundle's last_hash");
  if (manifest.previous_manifest_sha256 !== previous.manifestSha256) {
    problems.push("previous_manifest_sha256 is not the SHA-256 of the previous bundle's manifest line");
  }
  const checkpoint = openSigned(before.checkpoint, verifiers, before);
  if (typeof checkpoint === 'string') return [...problems, `the previous bundle's checkpoint: ${checkpoint}`];
  const start = compactRange(manifest.start_range);
  if (treeMismatch(checkpoint, start.size, rangeRoot(start)) !== undefined) {
    problems.push("start_range is not the tree of the previous bundle's checkpoint");
  }
  return problems;
}

function rangeJson(range: CompactRange): BundleManifest['start_range'] {
  return { size: range.size, hashes: range.hashes.map((hash) => Buffer.from(hash).toString('hex')) };
}

function compactRange(json: BundleManifest['start_range']): CompactRange {
  return { size: json.size, hashes: json.hashes.map((hash) => Buffer.from(hash, 'hex')) };
}

// A value as JSON, so that a string in an array or a number in quotes does not pass for what was asked.
function show(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}
