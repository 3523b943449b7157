import { z } from 'zod';

/** Input building blocks shared by the routes. */

/** A string PostgreSQL can store and UTF-8 can encode: no NUL, no lone surrogate. */
export function storableString(maxLength: number) {
  return z
    .string()
    .max(maxLength, `must be at most ${maxLength} characters`)
    .refine((s) => !s.includes('\u0000'), 'must not contain NUL (\\u0000)')
    .refine((s) => s.isWellFormed(), 'must not contain a lone UTF-16 surrogate');
}

export function nameSchema(maxLength: number) {
  return storableString(maxLength).trim().min(1, 'must not be empty');
}

export const pageQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.uuid('must be a cursor returned by an earlier page').optional(),
});

/** `{<key>: rows, next_cursor}`; next_cursor is set when the page is full. */
export function page<K extends string, T extends { id: string }>(key: K, rows: T[], limit: number) {
  return { [key]: rows, next_cursor: rows.length === limit ? rows[rows.length - 1]!.id : null } as Record<K, T[]> & {
    next_cursor: string | null;
  };
}
