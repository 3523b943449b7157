import { Hono, type Context } from 'hono';
import type pg from 'pg';
import { z } from 'zod';
import { subjectDigest } from '../../ledger/personal.js';
import { eraseSubject, liftHold, listHolds, placeHold, type ErasureOutcome } from '../../store/erasure.js';
import { getProject } from '../../store/tenants.js';
import { requireScope } from '../auth.js';
import type { AppEnv } from '../context.js';
import { ApiError, invalidFields, notFound } from '../errors.js';
import { jsonBody, pathId, query } from '../input.js';
import { nameSchema, page, pageQuery, storableString } from '../schemas.js';
import { chainOf } from './chain.js';

export interface ErasureDeps {
  db: pg.Pool;
  /** The key of subjects' keyed digests (Keyring.subjectKey). */
  subjectKey: Buffer;
  /** The server clock appends use (GroupCommit.now). */
  now: () => number;
  /** The longest subject id: the longest string an event may hold. */
  maxStringLength: number;
}

/** Longest reason of a legal hold, in characters. */
const MAX_REASON_LENGTH = 1000;

/** The request bodies of the erasure and hold routes. */
export function erasureSchemas(maxStringLength: number) {
  const subject = storableString(maxStringLength).min(1, 'must not be empty').describe("the data subject's id, as events name it (e.g. actor.id)");
  // By the digest too: what an earlier answer gave, to repeat an erasure (or hold the subject) after a restore without the id.
  const digest = z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits, as an erasure answer gives it')
    .describe("the subject's keyed digest, as an erasure answered it: instead of subject");
  const notBoth = (b: { subject?: string | undefined; subject_digest?: string | undefined }) => b.subject === undefined || b.subject_digest === undefined;
  const notBothIssue = { message: 'give subject or subject_digest, not both', path: ['subject'] };
  return {
    erasure: z
      .strictObject({ subject: subject.optional(), subject_digest: digest.optional() })
      .refine((b) => b.subject !== undefined || b.subject_digest !== undefined, { message: 'one of subject or subject_digest is required', path: ['subject'] })
      .refine(notBoth, notBothIssue),
    hold: z
      .strictObject({
        environment: z.uuid('must be the id of an environment of the project').optional().describe('hold only this environment; all of the project when absent'),
        subject: subject.optional().describe('hold only this subject; every subject when absent'),
        subject_digest: digest.optional(),
        reason: nameSchema(MAX_REASON_LENGTH).describe('why, as recorded in the chain: never personal data'),
      })
      .refine(notBoth, notBothIssue),
  };
}

/** The keyed digest a request names its subject by; undefined when it names none (a hold of every subject). */
function digestOf(subjectKey: Buffer, project: string, input: { subject?: string | undefined; subject_digest?: string | undefined }): Buffer | undefined {
  if (input.subject_digest !== undefined) return Buffer.from(input.subject_digest, 'hex');
  return input.subject === undefined ? undefined : subjectDigest(subjectKey, project, input.subject);
}

/** Who asked, as the actor id of the events recorded for it. */
function requester(c: Context<AppEnv>): string {
  const principal = c.get('principal');
  return principal.kind === 'admin' ? 'auditledger:admin' : `auditledger:token:${principal.tokenId}`;
}

/**
 * An erasure's answer: 201 when it made the erasure record or appended erasure events, 200 for a
 * repeat that found nothing new; 409 under a hold.
 */
function answer(c: Context<AppEnv>, outcome: ErasureOutcome) {
  if (!outcome.ok) {
    const { hold } = outcome;
    throw new ApiError(409, 'legal_hold', `a legal hold (${hold.id}: ${hold.reason}) covers this erasure; nothing was erased. Lift the hold first`, {
      hold: hold.id,
      reason: hold.reason,
    });
  }
  return c.json(outcome.erasure, outcome.created || outcome.appended > 0 ? 201 : 200);
}

/**
 * Erasure and legal holds of a project, for the admin token (README "Personal data and erasure").
 * The app mounts these behind the admin check, beside adminRoutes.
 */
export function erasureAdminRoutes({ db, subjectKey, now, maxStringLength }: ErasureDeps) {
  const schemas = erasureSchemas(maxStringLength);
  const projectOf = async (c: Context<AppEnv>) => {
    const project = await getProject(db, pathId(c, 'projectId', 'project'));
    if (!project) throw notFound('project');
    return project.id;
  };
  return new Hono<AppEnv>()
    .post('/projects/:projectId/erasures', async (c) => {
      const project = await projectOf(c);
      const input = await jsonBody(c, schemas.erasure);
      return answer(c, await eraseSubject(db, { project, subjectDigest: digestOf(subjectKey, project, input)!, requestedBy: requester(c), now }));
    })
    .post('/projects/:projectId/holds', async (c) => {
      const project = await projectOf(c);
      const input = await jsonBody(c, schemas.hold);
      const placed = await placeHold(db, {
        project,
        environment: input.environment?.toLowerCase(),
        subjectDigest: digestOf(subjectKey, project, input),
        reason: input.reason,
        placedBy: requester(c),
        now,
      });
      if (!placed) throw invalidFields([{ field: 'environment', message: 'is not an environment of this project' }]);
      return c.json({ ...placed.hold, events: placed.events }, 201);
    })
    .get('/projects/:projectId/holds', async (c) => {
      const project = await projectOf(c);
      const { limit, cursor } = query(c, pageQuery);
      return c.json(page('holds', await listHolds(db, project, { limit, after: cursor }), limit));
    })
    .delete('/projects/:projectId/holds/:holdId', async (c) => {
      const project = await projectOf(c);
      const lifted = await liftHold(db, project, pathId(c, 'holdId', 'hold'), requester(c), now);
      if (!lifted) throw notFound('hold');
      return c.json({ ...lifted.hold, events: lifted.events });
    });
}

/** Erasure in the caller's own chain, for an environment token with the `erase` scope. */
export function erasureRoutes({ db, subjectKey, now, maxStringLength }: ErasureDeps) {
  const schemas = erasureSchemas(maxStringLength);
  return new Hono<AppEnv>().post('/erasures', requireScope('erase'), async (c) => {
    const { project, environment } = chainOf(c);
    const input = await jsonBody(c, schemas.erasure);
    return answer(c, await eraseSubject(db, { project, environment, subjectDigest: digestOf(subjectKey, project, input)!, requestedBy: requester(c), now }));
  });
}
