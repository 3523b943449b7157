// Personal data commitments (ledger format v2, docs/format.md "Personal data commitments"): the
// hashed body holds, for each personal value, a salted commitment instead of the value; the value
// and its salt live in an erasable store. Erasing them leaves every hash, tree and proof intact.
import { createHmac, hash } from 'node:crypto';
import type { AuditEvent } from './event.js';
import { canonicalize } from './jcs.js';

/** Bytes of each value's salt: 256 random bits, never reused. */
export const SALT_SIZE = 32;

// Domain separation: a commitment can never be taken for any other SHA-256 of the format.
const COMMITMENT_PREFIX = Buffer.from('auditledger-commitment-v1\0', 'utf8');
const VALUE_AT = COMMITMENT_PREFIX.length + SALT_SIZE;

// One input buffer, prefix || salt || value, reused as hash.ts's leafHash reuses its own (safe
// because hashing is synchronous); it grows to the largest value seen. Commitments are made for
// every personal value of every append.
let commitmentInput = Buffer.alloc(1024);
COMMITMENT_PREFIX.copy(commitmentInput);

/**
 * The commitment to one personal value: lowercase hex of
 * SHA-256("auditledger-commitment-v1" || 0x00 || salt || UTF-8 of the value's RFC 8785 canonical JSON).
 * `canonicalValue` is that canonical JSON text (as stored); `salt` must be SALT_SIZE bytes
 * (throws RangeError otherwise). Without the salt, the commitment reveals nothing of the value,
 * even one from a small set (an IP address, a name).
 */
export function commitValue(canonicalValue: string, salt: Uint8Array): string {
  if (salt.length !== SALT_SIZE) throw new RangeError(`a salt is ${SALT_SIZE} bytes, got ${salt.length}`);
  const length = VALUE_AT + Buffer.byteLength(canonicalValue, 'utf8');
  if (length > commitmentInput.length) {
    commitmentInput = Buffer.alloc(Math.max(2 * commitmentInput.length, length));
    COMMITMENT_PREFIX.copy(commitmentInput);
  }
  commitmentInput.set(salt, COMMITMENT_PREFIX.length);
  commitmentInput.write(canonicalValue, VALUE_AT, 'utf8');
  return hash('sha256', commitmentInput.subarray(0, length), 'hex');
}

/**
 * The keyed digest that names a data subject without revealing its id: HMAC-SHA-256 (RFC 2104)
 * under the server's subject key over UTF-8 of project || 0x00 || subject id. Keyed, so that
 * nobody without the key can test a guessed id against it; per project, so that digests of one
 * project say nothing about another's.
 */
export function subjectDigest(key: Uint8Array, project: string, subject: string): Buffer {
  return createHmac('sha256', key).update(`${project}\0${subject}`, 'utf8').digest();
}

/** One data subject's personal paths. */
export interface PersonalRule {
  /** RFC 6901 JSON Pointer into the event to the subject's id, e.g. "/actor/id". */
  subject: string;
  /**
   * RFC 6901 JSON Pointers into the event to the subject's personal values, e.g. "/actor/name".
   * A last reference token `*` names every member of that object ("/actor/fields/*").
   */
  paths: string[];
  /** When given, the rule applies only to events whose `target.type` is one of these. */
  when_target_type?: string[] | undefined;
}

/** Which paths of an event hold personal data, and whose (GDPR Art. 4(1) data subject). */
export interface PersonalPolicy {
  subjects: PersonalRule[];
}

/**
 * The default policy: the actor's name, href and the source IP belong to the actor; the target's
 * name belongs to the target when the target is a person.
 */
export const DEFAULT_POLICY: PersonalPolicy = {
  subjects: [
    { subject: '/actor/id', paths: ['/actor/name', '/actor/href', '/source_ip'] },
    { subject: '/target/id', paths: ['/target/name'], when_target_type: ['user', 'person'] },
  ],
};

// Paths that must stay clear in the body: the sources of the index columns (search and
// verification read them) and the ledger's own meaning of an event.
const PROTECTED = ['/action', '/crud', '/created', '/actor/id', '/target/id', '/group/id', '/target/type'];

/** The reference tokens of an RFC 6901 pointer, or undefined when it is not one. */
export function parsePointer(pointer: string): string[] | undefined {
  if (!pointer.startsWith('/') || /~(?![01])/.test(pointer)) return undefined;
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/** The RFC 6901 pointer of reference tokens. */
export function formatPointer(tokens: readonly string[]): string {
  return tokens.map((token) => `/${token.replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}

/** Whether pointer `a` is `b` or names something that contains `b`, or the reverse. */
function overlaps(a: string, b: string): boolean {
  return a === b || b.startsWith(`${a}/`) || a.startsWith(`${b}/`);
}

// What an event can hold at each place, as event validation allows it (AuditEvent, Retraced's
// field set): TEXT is any string, and a Typed leaf only the values it names (a boolean, a crud
// letter, a date-time), each with nothing inside; STRINGS is an object of TEXT under any names
// (`fields`); JSON is any JSON value (`metadata`); an object lists the only members allowed there.
// A pointer that leaves this shape can never match an event.
const TEXT = 'text';
const STRINGS = 'strings';
const JSON_VALUE = 'json';
class Typed {
  /** `values`: what the leaf holds, in words ("true or false"). */
  constructor(readonly values: string) {}
}
const BOOLEAN = new Typed('true or false');
type Place = typeof TEXT | Typed | typeof STRINGS | typeof JSON_VALUE | { readonly [name: string]: Place };
const isLeaf = (place: Place): place is typeof TEXT | Typed => place === TEXT || place instanceof Typed;
const PARTY = { id: TEXT, name: TEXT, href: TEXT, fields: STRINGS } as const;
const EVENT_PLACES = {
  action: TEXT,
  crud: new Typed('one of c, r, u, d'),
  group: { id: TEXT, name: TEXT },
  actor: PARTY,
  target: { ...PARTY, type: TEXT },
  source_ip: TEXT,
  description: TEXT,
  is_failure: BOOLEAN,
  is_anonymous: BOOLEAN,
  fields: STRINGS,
  external_id: TEXT,
  component: TEXT,
  version: TEXT,
  metadata: JSON_VALUE,
  created: new Typed('an RFC 3339 date-time'),
} as const satisfies Record<keyof AuditEvent, Place>;

/**
 * The place every event has at `tokens`, or `never`: why no event can hold a value there (with
 * `wildcard`, the members of the object there).
 */
function placeAt(tokens: readonly string[], wildcard: boolean): { place: Place } | { never: string } {
  let place: Place = EVENT_PLACES;
  for (let i = 0; i < tokens.length && place !== JSON_VALUE; i++) {
    const token = tokens[i]!;
    if (isLeaf(place)) return { never: `can never match an event: ${formatPointer(tokens.slice(0, i))} is always a string or a boolean` };
    if (place === STRINGS) place = TEXT;
    else if (Object.hasOwn(place, token)) place = place[token]!;
    else if (i === 0) return { never: `can never match an event: it must begin with a member of the event (${Object.keys(EVENT_PLACES).join(', ')})` };
    else return { never: `can never match an event: ${formatPointer(tokens.slice(0, i))} has no member ${JSON.stringify(token)}` };
  }
  if (wildcard && isLeaf(place)) return { never: `can never match an event: ${formatPointer(tokens)} is always a string or a boolean` };
  return { place };
}

/**
 * Why `policy` cannot be used, as {field, message} with the field named from the policy's root
 * (`subjects.0.paths.1`); empty when it can. Refused: a malformed pointer, a `*` anywhere but the
 * last token, a pointer no event can match (its first token not a member of the event, or a
 * token below a member that is always a string), a path that is or contains a subject id or an
 * index column's source (action, crud, created, actor/target/group id, target type), a path to a
 * member that is never free text (is_failure, is_anonymous: where a schema types it, as Retraced's
 * does, an erased value could read neither as a marker nor as ERASED_TEXT), and a path
 * that overlaps another, in any rule (equal, one containing the other, or covered by a wildcard):
 * its values would be stored and erased under two subjects, so erasing one would leave the other's
 * copy readable.
 */
export function policyProblems(policy: PersonalPolicy): { field: string; message: string }[] {
  const problems: { field: string; message: string }[] = [];
  // Subjects that are pointers: one that is not is refused below, and must not clash with every path.
  const subjects = policy.subjects.map((rule) => rule.subject).filter((subject) => parsePointer(subject) && !subject.includes('*'));
  const accepted: { field: string; path: string; covered: string }[] = [];
  policy.subjects.forEach((rule, r) => {
    const subjectTokens = parsePointer(rule.subject);
    if (!subjectTokens || rule.subject.includes('*')) {
      problems.push({ field: `subjects.${r}.subject`, message: 'must be an RFC 6901 JSON Pointer to a member of the event (beginning with /), without *' });
    } else {
      const at = placeAt(subjectTokens, false);
      if ('never' in at) problems.push({ field: `subjects.${r}.subject`, message: at.never });
    }
    rule.paths.forEach((path, p) => {
      const field = `subjects.${r}.paths.${p}`;
      const tokens = parsePointer(path);
      if (!tokens || tokens.slice(0, -1).includes('*')) {
        problems.push({ field, message: 'must be an RFC 6901 JSON Pointer, with * only as its last token' });
        return;
      }
      // A wildcard covers every member of its parent: it overlaps what its parent does.
      const wildcard = tokens.at(-1) === '*';
      const covered = wildcard ? formatPointer(tokens.slice(0, -1)) : path;
      const at = placeAt(wildcard ? tokens.slice(0, -1) : tokens, wildcard);
      const clash = [...PROTECTED, ...subjects].find((kept) => covered === '' || overlaps(covered, kept));
      const other = accepted.find((a) => overlaps(a.covered, covered));
      if ('never' in at) problems.push({ field, message: at.never });
      else if (clash !== undefined) problems.push({ field, message: `must not name ${clash}: it stays clear in the body (an index column or a subject id)` });
      else if (at.place instanceof Typed) {
        // A wildcard's place is an object; the only one holding a Typed leaf, the event, is a clash above.
        problems.push({ field, message: `must not name ${path}: it is always ${at.place.values}, never free text, so an erased value there would break the schema of its readers (Retraced's routes would show the text "${ERASED_TEXT}" in it)` });
      } else if (other !== undefined) {
        problems.push({ field, message: `overlaps ${other.field} (${other.path}): a value must belong to one path of one subject, or erasing one subject would leave it readable under another` });
      } else accepted.push({ field, path, covered });
    });
  });
  return problems;
}

/** A personal value taken out of an event: what the erasable store keeps. */
export interface PersonalValue {
  /** RFC 6901 pointer into the event where the value was. */
  pointer: string;
  /**
   * The data subject's id; null when the event names none, or names it by anything but a non-empty
   * string (the value then goes only with the event's retention).
   */
  subject: string | null;
  /** RFC 8785 canonical JSON of the value. */
  value: string;
  /** SALT_SIZE random bytes. */
  salt: Buffer;
}

/** An event split into what is hashed and what is erasable. */
export interface SplitEvent {
  /** The event without its personal values. */
  event: AuditEvent;
  /** Pointer to hex commitment, one per value; empty when the event holds none. */
  commitments: Record<string, string>;
  values: PersonalValue[];
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

// Own members only: a member named __proto__ or toString must never read the prototype's.
function member(container: unknown, token: string): unknown {
  return isObject(container) && Object.hasOwn(container, token) ? container[token] : undefined;
}

function resolve(event: AuditEvent, tokens: readonly string[]): unknown {
  let at: unknown = event;
  for (const token of tokens) at = member(at, token);
  return at;
}

// Assignment would change the prototype for a member named __proto__ (the only accessor objects
// inherit); a data property never does. Other names are assigned: it is several times faster.
function setMember(container: Json, token: string, value: unknown): void {
  if (token === '__proto__') Object.defineProperty(container, token, { value, enumerable: true, writable: true, configurable: true });
  else container[token] = value;
}

/**
 * Copy-on-write edits of an event: each object on an edited path is copied, everything else is
 * shared with the original, which is never changed.
 */
class EventEditor {
  // The copies made so far (few: the objects on the edited paths), which may be changed in place.
  private readonly copies: object[] = [];
  root: Json;

  constructor(event: AuditEvent) {
    this.root = event as unknown as Json;
  }

  private copy(object: Json): Json {
    const copy: Json = {};
    for (const name of Object.keys(object)) setMember(copy, name, object[name]);
    this.copies.push(copy);
    return copy;
  }

  private own(object: Json): Json {
    return this.copies.includes(object) ? object : this.copy(object);
  }

  /** Sets the member at `tokens`, making the objects above it where they are missing. */
  set(tokens: readonly string[], value: unknown): void {
    this.root = this.own(this.root);
    let at = this.root;
    for (let i = 0; i < tokens.length - 1; i++) {
      const child = member(at, tokens[i]!);
      const copy = isObject(child) ? this.own(child) : this.copy({});
      setMember(at, tokens[i]!, copy);
      at = copy;
    }
    setMember(at, tokens.at(-1)!, value);
  }
}

/**
 * A copy of `object` without the members at `removals` (paths of reference tokens, compared from
 * `depth` on): only the objects on their paths are copied, each once, however many members it
 * loses; the rest is shared and the original is never changed. A member is left out rather than
 * deleted: a delete would turn the object into a slow dictionary for every later read,
 * canonicalization included. A path through a non-object removes nothing.
 */
function without(object: Json, removals: readonly (readonly string[])[], depth = 0): Json {
  const copy: Json = {};
  for (const name of Object.keys(object)) {
    let removed = false;
    let below: (readonly string[])[] | undefined;
    for (const tokens of removals) {
      if (tokens[depth] !== name) continue;
      if (tokens.length === depth + 1) removed = true;
      else (below ??= []).push(tokens);
    }
    if (removed) continue;
    const value = object[name];
    setMember(copy, name, below && isObject(value) ? without(value, below, depth + 1) : value);
  }
  return copy;
}

/** Fills a buffer with cryptographically strong random bytes (crypto.randomFillSync). */
export type RandomFill = (buffer: Buffer) => unknown;

/** A policy's rules with their pointers parsed once: splitPersonal runs on every append. */
interface CompiledRule {
  subject: string[];
  when_target_type: string[] | undefined;
  /** Each path's tokens, and its pointer; a wildcard's tokens are its parent's. */
  paths: { tokens: string[]; pointer: string; wildcard: boolean }[];
}

// Policies are cached objects (one per chain and cache period), so this stays small.
const compiled = new WeakMap<PersonalPolicy, CompiledRule[]>();

function compile(policy: PersonalPolicy): CompiledRule[] {
  let rules = compiled.get(policy);
  if (rules) return rules;
  rules = policy.subjects.map((rule) => ({
    subject: parsePointer(rule.subject) ?? [],
    when_target_type: rule.when_target_type,
    paths: rule.paths.flatMap((path) => {
      const tokens = parsePointer(path);
      if (!tokens) return [];
      const wildcard = tokens.at(-1) === '*';
      return [{ tokens: wildcard ? tokens.slice(0, -1) : tokens, pointer: wildcard ? path.slice(0, -2) : path, wildcard }];
    }),
  }));
  compiled.set(policy, rules);
  return rules;
}

interface Found {
  tokens: string[];
  pointer: string;
  subject: string | null;
  value: string;
}

// Adds the value at `tokens` to `found` unless it is absent or already taken (by an earlier rule).
// A function of its own, not a closure: this runs per value of every append.
function take(found: Found[], event: AuditEvent, tokens: string[], pointer: string, subject: string | null): void {
  const value = resolve(event, tokens);
  if (value === undefined) return;
  for (const f of found) if (f.pointer === pointer) return;
  found.push({ tokens, pointer, subject, value: canonicalize(value) });
}

/**
 * Takes the personal values that `policy` names out of `event` (which is not changed). Each value
 * present (any JSON value, kept whole) gets a fresh salt from `fill` (one call for all of them) and
 * its commitment. A wildcard path takes every member of its object; a path through an array, or to
 * a member that is absent, takes nothing. A value named by two rules goes to the first. Throws
 * JcsError for a value with no canonical form (the event as a whole would not have one either).
 */
export function splitPersonal(event: AuditEvent, policy: PersonalPolicy, fill: RandomFill): SplitEvent {
  const found: Found[] = [];
  const targetType = member(member(event, 'target'), 'type');
  for (const rule of compile(policy)) {
    if (rule.when_target_type && !rule.when_target_type.includes(targetType as string)) continue;
    const subjectId = resolve(event, rule.subject);
    // An id that is not a non-empty string names no subject: its values cannot be erased by subject.
    const subject = typeof subjectId === 'string' && subjectId !== '' ? subjectId : null;
    for (const path of rule.paths) {
      if (!path.wildcard) {
        take(found, event, path.tokens, path.pointer, subject);
        continue;
      }
      const parent = resolve(event, path.tokens);
      if (isObject(parent)) for (const name of Object.keys(parent)) take(found, event, [...path.tokens, name], `${path.pointer}${formatPointer([name])}`, subject);
    }
  }
  if (found.length === 0) return { event, commitments: {}, values: [] };
  const salts = Buffer.allocUnsafe(found.length * SALT_SIZE); // filled whole by `fill`
  fill(salts);
  const commitments: Record<string, string> = {};
  const values: PersonalValue[] = [];
  for (let i = 0; i < found.length; i++) {
    const { pointer, subject, value } = found[i]!;
    const salt = salts.subarray(i * SALT_SIZE, (i + 1) * SALT_SIZE);
    setMember(commitments, pointer, commitValue(value, salt));
    values.push({ pointer, subject, value, salt });
  }
  const removed = without(event as unknown as Json, found.map((f) => f.tokens));
  return { event: removed as unknown as AuditEvent, commitments, values };
}

/** What reads in place of a value that is not in the store: erased (or never stored). */
export interface ErasedMarker {
  erased: true;
  commitment: string;
}

/** What reads in place of a stored value that does not match its commitment. */
export interface MismatchMarker {
  erased: false;
  commitment: string;
  mismatch: true;
}

/**
 * Whether `value` has the shape of an ErasedMarker or a MismatchMarker: an object whose members are
 * exactly `erased` (a boolean) and `commitment`, or these and `mismatch`. Sent by a client, such a
 * value would read exactly as a real marker does, so appends refuse it (README "Personal data and
 * erasure").
 */
export function isMarkerShape(value: unknown): boolean {
  if (!isObject(value) || !Object.hasOwn(value, 'erased') || typeof value.erased !== 'boolean' || !Object.hasOwn(value, 'commitment')) return false;
  const members = Object.keys(value).length;
  return members === 2 || (members === 3 && Object.hasOwn(value, 'mismatch'));
}

/** Whether `value` is what reads in place of an erased personal value (an ErasedMarker). */
export function isErased(value: unknown): value is ErasedMarker {
  return isMarkerShape(value) && (value as ErasedMarker).erased === true;
}

/** Whether `value` is what reads in place of a stored value that does not match its commitment (a MismatchMarker). */
export function isMismatch(value: unknown): value is MismatchMarker {
  return isMarkerShape(value) && (value as MismatchMarker).mismatch === true;
}

/** An event with its personal values put back, and the pointers that could not be. */
export interface RestoredEvent {
  event: AuditEvent;
  /** Pointers whose value is not stored (erased): they read as ErasedMarker. */
  erased: string[];
  /** Pointers whose stored value does not match the commitment: they read as MismatchMarker. */
  mismatched: string[];
}

/**
 * Puts the stored personal values back into a committed event (which is not changed). Each
 * commitment's pointer gets its stored value when it matches the commitment (commitValue), an
 * ErasedMarker when nothing is stored, and a MismatchMarker when the stored value or salt does
 * not match: never a silent absence, never an unchecked value.
 */
export function restorePersonal(
  event: AuditEvent,
  commitments: Readonly<Record<string, string>>,
  stored: ReadonlyMap<string, { value: string; salt: Uint8Array }>,
): RestoredEvent {
  const restored: RestoredEvent = { event, erased: [], mismatched: [] };
  const pointers = Object.keys(commitments);
  if (pointers.length === 0) return restored;
  const editor = new EventEditor(event);
  for (const pointer of pointers) {
    const tokens = parsePointer(pointer);
    const commitment = commitments[pointer]!;
    if (!tokens) continue;
    const value = stored.get(pointer);
    if (!value) {
      restored.erased.push(pointer);
      editor.set(tokens, { erased: true, commitment } satisfies ErasedMarker);
    } else if (value.salt.length !== SALT_SIZE || commitValue(value.value, value.salt) !== commitment) {
      restored.mismatched.push(pointer);
      editor.set(tokens, { erased: false, commitment, mismatch: true } satisfies MismatchMarker);
    } else editor.set(tokens, JSON.parse(value.value));
  }
  restored.event = editor.root as unknown as AuditEvent;
  return restored;
}

/** What reads in place of an erased value where a schema allows only a string (Retraced's). */
export const ERASED_TEXT = '[erased]';
/** What reads in place of a mismatched value where a schema allows only a string (Retraced's). */
export const MISMATCH_TEXT = '[mismatch]';

/**
 * A restored event (not changed) with each marker as text: ERASED_TEXT for an erased value,
 * MISMATCH_TEXT for a mismatched one. For outputs whose schema types every such place a String
 * (Retraced's Event: actor.name, source_ip, a field's value…), where a marker object would break
 * clients; the same text in every field, so a reader can tell it from a value only by its form.
 */
export function markersAsText({ event, erased, mismatched }: RestoredEvent): AuditEvent {
  if (erased.length === 0 && mismatched.length === 0) return event;
  const editor = new EventEditor(event);
  for (const pointer of erased) editor.set(parsePointer(pointer)!, ERASED_TEXT);
  for (const pointer of mismatched) editor.set(parsePointer(pointer)!, MISMATCH_TEXT);
  return editor.root as unknown as AuditEvent;
}
