// Reading stored canonical JSON (RFC 8785) without building it. Verifiers check every stored event
// this way: one pass over the bytes confirms they are exactly the canonical form of the value they
// encode, and decodes only the members asked for. Parsing the whole body and serializing it again
// costs several times more, most of it in allocation.
import { isUtf8 } from 'node:buffer';

/** The members to decode: a name maps to `true` (its value) or to the members wanted inside it. */
export interface Shape {
  readonly [name: string]: Shape | true;
}

/** The decoded members of `shape` that the object holds; a nested shape gives a nested object. */
export type Picked = { [name: string]: unknown };

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');

// RFC 8785 section 3.2.2.2: the escapes JSON.stringify writes. \b \t \n \f \r have short forms;
// every other control character is \u00xx in lowercase hex; nothing else is escaped.
const SHORT_ESCAPES = new Set([...'"\\btnfr'].map((c) => c.charCodeAt(0)));
const SHORT_ESCAPED_CONTROLS = new Set([0x08, 0x09, 0x0a, 0x0c, 0x0d]);

class NotCanonical extends Error {}

// What each byte is inside a string: printable ASCII stands for itself; '"' ends the string; '\'
// starts an escape; DEL and UTF-8 bytes are allowed but make the string more than plain ASCII; a
// control character (or a missing byte: undefined) is not allowed raw.
const PLAIN = 0;
const CLOSING_QUOTE = 1;
const ESCAPE = 2;
const NON_ASCII = 3;
const CONTROL = 4;
const STRING_BYTE = Uint8Array.from({ length: 256 }, (_, byte) =>
  byte < 0x20 ? CONTROL : byte === QUOTE ? CLOSING_QUOTE : byte === BACKSLASH ? ESCAPE : byte >= 0x7f ? NON_ASCII : PLAIN,
);

// A shape with its names as bytes, so that member names are matched without decoding them.
type Wanted = readonly { name: string; bytes: Buffer; want: Wanted | true }[];
const compiled = new WeakMap<Shape, Wanted>();

function compile(shape: Shape): Wanted {
  let wanted = compiled.get(shape);
  if (wanted === undefined) {
    wanted = Object.entries(shape).map(([name, want]) => ({ name, bytes: Buffer.from(name), want: want === true ? true : compile(want) }));
    compiled.set(shape, wanted);
  }
  return wanted;
}

/**
 * The members of `shape` decoded from `bytes` when they are exactly the RFC 8785 form of a JSON
 * object (compared as bytes, so invalid UTF-8 cannot hide behind U+FFFD); otherwise why not.
 * Agrees with `canonicalize(JSON.parse(text)) === text`, which the tests check it against.
 */
export function scanCanonicalObject(bytes: Buffer, shape: Shape): Picked | string {
  if (!isUtf8(bytes)) return 'not UTF-8';
  try {
    const scanner = new Scanner(bytes);
    if (bytes[0] !== OPEN_OBJECT) throw new NotCanonical();
    const picked = scanner.object(compile(shape))!;
    if (scanner.at !== bytes.length) throw new NotCanonical();
    return picked;
  } catch (error) {
    // RangeError: nested deeper than the stack allows, which no event body is.
    if (!(error instanceof NotCanonical || error instanceof RangeError)) throw error;
    return whyNotCanonical(bytes);
  }
}

// The rare failure path says what kind of failure it is; the scanner only knows that it failed.
function whyNotCanonical(bytes: Buffer): string {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return 'not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  return 'not in canonical (RFC 8785) form';
}

class Scanner {
  at = 0;
  /** Whether the last string scanned is printable ASCII without escapes. */
  private plain = true;
  /** Where the last small non-negative integer scanned starts, and its value. */
  private integerAt = -1;
  private integer = 0;

  constructor(private readonly bytes: Buffer) {}

  /** Scans the object at `at`, decoding the `wanted` members. */
  object(wanted: Wanted | undefined): Picked | undefined {
    const { bytes } = this;
    const picked: Picked | undefined = wanted && {};
    this.at++;
    if (bytes[this.at] === CLOSE_OBJECT) {
      this.at++;
      return picked;
    }
    let previousKey = -1;
    let previousEnd = -1;
    let previousPlain = true;
    for (;;) {
      const key = this.at;
      this.string();
      const keyEnd = this.at;
      const keyPlain = this.plain;
      // RFC 8785 section 3.2.3: names strictly increasing (so never repeated) in UTF-16 code units.
      if (previousKey >= 0 && !this.ordered(previousKey, previousEnd, previousPlain, key, keyEnd, keyPlain)) throw new NotCanonical();
      this.expect(COLON);
      const member = wanted && keyPlain ? this.member(wanted, key + 1, keyEnd - 1) : undefined;
      if (member) picked![member.name] = this.pick(member.want);
      else this.value();
      previousKey = key;
      previousEnd = keyEnd;
      previousPlain = keyPlain;
      const next = bytes[this.at++];
      if (next === CLOSE_OBJECT) return picked;
      if (next !== COMMA) throw new NotCanonical();
    }
  }

  // A wanted member: an object scanned for its own wanted members, or any other value decoded.
  private pick(want: Wanted | true): unknown {
    if (want !== true && this.bytes[this.at] === OPEN_OBJECT) return this.object(want);
    const start = this.at;
    this.value();
    if (this.integerAt === start) return this.integer;
    return this.decode(start, this.at, this.bytes[start] === QUOTE && this.plain);
  }

  private value(): void {
    switch (this.bytes[this.at]) {
      case OPEN_OBJECT:
        this.object(undefined);
        return;
      case OPEN_ARRAY:
        this.array();
        return;
      case QUOTE:
        this.string();
        return;
      case 0x74: // t
        this.literal(TRUE);
        return;
      case 0x66: // f
        this.literal(FALSE);
        return;
      case 0x6e: // n
        this.literal(NULL);
        return;
      default:
        this.number();
    }
  }

  private array(): void {
    const { bytes } = this;
    this.at++;
    if (bytes[this.at] === CLOSE_ARRAY) {
      this.at++;
      return;
    }
    for (;;) {
      this.value();
      const next = bytes[this.at++];
      if (next === CLOSE_ARRAY) return;
      if (next !== COMMA) throw new NotCanonical();
    }
  }

  // RFC 8785 section 3.2.2.2; the bytes are valid UTF-8, so only escapes and controls need a look.
  private string(): void {
    const { bytes } = this;
    if (bytes[this.at] !== QUOTE) throw new NotCanonical();
    let at = this.at + 1;
    let plain = true;
    for (;;) {
      // Most bytes are printable ASCII: one table look each until something else.
      let kind: number | undefined;
      while ((kind = STRING_BYTE[bytes[at]!]) === PLAIN) at++;
      if (kind === CLOSING_QUOTE) break;
      if (kind === NON_ASCII) plain = false;
      else if (kind === ESCAPE) {
        plain = false;
        const escape = bytes[at + 1]!;
        if (escape === 0x75) {
          // \u00xx, lowercase, only for a control character without a short escape.
          const code = hexDigit(bytes[at + 4]) * 16 + hexDigit(bytes[at + 5]);
          if (bytes[at + 2] !== 0x30 || bytes[at + 3] !== 0x30 || !(code < 0x20) || SHORT_ESCAPED_CONTROLS.has(code)) {
            throw new NotCanonical();
          }
          at += 4;
        } else if (!SHORT_ESCAPES.has(escape)) throw new NotCanonical();
        at++;
      } else throw new NotCanonical(); // a raw control character, or the end of the bytes
      at++;
    }
    this.at = at + 1;
    this.plain = plain;
  }

  // RFC 8785 section 3.2.2.3: the ECMAScript form of the number, which is always valid JSON. A
  // plain integer of up to 15 digits is in that form unless it has a leading zero.
  private number(): void {
    const { bytes } = this;
    const start = this.at;
    let at = start;
    let digitsOnly = true;
    let integer = 0;
    for (let byte = bytes[at]; byte !== undefined && isNumberByte(byte); byte = bytes[++at]) {
      if (byte < 0x30 || byte > 0x39) digitsOnly = false;
      else integer = integer * 10 + (byte - 0x30);
    }
    const length = at - start;
    if (length === 0) throw new NotCanonical();
    if (digitsOnly && length <= 15 && (length === 1 || bytes[start] !== 0x30)) {
      // Its value too, so that a wanted seq or v is not decoded from text.
      this.integerAt = start;
      this.integer = integer;
    } else {
      const text = bytes.toString('latin1', start, at);
      if (String(Number(text)) !== text) throw new NotCanonical();
    }
    this.at = at;
  }

  private literal(word: Buffer): void {
    for (const byte of word) if (this.bytes[this.at++] !== byte) throw new NotCanonical();
  }

  // The wanted member named by bytes [start, end), if any.
  private member(wanted: Wanted, start: number, end: number): Wanted[number] | undefined {
    const { bytes } = this;
    next: for (const member of wanted) {
      const name = member.bytes;
      if (end - start !== name.length) continue;
      for (let i = 0; i < name.length; i++) if (bytes[start + i] !== name[i]) continue next;
      return member;
    }
    return undefined;
  }

  private expect(byte: number): void {
    if (this.bytes[this.at++] !== byte) throw new NotCanonical();
  }

  // Whether the first name sorts strictly before the second. Printable ASCII sorts the same as
  // bytes and as UTF-16 code units; any other name is decoded (UTF-8 byte order differs from
  // UTF-16 order above U+FFFF).
  private ordered(aStart: number, aEnd: number, aPlain: boolean, bStart: number, bEnd: number, bPlain: boolean): boolean {
    if (aPlain && bPlain) {
      const { bytes } = this;
      const length = Math.min(aEnd - aStart, bEnd - bStart) - 1;
      for (let i = 1; i < length; i++) {
        if (bytes[aStart + i] !== bytes[bStart + i]) return bytes[aStart + i]! < bytes[bStart + i]!;
      }
      // One name is a prefix of the other (each span ends in its closing quote).
      return aEnd - aStart < bEnd - bStart;
    }
    return (this.decode(aStart, aEnd, aPlain) as string) < (this.decode(bStart, bEnd, bPlain) as string);
  }

  // The value in [start, end); `plainString` when it is a string of printable ASCII without escapes.
  private decode(start: number, end: number, plainString: boolean): unknown {
    if (plainString) return this.bytes.toString('latin1', start + 1, end - 1);
    return JSON.parse(this.bytes.toString('utf8', start, end));
  }
}

function isNumberByte(byte: number): boolean {
  return (byte >= 0x30 && byte <= 0x39) || byte === 0x2d || byte === 0x2b || byte === 0x2e || byte === 0x65 || byte === 0x45;
}

// A lowercase hex digit's value, or 256 (which fails the control-character test) for any other byte.
function hexDigit(byte: number | undefined): number {
  if (byte !== undefined && byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte !== undefined && byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  return 256;
}
