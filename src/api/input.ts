import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import type { z } from 'zod';
import { isUuid } from '../ledger/uuid.js';
import type { AppEnv } from './context.js';
import { ApiError, invalidFields, notFound, type FieldProblem } from './errors.js';
import { parseJson } from './json.js';

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

/**
 * The request body, at most `maxBytes` (413 beyond). Under @hono/node-server it is read straight
 * from Node's request: building a web-standard Request and body stream costs a quarter of the
 * CPU of a small append.
 */
async function readBody(c: Context, maxBytes: number): Promise<Buffer> {
  const tooLarge = () => new ApiError(413, 'payload_too_large', `the body exceeds ${maxBytes} bytes`);
  if (Number(c.req.header('content-length') ?? 0) > maxBytes) throw tooLarge();
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (!incoming) {
    const body = Buffer.from(await c.req.arrayBuffer());
    if (body.length > maxBytes) throw tooLarge();
    return body;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of incoming as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxBytes) throw tooLarge();
      chunks.push(chunk);
    }
  } catch (error) {
    // A client gone before the end of its body (node's "aborted", ECONNRESET): its failure, which
    // would otherwise read as the database's ECONNRESET, a 503 in the logs and metrics.
    if (error instanceof ApiError || !incoming.readableAborted) throw error;
    throw new ApiError(400, 'body_incomplete', 'the connection closed before the end of the request body');
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
}

// Fatal: a body that is not UTF-8 is refused, not stored with U+FFFD in place of its bad bytes.
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The service stores the bytes it was sent and decodes no content coding (RFC 9110 section 8.4):
 * a gzip body would be refused as "not UTF-8", and a plain body labelled `br` stored as if it were
 * one. So any Content-Encoding but `identity` (compared ignoring case, as RFC 9110 has it) is a
 * 415 naming the header, with `Accept-Encoding: identity` (RFC 9110 section 15.5.16).
 */
function requireIdentityEncoding(c: Context<AppEnv>): void {
  const encoding = c.req.header('content-encoding')?.trim();
  if (!encoding || encoding.toLowerCase() === 'identity') return;
  c.header('Accept-Encoding', 'identity');
  const message = `is ${JSON.stringify(encoding)}: send the body without a content coding (identity)`;
  throw new ApiError(415, 'unsupported_media_type', `Content-Encoding: ${message}`, [{ field: 'Content-Encoding', message }]);
}

/** 415 for another media type than JSON, or a charset other than UTF-8 (RFC 8259 section 8.1). */
function requireJsonType(c: Context<AppEnv>): void {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(type)) {
    throw new ApiError(415, 'unsupported_media_type', 'the body must be JSON (Content-Type: application/json)', [
      { field: 'Content-Type', message: 'must be application/json' },
    ]);
  }
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(type)?.[1];
  if (charset !== undefined && charset.toLowerCase() !== 'utf-8') {
    throw new ApiError(415, 'unsupported_media_type', `the body must be UTF-8 JSON (charset ${charset} is not taken)`, [
      { field: 'Content-Type', message: `charset ${charset} is not taken: UTF-8 only` },
    ]);
  }
}

/** The body's JSON value (parseJson): 400 for bytes that are not UTF-8 or text that is not I-JSON. */
function parseBody(body: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new ApiError(400, 'invalid_json', 'the body is not valid UTF-8');
  }
  return parseJson(text);
}

/**
 * Reads a JSON body (see parseJson): 415 for a Content-Encoding other than identity, another
 * media type or a charset other than UTF-8, 413 when too large, 400 for bytes that are not UTF-8
 * or text that is not I-JSON.
 */
export async function readJson(c: Context<AppEnv>): Promise<unknown> {
  requireIdentityEncoding(c);
  requireJsonType(c);
  return parseBody(await readBody(c, c.get('maxBodyBytes')));
}

/**
 * For a route whose body may be left out: undefined when the request has none (zero bytes, with
 * or without a Content-Type), else the body as readJson reads it, with the same errors.
 */
export async function readOptionalJson(c: Context<AppEnv>): Promise<unknown> {
  requireIdentityEncoding(c);
  const body = await readBody(c, c.get('maxBodyBytes'));
  if (body.length === 0) return undefined;
  requireJsonType(c);
  return parseBody(body);
}

/** Reads a JSON body and validates it: 400 naming each bad field. */
export async function jsonBody<S extends z.ZodType>(c: Context<AppEnv>, schema: S): Promise<z.infer<S>> {
  return validate(schema, await readJson(c));
}

export function query<S extends z.ZodType>(c: Context, schema: S): z.infer<S> {
  // A parameter given twice is refused, not read as its first value: which one a proxy, a
  // framework or we would take differs, and a filter must mean one thing (parameter pollution).
  const repeated = Object.entries(c.req.queries()).filter(([, values]) => values.length > 1);
  if (repeated.length > 0) throw invalidFields(repeated.map(([name]) => ({ field: `query.${name}`, message: 'is given more than once' })));
  return validate(schema, c.req.query(), 'query');
}

/** A path id that is not a UUID names nothing that exists: 404, as for an unknown id. */
export function pathId(c: Context, name: string, what: string): string {
  const id = c.req.param(name);
  if (!id || !isUuid(id)) throw notFound(what);
  return id.toLowerCase();
}
