import type pg from 'pg';
import { isUuid, uuidv7 } from '../ledger/uuid.js';
import { withTransaction } from './database.js';
import { ConflictError, uniquely } from './errors.js';

/** Projects and environments: the tenants. Every function takes ids already checked as UUIDs. */

export interface Project {
  id: string;
  name: string;
  created_at: Date;
  updated_at: Date;
}

export interface Environment extends Project {
  project_id: string;
}

export interface Page {
  limit: number;
  /** Return rows with ids after this one (ids are UUIDv7, so this is creation order). */
  after?: string | undefined;
}

const PROJECT_COLUMNS = 'id, name, created_at, updated_at';
const ENVIRONMENT_COLUMNS = 'id, project_id, name, created_at, updated_at';

export async function createProject(db: pg.Pool, name: string): Promise<Project> {
  return uniquely('name', `a project named "${name}" exists`, async () => {
    const { rows } = await db.query<Project>(
      `INSERT INTO projects (id, name) VALUES ($1, $2) RETURNING ${PROJECT_COLUMNS}`,
      [uuidv7(), name],
    );
    return rows[0]!;
  });
}

export async function listProjects(db: pg.Pool, page: Page): Promise<Project[]> {
  const { rows } = await db.query<Project>(
    `SELECT ${PROJECT_COLUMNS} FROM projects WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2`,
    [page.after ?? null, page.limit],
  );
  return rows;
}

export async function getProject(db: pg.Pool, id: string): Promise<Project | undefined> {
  const { rows } = await db.query<Project>(`SELECT ${PROJECT_COLUMNS} FROM projects WHERE id = $1`, [id]);
  return rows[0];
}

export async function renameProject(db: pg.Pool, id: string, name: string): Promise<Project | undefined> {
  return uniquely('name', `a project named "${name}" exists`, async () => {
    const { rows } = await db.query<Project>(
      `UPDATE projects SET name = $2, updated_at = now() WHERE id = $1 RETURNING ${PROJECT_COLUMNS}`,
      [id, name],
    );
    return rows[0];
  });
}

export async function createEnvironment(db: pg.Pool, projectId: string, name: string): Promise<Environment | undefined> {
  return uniquely('name', `an environment named "${name}" exists in this project`, async () => {
    // One statement: the environment and its empty chain exist together or not at all.
    const { rows } = await db.query<Environment>(
      `WITH env AS (
         INSERT INTO environments (id, project_id, name)
         SELECT $1, id, $3 FROM projects WHERE id = $2
         RETURNING ${ENVIRONMENT_COLUMNS}),
       head AS (INSERT INTO chain_heads (environment_id) SELECT id FROM env)
       SELECT * FROM env`,
      [uuidv7(), projectId, name],
    );
    return rows[0];
  });
}

export async function listEnvironments(db: pg.Pool, projectId: string, page: Page): Promise<Environment[]> {
  const { rows } = await db.query<Environment>(
    `SELECT ${ENVIRONMENT_COLUMNS} FROM environments
      WHERE project_id = $1 AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3`,
    [projectId, page.after ?? null, page.limit],
  );
  return rows;
}

export async function getEnvironment(db: pg.Pool, projectId: string, id: string): Promise<Environment | undefined> {
  const { rows } = await db.query<Environment>(
    `SELECT ${ENVIRONMENT_COLUMNS} FROM environments WHERE project_id = $1 AND id = $2`,
    [projectId, id],
  );
  return rows[0];
}

export async function renameEnvironment(
  db: pg.Pool,
  projectId: string,
  id: string,
  name: string,
): Promise<Environment | undefined> {
  return uniquely('name', `an environment named "${name}" exists in this project`, async () => {
    const { rows } = await db.query<Environment>(
      `UPDATE environments SET name = $3, updated_at = now() WHERE project_id = $1 AND id = $2
       RETURNING ${ENVIRONMENT_COLUMNS}`,
      [projectId, id, name],
    );
    return rows[0];
  });
}

/**
 * Deletes environments (all of a project's when `environmentId` is omitted) and with them
 * their tokens, but only when none of their chains holds an event: the API never deletes
 * audit data. Chain heads are locked first, so an append cannot slip in between the check
 * and the delete. Returns false when nothing matched.
 */
async function deleteEmptyChains(
  db: pg.Pool,
  projectId: string,
  environmentId: string | undefined,
): Promise<boolean> {
  return withTransaction(db, async (client) => {
    const project = await client.query('SELECT FROM projects WHERE id = $1 FOR UPDATE', [projectId]);
    const heads = await client.query<{ id: string; seq: number }>(
      `SELECT e.id, h.seq FROM environments e JOIN chain_heads h ON h.environment_id = e.id
        WHERE e.project_id = $1 AND ($2::uuid IS NULL OR e.id = $2)
        ORDER BY e.id FOR UPDATE OF h`,
      [projectId, environmentId ?? null],
    );
    if (!project.rowCount || (environmentId && !heads.rowCount)) return false;
    if (heads.rows.some((h) => h.seq > 0)) {
      throw new ConflictError(
        `${environmentId ? 'this environment' : 'this project'} holds audit events, which are never deleted`,
      );
    }
    if (environmentId) {
      await client.query('DELETE FROM environments WHERE project_id = $1 AND id = $2', [projectId, environmentId]);
    } else {
      await client.query('DELETE FROM projects WHERE id = $1', [projectId]);
    }
    return true;
  });
}

export function deleteProject(db: pg.Pool, projectId: string): Promise<boolean> {
  return deleteEmptyChains(db, projectId, undefined);
}

export function deleteEnvironment(db: pg.Pool, projectId: string, environmentId: string): Promise<boolean> {
  return deleteEmptyChains(db, projectId, environmentId);
}

async function projectByName(db: pg.Pool, name: string): Promise<Project | undefined> {
  const { rows } = await db.query<Project>(`SELECT ${PROJECT_COLUMNS} FROM projects WHERE name = $1`, [name]);
  return rows[0];
}

async function environmentByName(db: pg.Pool, projectId: string, name: string): Promise<Environment | undefined> {
  const { rows } = await db.query<Environment>(`SELECT ${ENVIRONMENT_COLUMNS} FROM environments WHERE project_id = $1 AND name = $2`, [
    projectId,
    name,
  ]);
  return rows[0];
}

/** A project or environment named by an id that does not exist (an id is never created). */
export class UnknownTenantError extends Error {
  override name = 'UnknownTenantError';
  constructor(
    readonly what: 'project' | 'environment',
    id: string,
  ) {
    super(`there is no ${what} with the id ${id} (a UUID is looked up, never created; give a name to have it created)`);
  }
}

/**
 * The project named by `project` (its UUID id, or its name) and its environment named by
 * `environment` (id or name), as library mode's setContext names a chain. A name not found is
 * created (with its empty chain); two processes creating one name at once both get the one row,
 * the loser of the race reading the winner's. An id not found throws UnknownTenantError. Names
 * are taken as given: the caller checks them (nameSchema).
 */
export async function findOrCreateChain(db: pg.Pool, project: string, environment: string): Promise<{ project: Project; environment: Environment }> {
  const projectRow = await findOrCreate(
    'project',
    project,
    () => getProject(db, project),
    () => projectByName(db, project),
    () => createProject(db, project),
  );
  const environmentRow = await findOrCreate(
    'environment',
    environment,
    () => getEnvironment(db, projectRow.id, environment),
    () => environmentByName(db, projectRow.id, environment),
    () => createEnvironment(db, projectRow.id, environment),
  );
  return { project: projectRow, environment: environmentRow };
}

/**
 * The row `key` names: by id when it is a UUID, else by name. A name not found is created; when
 * another process created it first (ConflictError), the row it made is read.
 */
async function findOrCreate<T>(
  what: 'project' | 'environment',
  key: string,
  get: () => Promise<T | undefined>,
  byName: () => Promise<T | undefined>,
  create: () => Promise<T | undefined>,
): Promise<T> {
  const found = (isUuid(key) ? await get() : undefined) ?? (await byName());
  if (found !== undefined) return found;
  if (isUuid(key)) throw new UnknownTenantError(what, key);
  let created: T | undefined;
  try {
    created = await create();
  } catch (error) {
    if (!(error instanceof ConflictError)) throw error;
    created = await byName();
  }
  // Only an environment's project deleted meanwhile leaves nothing.
  if (created === undefined) throw new Error(`the ${what} "${key}" could not be created: its project was deleted meanwhile`);
  return created;
}

/** The names of a chain's project and environment, or undefined when the environment is gone. */
export async function chainNames(db: pg.Pool, environmentId: string): Promise<{ project: { id: string; name: string }; environment: { id: string; name: string } } | undefined> {
  const { rows } = await db.query<{ project_id: string; project_name: string; environment_id: string; environment_name: string }>(
    `SELECT p.id AS project_id, p.name AS project_name, e.id AS environment_id, e.name AS environment_name
       FROM environments e JOIN projects p ON p.id = e.project_id WHERE e.id = $1`,
    [environmentId],
  );
  const row = rows[0];
  return row && { project: { id: row.project_id, name: row.project_name }, environment: { id: row.environment_id, name: row.environment_name } };
}
