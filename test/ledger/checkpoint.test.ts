import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CheckpointError,
  chainOrigin,
  checkpointText,
  openCheckpoint,
  parseCheckpoint,
  signCheckpoint,
} from '../../src/ledger/checkpoint.js';
import { leafHash } from '../../src/ledger/hash.js';
import { generateSigningKey, parseVerifierKey } from '../../src/ledger/keys.js';
import { NoteError, signNote } from '../../src/ledger/note.js';
import { merkleRoot } from '../../src/ledger/tree.js';

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const ROOT = new Uint8Array(merkleRoot([leafHash(Buffer.from('a')), leafHash(Buffer.from('b'))]));
const ROOT64 = Buffer.from(ROOT).toString('base64');

// Real checkpoints of the Go checksum database, cosigned by a test witness (test.example.com, whose
// key is not known here, so its signatures must be ignored), from two revisions of
// google/trillian-examples witness/golang/cmd/addrwitness/README.md. The sum.golang.org verifier key
// is the one in transparency-dev/formats log/identifier_test.go (and built into the go command).
const SUMDB_VKEY = 'sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8';
const SUMDB_CHECKPOINTS = [
  {
    size: 15081221,
    root: 'BoMMe1wd25Tco0mYGROkyqxHZWx+hcSCtMV315Lu6Lg=',
    note:
      'go.sum database tree\n15081221\nBoMMe1wd25Tco0mYGROkyqxHZWx+hcSCtMV315Lu6Lg=\n\n' +
      '— sum.golang.org Az3grilD7vQqTrv66jRgKM84Y80KTprrSt4bKmiOPxgmS5ZVBTeCl6dUvjYnN13R+C8j0jGY1WnUADGMkok3U0m2Zgo=\n' +
      '— test.example.com qTGhC3917mAr6hGh+T55tNjxaej/D/GQivJZRIj7XGdAcQOTqfMWIPgp/v/904LEduN/h2sSRtHUJXUL4b9Gm7Bz4Qc=\n' +
      '— test.example.com /Pa7Y/dUvWMAAAAAQVwkQVi81ArPV7BIaQYrMIxyzY0m8a4BdeeBhSKd3PviPK4/3Sd+NKSc5N7PDTCfAkUSVniN+R2oKIggA4iiDQ==\n',
  },
  {
    size: 15067302,
    root: 'gJyioq6dwR9n+NjEWORfYmH+ubeYm3kH42BBQ0bTpYI=',
    note:
      'go.sum database tree\n15067302\ngJyioq6dwR9n+NjEWORfYmH+ubeYm3kH42BBQ0bTpYI=\n\n' +
      '— sum.golang.org Az3grp1rvWOs5NKlr/xR4GLN/CDyzzakmt1o61uSxYKpK1SerqOP2ClbX/peKUZjYnyomH5Xz7GZG3TpB7OeKn4E2ww=\n' +
      '— test.example.com qTGhC/xIPQ0AXKHK6Y+9ypRfuvMZWPjRXM8NiOg5M1WREn07VQXyuIXM3NRNav3ieVFLUqDRK77PWDmL6w8w84UqeAw=\n',
  },
];

describe('real-world checkpoints (sum.golang.org)', () => {
  const sumdb = parseVerifierKey(SUMDB_VKEY);

  for (const { size, root, note } of SUMDB_CHECKPOINTS) {
    it(`opens the signed tree head at size ${size}, ignoring the unknown witness cosignatures`, () => {
      const opened = openCheckpoint(note, [sumdb], 'go.sum database tree');
      expect(opened.checkpoint).toEqual({ origin: 'go.sum database tree', size, root: b64(root), extensions: [] });
      expect(opened.verifiedBy).toEqual([sumdb]);
      // Formatting the parsed checkpoint gives back the signed text byte for byte.
      expect(checkpointText(opened.checkpoint)).toBe(opened.text);
      expect(note.startsWith(`${opened.text}\n`)).toBe(true);
    });
  }

  it('rejects the real checkpoint with its size altered', () => {
    const note = SUMDB_CHECKPOINTS[0]!.note.replace('15081221', '15081222');
    expect(() => openCheckpoint(note, [sumdb])).toThrow(/invalid signature by known key sum\.golang\.org\+033de0ae/);
  });
});

describe('checkpointText and parseCheckpoint', () => {
  it('formats <origin>\\n<size>\\n<base64 root>\\n and parses it back', () => {
    const text = checkpointText({ origin: 'log.example/p/e', size: 2, root: ROOT });
    expect(text).toBe(`log.example/p/e\n2\n${ROOT64}\n`);
    expect(parseCheckpoint(text)).toEqual({ origin: 'log.example/p/e', size: 2, root: ROOT, extensions: [] });
  });

  it('formats the empty tree as size 0', () => {
    const empty = new Uint8Array(merkleRoot([]));
    const text = checkpointText({ origin: 'o', size: 0, root: empty });
    expect(text).toBe('o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n');
    expect(parseCheckpoint(text).size).toBe(0);
  });

  it('keeps extension lines, in order', () => {
    const text = checkpointText({ origin: 'o', size: 1, root: ROOT, extensions: ['ext one', '— two'] });
    expect(text).toBe(`o\n1\n${ROOT64}\next one\n— two\n`);
    expect(parseCheckpoint(text).extensions).toEqual(['ext one', '— two']);
  });

  it('round-trips arbitrary sizes, roots, origins and extensions', () => {
    const line = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => !/[\u0000-\u001f\p{Cs}]/u.test(s));
    const origin = line.filter((s) => !/^\p{White_Space}|\p{White_Space}$/u.test(s));
    fc.assert(
      fc.property(
        origin,
        fc.maxSafeNat(),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.array(line, { maxLength: 3 }),
        (o, size, root, extensions) => {
          expect(parseCheckpoint(checkpointText({ origin: o, size, root, extensions }))).toEqual({ origin: o, size, root, extensions });
        },
      ),
    );
  });

  it('accepts the largest safe size and an origin with inner spaces', () => {
    const text = `go.sum database tree\n${Number.MAX_SAFE_INTEGER}\n${ROOT64}\n`;
    expect(parseCheckpoint(text)).toMatchObject({ origin: 'go.sum database tree', size: Number.MAX_SAFE_INTEGER });
  });
});

describe('parseCheckpoint rejects', () => {
  const reject = (text: string, error: RegExp) => expect(() => parseCheckpoint(text), JSON.stringify(text)).toThrow(error);

  it('text that does not end in a newline', () => {
    reject(`o\n1\n${ROOT64}`, /must end in a newline/);
  });

  it('fewer than three lines', () => {
    reject('o\n1\n', /origin, size and root lines, got 2/);
    reject('o\n', /got 1/);
  });

  it('an empty origin, empty extension lines and trailing blank lines', () => {
    reject(`\n1\n${ROOT64}\n`, /line 1 is empty/);
    reject(`o\n\n${ROOT64}\n`, /line 2 is empty/);
    reject(`o\n1\n${ROOT64}\n\n`, /line 4 is empty/);
    reject(`o\n1\n${ROOT64}\next\n\nmore\n`, /line 5 is empty/);
  });

  it('sizes with leading zeroes, signs, spaces, fractions, exponents or hex', () => {
    for (const size of ['01', '00', '+1', '-1', ' 1', '1 ', '1.0', '1e3', '0x10', '١٢', 'one']) {
      reject(`o\n${size}\n${ROOT64}\n`, /not a decimal number without leading zeroes/);
    }
  });

  it('sizes beyond 2^53 - 1', () => {
    reject(`o\n9007199254740992\n${ROOT64}\n`, /larger than 2\^53 - 1/);
    reject(`o\n18446744073709551615\n${ROOT64}\n`, /larger than 2\^53 - 1/);
  });

  it('a root that is not base64 of exactly 32 bytes', () => {
    const bad = [
      'not base64!',
      ROOT64.slice(0, -1),
      ROOT64.replace(/=$/, ''),
      Buffer.alloc(31).toString('base64'),
      Buffer.alloc(33).toString('base64'),
      Buffer.from(ROOT).toString('base64url'),
      'YmFuYW5hcw==', // "bananas": valid base64, not a hash (transparency-dev/formats accepts it)
    ];
    for (const root of bad) reject(`o\n1\n${root}\n`, /is not the base64 of a 32-byte hash/);
  });

  it('a root with non-canonical base64 padding bits', () => {
    // 32 bytes end "x=" with two pad bits; "A=" vs "B=" on an all-zero hash differs only in those.
    const zero = Buffer.alloc(32).toString('base64');
    expect(zero.endsWith('AA=')).toBe(true);
    reject(`o\n1\n${zero.slice(0, -2)}B=\n`, /not the base64 of a 32-byte hash/);
  });

  it('control characters (CRLF line ends) and lone surrogates', () => {
    reject(`o\r\n1\r\n${ROOT64}\r\n`, /no control characters but newline/);
    reject(`o\t\n1\n${ROOT64}\n`, /no control characters but newline/);
    reject(`o\ud800\n1\n${ROOT64}\n`, /must be valid Unicode/);
  });
});

describe('checkpointText rejects', () => {
  const make = (overrides: object) => () => checkpointText({ origin: 'o', size: 1, root: ROOT, ...overrides });

  it('an empty, multi-line or control-character origin', () => {
    expect(make({ origin: '' })).toThrow(/must not be empty/);
    expect(make({ origin: 'a\nb' })).toThrow(/one line without control characters/);
    expect(make({ origin: 'a\u0000b' })).toThrow(/one line/);
    expect(make({ origin: 'a\ud800' })).toThrow(/one line/);
  });

  it('an origin with leading or trailing whitespace', () => {
    for (const origin of [' o', 'o ', '\u00a0o', 'o\u3000']) expect(make({ origin }), origin).toThrow(/begin or end with whitespace/);
  });

  it('sizes that are negative, fractional, not finite or beyond 2^53 - 1', () => {
    for (const size of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '1']) {
      expect(make({ size }), String(size)).toThrow(/non-negative safe integer/);
    }
  });

  it('a root that is not 32 bytes', () => {
    expect(make({ root: ROOT.subarray(1) })).toThrow(/32 bytes, got 31/);
    expect(make({ root: ROOT64 })).toThrow(/32 bytes, got string/);
  });

  it('empty or multi-line extension lines', () => {
    expect(make({ extensions: [''] })).toThrow(/extension line 1/);
    expect(make({ extensions: ['ok', 'a\nb'] })).toThrow(/extension line 2/);
    expect(make({ extensions: ['a\tb'] })).toThrow(/extension line 1/);
  });
});

describe('chainOrigin', () => {
  const project = '0190f3a2-6c1e-7a3b-9d4e-123456789abc';
  const environment = '0190f3a2-6c1e-7a3b-9d4e-cba987654321';

  it('is <origin>/<project>/<environment>', () => {
    expect(chainOrigin('audit.example.com', project, environment)).toBe(`audit.example.com/${project}/${environment}`);
    expect(chainOrigin('audit.example.com/ledger', 'p', 'e')).toBe('audit.example.com/ledger/p/e');
  });

  it('rejects empty parts, spaces, "+", control characters, "/" in project or environment, and a trailing "/"', () => {
    const bad: Array<[string, string, string]> = [
      ['', 'p', 'e'],
      ['o', '', 'e'],
      ['o', 'p', ''],
      ['o o', 'p', 'e'],
      ['o', 'p p', 'e'],
      ['o', 'p', 'e\u00a0'],
      ['o+x', 'p', 'e'],
      ['o', 'p+', 'e'],
      ['o', 'p\u0001', 'e'],
      ['o', 'p/q', 'e'],
      ['o', 'p', 'e/f'],
      ['o/', 'p', 'e'],
    ];
    for (const [o, p, e] of bad) expect(() => chainOrigin(o, p, e), JSON.stringify([o, p, e])).toThrow(CheckpointError);
  });
});

describe('signCheckpoint and openCheckpoint', () => {
  const key = generateSigningKey('audit.example.com');
  const origin = chainOrigin('audit.example.com', 'p', 'e');
  const checkpoint = { origin, size: 2, root: ROOT };

  it('round-trip, checking the expected origin', () => {
    const note = signCheckpoint(checkpoint, key);
    expect(note).toMatch(new RegExp(`^audit\\.example\\.com/p/e\\n2\\n${ROOT64.replace(/[+/]/g, '\\$&')}\\n\\n— audit\\.example\\.com \\S+\\n$`));
    const opened = openCheckpoint(note, [key], origin);
    expect(opened.checkpoint).toEqual({ ...checkpoint, extensions: [] });
    expect(opened.verifiedBy).toEqual([key]);
    expect(opened.text).toBe(`${origin}\n2\n${ROOT64}\n`);
    expect(openCheckpoint(Buffer.from(note), [key]).checkpoint.size).toBe(2);
  });

  it('sign with several keys (key rotation overlap)', () => {
    const next = generateSigningKey('audit.example.com');
    const note = signCheckpoint(checkpoint, [key, next]);
    expect(openCheckpoint(note, [next], origin).verifiedBy).toEqual([next]);
  });

  it('reject another origin than the expected one (a genuine checkpoint of another chain)', () => {
    const note = signCheckpoint({ ...checkpoint, origin: chainOrigin('audit.example.com', 'p', 'other') }, key);
    expect(() => openCheckpoint(note, [key], origin)).toThrow(CheckpointError);
    expect(() => openCheckpoint(note, [key], origin)).toThrow(/origin "audit.example.com\/p\/other" is not the expected "audit.example.com\/p\/e"/);
  });

  it('reject an altered size or root with NoteError', () => {
    const note = signCheckpoint(checkpoint, key);
    expect(() => openCheckpoint(note.replace('\n2\n', '\n3\n'), [key], origin)).toThrow(NoteError);
    const otherRoot = Buffer.from(new Uint8Array(32).fill(1)).toString('base64');
    expect(() => openCheckpoint(note.replace(ROOT64, otherRoot), [key], origin)).toThrow(/invalid signature/);
  });

  it('reject a note by an unknown key with NoteError before reading the body', () => {
    const stranger = generateSigningKey('audit.example.com');
    expect(() => openCheckpoint(signCheckpoint(checkpoint, stranger), [key], origin)).toThrow(/no signature by a known key/);
    // A body that is no checkpoint, signed by a stranger: the signature error wins.
    expect(() => openCheckpoint(signNote('not a checkpoint\n', [stranger]), [key])).toThrow(NoteError);
  });

  it('reject a validly signed note whose body is not a checkpoint with CheckpointError', () => {
    expect(() => openCheckpoint(signNote('only\ntwo lines\n', [key]), [key])).toThrow(CheckpointError);
    expect(() => openCheckpoint(signNote(`o\n007\n${ROOT64}\n`, [key]), [key])).toThrow(/leading zeroes/);
  });

  it('refuse to sign an invalid checkpoint', () => {
    expect(() => signCheckpoint({ ...checkpoint, size: -1 }, key)).toThrow(CheckpointError);
  });
});
