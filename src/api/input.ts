import type { Context } from 'hono';
import type { z } from 'zod';
import { isUuid } from '../ledger/uuid.js';
import { ApiError, invalidFields, notFound, type FieldProblem } from './errors.js';

/** Reading and validating request input: JSON bodies, query strings and path ids. */

function problems(error: z.ZodError, prefix: string): FieldProblem[] {
  return error.issues.flatMap((issue) => {
    const at = [prefix, ...issue.path.map(String)].filter(Boolean);
    // Zod reports unknown keys at the object's path; name each key as its own field.
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ field: [...at, key].join('.'), message: 'unknown field' }));
    }
    return [{ field: at.join('.') || 'body', message: issue.message }];
  });
}

export function validate<S extends z.ZodType>(schema: S, value: unknown, prefix = ''): z.infer<S> {
  const result = schema.safeParse(value);
  if (!result.success) throw invalidFields(problems(result.error, prefix));
  return result.data;
}

/** Reads a JSON body: 415 for another media type, 400 for malformed JSON. */
export async function readJson(c: Context): Promise<unknown> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(type)) {
    throw new ApiError(415, 'unsupported_media_type', 'the body must be JSON (Content-Type: application/json)');
  }
  const text = await c.req.text();
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ApiError(400, 'invalid_json', `the body is not valid JSON: ${(error as Error).message}`);
  }
}

/** Reads a JSON body and validates it: 400 naming each bad field. */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.infer<S>> {
  return validate(schema, await readJson(c));
}

export function query<S extends z.ZodType>(c: Context, schema: S): z.infer<S> {
  return validate(schema, c.req.query(), 'query');
}

/** A path id that is not a UUID names nothing that exists: 404, as for an unknown id. */
export function pathId(c: Context, name: string, what: string): string {
  const id = c.req.param(name);
  if (!id || !isUuid(id)) throw notFound(what);
  return id.toLowerCase();
}
