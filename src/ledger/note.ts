// C2SP signed notes (c2sp.org/signed-note): the envelope of every checkpoint. Parsing follows the
// reference implementation, golang.org/x/mod/sumdb/note Open and Sign, except where noted.
import {
  KEY_ID_SIZE,
  base64,
  bytesEqual,
  checkSigningKey,
  decodeBase64,
  isValidKeyName,
  keyIdHex,
  signBytes,
  verifyBytes,
  type SigningKey,
  type VerifierKey,
} from './keys.js';

/** A note that is malformed, or whose signatures do not verify. */
export class NoteError extends Error {
  override name = 'NoteError';
}

/**
 * The most signature lines a note may carry. The spec asks verifiers for a limit of at least 16
 * (c2sp.org/signed-note, "Format"); 100 is the reference implementation's, and bounds the work an
 * attacker can make a verifier do.
 */
export const MAX_SIGNATURES = 100;

export interface OpenedNote {
  /** The signed text, ending in a newline. */
  text: string;
  /** The known keys whose signatures verified, in signature order, each once. */
  verifiedBy: VerifierKey[];
}

// Em dash (U+2014) and a space begin each signature line (c2sp.org/signed-note, "Format").
const SIGNATURE_PREFIX = '\u2014 ';
// ASCII control characters other than newline (c2sp.org/signed-note, "Format").
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;
// Lone surrogates are what a JS string holds where UTF-8 would be invalid; the u flag makes a valid
// pair one code point, so only lone ones match.
const LONE_SURROGATE = /\p{Cs}/u;
// fatal: invalid UTF-8 is an error, not U+FFFD. ignoreBOM: keep a leading BOM as text, so the bytes
// verified are the bytes received.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Whether `text` may be the text of a signed note: non-empty, valid Unicode, no control characters but newline, ending in newline. */
export function isNoteText(text: string): boolean {
  return describeBadText(text) === undefined;
}

/**
 * The signed text of a note, its signatures not checked (openNote checks them): up to and with
 * the newline before the last blank line (c2sp.org/signed-note, "Format": the text may have blank
 * lines of its own, but signature lines never contain a newline). Throws NoteError when there is
 * no blank line.
 */
export function noteText(note: string): string {
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new NoteError('malformed note: no blank line between the text and the signatures');
  return note.slice(0, split + 1);
}

/**
 * Signs `text` with each key: the text, a blank line, then one signature line
 * `— <name> <base64(key id || Ed25519 signature of the text)>` per key (c2sp.org/signed-note, "Format").
 */
export function signNote(text: string, keys: readonly SigningKey[]): string {
  const problem = describeBadText(text);
  if (problem !== undefined) throw new NoteError(`cannot sign: note text ${problem}`);
  if (keys.length === 0) throw new NoteError('cannot sign: no signing keys given');
  if (keys.length > MAX_SIGNATURES) throw new NoteError(`cannot sign: more than ${MAX_SIGNATURES} signatures`);
  const message = Buffer.from(text, 'utf8');
  const seen = new Set<string>();
  let signatures = '';
  for (const key of keys) {
    checkSigningKey(key);
    // Two lines for one key would be dropped or rejected by verifiers; it is a caller's mistake.
    const id = `${key.name}+${keyIdHex(key.keyId)}`;
    if (seen.has(id)) throw new NoteError(`cannot sign: key ${id} given twice`);
    seen.add(id);
    const signature = concatBytes(key.keyId, signBytes(key, message));
    signatures += `${SIGNATURE_PREFIX}${key.name} ${base64(signature)}\n`;
  }
  return `${text}\n${signatures}`;
}

/**
 * Parses a signed note and verifies its signatures against `verifiers` (c2sp.org/signed-note,
 * "Signatures"). Signatures by keys not in `verifiers` (unknown name, or unknown id: both must match)
 * are ignored, as the spec requires, so witnesses' cosignatures and rotated keys do no harm. Every
 * signature by a known key must verify, even if another already did: a bad one means the note was
 * altered or the key misused. At least one known signature must verify. Bytes must be UTF-8.
 * Throws NoteError.
 *
 * Unlike sumdb note Open, a repeated signature line by a known key is verified each time rather than
 * skipped, since the spec says a known key's signature MUST be verified; and signature base64 must
 * be canonical.
 */
export function openNote(note: string | Uint8Array, verifiers: readonly VerifierKey[]): OpenedNote {
  const message = typeof note === 'string' ? note : decodeUtf8(note);
  if (LONE_SURROGATE.test(message)) throw new NoteError('malformed note: not valid Unicode (lone surrogate)');
  if (CONTROL.test(message)) throw new NoteError('malformed note: contains a control character other than newline');

  const text = noteText(message);
  const block = message.slice(text.length + 1);
  if (block === '') throw new NoteError('malformed note: no signature lines after the blank line');
  if (!block.endsWith('\n')) throw new NoteError('malformed note: the last signature line does not end in a newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) {
    throw new NoteError(`malformed note: ${lines.length} signature lines, more than the ${MAX_SIGNATURES} allowed`);
  }

  const textBytes = Buffer.from(text, 'utf8');
  const verifiedBy: VerifierKey[] = [];
  const unknown: string[] = [];
  for (const [index, line] of lines.entries()) {
    const { name, keyId, signature } = parseSignatureLine(line, index + 1);
    const label = `${name}+${keyIdHex(keyId)}`;
    const key = findVerifier(verifiers, name, keyId, label);
    if (key === undefined) {
      if (!unknown.includes(label)) unknown.push(label);
      continue;
    }
    if (!verifyBytes(key, textBytes, signature)) {
      throw new NoteError(`invalid signature by known key ${label}: the note was altered or not signed by this key`);
    }
    if (!verifiedBy.includes(key)) verifiedBy.push(key);
  }
  if (verifiedBy.length === 0) {
    throw new NoteError(`note has no signature by a known key (signed only by ${unknown.join(', ')})`);
  }
  return { text, verifiedBy };
}

// `— <name> <base64(key id || signature)>`: the name runs to the first space (names have none).
function parseSignatureLine(line: string, number: number): { name: string; keyId: Uint8Array; signature: Uint8Array } {
  if (!line.startsWith(SIGNATURE_PREFIX)) {
    throw new NoteError(`malformed note: line ${number} after the blank line is not a signature line ("— <key name> <signature>")`);
  }
  const rest = line.slice(SIGNATURE_PREFIX.length);
  const space = rest.indexOf(' ');
  if (space < 0) throw new NoteError(`malformed note: signature line ${number} has no signature after the key name`);
  const name = rest.slice(0, space);
  if (!isValidKeyName(name)) throw new NoteError(`malformed note: signature line ${number} has an invalid key name`);
  const bytes = decodeBase64(rest.slice(space + 1));
  // At least one byte of signature after the key id (sumdb note requires 4+1).
  if (bytes === undefined || bytes.length <= KEY_ID_SIZE) {
    throw new NoteError(`malformed note: signature line ${number} is not base64 of a key id and a signature`);
  }
  return { name, keyId: bytes.subarray(0, KEY_ID_SIZE), signature: bytes.subarray(KEY_ID_SIZE) };
}

// The verifier with this name and key id. Two different keys under one name and id cannot be told
// apart; like sumdb note's VerifierList, that is an error rather than a guess.
function findVerifier(verifiers: readonly VerifierKey[], name: string, keyId: Uint8Array, label: string): VerifierKey | undefined {
  let found: VerifierKey | undefined;
  for (const key of verifiers) {
    if (key.name !== name || !bytesEqual(key.keyId, keyId)) continue;
    if (found !== undefined && !bytesEqual(found.publicKey, key.publicKey)) {
      throw new NoteError(`ambiguous key ${label}: two different verifier keys have this name and key id`);
    }
    found ??= key;
  }
  return found;
}

function describeBadText(text: string): string | undefined {
  if (typeof text !== 'string') return 'must be a string';
  if (text === '') return 'must not be empty';
  if (!text.endsWith('\n')) return 'must end in a newline';
  if (LONE_SURROGATE.test(text)) return 'must be valid Unicode (has a lone surrogate)';
  if (CONTROL.test(text)) return 'must not contain control characters other than newline';
  return undefined;
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw new NoteError('malformed note: not valid UTF-8');
  }
}

function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
