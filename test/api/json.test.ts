import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/api/errors.js';
import { parseJson } from '../../src/api/json.js';
import { JcsError, canonicalize } from '../../src/ledger/jcs.js';
import { jsonText, readIJson } from '../helpers/i-json.js';

/**
 * The 400 parseJson throws, as `field: message`, or the canonical form of what it returned, or
 * `{unencodable}` when that has none (a lone surrogate, which the event schema refuses by name).
 */
function outcome(text: string): { refused: string } | { canonical: string } | { unencodable: true } {
  let value: unknown;
  try {
    value = parseJson(text);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 400) throw error;
    return { refused: error.message };
  }
  return canonicalOf(value);
}

function canonicalOf(value: unknown): { canonical: string } | { unencodable: true } {
  try {
    return { canonical: canonicalize(value) };
  } catch (error) {
    if (!(error instanceof JcsError)) throw error;
    return { unencodable: true };
  }
}

// RFC 8785 vectors from cyberphone/json-canonicalization, kept outside the project (see test/ledger/jcs.test.ts).
const vectors = new URL('../../../shared/testdata/jcs/', import.meta.url);
const haveVectors = existsSync(fileURLToPath(vectors));

describe('parseJson', () => {
  it.skipIf(!haveVectors)('reads every RFC 8785 input vector as RFC 8785 reads it', () => {
    const names = readdirSync(new URL('input/', vectors)).filter((f) => f.endsWith('.json'));
    expect(names.length).toBeGreaterThan(0);
    for (const file of names) {
      const input = readFileSync(new URL(`input/${file}`, vectors), 'utf8');
      expect(outcome(input), file).toEqual({ canonical: readFileSync(new URL(`output/${file}`, vectors), 'utf8') });
    }
  });

  it.each([
    ['{"a":1,"a":1}', 'a: member name given twice'],
    ['{"a":{"b":[1,{"c":0,"d":0,"c":0}]}}', 'a.b.1.c: member name given twice'],
    ['[{"x":1},{"y":2},{"z":{"\\u0061":1,"a":2}}]', '2.z.a: member name given twice'],
    ['{"\\"":1,"\\\\":2,"x\\\\\\"":3,"x\\\\":4,"\\\\":5}', '\\: member name given twice'],
    ['{"__proto__":{},"__proto__":[]}', '__proto__: member name given twice'],
    ['1e400', 'body: number out of range'],
    ['{"a":[1,2,-1.5E+309]}', 'a.2: number out of range'],
    ['{"s":"1e400","t":[{"u":"x"}, 1E999]}', 't.1: number out of range'],
    ['{"a":[1e-400]}', 'a.0: number too small'],
    ['-2.5E-999', 'body: number too small'],
  ])('refuses %s, naming the path', (text, message) => {
    expect(outcome(text)).toEqual({ refused: expect.stringContaining(message) });
  });

  it.each([
    ['{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}', '{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}'],
    ['{"__proto__":{"constructor":{"prototype":1}}}', '{"__proto__":{"constructor":{"prototype":1}}}'],
    ['{"a\\"b":"\\"","a\\\\":"\\\\","a":"{\\"a\\":1}"}', '{"a":"{\\"a\\":1}","a\\"b":"\\"","a\\\\":"\\\\"}'],
    ['[5e-324, 1.7976931348623157e308, -0, 0e-400, 0.000]', '[5e-324,1.7976931348623157e+308,0,0,0]'],
    ['[{}, "a", {"b":{}}, "a", {"c":[]}, "c"]', '[{},"a",{"b":{}},"a",{"c":[]},"c"]'],
  ])('keeps %s', (text, canonical) => {
    expect(outcome(text)).toEqual({ canonical });
  });

  it('is not JSON: a 400 without a path', () => {
    expect(outcome('{"a":1,}')).toEqual({ refused: expect.stringMatching(/^the body is not valid JSON: /) });
  });

  it('agrees with an independent parser that keeps every member: refused exactly when not I-JSON, else the same value', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        const expected = readIJson(text);
        const got = outcome(text);
        if (expected.fault) return 'refused' in got && /number out of range|number too small|given twice/.test(got.refused);
        expect(got).toEqual(canonicalOf(expected.value));
        return true;
      }),
      { numRuns: 2000 },
    );
  });
});
