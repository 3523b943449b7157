// Proofs from the archive alone: the archive holds each chain as a static C2SP tlog-tiles log
// (hash tiles under tlog/<project>/<environment>/, signed notes under checkpoints/), so an event's
// inclusion is proven with one note and O(log n) tiles, whatever the chain's length.
import { bundleDayPrefix, checkpointKey, parseBundleKey, parseCheckpointKey, tileKey } from './layout.js';
import { BundleError, findBundleEvent, parseBundle } from '../ledger/bundle.js';
import type { VerifierKey } from '../ledger/keys.js';
import { ProofError } from '../ledger/proof.js';
import { tileHashes } from '../ledger/tiles.js';
import { uuidv7Time } from '../ledger/uuid.js';
import { inclusionDocumentFromTiles, inclusionTiles, verifyChainInclusion } from '../ledger/verify-proof.js';
import { objectReadProblem, readOrWhyNot, type Archive } from './archive.js';

export interface ArchiveProofRequest {
  project: string;
  environment: string;
  /** The event's seq (leaf seq - 1). */
  seq: number;
  /** The checkpoint to prove against, by tree size; the chain's latest archived note when unset. */
  size?: number | undefined;
  /** The event's canonical bytes, checked against the leaf hash and the chain when given. */
  canonical?: string | undefined;
  verifiers: readonly VerifierKey[];
}

/**
 * Proves that event `seq` of a chain is in a signed checkpoint, reading from `archive` only the
 * note (and, without `size`, a listing of the chain's notes) and the tiles the proof needs.
 * Returns what was proven. Throws ProofError when it does not hold or an object is missing,
 * NoteError or CheckpointError for a bad note.
 */
export async function proveFromArchive(archive: Archive, request: ArchiveProofRequest): Promise<string> {
  const { project, environment, seq, canonical, verifiers } = request;
  const size = request.size ?? (await latestCheckpointSize(archive, project, environment));
  if (seq < 1 || seq > size) throw new ProofError(`seq ${seq} is not in the tree of size ${size}`);
  const noteKey = checkpointKey(project, environment, size);
  const note = await getNamed(archive, noteKey);
  if (!note) throw new ProofError(`no checkpoint note at tree size ${size} in ${archive.location} (${noteKey})`);
  const tiles = new Map<string, Buffer[]>();
  for (const tile of inclusionTiles(seq - 1, size)) {
    const key = tileKey(project, environment, tile);
    const bytes = await getNamed(archive, key);
    if (!bytes) throw new ProofError(`tile ${key} is not in ${archive.location}`);
    if (bytes.length !== 32 * tile.width) throw new ProofError(`tile ${key} is ${bytes.length} bytes, not ${32 * tile.width}`);
    tiles.set(`${tile.level}/${tile.index}`, tileHashes(bytes));
  }
  const doc = inclusionDocumentFromTiles(note.toString('utf8'), size, seq - 1, tiles, canonical);
  return verifyChainInclusion(doc, verifiers, { project, environment });
}

/** The tree size of the chain's latest archived note: the last key, as keys sort by size. */
async function latestCheckpointSize(archive: Archive, project: string, environment: string): Promise<number> {
  const keys = await archive.list(`checkpoints/${project}/${environment}/`);
  const sizes = keys.flatMap((key) => parseCheckpointKey(key)?.size ?? []);
  if (sizes.length === 0) throw new ProofError(`no checkpoint notes of chain ${project}/${environment} in ${archive.location}`);
  return sizes.reduce((a, b) => Math.max(a, b));
}

/** An event found in the archive: its seq, its canonical bytes, and the bundle holding it. */
export interface ArchivedEvent {
  seq: number;
  canonical: Buffer;
  key: string;
}

/**
 * Finds event `id` of a chain in the archive's bundles. An event's id is a UUIDv7 (RFC 9562) of
 * the time it was received, so it is in a bundle of that UTC day: only that day's bundles (its
 * parts, in order) are read, each whole (a bundle is bounded: AUDITLEDGER_BUNDLE_MAX_EVENTS).
 * Events not sealed yet are in no bundle. Throws ProofError when `id` is not a UUIDv7, or no
 * readable bundle of the day holds the event (naming each bundle of the day that cannot be read).
 */
export async function findArchivedEvent(archive: Archive, project: string, environment: string, id: string): Promise<ArchivedEvent> {
  const time = uuidv7Time(id);
  if (time === undefined) throw new ProofError(`${JSON.stringify(id)} is not an event id: a UUIDv7 (RFC 9562)`);
  const day = new Date(time).toISOString().slice(0, 10);
  const keys = (await archive.list(bundleDayPrefix(project, environment, day)))
    .flatMap((key) => {
      const bundle = parseBundleKey(key);
      return bundle?.day === day ? [{ key, part: bundle.part }] : [];
    })
    .sort((a, b) => a.part - b.part);
  const eventId = id.toLowerCase();
  // A bundle that cannot be read may not be the one holding the event: the others are still searched.
  const unreadable: string[] = [];
  for (const { key } of keys) {
    const bytes = await readOrWhyNot(archive, key);
    if (typeof bytes === 'string') {
      unreadable.push(`bundle ${key} cannot be read: ${bytes}`);
      continue;
    }
    let found;
    try {
      found = findBundleEvent(parseBundle(bytes), eventId);
    } catch (error) {
      if (!(error instanceof BundleError)) throw error;
      unreadable.push(`bundle ${key} cannot be read: ${error.message}`);
      continue;
    }
    if (found) return { ...found, key };
  }
  if (unreadable.length) throw new ProofError(`event ${eventId} is in no readable bundle of chain ${project}/${environment} in ${archive.location}; ${unreadable.join('; ')}`);
  const searched = keys.length ? `its ${keys.length} bundle(s)` : 'no bundle';
  throw new ProofError(
    `event ${eventId} is in no bundle of chain ${project}/${environment} in ${archive.location}: ${day}, the day its id was made, has ${searched} there (an event not sealed yet is in none: prove it by its seq)`,
  );
}

/** An object a proof needs, or undefined when there is none; one whose file cannot be read is named (ProofError). */
async function getNamed(archive: Archive, key: string): Promise<Buffer | undefined> {
  try {
    return await archive.get(key);
  } catch (error) {
    const problem = objectReadProblem(error);
    if (problem === undefined) throw error;
    throw new ProofError(`${key} in ${archive.location} cannot be read: ${problem}`);
  }
}
