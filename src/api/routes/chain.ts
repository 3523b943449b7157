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

/** Whether an event with these columns is one the caller may read: always, except for a viewer token outside its group (or target). */
export function inView(c: Context<AppEnv>, columns: { group_id: string | null; target_id: string | null }): boolean {
  const { group_id, target_id } = viewerFilter(c);
  return (!group_id || columns.group_id === group_id) && (!target_id || columns.target_id === target_id);
}
