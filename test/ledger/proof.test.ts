import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { appendLeaves, emptyRange, rangeRoot } from '../../src/ledger/compact-range.js';
import { EMPTY_ROOT, leafHash, nodeHash } from '../../src/ledger/hash.js';
import {
  ProofError,
  consistencyProof,
  inclusionProof,
  rootFromInclusionProof,
  verifyConsistency,
  verifyInclusion,
} from '../../src/ledger/proof.js';
import { merkleRoot } from '../../src/ledger/tree.js';

const leaves = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`leaf ${i}`)));
const b64 = (s: string): Buffer => Buffer.from(s, 'base64');

// transparency-dev/merkle vectors, kept outside the project (see their README).
const vectors = new URL('../../../shared/testdata/merkle/', import.meta.url);
const haveVectors = existsSync(fileURLToPath(vectors));
if (!haveVectors) console.warn(`Merkle proof vectors skipped: ${fileURLToPath(vectors)} is absent`);

interface InclusionVector {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}
interface ConsistencyVector {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

function vectorFiles(kind: string): string[] {
  if (!haveVectors) return [];
  return readdirSync(new URL(`${kind}/`, vectors), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.json'))
    .sort();
}
const readVector = <T>(kind: string, file: string): T =>
  JSON.parse(readFileSync(new URL(`${kind}/${file}`, vectors), 'utf8')) as T;

// Expect acceptance, or rejection with ProofError (never another error type).
function expectOutcome(wantErr: boolean, verify: () => void): void {
  if (wantErr) expect(verify).toThrow(ProofError);
  else expect(verify).not.toThrow();
}

describe.skipIf(!haveVectors)('transparency-dev inclusion vectors', () => {
  for (const file of vectorFiles('inclusion')) {
    it(file, () => {
      const v = readVector<InclusionVector>('inclusion', file);
      expectOutcome(v.wantErr, () =>
        verifyInclusion(v.leafIdx, v.treeSize, b64(v.leafHash), (v.proof ?? []).map(b64), b64(v.root)),
      );
    });
  }
});

describe.skipIf(!haveVectors)('transparency-dev consistency vectors', () => {
  for (const file of vectorFiles('consistency')) {
    it(file, () => {
      const v = readVector<ConsistencyVector>('consistency', file);
      expectOutcome(v.wantErr, () =>
        verifyConsistency(v.size1, v.size2, (v.proof ?? []).map(b64), b64(v.root1), b64(v.root2)),
      );
    });
  }
});

// The numbered vector folders use the RFC 6962 reference tree, so their happy-path proofs are
// exactly what the generators must produce.
describe.skipIf(!haveVectors)('generated proofs equal the vectors’ happy paths', () => {
  const reference = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(
    (hex) => leafHash(Buffer.from(hex, 'hex')),
  );
  const hex = (proof: readonly Uint8Array[]) => proof.map((h) => Buffer.from(h).toString('hex'));

  it.each(['0', '1', '2', '3', '4'])('inclusion/%s', (dir) => {
    const v = readVector<InclusionVector>('inclusion', `${dir}/happy-path.json`);
    expect(hex(inclusionProof(v.leafIdx, v.treeSize, reference))).toEqual(hex((v.proof ?? []).map(b64)));
  });

  it.each(['0', '1', '2', '3', '4'])('consistency/%s', (dir) => {
    const v = readVector<ConsistencyVector>('consistency', `${dir}/happy-path.json`);
    expect(hex(consistencyProof(v.size1, v.size2, reference))).toEqual(hex((v.proof ?? []).map(b64)));
  });
});

function flipBit(proof: readonly Buffer[], element: number, bit: number): Buffer[] {
  const copy = proof.map((h) => Buffer.from(h));
  (copy[element] as Buffer)[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
}

describe('generated proofs', () => {
  const all = leaves(300);

  it('verify for every leaf and every size1 of trees up to 64 leaves', () => {
    for (let n = 1; n <= 64; n++) {
      const tree = all.slice(0, n);
      const root = merkleRoot(tree);
      for (let i = 0; i < n; i++) {
        const proof = inclusionProof(i, n, tree);
        verifyInclusion(i, n, tree[i] as Buffer, proof, root);
        expect(rootFromInclusionProof(i, n, tree[i] as Buffer, proof)).toEqual(root);
      }
      for (let m = 0; m <= n; m++) {
        verifyConsistency(m, n, consistencyProof(m, n, tree), merkleRoot(tree.slice(0, m)), root);
      }
    }
  });

  it('verify on random trees up to 300 leaves, and reject any flipped bit', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }).chain((n) =>
          fc.record({
            n: fc.constant(n),
            index: fc.integer({ min: 0, max: n - 1 }),
            size1: fc.integer({ min: 1, max: n }),
            pick: fc.nat(),
            bit: fc.integer({ min: 0, max: 255 }),
          }),
        ),
        ({ n, index, size1, pick, bit }) => {
          const root = merkleRoot(all.slice(0, n));
          const leaf = all[index] as Buffer;
          const inclusion = inclusionProof(index, n, all);
          verifyInclusion(index, n, leaf, inclusion, root);
          if (inclusion.length > 0) {
            const bad = flipBit(inclusion, pick % inclusion.length, bit);
            expect(() => verifyInclusion(index, n, leaf, bad, root)).toThrow(ProofError);
          }

          const root1 = merkleRoot(all.slice(0, size1));
          const consistency = consistencyProof(size1, n, all);
          verifyConsistency(size1, n, consistency, root1, root);
          if (consistency.length > 0) {
            const bad = flipBit(consistency, pick % consistency.length, bit);
            expect(() => verifyConsistency(size1, n, bad, root1, root)).toThrow(ProofError);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('are fast enough for a tree of 100k leaves', () => {
    const big = Array.from({ length: 100_000 }, (_, i) => leafHash(Buffer.from(String(i))));
    const root = rangeRoot(appendLeaves(emptyRange(), big));
    const started = performance.now();
    verifyInclusion(31_337, big.length, big[31_337] as Buffer, inclusionProof(31_337, big.length, big), root);
    const root1 = rangeRoot(appendLeaves(emptyRange(), big.slice(0, 77_777)));
    verifyConsistency(77_777, big.length, consistencyProof(77_777, big.length, big), root1, root);
    // Each proof hashes O(n) nodes once; copying slices at every level would be far slower.
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('reject bad arguments to the generators', () => {
    const tree = all.slice(0, 5);
    expect(() => inclusionProof(5, 5, tree)).toThrow(RangeError);
    expect(() => inclusionProof(-1, 5, tree)).toThrow(RangeError);
    expect(() => inclusionProof(0, 6, tree)).toThrow(RangeError);
    expect(() => consistencyProof(6, 5, tree)).toThrow(RangeError);
    expect(() => consistencyProof(1, 6, tree)).toThrow(RangeError);
    expect(consistencyProof(0, 5, tree)).toEqual([]);
    expect(consistencyProof(5, 5, tree)).toEqual([]);
  });
});

describe('verification edge cases', () => {
  const tree = leaves(7);
  const root = merkleRoot(tree);
  const proof = inclusionProof(3, 7, tree);

  it('rejects an index at or beyond the size, and sizes that are not safe integers', () => {
    expect(() => verifyInclusion(7, 7, tree[3] as Buffer, proof, root)).toThrow(/not below tree size/);
    expect(() => verifyInclusion(0, 0, tree[0] as Buffer, [], EMPTY_ROOT)).toThrow(ProofError);
    expect(() => verifyInclusion(-1, 7, tree[3] as Buffer, proof, root)).toThrow(/non-negative safe integer/);
    expect(() => verifyInclusion(3.5, 7, tree[3] as Buffer, proof, root)).toThrow(ProofError);
    // 2^64 - 1 in the vectors parses to 2^64 in JavaScript: not exact, so never accepted.
    expect(() => verifyInclusion(3, 2 ** 64, tree[3] as Buffer, proof, root)).toThrow(ProofError);
  });

  it('names wrong proof lengths and hash lengths', () => {
    expect(() => verifyInclusion(3, 7, tree[3] as Buffer, proof.slice(1), root)).toThrow(/proof has 2 hashes, want 3/);
    expect(() => verifyInclusion(3, 7, tree[3] as Buffer, [...proof.slice(0, 2), Buffer.alloc(31)], root)).toThrow(
      /proof\[2\] has 31 bytes/,
    );
    expect(() => verifyInclusion(3, 7, Buffer.alloc(33), proof, root)).toThrow(/leaf hash has 33 bytes/);
    expect(() => verifyInclusion(3, 7, tree[3] as Buffer, proof, root.subarray(1))).toThrow(/root has 31 bytes/);
    expect(() => verifyInclusion(2, 7, tree[3] as Buffer, proof, root)).toThrow(/root mismatch/);
  });

  it('treats equal sizes as root equality with an empty proof', () => {
    verifyConsistency(7, 7, [], root, root);
    expect(() => verifyConsistency(7, 7, [root], root, root)).toThrow(/want 0/);
    expect(() => verifyConsistency(7, 7, [], root, EMPTY_ROOT)).toThrow(/root2 mismatch/);
    verifyConsistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT);
    expect(() => verifyConsistency(0, 0, [], root, root)).toThrow(/root1 mismatch/);
  });

  it('accepts the empty tree as a prefix of any tree, only with an empty proof and the empty root', () => {
    verifyConsistency(0, 7, [], EMPTY_ROOT, root);
    expect(() => verifyConsistency(0, 7, [EMPTY_ROOT], EMPTY_ROOT, root)).toThrow(/want 0/);
    expect(() => verifyConsistency(0, 7, [], root, root)).toThrow(/root1 mismatch/);
    expect(() => verifyConsistency(0, 7, [], EMPTY_ROOT, root.subarray(0, 12))).toThrow(/root2 has 12 bytes/);
  });

  it('rejects shrinking trees, empty proofs and swapped roots', () => {
    const root3 = merkleRoot(tree.slice(0, 3));
    const proof37 = consistencyProof(3, 7, tree);
    verifyConsistency(3, 7, proof37, root3, root);
    expect(() => verifyConsistency(7, 3, proof37, root, root3)).toThrow(/below size1/);
    expect(() => verifyConsistency(3, 7, [], root3, root)).toThrow(/proof has 0 hashes/);
    expect(() => verifyConsistency(3, 7, proof37, root, root3)).toThrow(/root1 mismatch/);
  });
});

// Trees larger than 2^32 leaves cannot be materialized, but a tree whose leaves are all equal has
// computable subtree roots, which is enough to exercise the size arithmetic past 32 bits.
describe('sizes beyond 2^32', () => {
  const leaf = leafHash(Buffer.from('same'));
  const perfect = [leaf];
  for (let h = 1; h <= 53; h++) perfect.push(nodeHash(perfect[h - 1] as Buffer, perfect[h - 1] as Buffer));
  const uniformRoot = (n: number): Buffer => {
    const hashes: Buffer[] = [];
    for (let h = 52; h >= 0; h--) if (Math.floor(n / 2 ** h) % 2 === 1) hashes.push(perfect[h] as Buffer);
    return rangeRoot({ size: n, hashes });
  };
  const split = (n: number): number => {
    let k = 1;
    while (k * 2 < n) k *= 2;
    return k;
  };
  const path = (m: number, n: number): Buffer[] => {
    if (n === 1) return [];
    const k = split(n);
    return m < k ? [...path(m, k), uniformRoot(n - k)] : [...path(m - k, n - k), uniformRoot(k)];
  };
  const subproof = (m: number, n: number, b: boolean): Buffer[] => {
    if (m === n) return b ? [] : [uniformRoot(n)];
    const k = split(n);
    return m <= k ? [...subproof(m, k, b), uniformRoot(n - k)] : [...subproof(m - k, n - k, false), uniformRoot(k)];
  };

  it.each([
    [2 ** 32, 2 ** 32 + 1],
    [2 ** 40 + 12_345, 2 ** 41 + 3],
    [2 ** 52 - 1, Number.MAX_SAFE_INTEGER],
  ])('inclusion and consistency between %d and %d', (size1, size2) => {
    const root1 = uniformRoot(size1);
    const root2 = uniformRoot(size2);
    for (const index of [0, 1, size1 - 1, size2 - 1, size2 - 2]) {
      verifyInclusion(index, size2, leaf, path(index, size2), root2);
    }
    verifyConsistency(size1, size2, subproof(size1, size2, true), root1, root2);
    expect(() => verifyConsistency(size1, size2, subproof(size1, size2, true), root2, root2)).toThrow(ProofError);
  });
});
