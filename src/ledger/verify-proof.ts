// Offline checks of saved proof responses (GET /v1/events/:id/proof and GET /v1/consistency):
// everything comes from the document and the verifier keys, nothing from a server or database.
import { openChainCheckpoint, openCheckpoint, type ChainName, type Checkpoint } from './checkpoint.js';
import { eventHash, type EventBody } from './event.js';
import { bytesEqual, decodeBase64, type VerifierKey } from './keys.js';
import { inclusionPath, matchRoot, ProofError, verifyConsistency, verifyInclusion } from './proof.js';
import { hashesFromTiles, tilesRead, tileSubtreeHash, type TileHash, type TileId } from './tiles.js';
import { eventVersionProblem } from './version.js';

/** An inclusion proof document, as GET /v1/events/:id/proof answers (hashes base64). */
export interface InclusionDocument {
  leaf_index: number;
  tree_size: number;
  leaf_hash: string;
  proof: string[];
  /** The root the document states; when given, it must be the one the proof gives. */
  root?: string | undefined;
  checkpoint: string | null;
  canonical?: string | undefined;
}

/** A consistency proof document, as GET /v1/consistency answers (hashes base64). */
export interface ConsistencyDocument {
  from: number;
  to: number;
  proof: string[];
  /** The roots the document states; when given, each must be the one its checkpoint signs. */
  roots?: { from: string; to: string } | undefined;
  checkpoints: { from: string | null; to: string | null };
}

function bytes(what: string, text: unknown): Uint8Array {
  const decoded = typeof text === 'string' ? decodeBase64(text) : undefined;
  if (!decoded) throw new ProofError(`${what} is not base64`);
  return decoded;
}

function proofHashes(proof: unknown): Uint8Array[] {
  if (!Array.isArray(proof)) throw new ProofError('proof is not a list');
  return proof.map((p, i) => bytes(`proof[${i}]`, p));
}

// The signed checkpoint at `size`; of `chain` when given (openChainCheckpoint).
function signed(what: string, note: string | null, keys: readonly VerifierKey[], size: number, chain?: ChainName): Checkpoint {
  if (!note) throw new ProofError(`no signed checkpoint at tree size ${size} (${what}): nothing to verify against`);
  const { checkpoint } = chain ? openChainCheckpoint(note, keys, chain) : openCheckpoint(note, keys);
  if (checkpoint.size !== size) throw new ProofError(`the ${what} checkpoint is for size ${checkpoint.size}, not ${size}`);
  return checkpoint;
}

/**
 * Verifies an inclusion proof against its signed checkpoint; returns what was proven. With the
 * event's bytes (`canonical`), the checkpoint must be of the event's chain (openChainCheckpoint).
 * Throws ProofError, NoteError or CheckpointError.
 */
export function verifyInclusionDocument(doc: InclusionDocument, keys: readonly VerifierKey[]): string {
  let body: EventBody | undefined;
  if (doc.canonical !== undefined) {
    // The event's own bytes must give the leaf hash, and name the chain the checkpoint is for.
    if (!bytesEqual(eventHash(Buffer.from(doc.canonical, 'utf8')), bytes('leaf_hash', doc.leaf_hash))) {
      throw new ProofError('the event bytes do not hash to leaf_hash');
    }
    body = JSON.parse(doc.canonical) as EventBody;
    // What the body's fields mean (seq, the chain) is the version's to say.
    const version = eventVersionProblem(body.v, body.commitments !== undefined);
    if (version !== undefined) throw new ProofError(version);
  }
  const checkpoint = signed('proof', doc.checkpoint, keys, doc.tree_size, body);
  const leaf = bytes('leaf_hash', doc.leaf_hash);
  // RFC 9162 leaf indices start at 0, seqs at 1: both are named, so neither is taken for the other.
  let described = `leaf index ${doc.leaf_index} (seq ${doc.leaf_index + 1}; its hash only: no event bytes were given to check)`;
  if (body !== undefined) {
    if (body.seq !== doc.leaf_index + 1) throw new ProofError(`the event is seq ${body.seq}, not leaf ${doc.leaf_index}`);
    described = `event ${body.id} (seq ${body.seq})`;
  }
  verifyInclusion(doc.leaf_index, doc.tree_size, leaf, proofHashes(doc.proof), checkpoint.root);
  // The proof gives the signed root, so nothing is forged; still, a document stating another is wrong.
  if (doc.root !== undefined) matchRoot('root', checkpoint.root, bytes('root', doc.root));
  return `${described} is included in the signed checkpoint of ${checkpoint.origin} at size ${checkpoint.size}`;
}

/** Verifies that the later signed checkpoint extends the earlier one. Throws. */
export function verifyConsistencyDocument(doc: ConsistencyDocument, keys: readonly VerifierKey[]): string {
  const from = signed('from', doc.checkpoints?.from ?? null, keys, doc.from);
  const to = signed('to', doc.checkpoints?.to ?? null, keys, doc.to);
  if (from.origin !== to.origin) throw new ProofError(`the checkpoints are of different logs (${from.origin}, ${to.origin})`);
  verifyConsistency(doc.from, doc.to, proofHashes(doc.proof), from.root, to.root);
  if (doc.roots !== undefined) {
    matchRoot('roots.from', from.root, bytes('roots.from', doc.roots.from));
    matchRoot('roots.to', to.root, bytes('roots.to', doc.roots.to));
  }
  return `the checkpoint of ${to.origin} at size ${doc.to} extends the one at size ${doc.from}`;
}

// ---- Inclusion from a static tlog-tiles log (C2SP tlog-tiles): a signed note and O(log n) tiles.

/** The subtree hashes an inclusion proof of leaf `index` in a tree of `size` reads: the leaf's own, then PATH's (RFC 9162 section 2.1.3.1). */
function inclusionReads(index: number, size: number, hashAt: TileHash): { leaf: Buffer; proof: Buffer[] } {
  const mth = (start: number, end: number) => tileSubtreeHash(start, end, hashAt);
  return { leaf: mth(index, index + 1), proof: inclusionPath(index, size, mth) };
}

/** The tiles (each of the width the tree of `size` has) that proving leaf `index` reads: O(log n), at most two per level. */
export function inclusionTiles(index: number, size: number): TileId[] {
  return tilesRead(size, (hashAt) => inclusionReads(index, size, hashAt));
}

/**
 * An inclusion proof document (as GET /v1/events/:id/proof gives) of leaf `index` under the signed
 * checkpoint `note` of tree size `size`, computed from tiles read from an untrusted place (keyed
 * `level/index`, as inclusionTiles names them): verifyInclusionDocument then checks it against the
 * note's signed root, so a tampered tile fails there. `canonical`: the event's bytes, to check too.
 * Throws RangeError when a tile lacks a hash the proof needs.
 */
export function inclusionDocumentFromTiles(
  note: string,
  size: number,
  index: number,
  tiles: ReadonlyMap<string, readonly Buffer[]>,
  canonical?: string,
): InclusionDocument {
  const { leaf, proof } = inclusionReads(index, size, hashesFromTiles(tiles));
  return {
    leaf_index: index,
    tree_size: size,
    leaf_hash: leaf.toString('base64'),
    proof: proof.map((hash) => hash.toString('base64')),
    checkpoint: note,
    ...(canonical === undefined ? {} : { canonical }),
  };
}

/** Verifies an inclusion document that must be of `chain` (openChainCheckpoint). Throws as verifyInclusionDocument. */
export function verifyChainInclusion(doc: InclusionDocument, keys: readonly VerifierKey[], chain: ChainName): string {
  signed('proof', doc.checkpoint, keys, doc.tree_size, chain);
  return verifyInclusionDocument(doc, keys);
}
