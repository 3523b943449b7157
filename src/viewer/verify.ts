// The viewer's "Verify": the ledger's own check of a saved proof (src/ledger/verify-proof.ts), run
// in the page on what the server sent, against the host's pinned keys or the published ones.
import { parseVerifierKey, type VerifierKey } from '../ledger/keys.js';
import { verifyInclusionDocument, type InclusionDocument } from '../ledger/verify-proof.js';

/** What a check found: `ok` with what was proven, or the precise reason it failed. */
export type VerifyOutcome = { ok: true; message: string } | { ok: false; message: string };

/**
 * Parses verifier keys (`<name>+<id>+<base64>`, as GET /v1/keys and `auditledger key show` print
 * them), given as one text separated by whitespace or commas. Throws KeyError naming a bad one.
 */
export function parseKeys(text: string): VerifierKey[] {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((vkey) => parseVerifierKey(vkey));
}

/**
 * Checks an inclusion proof (GET /v1/events/:id/proof) for the event shown, whose exact stored
 * bytes are `canonical`: the C2SP signed-note Ed25519 signature of its checkpoint against `keys`,
 * the leaf hash SHA-256(0x00 || bytes), and the RFC 9162 audit path to the checkpoint's root.
 * Never throws: a failure is returned with its reason.
 */
export function verifyShownEvent(proof: InclusionDocument, canonical: string, keys: readonly VerifierKey[]): VerifyOutcome {
  try {
    if (proof.canonical !== canonical) return { ok: false, message: 'the bytes proven differ from the event shown' };
    return { ok: true, message: verifyInclusionDocument(proof, keys) };
  } catch (error) {
    return { ok: false, message: error instanceof Error ? error.message : String(error) };
  }
}
