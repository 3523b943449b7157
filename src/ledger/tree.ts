// RFC 9162 section 2.1.1 Merkle Tree Hash, computed directly from the leaf hashes: the reference
// the incremental compact range is checked against, and the subtree roots that proofs are made of.
import { EMPTY_ROOT, nodeHash } from './hash.js';

/** MTH of all the given leaf hashes (RFC 9162 section 2.1.1). */
export function merkleRoot(leafHashes: readonly Uint8Array[]): Buffer {
  return leafHashes.length === 0 ? EMPTY_ROOT : subtreeRoot(leafHashes, 0, leafHashes.length);
}

/** MTH(D[start:end]) for 0 <= start < end <= leafHashes.length (RFC 9162 section 2.1.1). */
export function subtreeRoot(leafHashes: readonly Uint8Array[], start: number, end: number): Buffer {
  const n = end - start;
  if (n === 1) return Buffer.from(leafHashes[start] as Uint8Array);
  const k = splitPoint(n);
  return nodeHash(subtreeRoot(leafHashes, start, start + k), subtreeRoot(leafHashes, start + k, end));
}

const TWO_32 = 2 ** 32;

/**
 * k = the largest power of two smaller than n, for 1 < n <= 2^53 - 1 (RFC 9162 section 2.1.1).
 * Math.clz32 covers n <= 2^32; a compact range stands for more leaves than that, and above 2^32
 * every candidate power of two is a multiple of 2^32.
 */
export function splitPoint(n: number): number {
  return n <= TWO_32 ? 2 ** (31 - Math.clz32(n - 1)) : TWO_32 * splitPoint(Math.floor((n - 1) / TWO_32) + 1);
}

/** The number of set bits of a non-negative safe integer (bitwise operators stop at 32 bits). */
export function onesCount(x: number): number {
  let count = 0;
  for (; x > 0; x = Math.floor(x / 2)) count += x % 2;
  return count;
}
