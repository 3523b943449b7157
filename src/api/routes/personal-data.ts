import { Hono, type Context } from 'hono';
import type pg from 'pg';
import { z } from 'zod';
import { DEFAULT_POLICY, policyProblems, type PersonalPolicy } from '../../ledger/personal.js';
import type { PolicySource } from '../../ledger/system-events.js';
import { changePolicy, chainPolicy, getPolicy } from '../../store/personal.js';
import { getEnvironment, getProject } from '../../store/tenants.js';
import type { AppEnv } from '../context.js';
import { invalidFields, notFound } from '../errors.js';
import { jsonBody, pathId } from '../input.js';
import type { PersonalPolicies } from '../personal.js';
import { storableString } from '../schemas.js';

export interface PersonalDataDeps {
  db: pg.Pool;
  /** The server clock appends use (GroupCommit.now). */
  now: () => number;
  policies: PersonalPolicies;
}

const pointer = storableString(1024);

/** A personal data policy as PUT: personal.ts PersonalPolicy; policyProblems checks the rest. */
export const policySchema = z.strictObject({
  subjects: z
    .array(
      z.strictObject({
        subject: pointer,
        paths: z.array(pointer).min(1, 'must name at least one path').max(100, 'must name at most 100 paths'),
        when_target_type: z.array(storableString(4096).min(1, 'must not be empty')).min(1, 'must name at least one type').max(100).optional(),
      }),
    )
    .max(100, 'must have at most 100 subjects'),
});

/** A policy as the routes answer: the one in force, where it comes from, when this scope's own was set (null: it has none). */
interface PolicyAnswer {
  project_id: string;
  environment_id: string | null;
  policy: PersonalPolicy;
  source: PolicySource;
  changed_at: string | null;
}

/**
 * The personal data policy of a project and of each environment (README "Personal data and
 * erasure"), behind the admin check: GET answers the policy in force; PUT sets one, DELETE removes
 * one (its chains then follow the project's, or the default). Every PUT and DELETE appends an
 * `auditledger.policy.changed` event to each chain whose policy it sets, holding that chain's
 * policy and its SHA-256 (over RFC 8785 canonical JSON), so the chain records which values it
 * commits to from where on. The change and its events are one transaction (store/personal.ts
 * changePolicy): an error leaves neither. A PUT of the policy already set is a no-op (`events: []`).
 */
export function personalDataRoutes({ db, now, policies }: PersonalDataDeps) {
  /** The project and environment (null: the project's policy) a request names; 404 when either does not exist. */
  async function scope(c: Context<AppEnv>): Promise<{ project: string; environment: string | null }> {
    const project = pathId(c, 'projectId', 'project');
    if (c.req.param('environmentId') === undefined) {
      if (!(await getProject(db, project))) throw notFound('project');
      return { project, environment: null };
    }
    const environment = pathId(c, 'environmentId', 'environment');
    if (!(await getEnvironment(db, project, environment))) throw notFound('environment');
    return { project, environment };
  }

  /** The policy in force for a project (its own, or the default) or an environment (its own, its project's, or the default). */
  async function answer(project: string, environment: string | null): Promise<PolicyAnswer> {
    const row = await getPolicy(db, project, environment);
    const { policy, source } = environment
      ? await chainPolicy(db, environment)
      : { policy: row?.policy ?? DEFAULT_POLICY, source: row ? ('project' as const) : ('default' as const) };
    return { project_id: project, environment_id: environment, policy, source, changed_at: row?.changed_at.toISOString() ?? null };
  }

  /** Stores a change (null: remove) with its record in each chain it changes; undefined when removing none. */
  async function change(project: string, environment: string | null, policy: PersonalPolicy | null) {
    const changed = await changePolicy(db, {
      project,
      environment,
      policy,
      now,
    });
    // After the commit: a cached policy read before it would outlive the change.
    policies.forget();
    return changed;
  }

  const get = async (c: Context<AppEnv>) => {
    const { project, environment } = await scope(c);
    return c.json(await answer(project, environment));
  };
  const put = async (c: Context<AppEnv>) => {
    const { project, environment } = await scope(c);
    const policy = await jsonBody(c, policySchema);
    const problems = policyProblems(policy);
    if (problems.length) throw invalidFields(problems);
    const { events } = (await change(project, environment, policy))!;
    return c.json({ ...(await answer(project, environment)), events });
  };
  const remove = async (c: Context<AppEnv>) => {
    const { project, environment } = await scope(c);
    const changed = await change(project, environment, null);
    if (!changed) throw notFound('personal data policy');
    const { events } = changed;
    return c.json({ ...(await answer(project, environment)), events });
  };

  return new Hono<AppEnv>()
    .get('/projects/:projectId/personal-data-policy', get)
    .put('/projects/:projectId/personal-data-policy', put)
    .delete('/projects/:projectId/personal-data-policy', remove)
    .get('/projects/:projectId/environments/:environmentId/personal-data-policy', get)
    .put('/projects/:projectId/environments/:environmentId/personal-data-policy', put)
    .delete('/projects/:projectId/environments/:environmentId/personal-data-policy', remove);
}
