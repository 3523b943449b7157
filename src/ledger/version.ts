// Format versions (docs/format.md, "Versions"): the version number moves wherever bytes change, and
// a verifier reads only the versions it knows. Any other is refused by name, never guessed at: a
// verifier cannot check bytes whose rules it was not written for.
import { FORMAT_VERSION } from './event.js';

/** The event body `v` values this code verifies. */
export const EVENT_VERSIONS: readonly number[] = [FORMAT_VERSION];

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
