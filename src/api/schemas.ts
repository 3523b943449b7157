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

/**
 * A name or reason as given, kept exactly (a hold's reason is recorded in the chain): not empty,
 * and without white space around it, which is refused rather than trimmed away.
 */
export function nameSchema(maxLength: number) {
  return storableString(maxLength)
    .refine((s) => s.trim() !== '', { error: 'must not be empty', abort: true })
    .refine((s) => s === s.trim(), 'must not begin or end with white space');
}

/**
 * Dates and times the API accepts: four-digit years, 0001-01-01T00:00:00Z to
 * 9999-12-31T23:59:59.999Z (UTC), which both PostgreSQL and JavaScript's Date hold (PostgreSQL
 * has no year 0, and JSON Schema's date-time has four-digit years). Anything else is a 400
 * naming the parameter, never a database error.
 */
const EARLIEST = Date.parse('0001-01-01T00:00:00Z');
const LATEST = Date.parse('9999-12-31T23:59:59.999Z');
const IN_RANGE = 'must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z';
const inRange = (text: string) => {
  const ms = Date.parse(text);
  return ms >= EARLIEST && ms <= LATEST;
};

/** An ISO 8601 date-time with `Z` or an offset (RFC 3339), in range; kept as the string given. */
export const isoDateTime = z.iso
  .datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z', abort: true })
  .refine(inRange, IN_RANGE);

/** The same, as a Date: every date-time query parameter. */
export const dateTimeParam = isoDateTime.transform((s) => new Date(s));

/** A calendar date `YYYY-MM-DD` that exists (no 2026-02-30), in range. */
export const dateParam = z.iso.date({ error: 'must be a date YYYY-MM-DD, e.g. 2026-01-31', abort: true }).refine(inRange, IN_RANGE);

/**
 * A whole number given as a query parameter, min..max: decimal digits only. z.coerce.number would
 * also read "0x10" as 16, "1e3", " 7" or "7.0", and an empty value as 0: a parameter is read as
 * written or refused (400 naming it), never silently altered.
 */
export function queryInt(min: number, max = Number.MAX_SAFE_INTEGER) {
  return z
    .string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a whole number in decimal digits') })
    .regex(/^[0-9]+$/, 'must be a whole number in decimal digits')
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));
}

export const pageQuery = z.strictObject({
  limit: queryInt(1, 1000).default(100),
  cursor: z.uuid('must be a cursor returned by an earlier page').optional(),
});

/** `{<key>: rows, next_cursor}`; next_cursor is set when the page is full. */
export function page<K extends string, T extends { id: string }>(key: K, rows: T[], limit: number) {
  return { [key]: rows, next_cursor: rows.length === limit ? rows[rows.length - 1]!.id : null } as Record<K, T[]> & {
    next_cursor: string | null;
  };
}
