// Strict JSON for events: what the app passes is what the ledger stores, or the call fails.
// JSON.stringify would quietly turn NaN into null, drop functions, write a Map as {} and run any
// toJSON method, so an audit record could differ from what was written without anyone noticing.

/**
 * `value` as JSON text, refusing anything JSON.stringify would alter. Allowed: plain objects
 * (prototype Object.prototype or null), arrays, strings, finite numbers, booleans, null, and Date
 * (written as its ISO 8601 string). An object member whose value is undefined is left out, as
 * JSON.stringify does. Anything else (NaN, ±Infinity, undefined in an array, a function, a symbol,
 * a bigint, a symbol key, a Map, Set or other class instance, a cycle) throws a TypeError naming
 * where it is, e.g. `event.metadata.n: NaN is not a JSON number`; `path` is the name of `value`.
 */
export function strictJson(value: unknown, path: string): string {
  return write(value, path, new Set());
}

function write(value: unknown, path: string, ancestors: Set<object>): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`${path}: ${value} is not a JSON number`);
      return JSON.stringify(value);
    case 'undefined':
      throw new TypeError(`${path}: undefined is not JSON (in an array, use null)`);
    case 'bigint':
      throw new TypeError(`${path}: a bigint is not a JSON number (give a number or a string)`);
    case 'function':
    case 'symbol':
      throw new TypeError(`${path}: a ${typeof value} is not JSON`);
  }
  if (value === null) return 'null';
  const object = value as object;
  if (object instanceof Date) {
    if (Number.isNaN(object.getTime())) throw new TypeError(`${path}: an invalid Date is not a time`);
    return JSON.stringify(object.toISOString());
  }
  if (ancestors.has(object)) throw new TypeError(`${path}: a cycle (the value contains itself) is not JSON`);
  ancestors.add(object);
  let json: string;
  if (Array.isArray(object)) {
    // A for loop, not map: map skips the holes of a sparse array, which are undefined.
    const items: string[] = [];
    for (let i = 0; i < object.length; i++) items.push(write(object[i], `${path}[${i}]`, ancestors));
    json = `[${items.join(',')}]`;
  } else {
    if (!isPlainObject(object)) {
      throw new TypeError(`${path}: ${describe(object)} is not JSON; give a plain object, an array, a string, a finite number, a boolean, null or a Date`);
    }
    if (Object.getOwnPropertySymbols(object).length > 0) throw new TypeError(`${path}: a symbol key is not JSON`);
    const members: string[] = [];
    for (const [key, member] of Object.entries(object)) {
      if (member !== undefined) members.push(`${JSON.stringify(key)}:${write(member, memberPath(path, key), ancestors)}`);
    }
    json = `{${members.join(',')}}`;
  }
  ancestors.delete(object);
  return json;
}

/** An object JSON holds as it is: no class, so no toJSON and no state JSON cannot see. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function describe(object: object): string {
  const name = (object.constructor as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' && name !== '' ? `a ${name}` : 'an instance of a class';
}

/** `path.key`, or `path["key"]` when the key is not an identifier. */
function memberPath(path: string, key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}
