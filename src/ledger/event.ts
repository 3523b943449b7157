// Ledger format v2: the event body that is canonicalized, stored byte for byte, and hashed.
// Stable: offline verifiers depend on every name here. v2 added `commitments` (personal.ts).
import { leafHash } from './hash.js';
import { canonicalize } from './jcs.js';

/** The format of the event bodies this code writes; verifiers also read v1 (version.ts EVENT_VERSIONS). */
export const FORMAT_VERSION = 2;
/** `prev` of the first event of a chain. */
export const GENESIS_PREV = '0'.repeat(64);

export type Crud = 'c' | 'r' | 'u' | 'd';

export interface Party {
  id: string;
  name?: string;
  href?: string;
  fields?: Record<string, string>;
}

/** An audit event as apps send it: Retraced's field set. */
export interface AuditEvent {
  action: string;
  crud?: Crud;
  group?: { id: string; name?: string };
  actor?: Party;
  target?: Party & { type?: string };
  source_ip?: string;
  description?: string;
  is_failure?: boolean;
  is_anonymous?: boolean;
  fields?: Record<string, string>;
  external_id?: string;
  component?: string;
  version?: string;
  metadata?: Record<string, unknown>;
  created?: string;
}

/** The fields the ledger adds to each event. */
export interface LedgerFields {
  project: string;
  environment: string;
  /** 1-based, gapless within a chain. */
  seq: number;
  /** UUIDv7. */
  id: string;
  /** Server time, ISO 8601 with millisecond precision, never decreasing within a chain. */
  received_at: string;
  /** Hex hash of the event at seq - 1; GENESIS_PREV for seq 1. */
  prev: string;
}

export interface EventBody extends LedgerFields {
  v: typeof FORMAT_VERSION;
  /**
   * RFC 6901 pointer into `event` to the hex commitment of the personal value taken out at that
   * place (personal.ts commitValue). Present only when the event held personal values.
   */
  commitments?: Record<string, string>;
  /** The event as sent, without its personal values. */
  event: AuditEvent;
}

export interface EncodedEvent {
  body: EventBody;
  /** The RFC 8785 bytes: what is stored and what the hash covers. */
  canonical: Buffer;
  /** SHA-256(0x00 || canonical): the chain link and the Merkle leaf at index seq - 1. */
  hash: Buffer;
}

/**
 * The body of `event` (already without its personal values) with `commitments` (pointer to hex
 * commitment, personal.ts splitPersonal; empty or absent when it held none) and the ledger fields.
 */
export function encodeEvent(event: AuditEvent, fields: LedgerFields, commitments?: Record<string, string>): EncodedEvent {
  const committed = commitments && Object.keys(commitments).length > 0 ? { map: commitments, canonical: canonicalize(commitments) } : undefined;
  return encodeCanonicalEvent(event, canonicalize(event), fields, committed);
}

/** A body's `commitments` member with its RFC 8785 form, computed before the chain lock is taken. */
export interface Commitments {
  map: Record<string, string>;
  canonical: string;
}

// Ledger field values are UUIDs, hex, an ISO time and an integer: JSON strings that need no
// escaping. Anything else would make the template below differ from RFC 8785, so it is refused.
const PLAIN = /^[0-9A-Za-z:.-]*$/;

/**
 * encodeEvent for an event whose canonical JSON (and its commitments') was computed earlier
 * (outside the chain lock, say). The body's keys in RFC 8785 order are commitments (when
 * present), environment, event, id, prev, project, received_at, seq, v, so the canonical body is
 * this template; a property test checks it against canonicalize.
 */
export function encodeCanonicalEvent(event: AuditEvent, eventCanonical: string, fields: LedgerFields, commitments?: Commitments): EncodedEvent {
  const { project, environment, seq, id, received_at, prev } = fields;
  for (const value of [project, environment, id, received_at, prev]) {
    if (!PLAIN.test(value)) throw new Error(`ledger field ${JSON.stringify(value)} needs escaping`);
  }
  if (!Number.isSafeInteger(seq)) throw new Error(`seq ${seq} is not a safe integer`);
  const text =
    `{${commitments ? `"commitments":${commitments.canonical},` : ''}"environment":"${environment}","event":${eventCanonical},` +
    `"id":"${id}","prev":"${prev}","project":"${project}","received_at":"${received_at}","seq":${seq},"v":${FORMAT_VERSION}}`;
  const canonical = Buffer.from(text, 'utf8');
  const body: EventBody = { v: FORMAT_VERSION, ...fields, ...(commitments ? { commitments: commitments.map } : {}), event };
  return { body, canonical, hash: eventHash(canonical) };
}

/** The event hash of stored canonical bytes (RFC 9162 leaf hash). */
export function eventHash(canonical: Uint8Array): Buffer {
  return leafHash(canonical);
}

/**
 * The copies of body fields kept in their own columns for filtering. Verification compares
 * them with the body, so a column changed on its own is caught.
 */
export interface IndexColumns {
  action: string;
  crud: Crud | null;
  actor_id: string | null;
  target_id: string | null;
  group_id: string | null;
  /** Milliseconds since the epoch, or null. */
  created: number | null;
}

export function indexColumns(event: AuditEvent): IndexColumns {
  return {
    action: event.action,
    crud: event.crud ?? null,
    actor_id: event.actor?.id ?? null,
    target_id: event.target?.id ?? null,
    group_id: event.group?.id ?? null,
    created: event.created === undefined ? null : Date.parse(event.created),
  };
}
