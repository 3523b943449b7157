// The ledger's own events about personal data (README "Personal data and erasure"): erasures and
// legal holds (and personal data policy changes) are recorded in the chains they concern, as events any verifier checks like the rest.
// They name a data subject only by its keyed digest (personal.ts subjectDigest), never by its id,
// and hold no personal value: they are appended whole, outside any personal data policy.
import { createHash } from 'node:crypto';
import type { AuditEvent } from './event.js';
import { canonicalize } from './jcs.js';
import type { PersonalPolicy } from './personal.js';

/** Target type of an erasure event: its target id is the subject's keyed digest (hex). */
export const DATA_SUBJECT = 'data_subject';
/** Target type of a hold event: its target id is the hold's id. */
export const LEGAL_HOLD = 'legal_hold';

export interface ErasureFacts {
  /** The subject's keyed digest, lowercase hex. */
  subjectDigest: string;
  /** Who asked for the erasure (the actor id). */
  requestedBy: string;
  /** Values erased in this chain by RFC 6901 pointer (JSON Pointer); empty when the chain held none. */
  byPointer: Readonly<Record<string, number>>;
}

/**
 * The event `auditledger.subject.erased` (crud d) recording that a subject's values in the chain
 * were erased: target `{id: <digest hex>, type: "data_subject"}`, and in metadata the digest, the
 * number of values erased and that number by pointer.
 */
export function erasureEvent({ subjectDigest, requestedBy, byPointer }: ErasureFacts): AuditEvent {
  const values = Object.values(byPointer).reduce((sum, n) => sum + n, 0);
  return {
    action: 'auditledger.subject.erased',
    crud: 'd',
    actor: { id: requestedBy },
    target: { id: subjectDigest, type: DATA_SUBJECT },
    metadata: { subject_digest: subjectDigest, values_erased: values, values_by_pointer: { ...byPointer } },
  };
}

/** A legal hold as its events describe it. */
export interface HoldFacts {
  action: 'placed' | 'lifted';
  hold: { id: string; environment_id: string | null; subject_digest: string | null; reason: string };
  /** Who placed or lifted it (the actor id). */
  by: string;
}

/**
 * The event `auditledger.hold.placed` (crud c) or `auditledger.hold.lifted` (crud u): target
 * `{id: <hold id>, type: "legal_hold"}`, and in metadata the hold's id, scope (environment id and
 * subject digest, null for all) and reason.
 */
export function holdEvent({ action, hold, by }: HoldFacts): AuditEvent {
  return {
    action: `auditledger.hold.${action}`,
    crud: action === 'placed' ? 'c' : 'u',
    actor: { id: by },
    target: { id: hold.id, type: LEGAL_HOLD },
    metadata: { hold_id: hold.id, environment_id: hold.environment_id, subject_digest: hold.subject_digest, reason: hold.reason },
  };
}

/** Where a chain's policy comes from: its environment's, its project's, or DEFAULT_POLICY. */
export type PolicySource = 'environment' | 'project' | 'default';

/** A chain's personal data policy after a change, and where it comes from. */
export interface PolicyFacts {
  policy: PersonalPolicy;
  source: PolicySource;
}

/**
 * The event `auditledger.policy.changed` (crud u) recording the personal data policy a chain
 * follows from here on: in metadata the policy, its SHA-256 (lowercase hex, over its RFC 8785
 * canonical JSON) and its source.
 */
export function policyChangedEvent({ policy, source }: PolicyFacts): AuditEvent {
  return {
    action: 'auditledger.policy.changed',
    crud: 'u',
    metadata: { policy, policy_sha256: createHash('sha256').update(canonicalize(policy)).digest('hex'), source },
  };
}
