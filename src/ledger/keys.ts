// Ed25519 signing keys for checkpoints (DESIGN.md "Ledger format v1", Keys), named and identified as
// C2SP signed-note specifies (c2sp.org/signed-note, "Signatures" and "Ed25519 signatures"), and
// written in the text forms of golang.org/x/mod/sumdb/note so Go transparency tooling reads them:
// verifier key `<name>+<hex key id>+<base64(0x01 || public key)>` and signer key
// `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>`.
import { createHash } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';

// @noble/ed25519 v3 offers only async functions until it is given a synchronous SHA-512. The ledger
// core is synchronous, and signing happens once per checkpoint, never per event, so sync is cheap.
ed.hashes.sha512 = sha512;

/** The signed-note signature type byte of Ed25519 (c2sp.org/signed-note, "Signature types"). */
export const ED25519_ALG = 0x01;
export const PUBLIC_KEY_SIZE = 32;
export const SEED_SIZE = 32;
export const SIGNATURE_SIZE = 64;
export const KEY_ID_SIZE = 4;

/** A public key that verifies note signatures: its name and key id are what a signature line names. */
export interface VerifierKey {
  name: string;
  /** SHA-256(name || 0x0A || 0x01 || publicKey)[:4]. */
  keyId: Uint8Array;
  publicKey: Uint8Array;
}

/** A private key; being a VerifierKey too, it verifies its own signatures. */
export interface SigningKey extends VerifierKey {
  /** The 32-byte RFC 8032 seed, not the 64-byte expanded form. */
  privateKey: Uint8Array;
}

/** A key, key name or key encoding that is malformed or does not match itself. */
export class KeyError extends Error {
  override name = 'KeyError';
}

const PRIVATE_PREFIX = 'PRIVATE+KEY+';
// What the key id hashes between the name and the public key: a newline, then the signature type.
const ID_INFIX = new Uint8Array([0x0a, ED25519_ALG]);
const KEY_ID_HEX = /^[0-9a-fA-F]{8}$/;
// Go's unicode.IsSpace is exactly the Unicode White_Space property; JS \s differs (it adds U+FEFF
// and lacks U+0085), so the property escape is what matches the reference implementation.
const SPACE = /\p{White_Space}/u;
// Lone surrogates cannot be encoded as UTF-8; with the u flag a valid pair is one code point.
const LONE_SURROGATE = /\p{Cs}/u;
const CONTROL = /[\u0000-\u001f]/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Key names must be non-empty and contain neither Unicode spaces nor '+' (c2sp.org/signed-note,
 * "Format"). Control characters are refused too: a signed note may not contain them, so a name with
 * one could never appear in a signature line.
 */
export function isValidKeyName(name: string): boolean {
  return (
    typeof name === 'string' &&
    name !== '' &&
    !name.includes('+') &&
    !SPACE.test(name) &&
    !CONTROL.test(name) &&
    !LONE_SURROGATE.test(name)
  );
}

/** key ID = SHA-256(key name || 0x0A || 0x01 || public key)[:4] (c2sp.org/signed-note, "Ed25519 signatures"). */
export function computeKeyId(name: string, publicKey: Uint8Array): Uint8Array {
  const digest = createHash('sha256').update(name, 'utf8').update(ID_INFIX).update(publicKey).digest();
  return Uint8Array.from(digest.subarray(0, KEY_ID_SIZE));
}

/** The key id as the 8 lowercase hex digits the key encodings and error messages use. */
export function keyIdHex(keyId: Uint8Array): string {
  return Buffer.from(keyId).toString('hex');
}

/** A new random key named `name`. */
export function generateSigningKey(name: string): SigningKey {
  return signingKeyFromSeed(name, ed.utils.randomSecretKey());
}

/** The key with this name and 32-byte seed; the public key and key id are derived. */
export function signingKeyFromSeed(name: string, seed: Uint8Array): SigningKey {
  checkName(name);
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_SIZE) {
    throw new KeyError(`an Ed25519 seed is ${SEED_SIZE} bytes, got ${describeLength(seed)}`);
  }
  const privateKey = Uint8Array.from(seed);
  const publicKey = Uint8Array.from(ed.getPublicKey(privateKey));
  return { name, privateKey, publicKey, keyId: computeKeyId(name, publicKey) };
}

/** The verifier key text `<name>+<8 hex key id>+<base64(0x01 || public key)>` (sumdb note NewEd25519VerifierKey). */
export function verifierKey(key: VerifierKey): string {
  checkName(key.name);
  checkPublicKey(key.publicKey);
  const keyId = computeKeyId(key.name, key.publicKey);
  if (!(key.keyId instanceof Uint8Array) || !bytesEqual(key.keyId, keyId)) {
    throw new KeyError(`key id ${describeKeyId(key.keyId)} of key "${key.name}" is not ${keyIdHex(keyId)}, the id of its public key`);
  }
  return `${key.name}+${keyIdHex(keyId)}+${base64(concat([ED25519_ALG], key.publicKey))}`;
}

/**
 * Parses a verifier key `<name>+<8 hex key id>+<base64(0x01 || public key)>`, checking, as sumdb note
 * NewVerifier does, the name, the encoding, the algorithm, the key length and that the key id is the
 * id of this name and key. The text must be exact: surrounding whitespace is an error.
 */
export function parseVerifierKey(vkey: string): VerifierKey {
  if (typeof vkey !== 'string') throw new KeyError('a verifier key must be a string');
  // Said without repeating it: a signing key given by mistake must not reach a log.
  if (vkey.startsWith('PRIVATE+KEY+')) throw new KeyError('verifier key: this is a private signing key; give its vkey (auditledger key show FILE), and keep the signing key secret');
  const [name, idHex, keyText] = splitKey(vkey, 'verifier key');
  const { keyId, key } = decodeKeyFields('verifier key', name, idHex, keyText);
  if (key.length !== PUBLIC_KEY_SIZE) {
    throw new KeyError(`verifier key: an Ed25519 public key is ${PUBLIC_KEY_SIZE} bytes, got ${key.length}`);
  }
  checkKeyId('verifier key', name, keyId, computeKeyId(name, key));
  return { name, keyId, publicKey: key };
}

/** The signer key text `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || seed)>` (sumdb note GenerateKey). */
export function encodeSigningKey(key: SigningKey): string {
  checkSigningKey(key);
  return `${PRIVATE_PREFIX}${key.name}+${keyIdHex(key.keyId)}+${base64(concat([ED25519_ALG], key.privateKey))}`;
}

/**
 * Parses a signer key file `PRIVATE+KEY+<name>+<8 hex key id>+<base64(0x01 || seed)>` (sumdb note
 * NewSigner). Surrounding whitespace, such as a file's final newline, is ignored. The key id covers
 * the public key, so it is checked after deriving the public key from the seed: a key file whose id
 * does not match is refused rather than producing signatures no verifier would accept.
 */
export function parseSigningKey(text: string): SigningKey {
  if (typeof text !== 'string') throw new KeyError('a signing key must be a string');
  const skey = text.trim();
  if (!skey.startsWith(PRIVATE_PREFIX)) {
    throw new KeyError(`signing key: must start with ${PRIVATE_PREFIX} (is this a verifier key?)`);
  }
  const [name, idHex, keyText] = splitKey(skey.slice(PRIVATE_PREFIX.length), 'signing key');
  const { keyId, key } = decodeKeyFields('signing key', name, idHex, keyText);
  if (key.length !== SEED_SIZE) {
    throw new KeyError(`signing key: an Ed25519 seed is ${SEED_SIZE} bytes, got ${key.length}`);
  }
  const signingKey = signingKeyFromSeed(name, key);
  checkKeyId('signing key', name, keyId, signingKey.keyId);
  return signingKey;
}

/**
 * Checks that a SigningKey is whole and self-consistent: the public key is the seed's and the key id
 * is the public key's. A key assembled by hand that fails this would sign notes nobody can verify.
 */
export function checkSigningKey(key: SigningKey): void {
  const derived = signingKeyFromSeed(key.name, key.privateKey);
  if (!(key.publicKey instanceof Uint8Array) || !bytesEqual(key.publicKey, derived.publicKey)) {
    throw new KeyError(`public key of signing key "${key.name}" is not the public key of its seed`);
  }
  if (!(key.keyId instanceof Uint8Array) || !bytesEqual(key.keyId, derived.keyId)) {
    throw new KeyError(
      `key id ${describeKeyId(key.keyId)} of signing key "${key.name}" is not ${keyIdHex(derived.keyId)}, the id of its public key`,
    );
  }
}

/** The RFC 8032 Ed25519 signature of `message` (deterministic: the same key and message give the same bytes). */
export function signBytes(key: SigningKey, message: Uint8Array): Uint8Array {
  return ed.sign(message, key.privateKey);
}

/**
 * Whether `signature` is `key`'s Ed25519 signature of `message`. Uses noble's strict RFC 8032 mode
 * (zip215: false): canonical encodings only and no small-order keys, so a signature binds one key and
 * one message (non-repudiation), which is what an audit record needs. A malformed signature is false.
 */
export function verifyBytes(key: VerifierKey, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_SIZE || key.publicKey.length !== PUBLIC_KEY_SIZE) return false;
  try {
    return ed.verify(signature, message, key.publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/**
 * Strict RFC 4648 section 4 base64: padded, standard alphabet, nothing else, and canonical (zero pad
 * bits, as section 3.5 allows decoders to require), so each byte string has exactly one text form.
 * Node's own decoder would skip invalid characters silently. Returns undefined if malformed.
 */
export function decodeBase64(text: string): Uint8Array | undefined {
  if (!BASE64.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) return undefined;
  return Uint8Array.from(bytes);
}

export function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// Splits `<name>+<id>+<key>` at its first two '+' signs: base64 may itself contain '+'
// (sumdb note chops the same way).
function splitKey(text: string, what: string): [string, string, string] {
  const first = text.indexOf('+');
  const second = first < 0 ? -1 : text.indexOf('+', first + 1);
  if (second < 0) throw new KeyError(`${what}: expected <name>+<key id>+<key>`);
  return [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
}

function decodeKeyFields(what: string, name: string, idHex: string, keyText: string): { keyId: Uint8Array; key: Uint8Array } {
  if (!isValidKeyName(name)) throw new KeyError(`${what}: ${describeBadName(name)}`);
  if (!KEY_ID_HEX.test(idHex)) {
    // Never echoed: in a mangled signing key file this field may hold part of the seed.
    throw new KeyError(`${what}: key id must be 8 hex digits, got ${idHex.length} characters`);
  }
  const raw = decodeBase64(keyText);
  if (raw === undefined || raw.length === 0) throw new KeyError(`${what}: key is not valid base64`);
  if (raw[0] !== ED25519_ALG) {
    throw new KeyError(`${what}: unknown algorithm 0x${raw[0]!.toString(16).padStart(2, '0')} (only Ed25519, 0x01, is supported)`);
  }
  return { keyId: Uint8Array.from(Buffer.from(idHex, 'hex')), key: raw.subarray(1) };
}

function checkKeyId(what: string, name: string, given: Uint8Array, derived: Uint8Array): void {
  if (!bytesEqual(given, derived)) {
    throw new KeyError(`${what}: key id ${keyIdHex(given)} does not match name "${name}" and its key (expected ${keyIdHex(derived)})`);
  }
}

function checkName(name: string): void {
  if (!isValidKeyName(name)) throw new KeyError(describeBadName(name));
}

function checkPublicKey(publicKey: Uint8Array): void {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_SIZE) {
    throw new KeyError(`an Ed25519 public key is ${PUBLIC_KEY_SIZE} bytes, got ${describeLength(publicKey)}`);
  }
}

function describeBadName(name: unknown): string {
  if (typeof name !== 'string' || name === '') return 'key name must be a non-empty string';
  return `key name ${JSON.stringify(name)} must not contain spaces, '+' or control characters`;
}

function describeLength(value: unknown): string {
  return value instanceof Uint8Array ? `${value.length}` : typeof value;
}

function describeKeyId(keyId: unknown): string {
  return keyId instanceof Uint8Array ? keyIdHex(keyId) : String(keyId);
}

function concat(prefix: number[], bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(prefix.length + bytes.length);
  out.set(prefix, 0);
  out.set(bytes, prefix.length);
  return out;
}
