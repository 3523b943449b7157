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

/**
 * A query's filters held to the caller's view: a viewer token's group (and target) are applied,
 * and a query naming another group or target is refused with 403, its details naming
 * `query.group_id` or `query.target_id`. Not merged into an empty page: an empty answer reads as
 * "that group has no events", hiding an app's mistake, while asking beyond one's grant is an
 * authorization failure and is answered as one. The same 403 answers any other group, so
 * it tells nothing about which groups exist. Other callers' filters are returned as they are.
 */
export function withinView<Q extends { group_id?: string; target_id?: string }>(c: Context<AppEnv>, asked: Q): Q {
  const scope = viewerFilter(c);
  const beyond = (['group_id', 'target_id'] as const).filter(
    (name) => scope[name] !== undefined && asked[name] !== undefined && asked[name] !== scope[name],
  );
  if (beyond.length > 0) {
    const details = beyond.map((name) => ({ field: `query.${name}`, message: `is not this viewer token's ${name === 'group_id' ? 'group' : 'target'}` }));
    throw new ApiError(403, 'forbidden', details.map((d) => `${d.field}: ${d.message}`).join('; '), details);
  }
  return { ...asked, ...scope };
}

/** Whether an event with these columns is one the caller may read: always, except for a viewer token outside its group (or target). */
export function inView(c: Context<AppEnv>, columns: { group_id: string | null; target_id: string | null }): boolean {
  const { group_id, target_id } = viewerFilter(c);
  return (!group_id || columns.group_id === group_id) && (!target_id || columns.target_id === target_id);
}
