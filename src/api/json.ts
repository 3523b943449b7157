import { ApiError, invalidFields } from './errors.js';

/**
 * Request bodies as I-JSON (RFC 7493), the JSON that RFC 8785 canonicalizes: what is stored is
 * what was sent, or the request is refused. JSON.parse parses (natively, and it keeps members
 * named __proto__ as own data properties); a scan of the text it accepted then refuses what it
 * would resolve silently: a member name given twice in one object (JSON.parse keeps the last), a
 * number beyond the range of an IEEE 754 double (JSON.parse makes it ±Infinity, which has no
 * canonical form), and one too small for a double that is not zero (JSON.parse makes it 0). The 400 must name the path; a syntax-tree parser could (momoa, which the tests
 * use as an independent reading), but it costs about 20 µs for a 300-byte event on the append
 * path, where JSON.parse and this scan together take about 4.5.
 */

const BACKSLASH = 0x5c;
// A number token's characters, from where JSON.parse accepted one to start.
const NUMBER = /[-+.\deE]+/y;

/** An open object (`names` seen so far) or array; `at` is the member name or index being read. */
interface Frame {
  names: Set<string> | undefined;
  at: string | number;
}

const fieldOf = (path: (string | number)[]) => (path.length ? path.join('.') : 'body');

/** The index of the quote that closes the string opened at `start`. */
function stringEnd(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  for (;;) {
    let backslashes = 0;
    while (text.charCodeAt(end - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
}

/**
 * Why the number `token` cannot be kept as sent, or undefined: beyond a double it would become
 * ±Infinity (no canonical form); below the smallest double, a value that is not zero would be
 * stored as 0. Other numbers are rounded to the nearest double, as RFC 8785 section 3.2.2.3 says.
 */
function numberProblem(token: string): string | undefined {
  const value = Number(token);
  if (!Number.isFinite(value)) return 'number out of range: JSON numbers here are IEEE 754 doubles, at most about ±1.8e308 (I-JSON)';
  if (value === 0 && /[1-9]/.test(token.split(/[eE]/)[0]!)) {
    return 'number too small: it is not zero, but as an IEEE 754 double (at least about ±5e-324) it would be stored as 0';
  }
  return undefined;
}

/**
 * Throws a 400 naming the path of the first duplicate member name or out-of-range number in
 * `text`, which JSON.parse accepted (so the scan need not check the grammar). Iterative: a hostile
 * body may nest deeply.
 */
function checkParsed(text: string): void {
  const stack: Frame[] = [];
  let expectName = false;
  for (let i = 0; i < text.length; ) {
    const c = text[i]!;
    if (c === '{' || c === '[') {
      stack.push({ names: c === '{' ? new Set() : undefined, at: 0 });
      expectName = c === '{';
      i++;
    } else if (c === '}' || c === ']') {
      stack.pop();
      expectName = false; // an empty object closes where a name could have been
      i++;
    } else if (c === ',') {
      const top = stack.at(-1)!;
      if (top.names) expectName = true;
      else (top.at as number)++;
      i++;
    } else if (c === '"') {
      const end = stringEnd(text, i);
      if (expectName) {
        const raw = text.slice(i + 1, end);
        const name = raw.includes('\\') ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        const top = stack.at(-1)!;
        if (top.names!.has(name)) {
          const path = [...stack.slice(0, -1).map((f) => f.at), name];
          throw invalidFields([{ field: fieldOf(path), message: 'member name given twice (RFC 8785 and I-JSON forbid duplicates)' }], 'invalid_json');
        }
        top.names!.add(name);
        top.at = name;
        expectName = false;
      }
      i = end + 1;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      NUMBER.lastIndex = i;
      const token = NUMBER.exec(text)![0];
      const problem = numberProblem(token);
      if (problem) throw invalidFields([{ field: fieldOf(stack.map((f) => f.at)), message: problem }], 'invalid_json');
      i += token.length;
    } else {
      i++; // whitespace, ':', and the letters of true, false and null
    }
  }
}

/**
 * Parses request JSON text. Throws ApiError 400: `invalid_json` for text that is not JSON, or
 * (naming the path, e.g. `metadata.a`) for a duplicate member name or a number out of range.
 */
export function parseJson(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ApiError(400, 'invalid_json', `the body is not valid JSON: ${(error as Error).message}`);
  }
  checkParsed(text);
  return value;
}
