// RFC 9162 section 2.1.3 inclusion proofs and section 2.1.4 consistency proofs: generation from
// leaf hashes, and verification that needs only the proof, the sizes and the roots. Verification
// follows transparency-dev/merkle proof/verify.go, which checks the proof length up front.
// Sizes are JS numbers up to 2^53 - 1, so bit tests use arithmetic: bitwise operators stop at 32 bits.
import { EMPTY_ROOT, HASH_SIZE, nodeHash } from './hash.js';
import { onesCount, splitPoint, subtreeRoot } from './tree.js';

/** A proof, size, index or hash that does not verify. */
export class ProofError extends Error {
  override name = 'ProofError';
}

/** Checks that `leafHash` is the leaf at `leafIndex` of the tree with `root` (RFC 9162 section 2.1.3.2). */
export function verifyInclusion(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): void {
  checkHash('root', root);
  matchRoot('root', rootFromInclusionProof(leafIndex, treeSize, leafHash, proof), root);
}

/** The root implied by an inclusion proof (RFC 9162 section 2.1.3.2); throws ProofError if malformed. */
export function rootFromInclusionProof(
  leafIndex: number,
  treeSize: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
): Buffer {
  checkSize('leaf index', leafIndex);
  checkSize('tree size', treeSize);
  if (leafIndex >= treeSize) throw new ProofError(`leaf index ${leafIndex} is not below tree size ${treeSize}`);
  checkHash('leaf hash', leafHash);
  const { inner, border } = decomposeInclusion(leafIndex, treeSize);
  checkProof(proof, inner + border);
  const root = chainBorderRight(chainInner(leafHash, proof.slice(0, inner), leafIndex), proof.slice(inner));
  return Buffer.from(root);
}

/**
 * Checks that the tree of size2 with root2 extends the tree of size1 with root1
 * (RFC 9162 section 2.1.4.2). RFC 9162 defines proofs only for 0 < size1 < size2; the edges are:
 * equal sizes need an empty proof and equal roots, and the empty tree (root SHA-256()) is a
 * prefix of every tree, with an empty proof.
 */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: readonly Uint8Array[],
  root1: Uint8Array,
  root2: Uint8Array,
): void {
  checkSize('size1', size1);
  checkSize('size2', size2);
  if (size2 < size1) throw new ProofError(`size2 ${size2} is below size1 ${size1}`);
  if (size1 === size2) {
    checkProof(proof, 0);
    if (size1 === 0) matchRoot('root1', EMPTY_ROOT, root1);
    matchRoot('root2', root1, root2);
    return;
  }
  if (size1 === 0) {
    checkProof(proof, 0);
    matchRoot('root1', EMPTY_ROOT, root1);
    checkHash('root2', root2); // nothing else about root2 follows from the empty tree
    return;
  }
  checkHash('root1', root1);
  checkHash('root2', root2);

  // The proof is the inclusion proof of leaf size1 - 1 in size2 without the levels below the
  // perfect subtree of height `shift` that ends at size1. That subtree's root comes first in the
  // proof, unless the subtree is the whole old tree: then it is root1 and is left out.
  const decomposed = decomposeInclusion(size1 - 1, size2);
  const shift = trailingZeros(size1);
  const inner = decomposed.inner - shift;
  const seedIsRoot1 = size1 === 2 ** shift;
  const start = seedIsRoot1 ? 0 : 1;
  checkProof(proof, start + inner + decomposed.border);
  const seed = seedIsRoot1 ? root1 : (proof[0] as Uint8Array);
  const innerPath = proof.slice(start, start + inner);
  const borderPath = proof.slice(start + inner);
  const index = Math.floor((size1 - 1) / 2 ** shift);

  matchRoot('root1', chainBorderRight(chainInnerRight(seed, innerPath, index), borderPath), root1);
  matchRoot('root2', chainBorderRight(chainInner(seed, innerPath, index), borderPath), root2);
}

/** MTH(D[start:end]) for 0 <= start < end (RFC 9162 section 2.1.1), however the caller knows it. */
export type SubtreeHash = (start: number, end: number) => Buffer;

/** PATH(leafIndex, D[0:treeSize]) (RFC 9162 section 2.1.3.1), leaf to root. */
export function inclusionProof(leafIndex: number, treeSize: number, leafHashes: readonly Uint8Array[]): Buffer[] {
  checkTree(treeSize, leafHashes);
  return inclusionPath(leafIndex, treeSize, (start, end) => subtreeRoot(leafHashes, start, end));
}

/**
 * PROOF(size1, D[0:size2]) (RFC 9162 section 2.1.4.1); empty for size1 = 0 or size1 = size2,
 * the cases verifyConsistency accepts without a proof.
 */
export function consistencyProof(size1: number, size2: number, leafHashes: readonly Uint8Array[]): Buffer[] {
  checkTree(size2, leafHashes);
  return consistencyPath(size1, size2, (start, end) => subtreeRoot(leafHashes, start, end));
}

/** PATH(leafIndex, D[0:treeSize]) over any source of subtree hashes. */
export function inclusionPath(leafIndex: number, treeSize: number, mth: SubtreeHash): Buffer[] {
  if (!Number.isSafeInteger(leafIndex) || leafIndex < 0 || leafIndex >= treeSize) {
    throw new RangeError(`leaf index ${leafIndex} is not in [0, ${treeSize})`);
  }
  const proof: Buffer[] = [];
  path(leafIndex, 0, treeSize, mth, proof);
  return proof;
}

/** PROOF(size1, D[0:size2]) over any source of subtree hashes. */
export function consistencyPath(size1: number, size2: number, mth: SubtreeHash): Buffer[] {
  if (!Number.isSafeInteger(size1) || size1 < 0 || size1 > size2) {
    throw new RangeError(`size1 ${size1} is not in [0, ${size2}]`);
  }
  const proof: Buffer[] = [];
  if (size1 > 0 && size1 < size2) subproof(size1, 0, size2, true, mth, proof);
  return proof;
}

// PATH(m, D[start:end]) (RFC 9162 section 2.1.3.1): the sibling subtree roots, deepest first.
function path(m: number, start: number, end: number, mth: SubtreeHash, out: Buffer[]): void {
  const n = end - start;
  if (n === 1) return;
  const k = splitPoint(n);
  if (m < k) {
    path(m, start, start + k, mth, out);
    out.push(mth(start + k, end));
  } else {
    path(m - k, start + k, end, mth, out);
    out.push(mth(start, start + k));
  }
}

// SUBPROOF(m, D[start:end], b) (RFC 9162 section 2.1.4.1); b is whether D[start:start+m] is
// the whole old tree, whose root the verifier already has.
function subproof(m: number, start: number, end: number, b: boolean, mth: SubtreeHash, out: Buffer[]): void {
  const n = end - start;
  if (m === n) {
    if (!b) out.push(mth(start, end));
    return;
  }
  const k = splitPoint(n);
  if (m <= k) {
    subproof(m, start, start + k, b, mth, out);
    out.push(mth(start + k, end));
  } else {
    subproof(m - k, start + k, end, false, mth, out);
    out.push(mth(start, start + k));
  }
}

// Splits the inclusion proof of `index` in a tree of `size` where the paths to index and to
// size - 1 diverge: below (inner) siblings lie on either side; above (border) they are all left
// siblings, one per set bit of index at those levels.
function decomposeInclusion(index: number, size: number): { inner: number; border: number } {
  let inner = 0;
  let a = index;
  for (let b = size - 1; a !== b; b = Math.floor(b / 2)) {
    a = Math.floor(a / 2);
    inner++;
  }
  return { inner, border: onesCount(a) };
}

// Hashes up the inner path: the bit of `index` at each level says which side the sibling is on.
function chainInner(seed: Uint8Array, proof: readonly Uint8Array[], index: number): Uint8Array {
  let hash = seed;
  for (const sibling of proof) {
    hash = index % 2 === 0 ? nodeHash(hash, sibling) : nodeHash(sibling, hash);
    index = Math.floor(index / 2);
  }
  return hash;
}

// Like chainInner, but only with left siblings: what the subtree hashed to before the leaves
// right of the path were appended, i.e. the old tree's view of it.
function chainInnerRight(seed: Uint8Array, proof: readonly Uint8Array[], index: number): Uint8Array {
  let hash = seed;
  for (const sibling of proof) {
    if (index % 2 === 1) hash = nodeHash(sibling, hash);
    index = Math.floor(index / 2);
  }
  return hash;
}

// Above the divergence point every sibling is a left one (the path runs along the right border).
function chainBorderRight(seed: Uint8Array, proof: readonly Uint8Array[]): Uint8Array {
  let hash = seed;
  for (const sibling of proof) hash = nodeHash(sibling, hash);
  return hash;
}

function trailingZeros(x: number): number {
  let zeros = 0;
  for (; x % 2 === 0; x /= 2) zeros++;
  return zeros;
}

function checkSize(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new ProofError(`${name} ${value} is not a non-negative safe integer`);
  }
}

function checkHash(name: string, hash: Uint8Array): void {
  if (hash.length !== HASH_SIZE) throw new ProofError(`${name} has ${hash.length} bytes, want ${HASH_SIZE}`);
}

function checkProof(proof: readonly Uint8Array[], want: number): void {
  if (proof.length !== want) throw new ProofError(`proof has ${proof.length} hashes, want ${want}`);
  proof.forEach((hash, i) => checkHash(`proof[${i}]`, hash));
}

/**
 * Throws ProofError `<name> mismatch: calculated <hex>, expected <hex>` (as transparency-dev/merkle's
 * RootMismatchError) when the two roots differ.
 */
export function matchRoot(name: string, calculated: Uint8Array, expected: Uint8Array): void {
  if (Buffer.compare(calculated, expected) !== 0) {
    throw new ProofError(
      `${name} mismatch: calculated ${Buffer.from(calculated).toString('hex')}, ` +
        `expected ${Buffer.from(expected).toString('hex')}`,
    );
  }
}

function checkTree(treeSize: number, leafHashes: readonly Uint8Array[]): void {
  if (!Number.isSafeInteger(treeSize) || treeSize < 0 || treeSize > leafHashes.length) {
    throw new RangeError(`tree size ${treeSize} is not in [0, ${leafHashes.length}]`);
  }
}
