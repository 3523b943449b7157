import type { Context } from 'hono';
import type { AppEnv } from '../context.js';
import { ApiError } from '../errors.js';

/** The chain an environment token stands for: its project and environment. */
export function chainOf(c: Context<AppEnv>) {
  const principal = c.get('principal');
  if (principal.kind !== 'token') throw new ApiError(403, 'forbidden', 'this route needs an environment token');
  return { project: principal.projectId, environment: principal.environmentId };
}
