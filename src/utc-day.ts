/**
 * Whether `text` is a UTC day `YYYY-MM-DD` that exists (not 2026-02-30), from 0001-01-01 (there is
 * no year 0 in PostgreSQL) to 9999-12-31.
 */
export function isUtcDay(text: string): boolean {
  const time = Date.parse(`${text}T00:00:00Z`);
  return /^\d{4}-\d{2}-\d{2}$/.test(text) && text >= '0001-01-01' && !Number.isNaN(time) && new Date(time).toISOString().startsWith(text);
}
