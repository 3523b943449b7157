// A saved proof document as `auditledger verify-proof FILE` reads it: any JSON, so its shape is
// checked (zod) before verify-proof.ts verifies it. Apart from verify-proof.ts so that the client
// package and the viewer, which verify documents they build or fetch themselves, carry no zod.
import { z } from 'zod';
import { ProofError } from './proof.js';
import { verifyConsistencyDocument, verifyInclusionDocument, type ConsistencyDocument, type InclusionDocument } from './verify-proof.js';
import type { VerifierKey } from './keys.js';

/** zod's error option for a member that must be `what`: says whether it is missing or of the wrong kind. */
function must(what: string) {
  return { error: (issue: { input?: unknown }) => (issue.input === undefined ? 'is missing' : `must be ${what}, got ${shown(issue.input)}`) };
}

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

const size = (what: string) => z.int(must(what)).min(0, must(what));
const base64 = z.string(must('a base64 string'));
const proof = z.array(base64, must('a list of base64 strings'));
const note = z.string(must('a signed checkpoint note (a string) or null')).nullable();

const inclusionSchema = z.object(
  {
    leaf_index: size('a whole number from 0'),
    tree_size: size('a whole number from 0'),
    leaf_hash: base64,
    proof,
    root: base64.optional(),
    checkpoint: note,
    canonical: z.string(must("the event's canonical bytes (a string)")).optional(),
  },
  must('an object'),
) satisfies z.ZodType<InclusionDocument>;

const consistencySchema = z.object(
  {
    from: size('a whole number from 0'),
    to: size('a whole number from 0'),
    proof,
    roots: z.object({ from: base64, to: base64 }, must('an object {from, to}')).optional(),
    checkpoints: z.object({ from: note, to: note }, must('an object {from, to}')),
  },
  must('an object'),
) satisfies z.ZodType<ConsistencyDocument>;

/** `a.b[0]`: where in the document an issue is. */
function memberName(path: readonly PropertyKey[]): string {
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i ? '.' : ''}${String(part)}`)).join('');
}

/** The document as `schema` types it; ProofError naming every member missing or of the wrong type otherwise. */
function shaped<T>(schema: z.ZodType<T>, doc: unknown, kind: string): T {
  const result = schema.safeParse(doc);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${memberName(issue.path)} ${issue.message}`);
  throw new ProofError(`not a valid ${kind} document: ${problems.join('; ')}`);
}

/**
 * Verifies either kind of saved proof document (GET /v1/events/:id/proof or GET /v1/consistency),
 * told apart by `leaf_index`, or `from` and `to`: its shape first, then verifyInclusionDocument or
 * verifyConsistencyDocument. Returns what was proven. Throws ProofError (naming the member for a
 * bad shape), NoteError or CheckpointError.
 */
export function verifyProofDocument(doc: unknown, keys: readonly VerifierKey[]): string {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ProofError('not a proof document: expected a JSON object');
  if ('leaf_index' in doc) return verifyInclusionDocument(shaped(inclusionSchema, doc, 'inclusion proof'), keys);
  if ('from' in doc && 'to' in doc) return verifyConsistencyDocument(shaped(consistencySchema, doc, 'consistency proof'), keys);
  throw new ProofError('neither an inclusion proof (leaf_index) nor a consistency proof (from, to)');
}
