// Offline checks of saved proof responses (GET /v1/events/:id/proof and GET /v1/consistency):
// everything comes from the document and the verifier keys, nothing from a server or database.
import { openCheckpoint, type Checkpoint } from './checkpoint.js';
import { eventHash, type EventBody } from './event.js';
import { bytesEqual, decodeBase64, type VerifierKey } from './keys.js';
import { ProofError, verifyConsistency, verifyInclusion } from './proof.js';

export interface InclusionDocument {
  leaf_index: number;
  tree_size: number;
  leaf_hash: string;
  proof: string[];
  checkpoint: string | null;
  canonical?: string;
}

export interface ConsistencyDocument {
  from: number;
  to: number;
  proof: string[];
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

function signed(what: string, note: string | null, keys: readonly VerifierKey[], size: number): Checkpoint {
  if (!note) throw new ProofError(`no signed checkpoint at tree size ${size} (${what}): nothing to verify against`);
  const { checkpoint } = openCheckpoint(note, keys);
  if (checkpoint.size !== size) throw new ProofError(`the ${what} checkpoint is for size ${checkpoint.size}, not ${size}`);
  return checkpoint;
}

/** Verifies an inclusion proof against its signed checkpoint; returns what was proven. Throws. */
export function verifyInclusionDocument(doc: InclusionDocument, keys: readonly VerifierKey[]): string {
  const checkpoint = signed('proof', doc.checkpoint, keys, doc.tree_size);
  const leaf = bytes('leaf_hash', doc.leaf_hash);
  let described = `leaf ${doc.leaf_index}`;
  if (doc.canonical !== undefined) {
    // The event's own bytes must give the leaf hash, and name the chain the checkpoint is for.
    const canonical = Buffer.from(doc.canonical, 'utf8');
    if (!bytesEqual(eventHash(canonical), leaf)) throw new ProofError('the event bytes do not hash to leaf_hash');
    const body = JSON.parse(doc.canonical) as EventBody;
    if (!checkpoint.origin.endsWith(`/${body.project}/${body.environment}`)) {
      throw new ProofError(`the checkpoint (${checkpoint.origin}) is not for the event's chain`);
    }
    if (body.seq !== doc.leaf_index + 1) throw new ProofError(`the event is seq ${body.seq}, not leaf ${doc.leaf_index}`);
    described = `event ${body.id} (seq ${body.seq})`;
  }
  verifyInclusion(doc.leaf_index, doc.tree_size, leaf, proofHashes(doc.proof), checkpoint.root);
  return `${described} is included in the signed checkpoint of ${checkpoint.origin} at size ${checkpoint.size}`;
}

/** Verifies that the later signed checkpoint extends the earlier one. Throws. */
export function verifyConsistencyDocument(doc: ConsistencyDocument, keys: readonly VerifierKey[]): string {
  const from = signed('from', doc.checkpoints?.from ?? null, keys, doc.from);
  const to = signed('to', doc.checkpoints?.to ?? null, keys, doc.to);
  if (from.origin !== to.origin) throw new ProofError(`the checkpoints are of different logs (${from.origin}, ${to.origin})`);
  verifyConsistency(doc.from, doc.to, proofHashes(doc.proof), from.root, to.root);
  return `the checkpoint of ${to.origin} at size ${doc.to} extends the one at size ${doc.from}`;
}

/** Verifies either kind of saved proof document. Throws ProofError, NoteError or CheckpointError. */
export function verifyProofDocument(doc: unknown, keys: readonly VerifierKey[]): string {
  if (typeof doc !== 'object' || doc === null) throw new ProofError('not a proof document');
  if ('leaf_index' in doc) return verifyInclusionDocument(doc as InclusionDocument, keys);
  if ('from' in doc && 'to' in doc) return verifyConsistencyDocument(doc as ConsistencyDocument, keys);
  throw new ProofError('neither an inclusion proof (leaf_index) nor a consistency proof (from, to)');
}
