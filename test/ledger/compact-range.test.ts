import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { appendLeaf, appendLeaves, emptyRange, rangeRoot, rangeSubtree, type CompactRange } from '../../src/ledger/compact-range.js';
import { EMPTY_ROOT, HASH_SIZE, leafHash, nodeHash } from '../../src/ledger/hash.js';
import { merkleRoot } from '../../src/ledger/tree.js';

const leaves = (n: number, offset = 0): Buffer[] =>
  Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`leaf ${offset + i}`)));

// The RFC 6962 reference tree (certificate-transparency merkle_tree_test), whose roots the
// transparency-dev vectors use; MTH for sizes 1..8.
const REFERENCE_DATA = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
const REFERENCE_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const referenceLeaves = REFERENCE_DATA.map((hex) => leafHash(Buffer.from(hex, 'hex')));

describe('compact range', () => {
  it('is empty with the empty root', () => {
    expect(emptyRange()).toEqual({ size: 0, hashes: [] });
    expect(rangeRoot(emptyRange()).toString('hex')).toBe(
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    expect(merkleRoot([])).toEqual(EMPTY_ROOT);
  });

  it('matches merkleRoot for every size 0..2000, appending one leaf at a time', () => {
    const all = leaves(2000);
    let range = emptyRange();
    for (let n = 0; n <= 2000; n++) {
      if (n > 0) range = appendLeaf(range, all[n - 1] as Buffer);
      expect(range.size).toBe(n);
      expect(range.hashes.length).toBe(n.toString(2).replace(/0/g, '').length);
      expect(rangeRoot(range).equals(merkleRoot(all.slice(0, n)))).toBe(true);
    }
  });

  it('holds the perfect subtree roots, largest first', () => {
    const all = leaves(13); // 13 = 8 + 4 + 1
    const range = appendLeaves(emptyRange(), all);
    expect(range.hashes).toEqual([merkleRoot(all.slice(0, 8)), merkleRoot(all.slice(8, 12)), all[12]]);
  });

  it('gives the RFC 6962 reference roots for sizes 1..8', () => {
    let range = emptyRange();
    referenceLeaves.forEach((leaf, i) => {
      range = appendLeaf(range, leaf);
      expect(rangeRoot(range).toString('hex')).toBe(REFERENCE_ROOTS[i]);
      expect(merkleRoot(referenceLeaves.slice(0, i + 1)).toString('hex')).toBe(REFERENCE_ROOTS[i]);
    });
  });

  it('appendLeaves in any batch split equals appendLeaf one by one', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 300 }),
        fc.array(fc.integer({ min: 0, max: 70 }), { maxLength: 12 }),
        (initial, batches) => {
          const all = leaves(initial + batches.reduce((a, b) => a + b, 0));
          let batched = appendLeaves(emptyRange(), all.slice(0, initial));
          let single = emptyRange();
          for (let i = 0; i < initial; i++) single = appendLeaf(single, all[i] as Buffer);
          let at = initial;
          for (const count of batches) {
            batched = appendLeaves(batched, all.slice(at, at + count));
            for (const leaf of all.slice(at, at + count)) single = appendLeaf(single, leaf);
            at += count;
          }
          expect(batched).toEqual(single);
          expect(rangeRoot(batched).equals(merkleRoot(all))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('does not modify its input nor keep the caller’s leaf buffer', () => {
    const start = appendLeaves(emptyRange(), leaves(7));
    const snapshot = (r: CompactRange) => ({ size: r.size, hashes: r.hashes.map((h) => h.toString('hex')) });
    const before = snapshot(start);
    expect(appendLeaf(start, leafHash(Buffer.from('x'))).size).toBe(8);
    expect(appendLeaves(start, leaves(9)).size).toBe(16);
    expect(snapshot(start)).toEqual(before);

    const leaf = new Uint8Array(leafHash(Buffer.from('y')));
    const range = appendLeaf(emptyRange(), leaf);
    leaf.fill(0);
    expect(range.hashes[0]?.equals(leafHash(Buffer.from('y')))).toBe(true);
  });

  it('shows each inner node it computes, once, as MTH of the leaves under it', () => {
    const all = leaves(1000);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 400 }), { maxLength: 8 }), (cuts) => {
        const seen = new Map<string, Buffer>();
        let range = emptyRange();
        for (const cut of [...cuts, all.length]) {
          const to = Math.min(all.length, range.size + cut);
          range = appendLeaves(range, all.slice(range.size, to), (height, index, hash) => {
            expect(seen.has(`${height}/${index}`)).toBe(false);
            seen.set(`${height}/${index}`, hash);
          });
        }
        // Every perfect subtree of the 1000 leaves, and nothing else: 1000 - 1 - (set bits of 1000 - 1).
        expect(seen.size).toBe(1000 - 6);
        for (const [at, hash] of seen) {
          const [height, index] = at.split('/').map(Number) as [number, number];
          const width = 2 ** height;
          expect(hash.equals(merkleRoot(all.slice(index * width, (index + 1) * width))), at).toBe(true);
        }
      }),
      { numRuns: 10 },
    );
  });

  it('gives MTH of the leaves between any two node boundaries, and nothing for a range that cuts a node', () => {
    const all = leaves(13); // nodes [0, 8), [8, 12), [12, 13)
    const range = appendLeaves(emptyRange(), all);
    const boundaries = [0, 8, 12, 13];
    for (let start = 0; start <= 13; start++) {
      for (let end = start; end <= 13; end++) {
        const expected = start < end && boundaries.includes(start) && boundaries.includes(end) ? merkleRoot(all.slice(start, end)) : undefined;
        expect(rangeSubtree(range, start, end), `[${start}, ${end})`).toEqual(expected);
      }
    }
    // Beyond 32 bits: the last node of a range of size 2^40 + 1 is one leaf after 2^40.
    const big = { size: 2 ** 40 + 1, hashes: leaves(2) };
    expect(rangeSubtree(big, 2 ** 40, 2 ** 40 + 1)).toEqual(big.hashes[1]);
    expect(rangeSubtree(big, 2 ** 39, 2 ** 40 + 1)).toBeUndefined();
  });

  it('works beyond 32-bit sizes', () => {
    // A range of size 2^40 - 1 has 40 subtree roots; one more leaf folds them all into one.
    const hashes = leaves(40);
    const last = leafHash(Buffer.from('last'));
    const next = appendLeaf({ size: 2 ** 40 - 1, hashes }, last);
    expect(next.size).toBe(2 ** 40);
    let folded = last;
    for (let i = hashes.length - 1; i >= 0; i--) folded = nodeHash(hashes[i] as Buffer, folded);
    expect(next.hashes).toEqual([folded]);
    expect(rangeRoot(next)).toEqual(folded);
  });

  it('rejects malformed ranges and leaf hashes', () => {
    const h = leaves(2);
    expect(() => rangeRoot({ size: 3, hashes: [h[0] as Buffer] })).toThrow(RangeError);
    expect(() => rangeRoot({ size: -1, hashes: [] })).toThrow(RangeError);
    expect(() => rangeRoot({ size: 1.5, hashes: [] })).toThrow(RangeError);
    expect(() => rangeRoot({ size: 1, hashes: [Buffer.alloc(HASH_SIZE - 1)] })).toThrow(RangeError);
    expect(() => appendLeaf(emptyRange(), Buffer.alloc(HASH_SIZE + 1))).toThrow(RangeError);
    const full: CompactRange = { size: Number.MAX_SAFE_INTEGER, hashes: leaves(53) };
    expect(() => appendLeaf(full, h[0] as Buffer)).toThrow(RangeError);
  });
});

// Roots in the transparency-dev happy-path vectors come from the same reference tree.
const merkleVectors = new URL('../../../shared/testdata/merkle/', import.meta.url);
const haveVectors = existsSync(fileURLToPath(merkleVectors));
if (!haveVectors) console.warn(`Merkle vector roots skipped: ${fileURLToPath(merkleVectors)} is absent`);

describe.skipIf(!haveVectors)('reference roots in the Merkle vectors', () => {
  it('match the compact range of the reference leaves', () => {
    const seen = new Map<number, string>();
    for (const kind of ['inclusion', 'consistency']) {
      for (const dir of ['0', '1', '2', '3', '4']) {
        const vector = JSON.parse(readFileSync(new URL(`${kind}/${dir}/happy-path.json`, merkleVectors), 'utf8')) as {
          treeSize?: number; root?: string; size1?: number; root1?: string; size2?: number; root2?: string;
        };
        for (const [size, root] of [[vector.treeSize, vector.root], [vector.size1, vector.root1], [vector.size2, vector.root2]]) {
          if (typeof size === 'number' && typeof root === 'string') seen.set(size, Buffer.from(root, 'base64').toString('hex'));
        }
      }
    }
    expect(readdirSync(new URL('inclusion/', merkleVectors)).length).toBeGreaterThan(0);
    expect([...seen.keys()].sort()).toEqual([1, 2, 3, 5, 6, 7, 8]);
    for (const [size, root] of seen) {
      expect(rangeRoot(appendLeaves(emptyRange(), referenceLeaves.slice(0, size))).toString('hex')).toBe(root);
    }
  });
});
