// RFC 8785 JSON Canonicalization Scheme (JCS): the one byte form of an event body that its hash covers.

/** A value that has no canonical JSON form (RFC 8785 section 3.2). */
export class JcsError extends Error {
  override name = 'JcsError';
}

/** The canonical JSON text of `value` (RFC 8785 section 3.2). Throws JcsError. */
export function canonicalize(value: unknown): string {
  return serialize(value, []);
}

/** The canonical JSON of `value` as UTF-8 bytes (RFC 8785 section 3.2.4). Throws JcsError. */
export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(serialize(value, []), 'utf8');
}

// `ancestors` holds the containers being serialized, so a cycle fails clearly instead of overflowing.
function serialize(value: unknown, ancestors: object[]): string {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      // RFC 8785 section 3.2.2.3: ECMAScript Number.prototype.toString; NaN and Infinity have no JSON form.
      if (!Number.isFinite(value)) throw new JcsError(`number ${value} cannot be canonicalized`);
      return String(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if (ancestors.includes(value)) throw new JcsError('cyclic structure cannot be canonicalized');
      ancestors.push(value);
      try {
        if (Array.isArray(value)) return serializeArray(value, ancestors);
        const proto: unknown = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          throw new JcsError(`${value.constructor?.name ?? 'object'} is not a plain object`);
        }
        return serializeObject(value as Record<string, unknown>, ancestors);
      } finally {
        ancestors.pop();
      }
    default:
      // undefined, function, bigint, symbol: JSON has no representation for them.
      throw new JcsError(`${typeof value} cannot be canonicalized`);
  }
}

function serializeArray(array: readonly unknown[], ancestors: object[]): string {
  let out = '[';
  for (let i = 0; i < array.length; i++) {
    if (i > 0) out += ',';
    out += serialize(array[i], ancestors);
  }
  return out + ']';
}

// RFC 8785 section 3.2.3: members sorted by the UTF-16 code units of their names.
function serializeObject(object: Record<string, unknown>, ancestors: object[]): string {
  const keys = sortCodeUnits(Object.keys(object));
  let out = '{';
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    if (i > 0) out += ',';
    out += quote(key) + ':' + serialize(object[key], ancestors);
  }
  return out + '}';
}

// Above this many members, the built-in sort: insertion sort's n^2 comparisons would cost more.
const INSERTION_SORT_MAX = 16;

/**
 * Sorts `strings` in place by their UTF-16 code units (RFC 8785 section 3.2.3), the order of
 * Array.prototype.sort's default comparison, and returns it. Short arrays (an event's objects have
 * a few members) are insertion-sorted: V8's sort allocates work arrays on every call, most of the
 * garbage canonicalization made and so much of the append path's scavenging.
 */
export function sortCodeUnits(strings: string[]): string[] {
  if (strings.length > INSERTION_SORT_MAX) return strings.sort();
  for (let i = 1; i < strings.length; i++) {
    const string = strings[i]!;
    let j = i - 1;
    for (; j >= 0 && strings[j]! > string; j--) strings[j + 1] = strings[j]!;
    strings[j + 1] = string;
  }
  return strings;
}

// RFC 8785 section 3.2.2.2: JSON.stringify escapes exactly as required (\b \t \n \f \r, other
// controls as lowercase \u00xx, '"' and '\'), but it would escape lone surrogates instead of failing.
function quote(s: string): string {
  // RFC 8785 section 3.2.2.2 requires well-formed Unicode (I-JSON, RFC 7493 section 2.1).
  if (!s.isWellFormed()) throw new JcsError('string contains a lone surrogate');
  return JSON.stringify(s);
}
