import { isUtf8 } from 'node:buffer';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/ledger/jcs.js';
import { scanCanonicalObject, type Shape } from '../../src/ledger/jcs-scan.js';

// The definition the scanner must agree with: the bytes are the canonical form of what they parse to.
function reference(bytes: Buffer): 'canonical' | string {
  if (!isUtf8(bytes)) return 'not UTF-8';
  const text = bytes.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  try {
    return canonicalize(value) === text ? 'canonical' : 'not in canonical (RFC 8785) form';
  } catch {
    return 'not in canonical (RFC 8785) form';
  }
}

function verdict(bytes: Buffer): string {
  const result = scanCanonicalObject(bytes, {});
  return typeof result === 'string' ? result : 'canonical';
}

// Values whose text exercises what canonical form is about: escapes, non-ASCII and astral names,
// numbers of every form, nesting.
const text = fc.string({ unit: fc.constantFrom('a', 'b', 'é', '€', '😀', '\u{FB33}', '"', '\\', '/', '\n', '\u0001', '\u001f', '\u007f', '\u2028'), maxLength: 6 });
const number = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(0, -0, 1e21, 1e-7, 5e-324, 2 ** 53));
const { value: json } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, text, number, fc.boolean(), fc.constant(null), tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(text, tie('value'), { maxKeys: 5 }),
}));
const object = fc.dictionary(text, json, { maxKeys: 6 });

// Bytes that matter to the grammar and to canonical form, for mutations.
const mutationByte = fc.constantFrom(...Buffer.from(' "\\,:{}[]0123456789-+.eEu/nbtrfaA'), 0x00, 0x01, 0x1f, 0x7f, 0xc3, 0xa9, 0xed, 0xff);

describe('scanCanonicalObject', () => {
  it('accepts the canonical form of any object and agrees with the definition', () => {
    fc.assert(
      fc.property(object, (value) => {
        const bytes = Buffer.from(canonicalize(value), 'utf8');
        expect(verdict(bytes)).toBe('canonical');
      }),
      { numRuns: 2000 },
    );
  });

  it('agrees with the definition on mutated canonical bytes', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), byte: mutationByte }),
      fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: mutationByte }),
      fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), byte: fc.constant(0) }),
    );
    fc.assert(
      fc.property(object, fc.array(mutation, { minLength: 1, maxLength: 3 }), (value, mutations) => {
        let bytes = Buffer.from(canonicalize(value), 'utf8');
        for (const { kind, at, byte } of mutations) {
          const i = at % (bytes.length + 1);
          const tail = bytes.subarray(kind === 'insert' ? i : i + 1);
          bytes = Buffer.concat([bytes.subarray(0, i), kind === 'delete' ? Buffer.alloc(0) : Buffer.from([byte]), tail]);
        }
        expect(verdict(bytes)).toBe(reference(bytes));
      }),
      { numRuns: 5000 },
    );
  });

  it('decodes exactly the members the shape names, nested ones too', () => {
    fc.assert(
      fc.property(object, object, (outer, inner) => {
        const value = { ...outer, inner };
        const shape: Shape = { ...Object.fromEntries(Object.keys(outer).map((k) => [k, true])), inner: { absent: true } };
        const picked = scanCanonicalObject(Buffer.from(canonicalize(value), 'utf8'), shape);
        // Names with escapes or non-ASCII never match a shape: shapes name ledger fields.
        const plain = Object.entries(outer).filter(([k]) => /^[\x20-\x7e]*$/.test(k) && !/["\\]/.test(k));
        expect(picked).toEqual({ ...JSON.parse(JSON.stringify(Object.fromEntries(plain))), inner: {} });
      }),
    );
  });

  it('gives a nested shape\'s member as it is when it is not an object', () => {
    expect(scanCanonicalObject(Buffer.from('{"event":[1,"x"],"seq":7}'), { event: { action: true }, seq: true })).toEqual({
      event: [1, 'x'],
      seq: 7,
    });
  });

  it('decodes integers of every length, and other numbers, exactly', () => {
    const values = { a: 0, b: 7, c: 999_999_999_999_999, d: 1_234_567_890_123_456, e: -12, f: 1.5, g: 1e21, h: 2 ** 53 };
    const shape = Object.fromEntries(Object.keys(values).map((k) => [k, true] as const));
    expect(scanCanonicalObject(Buffer.from(canonicalize(values)), shape)).toEqual(values);
  });

  it('does not take inherited names for shape members', () => {
    expect(scanCanonicalObject(Buffer.from('{"__proto__":1,"constructor":2,"toString":3}'), { a: true })).toEqual({});
  });

  it.each<[string, string]>([
    ['{"a":1,"b":[true,null,"x"]}', 'canonical'],
    ['{}', 'canonical'],
    ['{"b":1,"a":2}', 'not in canonical (RFC 8785) form'], // unsorted names
    ['{"a":1,"a":1}', 'not in canonical (RFC 8785) form'], // a repeated name
    ['{"a": 1}', 'not in canonical (RFC 8785) form'], // whitespace
    ['{"10":1,"9":2}', 'canonical'], // integer-like names sort as strings
    ['{"\ufb33":1,"\u{1F600}":2}', 'not in canonical (RFC 8785) form'], // UTF-8 order, not UTF-16
    ['{"\u{1F600}":2,"\ufb33":1}', 'canonical'],
    ['{"a":1.0}', 'not in canonical (RFC 8785) form'],
    ['{"a":-0}', 'not in canonical (RFC 8785) form'],
    ['{"a":01}', 'not JSON'],
    ['{"a":1e21}', 'not in canonical (RFC 8785) form'],
    ['{"a":1e+21}', 'canonical'],
    ['{"a":123456789012345678}', 'not in canonical (RFC 8785) form'], // not what the double prints
    ['{"a":"\\u0041"}', 'not in canonical (RFC 8785) form'], // a needless escape
    ['{"a":"\\/"}', 'not in canonical (RFC 8785) form'],
    ['{"a":"\\u001F"}', 'not in canonical (RFC 8785) form'], // uppercase hex
    ['{"a":"\\u001f\\n"}', 'canonical'],
    ['{"a":"\\u000a"}', 'not in canonical (RFC 8785) form'], // \n has a short form
    ['{"a":"\\ud83d\\ude00"}', 'not in canonical (RFC 8785) form'], // a pair written escaped
    ['{"a":"\\ud800"}', 'not in canonical (RFC 8785) form'], // a lone surrogate
    ['{"a":"\u{1F600}\u2028\u007f"}', 'canonical'],
    ['{"a":tru}', 'not JSON'],
    ['{"a":1}x', 'not JSON'],
    ['[1]', 'not a JSON object'],
    ['"a"', 'not a JSON object'],
    ['', 'not JSON'],
  ])('%s: %s', (text, expected) => {
    const bytes = Buffer.from(text, 'utf8');
    expect(verdict(bytes)).toBe(expected);
    expect(reference(bytes)).toBe(expected);
  });

  it('refuses bytes that are not UTF-8, even where they would decode to U+FFFD', () => {
    const bytes = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff]), Buffer.from('"}')]);
    expect(verdict(bytes)).toBe('not UTF-8');
  });

  it('reports nesting too deep to scan as a failure, not a crash', () => {
    const deep = Buffer.from(`{"a":${'['.repeat(200_000)}${']'.repeat(200_000)}}`);
    expect(verdict(deep)).toBe('not in canonical (RFC 8785) form');
  });
});

// RFC 8785 vectors from cyberphone/json-canonicalization, kept outside the project (see its README).
const vectors = new URL('../../../shared/testdata/jcs/output/', import.meta.url);
const haveVectors = existsSync(fileURLToPath(vectors));
if (!haveVectors) console.warn(`JCS vectors skipped: ${fileURLToPath(vectors)} is absent`);

describe.skipIf(!haveVectors)('scanCanonicalObject on the RFC 8785 vectors', () => {
  const names = haveVectors ? readdirSync(vectors).filter((f) => f.endsWith('.json')) : [];
  it.each(names)('%s', (name) => {
    const bytes = readFileSync(new URL(name, vectors));
    expect(verdict(bytes)).toBe(reference(bytes));
  });
});
