// Format versions (docs/format.md, "Versions"): the version number moves wherever bytes change, and
// a verifier reads only the versions it knows. Any other is refused by name, never guessed at: a
// verifier cannot check bytes whose rules it was not written for.
import { FORMAT_VERSION } from './event.js';

/**
 * The event body `v` values this code verifies: 1, and 2 (FORMAT_VERSION), which added the member
 * `commitments`. A v1 body is a v2 body without `commitments`, so both are checked by one set of
 * rules once eventVersionProblem has passed the body.
 */
export const EVENT_VERSIONS: readonly number[] = [1, FORMAT_VERSION];

/**
 * Undefined when an event body at version `v`, carrying (`committed`) or not carrying a
 * `commitments` member, is one this verifier knows; otherwise the message that refuses it. A v1
 * body with `commitments` is refused: that member did not exist in v1 (docs/format.md, "Versions").
 */
export function eventVersionProblem(v: unknown, committed: boolean): string | undefined {
  const unknown = unknownVersion('event', v, EVENT_VERSIONS);
  if (unknown !== undefined) return unknown;
  if (v === 1 && committed) return 'event version 1 has no member commitments (version 2 added it)';
  return undefined;
}

/**
 * The bundle manifest's version, which a sealed bundle writes. Its own number, not the event body's:
 * a manifest's bytes and an event body's change apart, and each line of a bundle states its version.
 */
export const MANIFEST_VERSION = 1;

/** The bundle manifest `v` values this code verifies. */
export const MANIFEST_VERSIONS: readonly number[] = [MANIFEST_VERSION];

/**
 * Undefined when `found` is one of the `known` versions of `what` (an event body, a manifest);
 * otherwise the message that refuses it, naming the version found and the ones known.
 */
export function unknownVersion(what: string, found: unknown, known: readonly number[]): string | undefined {
  if (known.includes(found as number)) return undefined;
  const shown = found === undefined ? 'missing' : JSON.stringify(found);
  return `${what} version ${shown} is not one this verifier knows (it knows ${known.join(', ')})`;
}
