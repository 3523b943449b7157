import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { appendLeaves, emptyRange, rangeRoot, type CompactRange } from '../../src/ledger/compact-range.js';
import { leafHash } from '../../src/ledger/hash.js';
import { consistencyProof, inclusionProof, verifyConsistency, verifyInclusion } from '../../src/ledger/proof.js';
import { rangeConsistencyProof, rangeInclusionProof, rangeSubtreeHash } from '../../src/ledger/range-proof.js';
import { merkleRoot, subtreeRoot } from '../../src/ledger/tree.js';

const ALL = Array.from({ length: 1400 }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));

// The tree of `start + n` leaves as a bundle sees it: a compact range, then the leaves after it.
function split(start: number, n: number) {
  const all = ALL.slice(0, start + n);
  return { all, range: appendLeaves(emptyRange(), all.slice(0, start)), leaves: Buffer.concat(all.slice(start)) };
}

// The sizes of the compact range nodes of `size`, largest first.
const nodeSizes = (size: number): number[] =>
  [...size.toString(2)].flatMap((bit, i, bits) => (bit === '1' ? [2 ** (bits.length - 1 - i)] : []));

// Whether leaf `index` < size sits alone in its compact range node (then its path is derivable).
function aloneInNode(size: number, index: number): boolean {
  let offset = 0;
  for (const nodeSize of nodeSizes(size)) {
    if (index < offset + nodeSize) return nodeSize === 1;
    offset += nodeSize;
  }
  return false;
}

// Proofs compared as hex: vitest's deep equality on thousands of Buffers costs more than making them.
const hex = (proof: readonly Buffer[]): string => proof.map((h) => h.toString('hex')).join(' ');

const isBoundary = (size: number, at: number): boolean =>
  nodeSizes(size).reduce<number[]>((ends, s) => [...ends, (ends.at(-1) ?? 0) + s], [0]).includes(at);

// Checks every proof a bundle makes for the tree start + n against proof.ts over all leaves:
// inclusion of each leaf after start, and consistency from start and from each of extraSizes.
function checkBundleProofs(start: number, n: number, extraSizes: readonly number[] = []): void {
  const { all, range, leaves } = split(start, n);
  const end = start + n;
  const root = merkleRoot(all);
  for (let i = start; i < end; i++) {
    const proof = rangeInclusionProof(range, leaves, i, end);
    expect(hex(proof)).toBe(hex(inclusionProof(i, end, all)));
    verifyInclusion(i, end, all[i]!, proof, root);
  }
  for (const size1 of [start, ...extraSizes]) {
    const proof = rangeConsistencyProof(range, leaves, size1, end);
    expect(hex(proof)).toBe(hex(consistencyProof(size1, end, all)));
    verifyConsistency(size1, end, proof, merkleRoot(all.slice(0, size1)), root);
  }
}

describe('range proofs', () => {
  it('equal the full-array proofs for every start in 0..20 and n in 1..20, at every tree size', () => {
    const mismatches: string[] = [];
    for (let start = 0; start <= 20; start++) {
      for (let n = 1; n <= 20; n++) {
        const { all, range, leaves } = split(start, n);
        for (let size2 = start; size2 <= start + n; size2++) {
          for (let i = start; i < size2; i++) {
            if (hex(rangeInclusionProof(range, leaves, i, size2)) !== hex(inclusionProof(i, size2, all))) {
              mismatches.push(`inclusion start=${start} index=${i} size=${size2}`);
            }
          }
          for (let size1 = start; size1 <= size2; size1++) {
            if (hex(rangeConsistencyProof(range, leaves, size1, size2)) !== hex(consistencyProof(size1, size2, all))) {
              mismatches.push(`consistency start=${start} ${size1}->${size2}`);
            }
          }
        }
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('equal and verify for 100 random (start, n), start in 0..200 and n in 1..200', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 1, max: 200 }), fc.nat(), (start, n, extra) =>
        checkBundleProofs(start, n, [start + (extra % (n + 1))]),
      ),
      { numRuns: 100, seed: 9162 },
    );
  });

  it('equal the full-array proofs for any leaf, size1 and size2 after start (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 700 }),
        fc.integer({ min: 1, max: 700 }),
        fc.nat(),
        fc.nat(),
        fc.nat(),
        (start, n, a, b, c) => {
          const { all, range, leaves } = split(start, n);
          const size2 = start + 1 + (a % n);
          const index = start + (b % (size2 - start));
          const size1 = start + (c % (size2 - start + 1));
          expect(hex(rangeInclusionProof(range, leaves, index, size2))).toBe(hex(inclusionProof(index, size2, all)));
          expect(hex(rangeConsistencyProof(range, leaves, size1, size2))).toBe(hex(consistencyProof(size1, size2, all)));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('computes MTH of any subtree the RFC builds over the known leaves, and of node-aligned ranges', () => {
    const { all, range, leaves } = split(45, 30); // 45 = 32 + 8 + 4 + 1
    const mth = rangeSubtreeHash(range, leaves);
    expect(mth(0, 75)).toEqual(merkleRoot(all));
    expect(mth(0, 32)).toEqual(range.hashes[0]);
    expect(mth(32, 45)).toEqual(subtreeRoot(all, 32, 45));
    expect(mth(40, 75)).toEqual(subtreeRoot(all, 40, 75));
    expect(mth(45, 46)).toEqual(all[45]);
    expect(() => mth(0, 16)).toThrow(/not derivable/);
    expect(() => mth(33, 45)).toThrow(/not derivable/);
    expect(() => mth(70, 76)).toThrow(/beyond the 75 known leaves/);
  });

  it('proves leaves before start only when every needed node is derivable, else throws RangeError', () => {
    for (let start = 1; start <= 40; start++) {
      const { all, range, leaves } = split(start, 9);
      const end = start + 9;
      for (let i = 0; i < start; i++) {
        if (aloneInNode(start, i)) {
          expect(hex(rangeInclusionProof(range, leaves, i, end))).toBe(hex(inclusionProof(i, end, all)));
        } else {
          expect(() => rangeInclusionProof(range, leaves, i, end)).toThrow(RangeError);
        }
      }
      for (let size1 = 1; size1 < start; size1++) {
        if (isBoundary(start, size1)) {
          expect(hex(rangeConsistencyProof(range, leaves, size1, end))).toBe(hex(consistencyProof(size1, end, all)));
        } else {
          expect(() => rangeConsistencyProof(range, leaves, size1, end)).toThrow(RangeError);
        }
      }
    }
  });

  it('rejects sizes and indexes out of range, and malformed inputs', () => {
    const { range, leaves } = split(5, 3);
    expect(() => rangeInclusionProof(range, leaves, 8, 8)).toThrow(/leaf index 8 is not in \[0, 8\)/);
    expect(() => rangeInclusionProof(range, leaves, 5, 9)).toThrow(/tree size 9 is not in \[0, 8\]/);
    expect(() => rangeConsistencyProof(range, leaves, 7, 6)).toThrow(/size1 7 is not in \[0, 6\]/);
    expect(() => rangeConsistencyProof(range, leaves.subarray(1), 5, 6)).toThrow(/32-byte hashes end to end/);
    expect(() => rangeConsistencyProof({ size: 5, hashes: range.hashes.slice(1) }, leaves, 5, 6)).toThrow(/needs 2 hashes/);
    expect(rangeConsistencyProof(range, leaves, 0, 8)).toEqual([]);
    expect(rangeConsistencyProof(range, leaves, 8, 8)).toEqual([]);
  });

  it('works past 2^32 leaves, where only the compact range stands for the early ones', () => {
    for (const size of [2 ** 32 + 3, 2 ** 40 + 2 ** 33 + 5, Number.MAX_SAFE_INTEGER - 300]) {
      const range: CompactRange = { size, hashes: nodeSizes(size).map(() => randomBytes(32)) };
      const added = Array.from({ length: 150 }, () => randomBytes(32));
      const leaves = Buffer.concat(added);
      const end = size + added.length;
      const root = rangeRoot(appendLeaves(range, added));
      for (let i = 0; i < added.length; i++) {
        verifyInclusion(size + i, end, added[i]!, rangeInclusionProof(range, leaves, size + i, end), root);
      }
      for (const size1 of [size, size + 1, size + 64, end - 1]) {
        const root1 = rangeRoot(appendLeaves(range, added.slice(0, size1 - size)));
        verifyConsistency(size1, end, rangeConsistencyProof(range, leaves, size1, end), root1, root);
      }
    }
  });
});
