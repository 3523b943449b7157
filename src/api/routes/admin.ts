import { Hono } from 'hono';
import type pg from 'pg';
import { z } from 'zod';
import { uuidv7 } from '../../ledger/uuid.js';
import * as tenants from '../../store/tenants.js';
import { DEFAULT_SCOPES, SCOPES, insertToken, listTokens, revokeToken } from '../../store/tokens.js';
import type { AppEnv } from '../context.js';
import { digest, newApiToken, type Authenticator } from '../credentials.js';
import { notFound } from '../errors.js';
import { jsonBody, pathId, query } from '../input.js';
import { dateTimeParam, nameSchema, page, pageQuery } from '../schemas.js';

export interface AdminDeps {
  db: pg.Pool;
  credentials: Authenticator;
  maxNameLength: number;
}

/** The request bodies of the admin routes. */
export function adminSchemas(maxNameLength: number) {
  const named = z.strictObject({ name: nameSchema(maxNameLength) });
  const newToken = z.strictObject({
    name: nameSchema(maxNameLength),
    scopes: z
      .array(z.enum(SCOPES))
      .min(1, 'must name at least one scope')
      .refine((s) => new Set(s).size === s.length, 'must not repeat a scope')
      .default([...DEFAULT_SCOPES]),
    expires_at: dateTimeParam
      .refine((d) => d.getTime() > Date.now(), 'must be in the future')
      .nullable()
      .default(null),
  });
  return { named, newToken };
}

/** Projects > environments > tokens. The app mounts these behind the admin check. */
export function adminRoutes({ db, credentials, maxNameLength }: AdminDeps) {
  const { named, newToken } = adminSchemas(maxNameLength);

  const projectId = (c: Parameters<typeof pathId>[0]) => pathId(c, 'projectId', 'project');
  const environmentId = (c: Parameters<typeof pathId>[0]) => pathId(c, 'environmentId', 'environment');
  const found = <T>(row: T | undefined, what: string): T => {
    if (row === undefined) throw notFound(what);
    return row;
  };

  return new Hono<AppEnv>()
    .post('/projects', async (c) => {
      const { name } = await jsonBody(c, named);
      return c.json(await tenants.createProject(db, name), 201);
    })
    .get('/projects', async (c) => {
      const { limit, cursor } = query(c, pageQuery);
      return c.json(page('projects', await tenants.listProjects(db, { limit, after: cursor }), limit));
    })
    .get('/projects/:projectId', async (c) => c.json(found(await tenants.getProject(db, projectId(c)), 'project')))
    .patch('/projects/:projectId', async (c) => {
      const id = projectId(c);
      const { name } = await jsonBody(c, named);
      return c.json(found(await tenants.renameProject(db, id, name), 'project'));
    })
    .delete('/projects/:projectId', async (c) => {
      if (!(await tenants.deleteProject(db, projectId(c)))) throw notFound('project');
      return c.body(null, 204);
    })
    .post('/projects/:projectId/environments', async (c) => {
      const project = projectId(c);
      const { name } = await jsonBody(c, named);
      return c.json(found(await tenants.createEnvironment(db, project, name), 'project'), 201);
    })
    .get('/projects/:projectId/environments', async (c) => {
      const project = found(await tenants.getProject(db, projectId(c)), 'project');
      const { limit, cursor } = query(c, pageQuery);
      const rows = await tenants.listEnvironments(db, project.id, { limit, after: cursor });
      return c.json(page('environments', rows, limit));
    })
    .get('/projects/:projectId/environments/:environmentId', async (c) =>
      c.json(found(await tenants.getEnvironment(db, projectId(c), environmentId(c)), 'environment')),
    )
    .patch('/projects/:projectId/environments/:environmentId', async (c) => {
      const [project, environment] = [projectId(c), environmentId(c)];
      const { name } = await jsonBody(c, named);
      return c.json(found(await tenants.renameEnvironment(db, project, environment, name), 'environment'));
    })
    .delete('/projects/:projectId/environments/:environmentId', async (c) => {
      if (!(await tenants.deleteEnvironment(db, projectId(c), environmentId(c)))) throw notFound('environment');
      return c.body(null, 204);
    })
    .post('/projects/:projectId/environments/:environmentId/tokens', async (c) => {
      const [project, environment] = [projectId(c), environmentId(c)];
      const input = await jsonBody(c, newToken);
      const id = uuidv7();
      const token = newApiToken(id);
      const info = await insertToken(db, project, environment, {
        id,
        digest: digest(token),
        name: input.name,
        scopes: input.scopes,
        expiresAt: input.expires_at,
      });
      if (!info) throw notFound('environment');
      credentials.forget(id);
      // The only time the token is shown: only its digest is stored.
      return c.json({ ...info, token, project_id: project, environment_id: environment }, 201);
    })
    .get('/projects/:projectId/environments/:environmentId/tokens', async (c) => {
      const [project, environment] = [projectId(c), environmentId(c)];
      const { limit, cursor } = query(c, pageQuery);
      const rows = found(await listTokens(db, project, environment, { limit, after: cursor }), 'environment');
      return c.json(page('tokens', rows, limit));
    })
    .delete('/tokens/:tokenId', async (c) => {
      const id = pathId(c, 'tokenId', 'token');
      if (!(await revokeToken(db, id))) throw notFound('token');
      credentials.forget(id);
      return c.body(null, 204);
    });
}
