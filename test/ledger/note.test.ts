import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  computeKeyId,
  generateSigningKey,
  parseSigningKey,
  parseVerifierKey,
  type SigningKey,
  type VerifierKey,
} from '../../src/ledger/keys.js';
import { MAX_SIGNATURES, NoteError, isNoteText, openNote, signNote } from '../../src/ledger/note.js';

// Known-answer note from golang.org/x/mod/sumdb/note (note.go package doc; note_test.go TestSign
// and TestOpen), the reference implementation of C2SP signed-note. Ed25519 is deterministic, so
// signing the same text with the same key must give this exact signature line.
const PETER_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const ENOCH_VKEY = 'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop';
const TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG = '— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';
const ENOCH_SIG = '— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n';

const peterSigner = parseSigningKey(PETER_SKEY);
const peter = parseVerifierKey(PETER_VKEY);
const enoch = parseVerifierKey(ENOCH_VKEY);

/** Replaces the base64 signature of a signature line, keeping its key name. */
function withSignature(line: string, signatureBase64: string): string {
  return `${line.slice(0, line.lastIndexOf(' ') + 1)}${signatureBase64}\n`;
}

describe('known-answer note (golang.org/x/mod/sumdb/note)', () => {
  it('signs the text exactly as the reference implementation does', () => {
    // The em dash is U+2014: the Go string literal's "—" is E2 80 94 in UTF-8.
    expect(PETER_SIG.codePointAt(0)).toBe(0x2014);
    expect(signNote(TEXT, [peterSigner])).toBe(`${TEXT}\n${PETER_SIG}`);
  });

  it('opens the reference note', () => {
    const opened = openNote(`${TEXT}\n${PETER_SIG}`, [peter]);
    expect(opened.text).toBe(TEXT);
    expect(opened.verifiedBy).toEqual([peter]);
  });

  it('opens the doubly signed note: verifies the known signature and ignores the unknown one', () => {
    expect(openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, [peter]).verifiedBy).toEqual([peter]);
    expect(openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, [enoch]).verifiedBy).toEqual([enoch]);
  });

  it('verifies both signatures when both keys are known, in signature order', () => {
    const opened = openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, [enoch, peter]);
    expect(opened.verifiedBy).toEqual([peter, enoch]);
  });

  it("rejects note_test.go's invalid signature (bytes inserted into the base64)", () => {
    const bad = `${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`;
    expect(() => openNote(`${TEXT}\n${bad}`, [peter])).toThrow(/invalid signature by known key PeterNeumann\+c74f20a3/);
  });

  it("rejects note_test.go's malformed messages", () => {
    const bad = [
      TEXT,
      `${TEXT}\n`,
      `${TEXT}\n${PETER_SIG.slice(0, -1)}`,
      `\u0001${TEXT}\n${PETER_SIG}`,
      `${TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=`,
      `${TEXT}\n${PETER_SIG}Unexpected line.\n`,
    ];
    for (const note of bad) expect(() => openNote(note, [peter]), JSON.stringify(note)).toThrow(NoteError);
    // "\xff" + text: invalid UTF-8, which only bytes can carry.
    const bytes = Buffer.concat([Buffer.from([0xff]), Buffer.from(`${TEXT}\n${PETER_SIG}`)]);
    expect(() => openNote(bytes, [peter])).toThrow(/not valid UTF-8/);
  });
});

describe('signNote and openNote round trips', () => {
  it('sign with several keys; each verifier alone opens the note', () => {
    const a = generateSigningKey('a.example/log');
    const b = generateSigningKey('b.example/witness');
    const note = signNote('hello\n', [a, b]);
    expect(note.split('\n')).toHaveLength(5); // text, blank, two signatures, final ''
    expect(openNote(note, [a]).verifiedBy).toEqual([a]);
    expect(openNote(note, [b]).verifiedBy).toEqual([b]);
    expect(openNote(note, [a, b]).verifiedBy).toEqual([a, b]);
  });

  it('keeps blank lines inside the text: the last blank line ends the text', () => {
    const key = generateSigningKey('k');
    for (const text of ['\n', 'a\n\nb\n', 'a\n\n', '\n\n\n', 'line\n— not a signature\n']) {
      expect(openNote(signNote(text, [key]), [key]).text).toBe(text);
    }
  });

  it('signs UTF-8 bytes, and opens a note given as bytes', () => {
    // The first lines of the signed-note spec's example text.
    const text = 'Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n';
    const key = generateSigningKey('quasimodo.example/salvatore');
    const note = signNote(text, [key]);
    expect(openNote(new TextEncoder().encode(note), [key]).text).toBe(text);
    expect(openNote(Buffer.from(note), [key]).text).toBe(text);
  });

  it('verifies the bytes as received: a leading BOM stays part of the text', () => {
    const key = generateSigningKey('k');
    const signedWithBom = signNote('\ufeffhi\n', [key]);
    expect(openNote(Buffer.from(signedWithBom), [key]).text).toBe('\ufeffhi\n');
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    expect(() => openNote(Buffer.concat([bom, Buffer.from(signNote('hi\n', [key]))]), [key])).toThrow(/invalid signature/);
  });

  it('round-trips arbitrary valid texts', () => {
    const keys = [generateSigningKey('one'), generateSigningKey('two')];
    const line = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => isNoteText(`${s}\n`) && !s.includes('\n'));
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 1 }), (lines, which) => {
        const text = lines.map((l) => `${l}\n`).join('');
        const opened = openNote(signNote(text, keys), [keys[which]!]);
        expect(opened.text).toBe(text);
        expect(opened.verifiedBy).toEqual([keys[which]]);
      }),
      { numRuns: 50 },
    );
  });

  it('lists a key once however many times it verified', () => {
    expect(openNote(`${TEXT}\n${PETER_SIG}${PETER_SIG}`, [peter, peter]).verifiedBy).toEqual([peter]);
  });
});

describe('openNote rejects', () => {
  const key = generateSigningKey('log.example');
  const note = signNote('size 5\n', [key]);
  const [text, signatureLine] = [note.slice(0, note.indexOf('\n\n') + 1), note.slice(note.indexOf('\n\n') + 2)];

  it('a note opened with the wrong key (no known signature)', () => {
    const other = generateSigningKey('log.example');
    expect(() => openNote(note, [other])).toThrow(/no signature by a known key \(signed only by log\.example\+[0-9a-f]{8}\)/);
  });

  it('a note with no signature from any known verifier, or no verifiers at all', () => {
    expect(() => openNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`, [])).toThrow(
      'note has no signature by a known key (signed only by PeterNeumann+c74f20a3, EnochRoot+af0cfe78)',
    );
  });

  it('a wrong key under a known name and key id (the signature does not verify)', () => {
    const impostor: VerifierKey = { name: peter.name, keyId: peter.keyId, publicKey: generateSigningKey('x').publicKey };
    expect(() => openNote(`${TEXT}\n${PETER_SIG}`, [impostor])).toThrow(/invalid signature by known key PeterNeumann\+c74f20a3/);
  });

  it('altered text', () => {
    expect(() => openNote(`size 6\n\n${signatureLine}`, [key])).toThrow(/invalid signature by known key log\.example\+/);
    expect(() => openNote(`${TEXT.replace('problem', 'Problem')}\n${PETER_SIG}`, [peter])).toThrow(/invalid signature/);
  });

  it('a bad signature by a known key even when another known key verified', () => {
    const corrupt = withSignature(ENOCH_SIG, 'rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QU=');
    expect(() => openNote(`${TEXT}\n${PETER_SIG}${corrupt}`, [peter, enoch])).toThrow(/invalid signature by known key EnochRoot\+af0cfe78/);
    expect(() => openNote(`${TEXT}\n${corrupt}${PETER_SIG}`, [peter, enoch])).toThrow(/invalid signature by known key EnochRoot/);
    // ...but the same corrupt line by a key the verifier does not know is ignored.
    expect(openNote(`${TEXT}\n${PETER_SIG}${corrupt}`, [peter]).verifiedBy).toEqual([peter]);
  });

  it('a repeated signature line by a known key whose second copy is bad (each is verified)', () => {
    const corrupt = withSignature(PETER_SIG, 'x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAE=');
    expect(() => openNote(`${TEXT}\n${PETER_SIG}${corrupt}`, [peter])).toThrow(/invalid signature/);
  });

  it('a signature by a known key that is too short or too long to be Ed25519', () => {
    const idOnlyPlus = (n: number) => Buffer.concat([Buffer.from(peter.keyId), Buffer.alloc(n, 7)]).toString('base64');
    expect(() => openNote(`${TEXT}\n— PeterNeumann ${idOnlyPlus(63)}\n`, [peter])).toThrow(/invalid signature/);
    expect(() => openNote(`${TEXT}\n— PeterNeumann ${idOnlyPlus(65)}\n`, [peter])).toThrow(/invalid signature/);
  });

  it('a missing blank line between text and signatures', () => {
    expect(() => openNote(`${text}${signatureLine}`, [key])).toThrow(/no blank line between the text and the signatures/);
  });

  it('a missing signature block, or a final signature line without its newline', () => {
    expect(() => openNote(`${text}\n`, [key])).toThrow(/no signature lines after the blank line/);
    expect(() => openNote(`${text}\n${signatureLine.slice(0, -1)}`, [key])).toThrow(/does not end in a newline/);
  });

  it('extra lines after the signatures', () => {
    expect(() => openNote(`${note}trailing text\n`, [key])).toThrow(/line 2 after the blank line is not a signature line/);
    // A blank line after the signatures makes the signatures part of the text, leaving none.
    expect(() => openNote(`${note}\n`, [key])).toThrow(/no signature lines/);
    expect(() => openNote(`${note} \n`, [key])).toThrow(/not a signature line/);
  });

  it('malformed signature lines: hyphen for em dash, no space, no signature, bad name, bad or short base64', () => {
    const sig = signatureLine.slice(signatureLine.lastIndexOf(' ') + 1, -1);
    const bad: Array<[string, RegExp]> = [
      [`- log.example ${sig}\n`, /not a signature line/],
      [`\u2014log.example ${sig}\n`, /not a signature line/],
      [`\u2013 log.example ${sig}\n`, /not a signature line/],
      [`— log.example\n`, /no signature after the key name/],
      [`— log.example \n`, /not base64/],
      [`— log+example ${sig}\n`, /invalid key name/],
      [`—  log.example ${sig}\n`, /invalid key name/],
      [`— log.example ${sig} \n`, /not base64/],
      [`— log.example  ${sig}\n`, /not base64/],
      [`— log.example ${sig.replace(/=$/, '')}\n`, /not base64/],
      // base64url: a random signature may hold no '+' or '/' to swap, so one is put in.
      [`— log.example -${sig.slice(1)}\n`, /not base64/],
      [`— log.example _${sig.slice(1)}\n`, /not base64/],
      [`— log.example AAAAAA==\n`, /not base64 of a key id and a signature/],
    ];
    for (const [line, error] of bad) expect(() => openNote(`${text}\n${line}`, [key]), line).toThrow(error);
  });

  it('a signature with non-canonical base64 padding bits', () => {
    // 68 bytes end in "=" with two pad bits, zero when canonical; "…AM=" and "…AN=" are the same
    // bytes to a lax decoder (Node's, or Go's non-strict one), so the line could be altered unnoticed.
    const malleated = PETER_SIG.replace('AM=\n', 'AN=\n');
    const lax = (line: string) => Buffer.from(line.slice(line.lastIndexOf(' ') + 1), 'base64');
    expect(malleated).not.toBe(PETER_SIG);
    expect(lax(malleated)).toEqual(lax(PETER_SIG));
    expect(() => openNote(`${TEXT}\n${malleated}`, [peter])).toThrow(/not base64/);
  });

  it('control characters other than newline, and lone surrogates', () => {
    for (const c of ['\u0000', '\t', '\r', '\u001b', '\u001f']) {
      expect(() => openNote(`${c}${TEXT}\n${PETER_SIG}`, [peter]), JSON.stringify(c)).toThrow(/control character/);
    }
    expect(() => openNote(`${TEXT.slice(0, -1)}\r\n\r\n${PETER_SIG}`, [peter])).toThrow(/control character/);
    expect(() => openNote(`\ud800${TEXT}\n${PETER_SIG}`, [peter])).toThrow(/lone surrogate/);
  });

  it(`more than ${MAX_SIGNATURES} signatures, even unknown ones; exactly ${MAX_SIGNATURES} is fine`, () => {
    expect(() => openNote(`${TEXT}\n${PETER_SIG.repeat(MAX_SIGNATURES + 1)}`, [peter])).toThrow(/101 signature lines, more than the 100/);
    expect(() => openNote(`${TEXT}\n${ENOCH_SIG.repeat(MAX_SIGNATURES + 1)}`, [peter])).toThrow(/more than the 100/);
    expect(openNote(`${TEXT}\n${ENOCH_SIG.repeat(MAX_SIGNATURES - 1)}${PETER_SIG}`, [peter]).verifiedBy).toEqual([peter]);
  });

  it('two different verifier keys with the same name and key id (ambiguous)', () => {
    const twin: VerifierKey = { ...peter, publicKey: enoch.publicKey };
    expect(() => openNote(`${TEXT}\n${PETER_SIG}`, [peter, twin])).toThrow(/ambiguous key PeterNeumann\+c74f20a3/);
  });
});

describe('openNote ignores signatures by unknown keys (c2sp.org/signed-note, "Signatures")', () => {
  const key = generateSigningKey('log.example');
  const note = signNote('size 5\n', [key]);

  it('a known name with an unknown key id', () => {
    const rotated = generateSigningKey('log.example');
    expect(openNote(signNote('size 5\n', [rotated, key]), [key]).verifiedBy).toEqual([key]);
  });

  it('an unknown name with a known key id', () => {
    // Same key id as `key`, another name: must be ignored, not verified against `key`.
    const line = note.slice(note.indexOf('\n\n') + 2).replace('log.example', 'impostor.example');
    expect(openNote(`${note}${line}`, [key]).verifiedBy).toEqual([key]);
  });

  it('unknown signatures of other lengths and algorithms (e.g. witness cosignatures)', () => {
    const cosig = Buffer.concat([Buffer.from([1, 2, 3, 4]), Buffer.alloc(72, 9)]).toString('base64');
    expect(openNote(`${note}— witness.example ${cosig}\n— tiny AQIDBAU=\n`, [key]).verifiedBy).toEqual([key]);
  });
});

describe('signNote rejects', () => {
  const key = generateSigningKey('k');

  it('empty text, text without a final newline, control characters and lone surrogates', () => {
    expect(() => signNote('', [key])).toThrow(/must not be empty/);
    expect(() => signNote('abc', [key])).toThrow(/must end in a newline/);
    expect(() => signNote('a\tb\n', [key])).toThrow(/control characters/);
    expect(() => signNote('a\r\n', [key])).toThrow(/control characters/);
    expect(() => signNote('\ud83d\n', [key])).toThrow(/lone surrogate/);
  });

  it('no keys, the same key twice, or a key that is not self-consistent', () => {
    expect(() => signNote('a\n', [])).toThrow(/no signing keys/);
    expect(() => signNote('a\n', [key, key])).toThrow(/given twice/);
    const other = generateSigningKey('k');
    const broken: SigningKey = { ...key, publicKey: other.publicKey, keyId: computeKeyId('k', other.publicKey) };
    expect(() => signNote('a\n', [broken])).toThrow(/not the public key of its seed/);
  });
});
