// The compact range [0, size): the roots of the perfect subtrees that cover the log, largest first,
// one per set bit of size. The chain head stores it so that each append and each tree root cost
// O(log n) instead of a rescan (RFC 9162 section 2.1.1 MTH, built incrementally).
import { EMPTY_ROOT, HASH_SIZE, nodeHash } from './hash.js';
import { onesCount, splitPoint } from './tree.js';

export interface CompactRange {
  size: number;
  hashes: Buffer[];
}

export function emptyRange(): CompactRange {
  return { size: 0, hashes: [] };
}

/** The range after appending one leaf hash; the input is not modified. */
export function appendLeaf(range: CompactRange, leafHash: Uint8Array): CompactRange {
  return appendLeaves(range, [leafHash]);
}

/**
 * Receives each inner node appendLeaves computes: MTH of the leaves [index * 2^height,
 * (index + 1) * 2^height), a perfect subtree of the tree (RFC 9162 section 2.1.1).
 */
export type NodeSink = (height: number, index: number, hash: Buffer) => void;

/**
 * The range after appending the leaf hashes in order; the input is not modified. `onNode`, when
 * given, sees every inner node computed on the way, so that a caller building tiles of the same
 * tree (tiles.ts TileNodes) need not hash them again.
 */
export function appendLeaves(range: CompactRange, leafHashes: readonly Uint8Array[], onNode?: NodeSink): CompactRange {
  checkRange(range);
  if (range.size + leafHashes.length > Number.MAX_SAFE_INTEGER) {
    throw new RangeError('compact range size would exceed 2^53 - 1');
  }
  const hashes = range.hashes.slice();
  let size = range.size;
  for (const leaf of leafHashes) {
    if (leaf.length !== HASH_SIZE) throw new RangeError(`leaf hash has ${leaf.length} bytes, want ${HASH_SIZE}`);
    // Adding 1 carries through the trailing one bits of size: each carry merges the two
    // rightmost perfect subtrees of equal height into one of the next height.
    let hash: Uint8Array = leaf;
    let height = 0;
    for (let s = size; s % 2 === 1; s = (s - 1) / 2) {
      hash = nodeHash(hashes.pop() as Buffer, hash);
      height++;
      onNode?.(height, (size + 1) / 2 ** height - 1, hash as Buffer);
    }
    // A leaf kept as it is is copied: the range must not share the caller's memory.
    hashes.push(height === 0 ? Buffer.from(leaf) : (hash as Buffer));
    size++;
  }
  return { size, hashes };
}

/**
 * MTH of the covered leaves (RFC 9162 section 2.1.1): the tree splits at the largest power of two,
 * which is the leftmost subtree, so folding right to left rebuilds the same hash.
 */
export function rangeRoot(range: CompactRange): Buffer {
  checkRange(range);
  const { hashes } = range;
  let root = hashes[hashes.length - 1];
  if (root === undefined) return EMPTY_ROOT;
  for (let i = hashes.length - 2; i >= 0; i--) root = nodeHash(hashes[i] as Buffer, root);
  return root;
}

/**
 * MTH(D[start:end]) (RFC 9162 section 2.1.1) of the leaves between two boundaries of the range's
 * nodes (0, the range's size, or where one node ends and the next begins), from the range alone:
 * consecutive nodes are the compact range of the leaves they cover, and RFC 9162 splits those
 * leaves at the same boundaries that rangeRoot folds. undefined when start >= end or either end
 * cuts through a node (its inner hashes are not in the range). Throws RangeError for an invalid range.
 */
export function rangeSubtree(range: CompactRange, start: number, end: number): Buffer | undefined {
  if (start >= end) return undefined;
  const first = nodeAt(range.size, start);
  const last = nodeAt(range.size, end);
  if (first === undefined || last === undefined) return undefined;
  return rangeRoot({ size: end - start, hashes: range.hashes.slice(first, last) });
}

// The index of the node of a range of `size` leaves that begins at leaf `offset` (the number of
// nodes for offset = size), or undefined when offset is no node's boundary. Nodes run largest
// first, one per set bit of size.
function nodeAt(size: number, offset: number): number | undefined {
  let index = 0;
  let at = 0;
  for (let rest = size; at < offset && rest > 0; index++) {
    const node = splitPoint(rest + 1); // the largest power of two <= rest
    at += node;
    rest -= node;
  }
  return at === offset ? index : undefined;
}

/**
 * Why `range` is not a compact range, or undefined when it is: a size that is not a non-negative
 * safe integer, other than one hash per set bit of the size, or a hash not HASH_SIZE bytes. For a
 * range read back from storage, which a verifier reports rather than throws on.
 */
export function rangeProblem(range: CompactRange): string | undefined {
  const { size, hashes } = range;
  if (!Number.isSafeInteger(size) || size < 0) return `invalid compact range size ${size}`;
  const bits = onesCount(size);
  if (hashes.length !== bits) return `compact range of size ${size} needs ${bits} hashes, has ${hashes.length}`;
  for (const h of hashes) {
    if (h.length !== HASH_SIZE) return `compact range hash has ${h.length} bytes, want ${HASH_SIZE}`;
  }
  return undefined;
}

function checkRange(range: CompactRange): void {
  const problem = rangeProblem(range);
  if (problem !== undefined) throw new RangeError(problem);
}
