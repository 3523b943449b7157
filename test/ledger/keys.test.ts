import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  KeyError,
  checkSigningKey,
  computeKeyId,
  decodeBase64,
  encodeSigningKey,
  generateSigningKey,
  isValidKeyName,
  keyIdHex,
  parseSigningKey,
  parseVerifierKey,
  signBytes,
  signingKeyFromSeed,
  verifierKey,
  verifyBytes,
} from '../../src/ledger/keys.js';

// Known-answer keys from golang.org/x/mod/sumdb/note (note.go package doc and note_test.go
// TestNewSigner, TestNewVerifier, TestVerifierList): the reference implementation of C2SP signed-note.
const PETER_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const ENOCH_VKEY = 'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop';
// The Go checksum database's public key, as in transparency-dev/formats log/identifier_test.go.
const SUMDB_VKEY = 'sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8';

const b64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'));
const b64encode = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/** The C2SP key id computed independently of the module: SHA-256(name || 0x0A || encoded key)[:4]. */
function referenceKeyId(name: string, encodedKey: Uint8Array): string {
  return createHash('sha256').update(name).update('\n').update(encodedKey).digest().subarray(0, 4).toString('hex');
}

/** A vkey with a correct key id over whatever `encodedKey` is, to reach the checks after the id. */
function vkeyWithKey(name: string, encodedKey: Uint8Array): string {
  return `${name}+${referenceKeyId(name, encodedKey)}+${b64encode(encodedKey)}`;
}

describe('known-answer keys (golang.org/x/mod/sumdb/note)', () => {
  it('parses the PeterNeumann signer key and derives its verifier key', () => {
    const key = parseSigningKey(PETER_SKEY);
    expect(key.name).toBe('PeterNeumann');
    expect(keyIdHex(key.keyId)).toBe('c74f20a3');
    expect(key.privateKey).toEqual(b64('AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz').subarray(1));
    expect(verifierKey(key)).toBe(PETER_VKEY);
    expect(encodeSigningKey(key)).toBe(PETER_SKEY);
  });

  it('parses the PeterNeumann, EnochRoot and sum.golang.org verifier keys', () => {
    const peter = parseVerifierKey(PETER_VKEY);
    expect(peter).toEqual({
      name: 'PeterNeumann',
      keyId: Uint8Array.from([0xc7, 0x4f, 0x20, 0xa3]),
      publicKey: b64('ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW').subarray(1),
    });
    expect(peter.publicKey).toEqual(parseSigningKey(PETER_SKEY).publicKey);
    for (const vkey of [PETER_VKEY, ENOCH_VKEY, SUMDB_VKEY]) expect(verifierKey(parseVerifierKey(vkey))).toBe(vkey);
    expect(keyIdHex(parseVerifierKey(SUMDB_VKEY).keyId)).toBe('033de0ae');
  });

  // Ported from note_test.go TestNewVerifier / TestNewSigner: no proper substring and no single-byte
  // change of a valid key may parse.
  it.each([
    ['verifier', PETER_VKEY, parseVerifierKey],
    ['signer', PETER_SKEY, parseSigningKey],
  ] as const)('rejects every substring and every one-byte change of the %s key', (_, key, parse) => {
    const failures: string[] = [];
    const attempt = (changed: string) => {
      try {
        parse(changed);
        failures.push(changed);
      } catch (error) {
        expect(error).toBeInstanceOf(KeyError);
      }
    };
    for (let i = 0; i <= key.length; i++) {
      for (let j = i + 1; j <= key.length; j++) if (i !== 0 || j !== key.length) attempt(key.slice(i, j));
    }
    for (let i = 0; i < key.length; i++) {
      attempt(key.slice(0, i) + String.fromCharCode(key.charCodeAt(i) + 1) + key.slice(i + 1));
    }
    expect(failures).toEqual([]);
  });

  it("rejects note_test.go's wrong-length and unknown-algorithm keys (key hash adjusted to match)", () => {
    expect(() => parseVerifierKey('PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==')).toThrow(KeyError);
    expect(() => parseVerifierKey('PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW')).toThrow(/unknown algorithm 0x65/);
  });
});

describe('generated keys', () => {
  it('round-trip through the signer and verifier key texts', () => {
    const key = generateSigningKey('log.example.com/ledger');
    expect(key.privateKey).toHaveLength(32);
    expect(key.publicKey).toHaveLength(32);
    expect(keyIdHex(key.keyId)).toBe(referenceKeyId(key.name, Uint8Array.from([1, ...key.publicKey])));

    const skey = encodeSigningKey(key);
    expect(skey).toMatch(/^PRIVATE\+KEY\+log\.example\.com\/ledger\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}$/);
    expect(parseSigningKey(skey)).toEqual(key);

    const vkey = verifierKey(key);
    expect(vkey).toBe(`log.example.com/ledger+${keyIdHex(key.keyId)}+${b64encode(Uint8Array.from([1, ...key.publicKey]))}`);
    expect(parseVerifierKey(vkey)).toEqual({ name: key.name, keyId: key.keyId, publicKey: key.publicKey });
  });

  it('are random, and the same seed always gives the same key', () => {
    const a = generateSigningKey('a');
    const b = generateSigningKey('a');
    expect(a.privateKey).not.toEqual(b.privateKey);
    expect(signingKeyFromSeed('a', a.privateKey)).toEqual(a);
  });

  it('computes the key id from name and key for arbitrary names and keys', () => {
    const name = fc.string({ minLength: 1, unit: 'grapheme' }).filter(isValidKeyName);
    fc.assert(
      fc.property(name, fc.uint8Array({ minLength: 32, maxLength: 32 }), (n, publicKey) => {
        expect(keyIdHex(computeKeyId(n, publicKey))).toBe(referenceKeyId(n, Uint8Array.from([1, ...publicKey])));
        const vkey = verifierKey({ name: n, keyId: computeKeyId(n, publicKey), publicKey });
        expect(parseVerifierKey(vkey)).toEqual({ name: n, keyId: computeKeyId(n, publicKey), publicKey });
      }),
    );
  });

  it('sign deterministically, and verify only the right key, message and signature', () => {
    const key = generateSigningKey('signer');
    const other = generateSigningKey('signer');
    const message = new TextEncoder().encode('checkpoint\n');
    const signature = signBytes(key, message);
    expect(signature).toHaveLength(64);
    expect(signBytes(key, message)).toEqual(signature);
    expect(verifyBytes(key, message, signature)).toBe(true);
    expect(verifyBytes(other, message, signature)).toBe(false);
    expect(verifyBytes(key, new TextEncoder().encode('checkpoint!'), signature)).toBe(false);
    const flipped = Uint8Array.from(signature);
    flipped[10]! ^= 1;
    expect(verifyBytes(key, message, flipped)).toBe(false);
    expect(verifyBytes(key, message, signature.subarray(0, 63))).toBe(false);
  });
});

describe('key names (c2sp.org/signed-note: non-empty, no Unicode spaces, no "+")', () => {
  it('accepts schema-less URLs and other space-free names', () => {
    for (const name of ['PeterNeumann', 'sum.golang.org', 'log.example.com/a/b', 'é-ß_名前', 'a\ufeffb']) {
      expect(isValidKeyName(name)).toBe(true);
      expect(generateSigningKey(name).name).toBe(name);
    }
  });

  it('rejects empty names, Unicode spaces, "+", control characters and lone surrogates', () => {
    // U+0085 and U+00A0 are spaces to Go's unicode.IsSpace; U+3000 and U+2028 are Unicode White_Space.
    for (const name of ['', 'a b', 'a\tb', 'a\nb', 'a\u0085b', 'a\u00a0b', 'a\u2028b', 'a\u3000b', 'a+b', 'a\u0001b', 'a\ud800b']) {
      expect(isValidKeyName(name)).toBe(false);
      expect(() => generateSigningKey(name), JSON.stringify(name)).toThrow(KeyError);
    }
  });

  it('rejects a verifier key whose name is invalid', () => {
    const publicKey = Uint8Array.from([1, ...parseVerifierKey(PETER_VKEY).publicKey]);
    expect(() => parseVerifierKey(vkeyWithKey('Peter Neumann', publicKey))).toThrow(/key name "Peter Neumann"/);
    expect(() => parseVerifierKey(`+c74f20a3+${b64encode(publicKey)}`)).toThrow(/non-empty/);
    expect(() => parseVerifierKey(vkeyWithKey('Peter\u3000Neumann', publicKey))).toThrow(KeyError);
  });
});

describe('parseVerifierKey rejects', () => {
  const peterKey = () => Uint8Array.from([1, ...parseVerifierKey(PETER_VKEY).publicKey]);

  it('text that is not <name>+<id>+<key>', () => {
    expect(() => parseVerifierKey('PeterNeumann')).toThrow(/expected <name>\+<key id>\+<key>/);
    expect(() => parseVerifierKey('PeterNeumann+c74f20a3')).toThrow(/expected/);
    expect(() => parseVerifierKey(PETER_SKEY)).toThrow(KeyError);
  });

  it('a key id that is not 8 hex digits', () => {
    expect(() => parseVerifierKey(PETER_VKEY.replace('c74f20a3', 'c74f20a'))).toThrow(/8 hex digits/);
    expect(() => parseVerifierKey(PETER_VKEY.replace('c74f20a3', 'c74f20a3a'))).toThrow(/8 hex digits/);
    expect(() => parseVerifierKey(PETER_VKEY.replace('c74f20a3', 'c74f20ag'))).toThrow(/8 hex digits/);
  });

  it('bad base64: truncated, over-padded, URL-safe, non-canonical padding bits, whitespace, empty', () => {
    const valid = b64encode(peterKey());
    for (const text of [valid.slice(0, -1), `${valid}=`, valid.replace('/', '_'), ` ${valid}`, `${valid}\n`, '']) {
      expect(() => parseVerifierKey(`PeterNeumann+c74f20a3+${text}`), JSON.stringify(text)).toThrow(/not valid base64/);
    }
    // RFC 4648 section 3.5: "AB==" has non-zero pad bits and would decode to the same byte as "AA==";
    // accepting it would give one key two encodings.
    expect(decodeBase64('AA==')).toEqual(Uint8Array.from([0]));
    expect(decodeBase64('AB==')).toBeUndefined();
    expect(decodeBase64('AA')).toBeUndefined();
    const short = `${b64encode(peterKey().subarray(0, 32)).slice(0, -2)}`;
    expect(() => parseVerifierKey(`PeterNeumann+c74f20a3+${short}A=`)).toThrow(KeyError);
  });

  it('an algorithm byte other than Ed25519 (0x01)', () => {
    const key = peterKey();
    key[0] = 0x02;
    expect(() => parseVerifierKey(vkeyWithKey('PeterNeumann', key))).toThrow(/unknown algorithm 0x02/);
  });

  it('a public key that is not 32 bytes', () => {
    expect(() => parseVerifierKey(vkeyWithKey('PeterNeumann', peterKey().subarray(0, 32)))).toThrow(/32 bytes, got 31/);
    expect(() => parseVerifierKey(vkeyWithKey('PeterNeumann', Uint8Array.from([...peterKey(), 0])))).toThrow(/32 bytes, got 33/);
    expect(() => parseVerifierKey(vkeyWithKey('PeterNeumann', Uint8Array.from([1])))).toThrow(/32 bytes, got 0/);
  });

  it('a key id that does not match the name and key', () => {
    expect(() => parseVerifierKey(PETER_VKEY.replace('c74f20a3', 'c74f20a4'))).toThrow(/key id c74f20a4 does not match .* \(expected c74f20a3\)/);
    // Same key under another name: the id covers the name.
    expect(() => parseVerifierKey(PETER_VKEY.replace('PeterNeumann', 'PeterNeuman'))).toThrow(/does not match/);
    // Uppercase hex is the same id (Go's strconv.ParseUint accepts it).
    expect(keyIdHex(parseVerifierKey(PETER_VKEY.replace('c74f20a3', 'C74F20A3')).keyId)).toBe('c74f20a3');
  });

  it('surrounding whitespace (verifier keys are exact)', () => {
    expect(() => parseVerifierKey(`${PETER_VKEY}\n`)).toThrow(KeyError);
    expect(() => parseVerifierKey(` ${PETER_VKEY}`)).toThrow(KeyError);
  });
});

describe('parseSigningKey', () => {
  const seed = () => b64('AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz');
  const skeyWith = (name: string, id: string, encoded: Uint8Array) => `PRIVATE+KEY+${name}+${id}+${b64encode(encoded)}`;

  it('ignores surrounding whitespace and the final newline of a key file', () => {
    expect(verifierKey(parseSigningKey(`${PETER_SKEY}\n`))).toBe(PETER_VKEY);
    expect(verifierKey(parseSigningKey(`  \r\n${PETER_SKEY}\r\n\n`))).toBe(PETER_VKEY);
  });

  it('rejects a missing PRIVATE+KEY prefix, naming the likely mix-up with a verifier key', () => {
    expect(() => parseSigningKey(PETER_VKEY)).toThrow(/must start with PRIVATE\+KEY\+ \(is this a verifier key\?\)/);
    expect(() => parseSigningKey(PETER_SKEY.replace('PRIVATE+KEY', 'private+key'))).toThrow(/PRIVATE\+KEY/);
    expect(() => parseSigningKey('')).toThrow(KeyError);
  });

  it('rejects a key id that does not match the public key derived from the seed', () => {
    expect(() => parseSigningKey(PETER_SKEY.replace('c74f20a3', 'c74f20a4'))).toThrow(/key id c74f20a4 does not match/);
    expect(() => parseSigningKey(PETER_SKEY.replace('PeterNeumann', 'EnochRoot'))).toThrow(/does not match/);
  });

  it('rejects a bad name, bad base64, a wrong algorithm byte and a wrong seed length', () => {
    expect(() => parseSigningKey(skeyWith('Peter Neumann', 'c74f20a3', seed()))).toThrow(/key name/);
    expect(() => parseSigningKey(`${PETER_SKEY.slice(0, -1)}!`)).toThrow(/not valid base64/);
    const wrongAlg = seed();
    wrongAlg[0] = 0x04;
    expect(() => parseSigningKey(skeyWith('PeterNeumann', 'c74f20a3', wrongAlg))).toThrow(/unknown algorithm 0x04/);
    expect(() => parseSigningKey(skeyWith('PeterNeumann', 'c74f20a3', seed().subarray(0, 32)))).toThrow(/32 bytes, got 31/);
    // A 64-byte expanded private key is not the seed form Go writes.
    const expanded = Uint8Array.from([1, ...seed().subarray(1), ...parseVerifierKey(PETER_VKEY).publicKey]);
    expect(() => parseSigningKey(skeyWith('PeterNeumann', 'c74f20a3', expanded))).toThrow(/32 bytes, got 64/);
  });
});

describe('inconsistent keys are refused, not used', () => {
  it('encodeSigningKey and checkSigningKey reject a key id or public key that is not the seed\'s', () => {
    const key = generateSigningKey('a');
    const other = generateSigningKey('a');
    expect(() => encodeSigningKey({ ...key, keyId: other.keyId })).toThrow(/key id .* is not/);
    expect(() => checkSigningKey({ ...key, publicKey: other.publicKey })).toThrow(/not the public key of its seed/);
    expect(() => encodeSigningKey({ ...key, privateKey: key.privateKey.subarray(0, 31) })).toThrow(/32 bytes, got 31/);
    expect(() => encodeSigningKey({ ...key, name: 'a b' })).toThrow(KeyError);
  });

  it('verifierKey rejects a key id that is not the public key\'s, and a wrong-length key', () => {
    const key = parseVerifierKey(PETER_VKEY);
    expect(() => verifierKey({ ...key, keyId: Uint8Array.from([0xc7, 0x4f, 0x20, 0xa4]) })).toThrow(/key id c74f20a4 .* is not c74f20a3/);
    expect(() => verifierKey({ ...key, publicKey: key.publicKey.subarray(1) })).toThrow(/32 bytes, got 31/);
  });
});
