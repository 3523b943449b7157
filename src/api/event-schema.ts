import { z } from 'zod';
import type { Config } from '../config.js';
import type { AuditEvent, Crud } from '../ledger/event.js';
import { formatPointer, isMarkerShape } from '../ledger/personal.js';
import { isoDateTime, storableString } from './schemas.js';

/** Limits on appended events; each is a setting (see config.ts). */
export interface EventLimits {
  maxBatchEvents: number;
  maxStringLength: number;
  maxFields: number;
  maxMetadataDepth: number;
  maxMetadataBytes: number;
}

/** The limits on appended events that `config` sets (AUDITLEDGER_MAX_BATCH_EVENTS and the four after it). */
export function eventLimits(config: Config): EventLimits {
  return {
    maxBatchEvents: config.AUDITLEDGER_MAX_BATCH_EVENTS,
    maxStringLength: config.AUDITLEDGER_MAX_STRING_LENGTH,
    maxFields: config.AUDITLEDGER_MAX_FIELDS,
    maxMetadataDepth: config.AUDITLEDGER_MAX_METADATA_DEPTH,
    maxMetadataBytes: config.AUDITLEDGER_MAX_METADATA_BYTES,
  };
}

/**
 * The action prefix of the ledger's own events (a policy change, an erasure, a legal hold), which
 * apps may not send, nor anything that reads as it (reservedLookAlike): a reader can trust that
 * such an event came from the ledger.
 */
export const RESERVED_ACTION_PREFIX = 'auditledger.';

// White space and characters drawn as nothing: format characters (general category Cf: zero-width
// space and joiners, bidi controls, the soft hyphen) and the other default ignorables (variation
// selectors, the combining grapheme joiner, Hangul fillers); and combining marks (M), which only
// decorate the letter before them (an overlay, a dot: "İ" is I and a dot above).
const INVISIBLE = /[\p{White_Space}\p{Cf}\p{Default_Ignorable_Code_Point}\p{M}]/gu;
// What reads as the separator after "auditledger": any punctuation or symbol ("。", "·", "_", "/").
const RESERVED = /^auditledger[\p{P}\p{S}]/u;

/**
 * Whether `action` reads as one in the ledger's namespace: "auditledger" then a punctuation mark or
 * symbol, compared after compatibility decomposition (Unicode UAX #15 NFKD: fullwidth letters, the
 * small full stop, the Kelvin sign, ligatures), removing INVISIBLE characters anywhere, and case
 * folding (upper then lower case, which also folds ß, ı and ſ). Not caught: letters of other
 * scripts that merely look alike (Cyrillic а, Unicode UTS #39 confusables), which no normalization
 * maps to Latin.
 */
function reservedLookAlike(action: string): boolean {
  const folded = action.normalize('NFKD').replace(INVISIBLE, '').toUpperCase().toLowerCase();
  // Case folding can make new decomposable letters (and marks): once more.
  return RESERVED.test(folded.normalize('NFKD').replace(INVISIBLE, ''));
}

/** c, r, u or d, or the word each stands for, kept as the letter. */
export const crudSchema = z
  .enum(['c', 'r', 'u', 'd', 'create', 'read', 'update', 'delete'], {
    error: 'must be one of c, r, u, d, create, read, update, delete',
  })
  .transform((s) => s[0] as Crud);

/**
 * Checks a JSON value without recursion (a hostile body may nest deeply): depth, strings and keys
 * that PostgreSQL or UTF-8 cannot hold, and objects shaped like an erased value's marker
 * (isMarkerShape), which would read as one. `at` is the value's place in the event, as RFC 6901
 * reference tokens. Returns the path (below `at`) and problem of the first fault.
 */
function jsonProblem(value: unknown, at: string[], maxDepth: number, stringOk: (s: string) => string | undefined) {
  const stack: { value: unknown; path: (string | number)[]; depth: number }[] = [{ value, path: [], depth: 1 }];
  while (stack.length) {
    const { value: v, path, depth } = stack.pop()!;
    if (typeof v === 'string') {
      const problem = stringOk(v);
      if (problem) return { path, message: problem };
    } else if (typeof v === 'object' && v !== null) {
      if (depth > maxDepth) return { path, message: `must not nest deeper than ${maxDepth} levels` };
      if (isMarkerShape(v)) {
        const pointer = formatPointer([...at, ...path.map(String)]);
        return { path, message: `${pointer}: must not have exactly the members of the marker an erased value reads as (erased, commitment[, mismatch]), or it would read as one` };
      }
      for (const [key, child] of Object.entries(v)) {
        const problem = stringOk(key);
        if (problem) return { path: [...path, key], message: `key ${problem}` };
        stack.push({ value: child, path: [...path, Array.isArray(v) ? Number(key) : key], depth: depth + 1 });
      }
    }
  }
  return undefined;
}

/** A JSON object (not an array, not null), returned as it came: the same object, its members unchecked. */
function jsonObject<T extends Record<string, unknown>>() {
  return z.custom<T>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), 'must be an object');
}

/**
 * z.record(key, value) for a JSON object, returned as it came: the same object, every member kept.
 * z.record builds a new object and skips members named __proto__ (assigning one would change the
 * object's prototype); an audit record keeps them, and JSON.parse made them own data properties.
 * So `value` must not transform what it checks. Issues are named `<key>` (`key …` for a bad key).
 */
export function jsonRecord<K extends z.ZodType<string>, V extends z.ZodType>(key: K, value: V) {
  return jsonObject<Record<z.output<K>, z.output<V>>>().superRefine((record, ctx) => {
    for (const [name, member] of Object.entries(record)) {
      const nameResult = key.safeParse(name);
      const result = nameResult.success ? value.safeParse(member) : nameResult;
      for (const issue of result.error?.issues ?? []) {
        const message = nameResult.success ? issue.message : `key ${issue.message}`;
        ctx.addIssue({ code: 'custom', path: [name, ...issue.path], message });
      }
    }
  });
}

export function eventSchemas(limits: EventLimits) {
  const text = storableString(limits.maxStringLength);
  const stringProblem = (s: string) => {
    const result = text.safeParse(s);
    return result.success ? undefined : result.error.issues[0]?.message;
  };
  const id = text.min(1, 'must not be empty');
  const fieldMap = jsonRecord(text, text)
    .refine((m) => Object.keys(m).length <= limits.maxFields, `must have at most ${limits.maxFields} entries`);
  const party = { id, name: text.optional(), href: text.optional(), fields: fieldMap.optional() };

  // Only metadata can hold an object the client shapes (so one shaped like a marker): the schema
  // fixes the members of every other object of an event (a party, group, fields).
  // Its keys and values are checked by jsonProblem: jsonRecord(z.string(), z.unknown()) would
  // check each member again, against schemas no parsed JSON can fail (0.6 µs an event).
  const metadata = jsonObject<Record<string, unknown>>()
    .superRefine((value, ctx) => {
      const problem = jsonProblem(value, ['metadata'], limits.maxMetadataDepth, stringProblem);
      if (problem) {
        ctx.addIssue({ code: 'custom', path: problem.path, message: problem.message });
        return;
      }
      const bytes = Buffer.byteLength(JSON.stringify(value));
      if (bytes > limits.maxMetadataBytes) {
        ctx.addIssue({ code: 'custom', message: `must be at most ${limits.maxMetadataBytes} bytes of JSON (is ${bytes})` });
      }
    });

  const event = z.strictObject({
    action: text
      .min(1, 'must not be empty')
      .refine(
        (action) => !reservedLookAlike(action),
        `must not begin with "${RESERVED_ACTION_PREFIX}" (nor "auditledger" and any other punctuation, in any letter case or width, with invisible characters or marks): that prefix is for the ledger's own events`,
      ),
    crud: crudSchema.optional(),
    group: z.strictObject({ id, name: text.optional() }).optional(),
    actor: z.strictObject(party).optional(),
    target: z.strictObject({ ...party, type: text.optional() }).optional(),
    source_ip: z.union([z.ipv4(), z.ipv6()], { error: 'must be an IPv4 or IPv6 address' }).optional(),
    description: text.optional(),
    is_failure: z.boolean().optional(),
    is_anonymous: z.boolean().optional(),
    fields: fieldMap.optional(),
    external_id: text.optional(),
    component: text.optional(),
    version: text.optional(),
    metadata: metadata.optional(),
    created: isoDateTime.optional(),
    idempotency_key: text.min(1, 'must not be empty').max(255, 'must be at most 255 characters').optional(),
  });

  const batch = z.strictObject({
    events: z
      .array(event)
      .min(1, 'must hold at least one event')
      .max(limits.maxBatchEvents, `must hold at most ${limits.maxBatchEvents} events per request`),
  });
  return { event, batch };
}

export type EventInput = z.infer<ReturnType<typeof eventSchemas>['event']>;

/** Splits the ledger's event from the request-only idempotency key. */
export function splitInput(input: EventInput): { event: AuditEvent; key: string | undefined } {
  const { idempotency_key: key, ...event } = input;
  return { event, key };
}
