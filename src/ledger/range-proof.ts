// RFC 9162 proofs for a tree whose leaves [0, start) are known only through their compact range and
// whose leaves [start, end) are known one by one: what a bundle holds (DESIGN.md "Ledger format v1",
// Bundle). Every node an inclusion or consistency proof needs that lies wholly inside [0, start) is a
// compact range node or a fold of consecutive ones, so a bundle proves its events without the
// leaves before it. The proofs are exactly those of ./proof.ts over the full leaf array.
import { rangeSubtree, type CompactRange } from './compact-range.js';
import { HASH_SIZE, nodeHash } from './hash.js';
import { consistencyPath, inclusionPath, type SubtreeHash } from './proof.js';
import { onesCount, splitPoint } from './tree.js';

/**
 * MTH over a compact range and the leaf hashes after it. `leaves` is the leaf hashes concatenated,
 * HASH_SIZE bytes each: one buffer rather than a million small ones keeps a large bundle's memory
 * at 32 bytes per event. Throws RangeError for a subtree that is not derivable: one that cuts
 * through a compact range node, whose leaves are unknown.
 */
export function rangeSubtreeHash(startRange: CompactRange, leaves: Uint8Array): SubtreeHash {
  const size = startRange.size;
  const known = knownSize(startRange, leaves);
  const mth: SubtreeHash = (start, end) => {
    if (end > known) throw new RangeError(`leaves [${start}, ${end}) go beyond the ${known} known leaves`);
    if (end <= size) {
      const hash = rangeSubtree(startRange, start, end);
      if (!hash) {
        throw new RangeError(
          `MTH of leaves [${start}, ${end}) is not derivable: it cuts through a node of the compact range of size ${size}`,
        );
      }
      return Buffer.from(hash);
    }
    if (start >= size && end - start === 1) {
      return Buffer.from(leaves.subarray((start - size) * HASH_SIZE, (end - size) * HASH_SIZE));
    }
    const k = splitPoint(end - start);
    return nodeHash(mth(start, start + k), mth(start + k, end));
  };
  return mth;
}

/**
 * PATH(leafIndex, D[0:treeSize]) (RFC 9162 section 2.1.3.1), leaf to root: what proof.ts
 * inclusionProof gives over the full leaf array. Throws RangeError when a needed node is not
 * derivable (a leaf inside a compact range node of more than one leaf) or out of range.
 */
export function rangeInclusionProof(startRange: CompactRange, leaves: Uint8Array, leafIndex: number, treeSize: number): Buffer[] {
  const mth = rangeSubtreeHash(startRange, leaves);
  checkTreeSize(treeSize, knownSize(startRange, leaves));
  return inclusionPath(leafIndex, treeSize, mth);
}

/**
 * PROOF(size1, D[0:size2]) (RFC 9162 section 2.1.4.1): what proof.ts consistencyProof gives over
 * the full leaf array; empty for size1 = 0 or size1 = size2. Typically size1 is the compact range's
 * size (the previous bundle's checkpoint) and size2 the end of the leaves. Throws RangeError when a
 * needed node is not derivable (size1 inside a compact range node) or out of range.
 */
export function rangeConsistencyProof(startRange: CompactRange, leaves: Uint8Array, size1: number, size2: number): Buffer[] {
  const mth = rangeSubtreeHash(startRange, leaves);
  checkTreeSize(size2, knownSize(startRange, leaves));
  return consistencyPath(size1, size2, mth);
}

// The number of leaves covered: the range's size plus the leaf hashes after it.
function knownSize(startRange: CompactRange, leaves: Uint8Array): number {
  const { size, hashes } = startRange;
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`invalid compact range size ${size}`);
  if (hashes.length !== onesCount(size) || hashes.some((h) => h.length !== HASH_SIZE)) {
    throw new RangeError(`compact range of size ${size} needs ${onesCount(size)} hashes of ${HASH_SIZE} bytes`);
  }
  if (leaves.length % HASH_SIZE !== 0) {
    throw new RangeError(`leaves must be ${HASH_SIZE}-byte hashes end to end, got ${leaves.length} bytes`);
  }
  return size + leaves.length / HASH_SIZE;
}

function checkTreeSize(treeSize: number, known: number): void {
  if (!Number.isSafeInteger(treeSize) || treeSize < 0 || treeSize > known) {
    throw new RangeError(`tree size ${treeSize} is not in [0, ${known}]`);
  }
}
