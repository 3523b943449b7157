import type { Context } from 'hono';
import type { AppEnv } from '../context.js';
import { ApiError } from '../errors.js';

/** The chain an environment (or viewer) token stands for: its project and environment. */
export function chainOf(c: Context<AppEnv>) {
  const principal = c.get('principal');
  if (principal.kind === 'admin') throw new ApiError(403, 'forbidden', 'this route needs an environment token');
  return { project: principal.projectId, environment: principal.environmentId };
}

/** Filters a viewer token's reads are held to: its group, and its target when it names one. */
export function viewerFilter(c: Context<AppEnv>): { group_id?: string; target_id?: string } {
  const principal = c.get('principal');
  if (principal.kind !== 'viewer') return {};
  return { group_id: principal.groupId, ...(principal.targetId ? { target_id: principal.targetId } : {}) };
}
