// C2SP transparency log checkpoints (c2sp.org/tlog-checkpoint): the signed tree head of each chain
// (DESIGN.md "Ledger format v1", Checkpoint). The body is `<origin>\n<size>\n<base64 root>\n`, plus
// optional extension lines, and it travels as a signed note (./note.ts).
import { HASH_SIZE } from './hash.js';
import { base64, decodeBase64, isValidKeyName, type SigningKey, type VerifierKey } from './keys.js';
import { isNoteText, openNote, signNote } from './note.js';

/**
 * A checkpoint body that is malformed, or is not the one expected. When a checkpoint is refused
 * for not being the one expected, `expected` and `found` carry the two values (as
 * transparency-dev/merkle's errors carry the expected and calculated roots).
 */
export class CheckpointError extends Error {
  override name = 'CheckpointError';

  constructor(
    message: string,
    readonly expected?: string,
    readonly found?: string,
  ) {
    super(message);
  }
}

export interface Checkpoint {
  /** The log's identity; for a chain, chainOrigin(origin, project, environment). */
  origin: string;
  /** The number of leaves (events) in the tree. */
  size: number;
  /** The RFC 9162 Merkle tree hash at that size. */
  root: Uint8Array;
  /** Opaque extra lines; the spec does not recommend them, the ledger writes none. */
  extensions: string[];
}

export type CheckpointInput = Omit<Checkpoint, 'extensions'> & { extensions?: readonly string[] };

export interface OpenedCheckpoint {
  checkpoint: Checkpoint;
  /** The signed note text the checkpoint was parsed from. */
  text: string;
  /** The known keys whose signatures verified. */
  verifiedBy: VerifierKey[];
}

// The tree size: ASCII decimal without leading zeroes, "0" for the empty tree (c2sp.org/tlog-checkpoint, "Note text").
const DECIMAL = /^(?:0|[1-9][0-9]*)$/;
const SPACE = /\p{White_Space}/u;

/**
 * The checkpoint's note text (c2sp.org/tlog-checkpoint, "Note text"). Besides the spec's rules,
 * an origin with leading or trailing whitespace is refused: it is invisible in every display and
 * would make an exact origin comparison fail for no visible reason.
 */
export function checkpointText(checkpoint: CheckpointInput): string {
  const { origin, size, root, extensions = [] } = checkpoint;
  if (typeof origin !== 'string' || origin === '') throw new CheckpointError('checkpoint origin must not be empty');
  if (origin.includes('\n') || !isNoteText(`${origin}\n`)) {
    throw new CheckpointError('checkpoint origin must be one line without control characters');
  }
  if (SPACE.test(origin.at(0)!) || SPACE.test(origin.at(-1)!)) {
    throw new CheckpointError('checkpoint origin must not begin or end with whitespace');
  }
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new CheckpointError(`checkpoint size must be a non-negative safe integer, got ${size}`);
  }
  if (!(root instanceof Uint8Array) || root.length !== HASH_SIZE) {
    throw new CheckpointError(`checkpoint root must be ${HASH_SIZE} bytes, got ${root instanceof Uint8Array ? root.length : typeof root}`);
  }
  for (const [index, line] of extensions.entries()) {
    if (typeof line !== 'string' || line === '' || line.includes('\n') || !isNoteText(`${line}\n`)) {
      throw new CheckpointError(`checkpoint extension line ${index + 1} must be one non-empty line without control characters`);
    }
  }
  return [origin, String(size), base64(root), ...extensions].map((line) => `${line}\n`).join('');
}

/**
 * Parses checkpoint note text strictly (c2sp.org/tlog-checkpoint, "Note text"): at least three
 * non-empty lines, each ending in a newline; a non-empty origin (any text: clients must not assume a
 * URL, and sum.golang.org's is "go.sum database tree"); a canonical decimal size; the base64 of a
 * 32-byte root; then any non-empty extension lines.
 */
export function parseCheckpoint(text: string): Checkpoint {
  if (typeof text !== 'string' || !text.endsWith('\n')) throw new CheckpointError('checkpoint text must end in a newline');
  if (!isNoteText(text)) throw new CheckpointError('checkpoint text must be valid Unicode with no control characters but newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw new CheckpointError(`checkpoint needs origin, size and root lines, got ${lines.length} line(s)`);
  const empty = lines.indexOf('');
  if (empty >= 0) throw new CheckpointError(`checkpoint line ${empty + 1} is empty`);
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (!DECIMAL.test(sizeText)) {
    throw new CheckpointError(`checkpoint size ${JSON.stringify(sizeText)} is not a decimal number without leading zeroes`);
  }
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw new CheckpointError(`checkpoint size ${sizeText} is larger than 2^53 - 1`);
  const root = decodeBase64(rootText);
  if (root === undefined || root.length !== HASH_SIZE) {
    throw new CheckpointError(`checkpoint root ${JSON.stringify(rootText)} is not the base64 of a ${HASH_SIZE}-byte hash`);
  }
  return { origin, size, root, extensions };
}

/**
 * A chain's checkpoint origin `<origin>/<project>/<environment>` (DESIGN.md "Ledger format v1").
 * Each part follows the spec's recommendation for origins, no Unicode spaces and no '+'
 * (c2sp.org/tlog-checkpoint, "Note text"), and project and environment contain no '/', so that
 * distinct chains can never share an origin.
 */
export function chainOrigin(origin: string, project: string, environment: string): string {
  checkOriginPart('origin', origin);
  if (origin.endsWith('/')) throw new CheckpointError('origin must not end with "/"');
  checkOriginPart('project', project);
  checkOriginPart('environment', environment);
  for (const [what, part] of [['project', project], ['environment', environment]] as const) {
    if (part.includes('/')) throw new CheckpointError(`${what} ${JSON.stringify(part)} must not contain "/"`);
  }
  return `${origin}/${project}/${environment}`;
}

/** The checkpoint as a signed note (c2sp.org/tlog-checkpoint, "Signatures"). */
export function signCheckpoint(checkpoint: CheckpointInput, key: SigningKey | readonly SigningKey[]): string {
  return signNote(checkpointText(checkpoint), Array.isArray(key) ? key : [key as SigningKey]);
}

/**
 * Verifies a signed checkpoint note, then parses its text (the spec's order: text is ignored until
 * a trusted signature verifies). Pass `expectedOrigin` whenever the chain is known: one ledger key
 * signs every chain, so the origin is the only thing that stops a genuine checkpoint of one chain
 * being presented as another's. Throws NoteError for signature problems, CheckpointError for the body.
 */
export function openCheckpoint(
  note: string | Uint8Array,
  verifiers: readonly VerifierKey[],
  expectedOrigin?: string,
): OpenedCheckpoint {
  const { text, verifiedBy } = openNote(note, verifiers);
  const checkpoint = parseCheckpoint(text);
  if (expectedOrigin !== undefined && checkpoint.origin !== expectedOrigin) {
    throw new CheckpointError(
      `checkpoint origin ${JSON.stringify(checkpoint.origin)} is not the expected ${JSON.stringify(expectedOrigin)}`,
      expectedOrigin,
      checkpoint.origin,
    );
  }
  return { checkpoint, text, verifiedBy };
}

/** A chain of the ledger: its checkpoints' origins end in `/<project>/<environment>`. */
export interface ChainName {
  project: string;
  environment: string;
}

/**
 * openCheckpoint for a checkpoint that must be of `chain`: its origin must be
 * `<anything>/<project>/<environment>` (chainOrigin). The prefix is the ledger's own name, which an
 * offline verifier does not know; one key signs every chain, so this suffix is what stops a genuine
 * checkpoint of one chain passing for another's. Every check that a checkpoint belongs to a chain
 * is this one. Throws NoteError for signature problems, CheckpointError for the body; a checkpoint of
 * another chain is a CheckpointError whose `expected` is the chain's origin suffix and `found` the origin.
 */
export function openChainCheckpoint(note: string | Uint8Array, verifiers: readonly VerifierKey[], chain: ChainName): OpenedCheckpoint {
  const opened = openCheckpoint(note, verifiers);
  const { origin } = opened.checkpoint;
  const suffix = `/${chain.project}/${chain.environment}`;
  if (!origin.endsWith(suffix)) {
    throw new CheckpointError(`origin ${JSON.stringify(origin)} is not of chain ${chain.project}/${chain.environment}`, suffix, origin);
  }
  return opened;
}

function checkOriginPart(what: string, part: string): void {
  // A key name's rules are exactly the recommended origin syntax: non-empty, no spaces, no '+'.
  if (!isValidKeyName(part)) {
    throw new CheckpointError(`${what} ${JSON.stringify(part)} must be non-empty, without spaces, '+' or control characters`);
  }
}
