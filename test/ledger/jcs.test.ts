import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { JcsError, canonicalBytes, canonicalize, sortCodeUnits } from '../../src/ledger/jcs.js';

// RFC 8785 vectors from cyberphone/json-canonicalization, kept outside the project (see its README).
const vectors = new URL('../../../shared/testdata/jcs/', import.meta.url);
const haveVectors = existsSync(fileURLToPath(vectors));
if (!haveVectors) console.warn(`JCS vectors skipped: ${fileURLToPath(vectors)} is absent`);

describe.skipIf(!haveVectors)('RFC 8785 vectors', () => {
  const names = haveVectors ? readdirSync(new URL('input/', vectors)).filter((f) => f.endsWith('.json')) : [];

  for (const file of names) {
    const name = file.slice(0, -'.json'.length);
    it(name, () => {
      const input: unknown = JSON.parse(readFileSync(new URL(`input/${file}`, vectors), 'utf8'));
      const expected = readFileSync(new URL(`output/${file}`, vectors));
      const hex = readFileSync(new URL(`outhex/${name}.txt`, vectors), 'utf8').replace(/\s+/g, '');

      const bytes = canonicalBytes(input);
      expect(bytes.toString('hex')).toBe(expected.toString('hex'));
      expect(bytes.toString('hex')).toBe(hex);
      expect(canonicalize(input)).toBe(expected.toString('utf8'));
    });
  }
});

describe('canonicalize', () => {
  it('sorts keys by UTF-16 code units, not code points or locale', () => {
    const value = { '\u20ac': 1, '\r': 2, '\ufb33': 3, '\ud83d\ude00': 4, '1': 5, a: 6, '\u00e9': 7 };
    // U+1F600 is the pair D83D DE00, so it sorts before U+FB33 although its code point is larger.
    expect(canonicalize(value)).toBe('{"\\r":2,"1":5,"a":6,"\u00e9":7,"\u20ac":1,"\ud83d\ude00":4,"\ufb33":3}');
  });

  it('canonicalizes nested structures and keeps array order', () => {
    const value = { b: [3, { z: null, y: [true, false] }, 'x'], a: { d: { c: {} }, '': [] } };
    expect(canonicalize(value)).toBe('{"a":{"":[],"d":{"c":{}}},"b":[3,{"y":[true,false],"z":null},"x"]}');
  });

  it('serializes numbers like ECMAScript', () => {
    expect(canonicalize([-0, 1e21, 1e-7, 0.1 + 0.2, 5e-324, 2 ** 53, -1.5])).toBe(
      '[0,1e+21,1e-7,0.30000000000000004,5e-324,9007199254740992,-1.5]',
    );
  });

  it('escapes strings minimally, with lowercase hex', () => {
    expect(canonicalize('\u0000\b\t\n\f\r\u001f"\\/\u007f\u2028')).toBe(
      '"\\u0000\\b\\t\\n\\f\\r\\u001f\\"\\\\/\u007f\u2028"',
    );
  });

  it('accepts null-prototype objects and encodes UTF-8 bytes', () => {
    const value = Object.assign(Object.create(null) as object, { k: '€😀' });
    expect(canonicalBytes(value).toString('hex')).toBe(Buffer.from('{"k":"€😀"}', 'utf8').toString('hex'));
  });

  it.each([
    ['lone high surrogate', 'a\ud800b'],
    ['lone low surrogate', '\udc00'],
    ['reversed pair', '\ude00\ud83d'],
    ['lone surrogate in a key', { '\ud800': 1 }],
  ])('rejects a %s', (_, value) => {
    expect(() => canonicalize(value)).toThrow(JcsError);
  });

  it.each([NaN, Infinity, -Infinity])('rejects %s', (n) => {
    expect(() => canonicalize({ n })).toThrow(JcsError);
  });

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['an undefined member', { a: undefined }],
    ['an undefined element', [1, undefined]],
    ['an array hole', [1, , 3]],
    ['a function', () => 1],
    ['a bigint', 1n],
    ['a symbol', Symbol('s')],
    ['a Date', new Date(0)],
    ['a Map', new Map()],
    ['a Buffer', Buffer.from('x')],
    ['a class instance', new (class Point {})()],
  ])('rejects %s', (_, value) => {
    expect(() => canonicalize(value)).toThrow(JcsError);
  });

  it('rejects cycles but allows shared (acyclic) references', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = { back: cyclic };
    expect(() => canonicalize(cyclic)).toThrow(/cyclic/);
    const shared = { x: 1 };
    expect(canonicalize([shared, shared])).toBe('[{"x":1},{"x":1}]');
  });
});

describe('sortCodeUnits', () => {
  // Names that order differently by code point and by UTF-16 code unit (RFC 8785 section 3.2.3 takes the latter).
  const names = ['\u20ac', '\r', '\ufb33', '1', '\u{1f600}', '\u0080', '\u00f6', 'a', 'A', '', 'aa', 'ab', '\ud83d\ude00a', '_', 'Z'];

  it('orders as the default Array.prototype.sort at every length, insertion-sorted or not', () => {
    for (let length = 0; length <= names.length * 2; length++) {
      const strings = Array.from({ length }, (_, i) => names[(i * 7) % names.length]! + (i >= names.length ? String(i) : ''));
      const expected = [...strings].sort();
      expect(sortCodeUnits(strings)).toBe(strings);
      expect(strings).toEqual(expected);
    }
  });
});
