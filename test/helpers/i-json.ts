import { evaluate, parse, type ValueNode } from '@humanwhocodes/momoa';
import fc from 'fast-check';

/**
 * An independent reading of JSON text, for tests of what the API stores: momoa's parser (ESLint's),
 * whose syntax tree keeps every member, so duplicates can be seen, and whose evaluate() keeps
 * members named __proto__. `fault` is set when the text is not I-JSON (RFC 7493): a member name
 * given twice, or a number beyond an IEEE 754 double (or not zero, yet below its smallest). Throws when the text is not JSON at all.
 */
export function readIJson(text: string): { value: unknown; fault?: 'duplicate' | 'number' } {
  const body = parse(text, { mode: 'json' }).body;
  const stack: ValueNode[] = [body];
  while (stack.length) {
    const node = stack.pop()!;
    if (node.type === 'Number' && !Number.isFinite(node.value)) return { value: undefined, fault: 'number' };
    // Not zero as written, zero as a double: an underflow.
    const written = node.type === 'Number' ? text.slice(node.loc.start.offset, node.loc.end.offset) : '';
    if (node.type === 'Number' && node.value === 0 && /[1-9]/.test(written.split(/[eE]/)[0]!)) return { value: undefined, fault: 'number' };
    if (node.type === 'Array') stack.push(...node.elements.map((e) => e.value));
    if (node.type === 'Object') {
      const names = node.members.map((m) => evaluate(m.name) as string);
      if (new Set(names).size !== names.length) return { value: undefined, fault: 'duplicate' };
      stack.push(...node.members.map((m) => m.value));
    }
  }
  return { value: evaluate(body) };
}

/** Names that trip JSON readers: prototype names, escapes that spell a plainer name, quotes, backslashes, non-ASCII. */
export const oddName = fc.constantFrom('__proto__', '\\u005f_proto__', 'constructor', 'prototype', 'toString', 'a', '\\u0061', '', 'a\\"', 'a\\\\', 'é', '😀', '\\ud83d\\ude00', '\\ud800');

/** Number texts at and beyond the range of a double, and ordinary ones. */
export const oddNumber = fc.oneof(
  { arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)), weight: 3 },
  fc.constantFrom('1E400', '-1e400', '1e308', '1.7976931348623157e308', '1.8e308', '1e-400', '5e-324', '-0', '123456789012345678901234567890', '0.1'),
);

/** A JSON string's text, unicode and escapes included (no lone surrogate: the test sends UTF-8). */
export const stringText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 8 }).map((s) => JSON.stringify(s)),
  oddName.map((n) => `"${n}"`),
);

/** JSON object text whose members are `value`s, often under odd names, duplicates likely enough. */
export const objectText = (value: fc.Arbitrary<string>) =>
  fc.array(fc.tuple(fc.oneof({ arbitrary: stringText, weight: 3 }, oddName.map((n) => `"${n}"`)), value), { maxLength: 4 }).map((members) => `{${members.map(([n, v]) => `${n}:${v}`).join(',')}}`);

/** JSON text of any value, with odd names, duplicates, extreme numbers and unicode. */
export const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    stringText,
    oddNumber,
    fc.constantFrom('true', 'false', 'null'),
    fc.array(tie('value'), { maxLength: 4 }).map((items) => `[${items.join(' , ')}]`),
    objectText(tie('value')),
  ),
})).value;

/** One event's JSON text: odd names, duplicates, extreme numbers and unicode in its maps and metadata. */
export const eventText = fc
  .record({
    fields: fc.option(objectText(stringText)),
    actorFields: fc.option(objectText(stringText)),
    metadata: fc.option(objectText(jsonText)),
    extra: fc.option(fc.constantFrom('"action":"again"', '"__proto__":{}', '"crud":"c"', '"crud":"u","crud":"u"', '"description":"\\u0000"'), { freq: 2 }),
  })
  .map(({ fields, actorFields, metadata, extra }) => {
    const members = ['"action":"property.test"'];
    if (fields !== null) members.push(`"fields":${fields}`);
    if (actorFields !== null) members.push(`"actor":{"id":"u","fields":${actorFields}}`);
    if (metadata !== null) members.push(`"metadata":${metadata}`);
    if (extra !== null) members.push(extra);
    return `{${members.join(',')}}`;
  });

/** A body of POST /v1/events: one event or a batch. */
export const eventsBody = fc.oneof(eventText, fc.array(eventText, { minLength: 1, maxLength: 3 }).map((events) => `{"events":[${events.join(',')}]}`));
